"""Tables of an AV log: AV statistics per complete epoch (Fig. 1a, Eq. 6), the most or least vulnerable
samples of an epoch, one sample's trajectory, as text or CSV, and the whole log as CSV files.

Only complete epochs are read (the log marks an epoch complete last); epoch -1 is the last complete one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from iseat.common.errors import AVLogError, ParameterError, literal
from iseat.common.io import atomic_path
from iseat.results.writers import write_csv
from iseat.training.avlog import PER_SAMPLE, AVLog

SUMMARY_COLUMNS = (
    "epoch",
    "n_samples",
    "av_mean",
    "av_sd",
    "av_top10_mean",
    "av_bottom10_mean",
    "share_av_ge_1",
    "share_av_le_0",
)


def resolve_epoch(epochs: np.ndarray, epoch: int, path) -> int:
    """`epoch`, or the last complete one for -1; AVLogError if it is not (yet) complete."""
    if epochs.size == 0:
        raise AVLogError(f"{path} holds no complete epoch yet")
    if epoch == -1:
        return int(epochs[-1])
    if epoch not in epochs:
        raise AVLogError(
            f"epoch {epoch} is not a complete epoch of {path}; complete: {int(epochs[0])}..{int(epochs[-1])}"
        )
    return epoch


def summary_table(log: AVLog) -> dict:
    summary = log.summary()
    table = {name: summary[name] for name in SUMMARY_COLUMNS}
    table["n_samples"] = table["n_samples"].astype(np.int64)
    return table


def most_vulnerable(log: AVLog, epoch: int, k: int, least: bool = False) -> dict:
    """The k samples with the highest (lowest with `least`) AV among those trained on at `epoch`."""
    if k < 1:
        raise ParameterError(f"{{0}} must be at least 1, got {k}", "k")
    values = {name: log.values(name, epoch) for name in PER_SAMPLE}
    seen = np.flatnonzero(~np.isnan(values["av"]))
    av = values["av"][seen].astype(np.float64)
    order = np.argsort(av if least else -av, kind="stable")[:k]
    cols = seen[order]
    table = {"rank": np.arange(1, len(cols) + 1), "index": log.indices[cols]}
    return table | {name: values[name][cols] for name in PER_SAMPLE}


def trajectory_table(log: AVLog, index: int) -> dict:
    """One sample's AV, losses and correctness per complete epoch."""
    if index not in log.indices:
        raise AVLogError(f"dataset index {index} is not in {log.path}")
    epochs = log.epochs
    return {"epoch": epochs} | {name: log.trajectory(index, name)[: len(epochs)] for name in PER_SAMPLE}


def epoch_table(log: AVLog, epoch: int) -> dict:
    """Every sample's values at one epoch."""
    return {"index": log.indices} | {name: log.values(name, epoch) for name in PER_SAMPLE}


def export_log(log: AVLog, out: Path) -> list[Path]:
    """The whole log as CSV files in the folder `out`: summary.csv and one samples x epochs table per quantity."""
    if out.suffix == ".csv" or out.is_file():
        raise ParameterError(
            f"{{0}} {literal(out)}: a one-file export needs {{1}}; give a folder to export every epoch", "out", "epoch"
        )
    epochs = log.epochs
    write_table_csv(out / "summary.csv", summary_table(log))
    for name in PER_SAMPLE:
        write_wide_csv(out / f"{name}.csv", log, name, epochs)
    return [out / "summary.csv", *(out / f"{name}.csv" for name in PER_SAMPLE)]


def export_epoch(log: AVLog, epoch: int, out: Path) -> tuple[int, int]:
    """One epoch's per-sample values as the CSV file `out`; (the epoch, the number of samples)."""
    if out.suffix != ".csv" or out.is_dir():
        raise ParameterError(f"{{0}} {literal(out)}: with {{1}} give a .csv file", "out", "epoch")
    epoch = resolve_epoch(log.epochs, epoch, log.path)
    table = epoch_table(log, epoch)
    write_table_csv(out, table, "out")
    return epoch, len(table["index"])


def write_wide_csv(path: Path, log: AVLog, name: str, epochs: np.ndarray) -> None:
    """Samples x epochs: column `index`, then one column per complete epoch."""
    ds = log.file[name]
    ds.refresh()
    values = ds[: len(epochs)].T if len(epochs) else np.empty((len(log.indices), 0))
    header = ",".join(["index", *(f"epoch_{int(e)}" for e in epochs)])
    data = np.column_stack([log.indices.astype(np.float64), values.astype(np.float64)])
    fmt = ["%d"] + ["%.9g" if PER_SAMPLE[name] == "f4" else "%d"] * len(epochs)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, data, fmt=fmt, delimiter=",", header=header, comments="")


def write_table_csv(path: Path, table: dict, parameter: str = "csv") -> None:
    """`table` (column -> values) as a CSV file, written atomically (flags as 0/1); `parameter` names `path`
    in errors."""
    if path.is_dir():
        raise ParameterError(f"{{0}} {literal(path)} is a folder; give a file name", parameter)
    write_csv(
        path,
        {name: [int(v) if isinstance(v, (bool, np.bool_)) else v for v in values] for name, values in table.items()},
    )


def text_cell(name: str, value) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        return f"{100 * value:.2f}%" if name.startswith("share") else f"{value:.4f}"
    return str(int(value)) if isinstance(value, (np.integer, np.bool_)) else str(value)


def format_table(table: dict) -> str:
    """Right-aligned plain-text table with one header line."""
    names = list(table)
    rows = [[text_cell(name, v) for name, v in zip(names, row)] for row in zip(*table.values())]
    widths = [max([len(n)] + [len(r[j]) for r in rows]) for j, n in enumerate(names)]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
