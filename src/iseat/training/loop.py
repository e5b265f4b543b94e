"""The training loop shared by every method: schedules, model selection, SWA, AV logging, resumption.

A run lives in one folder (see docs/CONTRACTS.md). Its state (model, optimiser, lr schedule, every
RNG state, position within the epoch, best so far, AV-log position, SWA average) is saved atomically
at every epoch end, every `runtime.checkpoint_minutes`, and on SIGTERM/SIGUSR1, so a run killed at
any moment continues when started again with the same command, and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from iseat.common import distributed, run_lock
from iseat.common.device import resolve_device
from iseat.common.errors import ResumeStateError, RunFolderError, RunFolderInputError, first_line, literal
from iseat.common.fraction import parse_fraction
from iseat.common.io import write_json_atomic, write_text_atomic
from iseat.common.provenance import provenance
from iseat.methods import registry as method_registry
from iseat.methods.baselines import method_warnings
from iseat.methods.models import build_model
from iseat.methods.presets import training_step, warm_start
from iseat.methods.swa import WeightAverage
from iseat.methods.training_attack import PGD, clean_and_robust_accuracy
from iseat.training import acceleration, trackers
from iseat.training.avlog import AVLogWriter, EpochBuffer, av_statistics, check_resumable
from iseat.training.checkpoint import architecture_of, load_model, model_checkpoint, save_atomic
from iseat.training.config import ConfigError
from iseat.training.divergence import check_step, step_counts
from iseat.training.resume_state import (
    RunShape,
    check_belongs_to,
    check_fits,
    read_state,
    restore_rng_states,
    rng_states,
    save_state,
)

STATE = "state.pt"
SUMMARY = "summary.json"
LOCK = ".iseat.lock"


class RunConflict(RunFolderError):
    """The output folder holds a finished run made with another config."""


# ----------------------------------------------------------------------------- set-up helpers


def set_determinism(enabled: bool) -> None:
    if enabled:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def milestone_epochs(cfg: dict) -> list[int]:
    epochs = cfg["training"]["epochs"]
    return sorted(int(round(f * epochs)) for f in cfg["training"]["lr_milestones"])


def lr_stage(epoch: int, milestones: list[int]) -> int:
    """Number of lr decays before `epoch`: lambda and gamma are given per stage."""
    return sum(epoch >= m for m in milestones)


def attack_budget(cfg: dict, iteration: int, iters_per_epoch: int) -> tuple[float, float]:
    """eps and step size, ramped linearly per iteration over the first `ramp_epochs` (SVHN)."""
    eps, step = parse_fraction(cfg["attack"]["eps"]), parse_fraction(cfg["attack"]["step_size"])
    ramp = cfg["attack"]["ramp_epochs"] * iters_per_epoch
    scale = min(1.0, (iteration + 1) / ramp) if ramp else 1.0
    return eps * scale, step * scale


def selection_attack(cfg: dict) -> PGD:
    """Model selection: PGD-k, step eps/4 unless given, no random start (as the reference)."""
    eps = parse_fraction(cfg["attack"]["eps"])
    step = cfg["evaluation"]["pgd_step_size"]
    return PGD(eps, parse_fraction(step) if step is not None else eps / 4, cfg["evaluation"]["pgd_steps"], False)


def finetune_source(cfg: dict) -> Path | None:
    src = cfg["training"]["finetune_from"]
    if not src:
        return None
    src = Path(src)
    return src / f"{cfg['training']['finetune_checkpoint']}.pt" if src.is_dir() else src


class StopRequest:
    """Turns SIGTERM/SIGUSR1 (SLURM time limit, preemption, scancel) into a clean save-and-exit."""

    def __init__(self):
        self.signum = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signum = signum

    def __bool__(self):
        return self.signum is not None


# ----------------------------------------------------------------------------- the run


@dataclass
class Progress:
    """Everything besides tensors that a resumed run needs."""

    epoch: int = 0  # current epoch
    batch: int = 0  # batches of `epoch` already done
    best_pgd: float = -1.0
    best_epoch: int = -1
    swa_best_pgd: float = -1.0
    swa_best_epoch: int = -1
    av_log_epochs: int = 0
    sums: dict = field(default_factory=dict)  # running sums of the current epoch


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
        finished = self._finished()  # the common case, without loading the data
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
                finished = self._finished()  # again under the lock: another process may have finished it since
                return finished if finished is not None else self._run_locked()
        finally:
            with contextlib.suppress(OSError):  # only folders a failed first start made and left empty
                for folder in created:
                    folder.rmdir()

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

    def _finished(self) -> dict | None:
        """The summary of a finished run of this config in the folder; None if it holds none."""
        if not (self.out / SUMMARY).exists():
            return None
        self._check_same_config(finished=True)
        self.say(f"{self.out} already holds a finished run ({SUMMARY}); nothing to do")
        return json.loads((self.out / SUMMARY).read_text())

    # -- set-up
    def _check_same_config(self, finished: bool) -> bool:
        path = self.out / "config.yaml"
        if not path.exists():
            return True
        same = yaml.safe_load(path.read_text()) == self.cfg
        if not same and finished:
            raise RunConflict(f"{self.out} holds a finished run made with another config; choose another --out")
        return same

    def _read_resume_state(self) -> dict | None:
        """The folder's saved state if it belongs to this run; refuses a state without its run's files."""
        path = self.out / STATE
        if not path.exists():
            return None
        if not (self.out / "config.yaml").exists():
            raise RunFolderError(
                f"{path} exists without {self.out / 'config.yaml'}: not an intact iseat run; "
                f"restore config.yaml, or delete {path} to start afresh, or choose another --out"
            )
        if not self._check_same_config(finished=False):
            self.say(f"config differs from the unfinished run in {self.out}: discarding its state and starting afresh")
            path.unlink()
            return None
        state = read_state(path)
        check_belongs_to(state, path, self.cfg)
        progress = state["progress"] if isinstance(state["progress"], dict) else {}
        needed = {
            "metrics.jsonl": progress.get("epoch", 0),
            "av_log.h5": progress.get("av_log_epochs", 0) if self.runtime["av_log"] else 0,
        }
        for name, epochs in needed.items():
            if epochs and not (self.out / name).exists():
                raise RunFolderError(
                    f"{self.out / name} is missing but {path} has {epochs} completed epochs; "
                    f"restore it, or delete {path} to restart the run from its first epoch"
                )
        if needed["av_log.h5"]:
            check_resumable(self.out / "av_log.h5")
        return state

    def _setup(self):
        cfg = self.cfg
        self.device = resolve_device(self.runtime["device"], self.say)  # before any output: a job fails fast
        state = distributed.from_writer(self._read_resume_state() if distributed.is_writer() else None)
        if distributed.is_writer():
            write_if_changed(self.out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        set_determinism(self.runtime["deterministic"])
        seed_everything(cfg["seed"])
        if distributed.is_writer():
            write_if_changed(self.out / "split.json", json.dumps(self.data.split, indent=2) + "\n")
        self.architecture = architecture_of(cfg, self.data.num_classes)
        self.model = build_model(**self.architecture).to(self.device)
        if distributed.active() and self.runtime["batch_norm_statistics"] == "global":
            distributed.global_batch_norm(self.model)
        if state is None:
            self._maybe_finetune()
        self.step_model = acceleration.prepare_model(self.model, self.runtime, self.device)
        self.memory_lean = acceleration.options(self.runtime)["memory_lean"]
        t = cfg["training"]
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
        self.progress = Progress()
        if state is not None:
            self._resume(state)
        if self.runtime["av_log"] and distributed.is_writer():
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
            if distributed.is_writer()
            else trackers.Trackers([], self.out, self.say)
        )

    def _maybe_finetune(self):
        src = finetune_source(self.cfg)
        if src is None:
            return
        expect = self.architecture
        model, ckpt = load_model(src, "cpu", expect_num_classes=expect["num_classes"], expect_arch=expect["arch"])
        self.model.load_state_dict(model.state_dict())
        self.say(
            f"fine-tuning from {src} ({self.cfg['training']['finetune_checkpoint']} checkpoint, epoch {ckpt['epoch']})"
        )

    def _resume(self, state: dict):
        check_fits(state, self.out / STATE, self._run_shape())
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.swa is not None and state.get("swa") is not None:
                self.swa.load_state_dict(state["swa"])
            self.progress = Progress(**state["progress"])
            restore_rng_states(state["rng"])
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise ResumeStateError(
                f"{self.out / STATE} does not fit this run ({type(err).__name__}: "
                f"{first_line(err)}); delete it to restart the run from its first epoch"
            ) from None
        self.say(f"resuming from {self.out / STATE}: epoch {self.progress.epoch}, batch {self.progress.batch}")

    def _run_shape(self) -> RunShape:
        t = self.cfg["training"]
        return RunShape(
            t["epochs"],
            len(self.data.train_batches(t["batch_size"], 0, self.cfg["seed"])),
            self.model.state_dict(),
            [p.shape for p in self.model.parameters()],
            self.swa.state_dict() if self.swa else None,
            len(self.data.log_indices),
            tuple(Progress.__dataclass_fields__),
        )

    def _save_state(self):
        if not distributed.is_writer():
            return
        parts = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "swa": self.swa.state_dict() if self.swa else None,
            "progress": vars(self.progress),
            "rng": rng_states(),
            "config": self.cfg,
        }
        if self.progress.batch:
            parts["buffer"] = {k: v.cpu() for k, v in self.buffer.values.items()}
        save_state(self.out / STATE, **parts)

    # -- the loop
    def _train(self) -> dict:
        stop = StopRequest()
        epochs = self.cfg["training"]["epochs"]
        last_save = time.monotonic()
        while self.progress.epoch < epochs:
            finished_epoch = self._train_epoch(stop, last_save)
            if not finished_epoch:
                self._save_state()
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
            p.sums = {"loss": 0.0, "n": 0, "clean_correct": 0, "adv_correct": 0}
        bar = tqdm(
            total=n_batches,
            initial=p.batch,
            desc=f"epoch {epoch + 1}/{cfg['training']['epochs']}",
            disable=not self.runtime["progress"],
            mininterval=1 if os.isatty(2) else 30,
            leave=False,
        )
        start = time.monotonic()
        for i, (x, y, index) in enumerate(loader):
            if i < p.batch:  # already done before the interruption
                continue
            method = self._method(stage, epoch * n_batches + i, n_batches)
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
            self._accumulate(result.loss, len(result.av), clean_correct, adv_correct)
            p.batch = i + 1
            bar.update(1)
            if distributed.largest(bool(stop)):  # every process stops at the same step
                bar.close()
                return False
            if time.monotonic() - last_save > 60 * self.runtime["checkpoint_minutes"]:
                self._save_state()
                last_save = time.monotonic()
        bar.close()
        self._end_epoch(
            epoch, stage, self._method(stage, (epoch + 1) * n_batches - 1, n_batches), time.monotonic() - start
        )
        return True

    def _method(self, stage, iteration, n_batches):
        eps, step = attack_budget(self.cfg, iteration, n_batches)
        attack = PGD(eps, step, self.cfg["attack"]["steps"], self.cfg["attack"]["random_start"])
        epoch, epochs = iteration // n_batches, self.cfg["training"]["epochs"]
        method = self.schedule.at_stage(
            stage, attack, epoch=epoch, epochs=epochs
        )  # baselines' schedules need the epoch
        in_ramp = epoch < self.cfg["attack"]["ramp_epochs"]
        return warm_start(method) if in_ramp else method

    def data_workers(self) -> int:
        return self.cfg["data"]["num_workers"]

    def _accumulate(self, loss, n, clean_correct, adv_correct):
        s = self.progress.sums
        s["loss"] += loss * n
        s["n"] += n
        s["clean_correct"] += clean_correct
        s["adv_correct"] += adv_correct

    def _end_epoch(self, epoch, stage, method, seconds):
        cfg, p = self.cfg, self.progress
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        values = self.buffer.to_numpy()
        weight_perturbed = method.gamma > 0
        stats = (
            self.av_writer.write_epoch(epoch, values, weight_perturbed)
            if self.av_writer
            else av_statistics(values["av"])
        )
        p.av_log_epochs = self.av_writer.epochs_written if self.av_writer else 0
        row = {
            "epoch": epoch,
            "lr": lr,
            "stage": stage,
            "lam": method.lam,
            "gamma": method.gamma,
            "eta": method.eta,
            "eps": method.attack.eps,
            "train_loss": p.sums["loss"] / p.sums["n"],
            "train_clean_acc": p.sums["clean_correct"] / p.sums["n"],
            "train_adv_acc": p.sums["adv_correct"] / p.sums["n"],
            "epoch_seconds": seconds,
            **{
                k: stats[k]
                for k in ("av_mean", "av_sd", "av_top10_mean", "av_bottom10_mean", "share_av_ge_1", "share_av_le_0")
            },
        }
        row.update(self._select(epoch, row))
        if distributed.is_writer():
            self._append_metrics(row)
        self.trackers.log_epoch(row, values["av"])
        p.epoch, p.batch = epoch + 1, 0
        self._save_state()
        self.say(
            f"epoch {epoch + 1}: loss {row['train_loss']:.4f}  selection clean {row['selection_clean_acc']:.4f}"
            f"  PGD-{cfg['evaluation']['pgd_steps']} {row['selection_pgd_acc']:.4f}  AV SD {row['av_sd']:.4f}"
            f"  ({seconds:.0f} s)"
        )

    def _select(self, epoch, row) -> dict:
        """Clean and PGD accuracy on the selection set; keep best and last checkpoints (and SWA's)."""
        cfg, p = self.cfg, self.progress
        loader = self.data.eval_loader(self.data.selection, cfg["evaluation"]["batch_size"])
        attack, limit = selection_attack(cfg), cfg["evaluation"]["max_samples"]
        clean, robust = distributed.sharded_accuracy(
            clean_and_robust_accuracy, self.model, loader, attack, self.device, limit
        )
        out = {"selection_clean_acc": clean, "selection_pgd_acc": robust}
        metrics = {**row, **out}
        writer = distributed.is_writer()
        if writer:
            save_atomic(model_checkpoint(self.model, self.architecture, epoch, metrics, cfg), self.out / "last.pt")
        if robust > p.best_pgd:
            p.best_pgd, p.best_epoch = robust, epoch
            if writer:
                save_atomic(model_checkpoint(self.model, self.architecture, epoch, metrics, cfg), self.out / "best.pt")
        if self.swa is not None and epoch >= cfg["training"]["swa"]["start_epoch"]:
            out.update(self._select_swa(epoch, loader, attack, limit, metrics))
        return out

    def _select_swa(self, epoch, loader, attack, limit, metrics) -> dict:
        p = self.progress
        averaged = self.swa.averaged_model(
            self.data.train_loader(
                self.cfg["training"]["batch_size"], p.epoch, self.cfg["seed"] + 1, self.data_workers()
            ),
            self.device,
        )
        clean, robust = clean_and_robust_accuracy(averaged, loader, attack, self.device, limit)
        out = {"swa_selection_clean_acc": clean, "swa_selection_pgd_acc": robust}
        ckpt = model_checkpoint(averaged, self.architecture, epoch, {**metrics, **out}, self.cfg)
        save_atomic(ckpt, self.out / "swa_last.pt")
        if robust > p.swa_best_pgd:
            p.swa_best_pgd, p.swa_best_epoch = robust, epoch
            save_atomic(ckpt, self.out / "swa_best.pt")
        return out

    def _append_metrics(self, row):
        """metrics.jsonl holds exactly the completed epochs (rows of an epoch redone after a kill are replaced)."""
        path = self.out / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        rows = [r for r in rows if r["epoch"] < row["epoch"]] + [row]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))

    def _finish(self) -> dict:
        if not distributed.is_writer():  # the summary is rank 0's
            distributed.barrier()
            return json.loads((self.out / SUMMARY).read_text())
        p = self.progress
        rows = [json.loads(line) for line in (self.out / "metrics.jsonl").read_text().splitlines()]
        summary = {
            "epochs": self.cfg["training"]["epochs"],
            "best_epoch": p.best_epoch,
            "best_selection_pgd_acc": p.best_pgd,
            "best_selection_clean_acc": rows[p.best_epoch - rows[0]["epoch"]]["selection_clean_acc"],
            "final": rows[-1],
            "selection": self.cfg["data"]["selection"],
            "provenance": provenance(self.device, self.cfg["seed"]),
            "acceleration": acceleration.describe(self.runtime),
        }
        if self.swa is not None:
            summary.update(swa_best_epoch=p.swa_best_epoch, swa_best_selection_pgd_acc=p.swa_best_pgd)
        write_json_atomic(self.out / SUMMARY, summary)
        self.trackers.finish(trackers.summary_values(summary), p.epoch - 1)
        (self.out / STATE).unlink(missing_ok=True)
        distributed.barrier()
        self.say(
            f"done: best epoch {p.best_epoch + 1} (selection PGD accuracy {p.best_pgd:.4f}); outputs in {self.out}"
        )
        return summary


def check_data_parallel(cfg: dict) -> None:
    """What several processes cannot yet compute with the numbers of one: refused, naming the key."""
    if cfg["training"]["swa"]["enabled"]:
        raise ConfigError(
            "training.swa.enabled: SWA is not supported on several processes yet; "
            "train on one process or set training.swa.enabled: false"
        )
    if cfg["method"].get("name") == "fat":  # its per-step noise is drawn per running sample
        raise ConfigError("method.name: fat is not supported on several processes yet; train it on one process")


def write_if_changed(path: Path, text: str) -> None:
    """A resumed run leaves its files untouched when they already say the same."""
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def remove_leftovers(folder: Path) -> None:
    """Temporaries of an earlier process that was killed while writing (only called under the run's lock)."""
    for pattern in (".*.tmp", ".*.rebuild"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def remove_new_files(folder: Path, before: set) -> None:
    """Remove what a failed first start wrote, so a failed command leaves the folder as it found it."""
    for path in folder.iterdir():
        if path.name not in before and path.name != LOCK and path.is_file():
            path.unlink(missing_ok=True)


def train(cfg: dict, out_dir, say=print) -> dict:
    """Train (or resume, or confirm finished) the run described by a validated config."""
    return TrainingRun(cfg, out_dir, say).run()
