"""The per-epoch bookkeeping of a run: running sums of an epoch, its end (lr step, AV-log epoch, selection,
metrics row, saved state, message), metrics.jsonl, and the run's summary."""

from __future__ import annotations

import json
from pathlib import Path

from iseat.common import distributed
from iseat.common.io import write_text_atomic
from iseat.common.provenance import provenance
from iseat.training import acceleration
from iseat.training.avlog import av_statistics
from iseat.training.run_state import save_run_state
from iseat.training.selection import select

AV_COLUMNS = ("av_mean", "av_sd", "av_top10_mean", "av_bottom10_mean", "share_av_ge_1", "share_av_le_0")


def new_sums() -> dict:
    return {"loss": 0.0, "n": 0, "clean_correct": 0, "adv_correct": 0}


def accumulate(sums: dict, loss, n, clean_correct, adv_correct) -> None:
    sums["loss"] += loss * n
    sums["n"] += n
    sums["clean_correct"] += clean_correct
    sums["adv_correct"] += adv_correct


def end_epoch(run, epoch: int, stage: int, method, seconds: float) -> None:
    """After an epoch's last step: lr step, AV log, selection, metrics row, saved state, then the message."""
    p = run.progress
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    values = run.buffer.to_numpy()
    weight_perturbed = method.gamma > 0
    stats = run.av_writer.write_epoch(epoch, values, weight_perturbed) if run.av_writer else av_statistics(values["av"])
    p.av_log_epochs = run.av_writer.epochs_written if run.av_writer else 0
    row = epoch_row(epoch, lr, stage, method, p.sums, seconds, stats)
    row.update(select(run, epoch, row))
    if distributed.is_writer():
        append_metrics(run.out, row)
    run.trackers.log_epoch(row, values["av"])
    p.epoch, p.batch = epoch + 1, 0
    save_run_state(run)
    run.say(epoch_message(run.cfg, row, seconds))


def epoch_row(epoch: int, lr: float, stage: int, method, sums: dict, seconds: float, stats: dict) -> dict:
    """The epoch's metrics before selection: schedule, training loss and accuracies, AV statistics."""
    return {
        "epoch": epoch,
        "lr": lr,
        "stage": stage,
        "lam": method.lam,
        "gamma": method.gamma,
        "eta": method.eta,
        "eps": method.attack.eps,
        "train_loss": sums["loss"] / sums["n"],
        "train_clean_acc": sums["clean_correct"] / sums["n"],
        "train_adv_acc": sums["adv_correct"] / sums["n"],
        "epoch_seconds": seconds,
        **{k: stats[k] for k in AV_COLUMNS},
    }


def epoch_message(cfg: dict, row: dict, seconds: float) -> str:
    return (
        f"epoch {row['epoch'] + 1}: loss {row['train_loss']:.4f}  selection clean {row['selection_clean_acc']:.4f}"
        f"  PGD-{cfg['evaluation']['pgd_steps']} {row['selection_pgd_acc']:.4f}  AV SD {row['av_sd']:.4f}"
        f"  ({seconds:.0f} s)"
    )


def append_metrics(out: Path, row: dict) -> None:
    """metrics.jsonl holds exactly the completed epochs (rows of an epoch redone after a kill are replaced)."""
    path = out / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    rows = [r for r in rows if r["epoch"] < row["epoch"]] + [row]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def run_summary(cfg: dict, out: Path, progress, device, has_swa: bool) -> dict:
    """summary.json's content: the selected epoch and its accuracies, the last row, provenance."""
    p = progress
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = {
        "epochs": cfg["training"]["epochs"],
        "best_epoch": p.best_epoch,
        "best_selection_pgd_acc": p.best_pgd,
        "best_selection_clean_acc": rows[p.best_epoch - rows[0]["epoch"]]["selection_clean_acc"],
        "final": rows[-1],
        "selection": cfg["data"]["selection"],
        "provenance": provenance(device, cfg["seed"]),
        "acceleration": acceleration.describe(cfg["runtime"]),
    }
    if has_swa:
        summary.update(swa_best_epoch=p.swa_best_epoch, swa_best_selection_pgd_acc=p.swa_best_pgd)
    return summary
