"""The training loop shared by every method: set-up, the epochs' steps, and the run's end.

A run lives in one folder (see docs/CONTRACTS.md). Its state (model, optimiser, lr schedule, every
RNG state, position within the epoch, best so far, AV-log position, SWA average) is saved atomically
at every epoch end, every `runtime.checkpoint_minutes`, and on SIGTERM/SIGUSR1, so a run killed at
any moment continues when started again with the same command, and ends with the same weights.
The folder's life is run_folder's, the saved state run_state's, the schedules schedules', model selection
selection's and the per-epoch bookkeeping epoch_metrics'.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from iseat.common import distributed, run_lock
from iseat.common.device import resolve_device
from iseat.common.errors import RunFolderInputError, literal
from iseat.common.io import write_json_atomic
from iseat.common.provenance import provenance
from iseat.methods import registry as method_registry
from iseat.methods.baselines import method_warnings
from iseat.methods.models import build_model
from iseat.methods.presets import training_step
from iseat.methods.swa import WeightAverage
from iseat.training import acceleration, trackers
from iseat.training.avlog import AVLogWriter, EpochBuffer
from iseat.training.checkpoint import architecture_of
from iseat.training.divergence import check_step, step_counts
from iseat.training.epoch_metrics import accumulate, end_epoch, new_sums, run_summary
from iseat.training.run_folder import (
    LOCK,
    STATE,
    SUMMARY,
    RunConflict,
    finished_summary,
    read_resume_state,
    remove_leftovers,
    remove_new_files,
    write_if_changed,
)
from iseat.training.run_setup import (
    check_data_parallel,
    finetune_source,
    load_finetune_start,
    seed_everything,
    set_determinism,
)
from iseat.training.run_state import Progress, resume, save_run_state
from iseat.training.schedules import attack_budget, lr_stage, method_at, milestone_epochs
from iseat.training.selection import selection_attack
from iseat.training.stop_request import StopRequest

# Importable from here as before the loop's parts had modules of their own.
__all__ = [
    "LOCK",
    "STATE",
    "SUMMARY",
    "Progress",
    "RunConflict",
    "StopRequest",
    "TrainingRun",
    "attack_budget",
    "check_data_parallel",
    "finetune_source",
    "lr_stage",
    "milestone_epochs",
    "remove_leftovers",
    "remove_new_files",
    "seed_everything",
    "selection_attack",
    "set_determinism",
    "train",
    "write_if_changed",
]


class TrainingRun:
    def __init__(self, cfg: dict, out_dir, say=print):
        self.cfg, self.out, self.say = cfg, Path(out_dir), say
        self.runtime = cfg["runtime"]

    # -- public
    def run(self) -> dict:
        distributed.init_from_environment(
            "cuda" if self.runtime["device"] != "cpu" and torch.cuda.is_available() else "cpu"
        )
        if not distributed.is_writer():
            self.say = lambda *args, **kwargs: None  # rank 0 speaks for a data-parallel run
        finished = finished_summary(self.out, self.cfg, self.say)  # the common case, without loading the data
        if finished is not None:
            return finished
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderInputError(f"{{0}} {literal(self.out)} is a file; give a folder for the run", "out")
        from iseat.data import load_data  # heavy import, only when training

        self.data = load_data(self.cfg["data"], self.cfg["seed"])  # bad data fails before any file is written
        if not distributed.is_writer():  # the other processes of a data-parallel run write nothing
            self.av_writer = None
            self._setup()
            return self._train()
        created = [folder for folder in (self.out, *self.out.parents) if not folder.exists()]
        self.out.mkdir(parents=True, exist_ok=True)
        self.av_writer = None
        try:
            with run_lock.hold(self.out / LOCK, f"run folder {self.out}", self.say):
                # again under the lock: another process may have finished it since
                finished = finished_summary(self.out, self.cfg, self.say)
                return finished if finished is not None else self._run_locked()
        finally:
            with contextlib.suppress(OSError):  # only folders a failed first start made and left empty
                for folder in created:
                    folder.rmdir()

    def data_workers(self) -> int:
        return self.cfg["data"]["num_workers"]

    def _run_locked(self) -> dict:
        remove_leftovers(self.out)
        before = {p.name for p in self.out.iterdir()}
        try:
            self._setup()
            return self._train()
        except BaseException:
            if not (self.out / STATE).exists():  # failed before its first saved state: leave nothing behind
                self._close_av_log()
                remove_new_files(self.out, before)
            raise
        finally:
            self._close_av_log()

    def _close_av_log(self):
        if self.av_writer is not None:
            self.av_writer.close()
            self.av_writer = None

    # -- set-up
    def _setup(self):
        cfg, writer = self.cfg, distributed.is_writer()
        self.device = resolve_device(self.runtime["device"], self.say)  # before any output: a job fails fast
        state = distributed.from_writer(read_resume_state(self.out, cfg, self.say) if writer else None)
        if writer:
            write_if_changed(self.out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        set_determinism(self.runtime["deterministic"])
        seed_everything(cfg["seed"])
        if writer:
            write_if_changed(self.out / "split.json", json.dumps(self.data.split, indent=2) + "\n")
        self._setup_model(fine_tune=state is None)
        self._setup_optimisation()
        self.progress = Progress()
        if state is not None:
            resume(self, state)
        if self.runtime["av_log"] and writer:
            attrs = {"config": cfg, "provenance": provenance(self.device, cfg["seed"]), "seed": cfg["seed"]}
            self.av_writer = AVLogWriter(
                self.out / "av_log.h5", self.data.log_indices, attrs, resume_epochs=self.progress.av_log_epochs
            )
        self.buffer = EpochBuffer(self.data.log_indices, self.device)
        if state is not None and "buffer" in state:
            for name, values in state["buffer"].items():
                self.buffer.values[name].copy_(values)
        self.trackers = (
            trackers.for_training(cfg, self.out, self.device, self.progress.epoch, self.say)
            if writer
            else trackers.Trackers([], self.out, self.say)
        )

    def _setup_model(self, fine_tune: bool):
        self.architecture = architecture_of(self.cfg, self.data.num_classes)
        self.model = build_model(**self.architecture).to(self.device)
        if distributed.active() and self.runtime["batch_norm_statistics"] == "global":
            distributed.global_batch_norm(self.model)
        if fine_tune:
            load_finetune_start(self.model, self.cfg, self.architecture, self.say)
        self.step_model = acceleration.prepare_model(self.model, self.runtime, self.device)
        self.memory_lean = acceleration.options(self.runtime)["memory_lean"]

    def _setup_optimisation(self):
        cfg, t = self.cfg, self.cfg["training"]
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"]
        )
        self.milestones = milestone_epochs(cfg)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, self.milestones, 0.1)
        self.schedule = method_registry.schedule(cfg["method"])
        for warning in method_warnings(cfg):
            self.say(f"warning: {warning}")
        if distributed.active():
            check_data_parallel(cfg)
        self.swa = WeightAverage(self.model, t["swa"]["decay"]) if t["swa"]["enabled"] else None

    # -- the loop
    def _train(self) -> dict:
        stop = StopRequest()
        epochs = self.cfg["training"]["epochs"]
        last_save = time.monotonic()
        while self.progress.epoch < epochs:
            finished_epoch = self._train_epoch(stop, last_save)
            if not finished_epoch:
                save_run_state(self)
                signum = stop.signum or signal.SIGTERM  # a process of a data-parallel run stopped by another's signal
                self.say(
                    f"received signal {signum}: state saved at epoch {self.progress.epoch}, batch "
                    f"{self.progress.batch}; run the same command again to resume"
                )
                distributed.barrier()  # the state is saved before any process exits
                raise SystemExit(128 + signum)
            last_save = time.monotonic()
        return self._finish()

    def _train_epoch(self, stop, last_save) -> bool:
        cfg, p = self.cfg, self.progress
        epoch = p.epoch
        loader = self.data.train_loader(
            cfg["training"]["batch_size"],
            epoch,
            cfg["seed"],
            self.data_workers(),
            acceleration.pin_memory(self.runtime, self.device),
        )
        n_batches = len(loader)
        stage = lr_stage(epoch, self.milestones)
        if p.batch == 0:
            self.buffer.reset()
            p.sums = new_sums()
        bar = epoch_bar(cfg, epoch, n_batches, p.batch)
        start = time.monotonic()
        for i, (x, y, index) in enumerate(loader):
            if i < p.batch:  # already done before the interruption
                continue
            method = method_at(cfg, self.schedule, stage, epoch * n_batches + i, n_batches)
            if distributed.active():  # this process's slice of the global batch
                x, y = x[distributed.rank_slice(len(y))], y[distributed.rank_slice(len(y))]
            x, y = acceleration.to_device(x, self.runtime, self.device), y.to(self.device, non_blocking=True)
            with acceleration.autocast(self.runtime, self.device):
                result = distributed.gather_result(
                    training_step(self.step_model, self.optimizer, x, y, method, self.memory_lean)
                )
            clean_correct, adv_correct, grads_ok, weights_ok = step_counts(self.model, result)
            check_step(result.loss, grads_ok, weights_ok, epoch, i, n_batches)  # before anything is kept
            self.buffer.record(index, result)
            if self.swa is not None and epoch >= cfg["training"]["swa"]["start_epoch"]:
                self.swa.update(self.model)
            accumulate(p.sums, result.loss, len(result.av), clean_correct, adv_correct)
            p.batch = i + 1
            bar.update(1)
            if distributed.largest(bool(stop)):  # every process stops at the same step
                bar.close()
                return False
            if time.monotonic() - last_save > 60 * self.runtime["checkpoint_minutes"]:
                save_run_state(self)
                last_save = time.monotonic()
        bar.close()
        last_method = method_at(cfg, self.schedule, stage, (epoch + 1) * n_batches - 1, n_batches)
        end_epoch(self, epoch, stage, last_method, time.monotonic() - start)
        return True

    def _finish(self) -> dict:
        if not distributed.is_writer():  # the summary is rank 0's
            distributed.barrier()
            return json.loads((self.out / SUMMARY).read_text())
        p = self.progress
        summary = run_summary(self.cfg, self.out, p, self.device, self.swa is not None)
        write_json_atomic(self.out / SUMMARY, summary)
        self.trackers.finish(trackers.summary_values(summary), p.epoch - 1)
        (self.out / STATE).unlink(missing_ok=True)
        distributed.barrier()
        self.say(
            f"done: best epoch {p.best_epoch + 1} (selection PGD accuracy {p.best_pgd:.4f}); outputs in {self.out}"
        )
        return summary


def epoch_bar(cfg: dict, epoch: int, n_batches: int, done: int) -> tqdm:
    """The epoch's progress bar: on a terminal often, in a log file every 30 s."""
    return tqdm(
        total=n_batches,
        initial=done,
        desc=f"epoch {epoch + 1}/{cfg['training']['epochs']}",
        disable=not cfg["runtime"]["progress"],
        mininterval=1 if os.isatty(2) else 30,
        leave=False,
    )


def train(cfg: dict, out_dir, say=print) -> dict:
    """Train (or resume, or confirm finished) the run described by a validated config."""
    return TrainingRun(cfg, out_dir, say).run()
