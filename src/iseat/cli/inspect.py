"""`iseat inspect LOG VIEW`: per-epoch AV statistics, the most / least vulnerable samples, one sample's
AV trajectory and CSV export from an HDF5 AV log (`iseat.analysis.av_statistics`), also while training is still
writing it.

Only complete epochs are shown (the log marks an epoch complete last); `--epoch -1` is the last one.
"""

from __future__ import annotations

from pathlib import Path

from iseat.analysis import av_statistics as av_tables
from iseat.training.avlog import PER_SAMPLE, AVLog

FLAGS = {"k": "-k", "csv": "--csv", "out": "--out", "epoch": "--epoch"}


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
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        help="a folder (summary.csv and one samples x epochs CSV per quantity) or, with "
        "--epoch, one .csv file of that epoch's per-sample values",
    )
    export.add_argument("--epoch", type=int, help="export only this epoch (-1 = last complete) to one CSV file")


def run(args) -> int:
    with AVLog(args.log) as log:
        return {"summary": show_summary, "top": show_top, "trajectory": show_trajectory, "export": export}[args.view](
            log, args
        )


def emit(table: dict, args, title: str | None = None) -> int:
    """Print `table` (under `title`) and, with --csv, write it there too."""
    if args.csv:
        av_tables.write_table_csv(args.csv, table)
    if title:
        print(title)
    print(av_tables.format_table(table))
    return 0


def show_summary(log: AVLog, args) -> int:
    return emit(av_tables.summary_table(log), args)


def show_top(log: AVLog, args) -> int:
    epoch = av_tables.resolve_epoch(log.epochs, args.epoch, log.path)
    table = av_tables.most_vulnerable(log, epoch, args.k, args.least)
    return emit(table, args, f"{'least' if args.least else 'most'} vulnerable samples at epoch {epoch}")


def show_trajectory(log: AVLog, args) -> int:
    return emit(av_tables.trajectory_table(log, args.index), args, f"sample {args.index}")


def export(log: AVLog, args) -> int:
    if args.epoch is None:
        av_tables.export_log(log, args.out)
        print(f"wrote summary.csv and {len(PER_SAMPLE)} per-sample tables of {len(log.epochs)} epochs to {args.out}")
        return 0
    epoch, n = av_tables.export_epoch(log, args.epoch, args.out)
    print(f"wrote epoch {epoch} of {n} samples to {args.out}")
    return 0
