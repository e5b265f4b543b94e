"""`iseat inspect LOG VIEW`: per-epoch AV statistics, the most / least vulnerable samples, one sample's
AV trajectory and CSV export from an HDF5 AV log, also while training is still writing it.

Only complete epochs are shown (the log marks an epoch complete last); `--epoch -1` is the last one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..avlog import PER_SAMPLE, AVLog
from ..io import atomic_path
from . import UserError

SUMMARY_COLUMNS = ("epoch", "n_samples", "av_mean", "av_sd", "av_top10_mean", "av_bottom10_mean",
                   "share_av_ge_1", "share_av_le_0")


def add_arguments(parser) -> None:
    parser.add_argument("log", type=Path, help="the run's av_log.h5")
    views = parser.add_subparsers(dest="view", required=True, metavar="VIEW")
    summary = views.add_parser("summary", help="AV statistics per complete epoch (Fig. 1a, Eq. 6)")
    summary.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    top = views.add_parser("top", help="the k most (or least) vulnerable samples at one epoch")
    top.add_argument("--epoch", type=int, default=-1, help="epoch number; -1 = last complete (default)")
    top.add_argument("-k", type=int, default=10, help="how many samples (default 10)")
    top.add_argument("--least", action="store_true", help="the least vulnerable instead")
    top.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    trajectory = views.add_parser("trajectory", help="one sample's AV, losses and correctness per epoch")
    trajectory.add_argument("--index", type=int, required=True, help="dataset index of the sample")
    trajectory.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    export = views.add_parser("export", help="write the log as CSV files")
    export.add_argument("--out", type=Path, required=True,
                        help="a folder (summary.csv and one samples x epochs CSV per quantity) or, with "
                             "--epoch, one .csv file of that epoch's per-sample values")
    export.add_argument("--epoch", type=int, help="export only this epoch (-1 = last complete) to one CSV file")


def run(args) -> int:
    log = open_log(args.log)
    try:
        return {"summary": show_summary, "top": show_top, "trajectory": show_trajectory,
                "export": export}[args.view](log, args)
    finally:
        log.close()


def open_log(path: Path) -> AVLog:
    try:
        return AVLog(path)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None


def resolve_epoch(epochs: np.ndarray, epoch: int, path) -> int:
    """`epoch`, or the last complete one for -1; UserError if it is not (yet) complete."""
    if epochs.size == 0:
        raise UserError(f"{path} holds no complete epoch yet")
    if epoch == -1:
        return int(epochs[-1])
    if epoch not in epochs:
        raise UserError(f"epoch {epoch} is not a complete epoch of {path}; complete: {int(epochs[0])}..{int(epochs[-1])}")
    return epoch


def summary_table(log: AVLog) -> dict:
    summary = log.summary()
    table = {name: summary[name] for name in SUMMARY_COLUMNS}
    table["n_samples"] = table["n_samples"].astype(np.int64)
    return table


def top_table(log: AVLog, epoch: int, k: int, least: bool) -> dict:
    """The k samples with the highest (lowest with `least`) AV among those trained on at `epoch`."""
    values = {name: log.values(name, epoch) for name in PER_SAMPLE}
    seen = np.flatnonzero(~np.isnan(values["av"]))
    av = values["av"][seen].astype(np.float64)
    order = np.argsort(av if least else -av, kind="stable")[:k]
    cols = seen[order]
    table = {"rank": np.arange(1, len(cols) + 1), "index": log.indices[cols]}
    return table | {name: values[name][cols] for name in PER_SAMPLE}


def trajectory_table(log: AVLog, index: int, epochs: np.ndarray) -> dict:
    table = {"epoch": epochs}
    for name in PER_SAMPLE:
        table[name] = log.trajectory(index, name)[: len(epochs)]
    return table


def emit(table: dict, args, title: str | None = None) -> int:
    """Print `table` (under `title`) and, with --csv, write it there too."""
    if args.csv:
        write_table_csv(args.csv, table)
    if title:
        print(title)
    print(format_table(table))
    return 0


def show_summary(log: AVLog, args) -> int:
    return emit(summary_table(log), args)


def show_top(log: AVLog, args) -> int:
    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    epoch = resolve_epoch(log.epochs, args.epoch, log.path)
    table = top_table(log, epoch, args.k, args.least)
    return emit(table, args, f"{'least' if args.least else 'most'} vulnerable samples at epoch {epoch}")


def show_trajectory(log: AVLog, args) -> int:
    if args.index not in log.indices:
        raise UserError(f"dataset index {args.index} is not in {log.path}")
    return emit(trajectory_table(log, args.index, log.epochs), args, f"sample {args.index}")


def export(log: AVLog, args) -> int:
    out: Path = args.out
    if args.epoch is not None:
        if out.suffix != ".csv" or out.is_dir():
            raise UserError(f"--out {out}: with --epoch give a .csv file")
        epoch = resolve_epoch(log.epochs, args.epoch, log.path)
        table = {"index": log.indices} | {name: log.values(name, epoch) for name in PER_SAMPLE}
        write_table_csv(out, table)
        print(f"wrote epoch {epoch} of {len(table['index'])} samples to {out}")
        return 0
    if out.suffix == ".csv" or out.is_file():
        raise UserError(f"--out {out}: a one-file export needs --epoch; give a folder to export every epoch")
    epochs = log.epochs
    write_table_csv(out / "summary.csv", summary_table(log))
    for name in PER_SAMPLE:
        write_wide_csv(out / f"{name}.csv", log, name, epochs)
    print(f"wrote summary.csv and {len(PER_SAMPLE)} per-sample tables of {len(epochs)} epochs to {out}")
    return 0


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


def write_table_csv(path: Path, table: dict) -> None:
    if path.is_dir():
        raise UserError(f"--csv {path} is a folder; give a file name")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(",".join(table) + "\n")
        for row in zip(*table.values()):
            f.write(",".join(csv_cell(v) for v in row) + "\n")


def csv_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else repr(float(value))
    return str(int(value)) if isinstance(value, (np.integer, np.bool_)) else str(value)


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

