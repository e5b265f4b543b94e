"""`iseat` command line: one subcommand per pipeline step, each a thin layer over the library.

A subcommand module has `add_arguments(parser)`, `run(args)` and, where library parameters come from its
flags, `FLAGS` (parameter -> flag): a `ParameterError` is reported with those flags."""

from __future__ import annotations

import argparse
import datetime
import errno
import importlib
import os
import platform
import sys

from iseat.common import gpu_slots
from iseat.common.errors import ParameterError, RunFailed, UserError

# subcommand -> (module under iseat.cli, one-line help). Modules are imported only when used,
# so `iseat --help` and light commands do not pay for importing torch.
COMMANDS = {
    "train": ("train", "train or fine-tune a model (AT, AT-AWP, ISEAT and ablations)"),
    "fetch": ("fetch", "download or stage data sets, verified by checksum"),
    "evaluate": ("evaluate", "clean accuracy, PGD and AutoAttack of a checkpoint (aa.json)"),
    "inspect": ("inspect", "summaries, rankings and trajectories from an HDF5 AV log"),
    "analyse": ("analyse", "margin, loss landscape and AV figures of Section 3"),
    "aggregate": ("aggregate", "seed aggregation, grid-search selection, paper tables and figures"),
    "benchmark": ("benchmark", "per-step timing of AT, +LSI, +AWP and ISEAT; loader and AV-log costs; GPU check"),
    "export": ("export", "a run's model in another project's format (RobustBench)"),
    "plan": ("plan", "GPU-hours and jobs of a workflow target, from measured step times"),
    "status": ("status", "every training of the workflow: not started, running (epoch, ETA), finished, failed"),
}


# what to do when the system refuses a file operation (the error names the file)
OS_ERROR_HINTS = {
    errno.EACCES: "permission denied; make it writable or choose another location",
    errno.EPERM: "operation not permitted; make it writable or choose another location",
    errno.EROFS: "read-only file system; choose another location",
    errno.ENOSPC: "no space left on the device; free some space or choose another location",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another location",
    errno.EFBIG: "file too large for this file system or the process's file-size limit (ulimit -f)",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another location",
    errno.EISDIR: "is a folder where a file was expected; choose another location",
    errno.EEXIST: "exists and is not a folder (a file, or a symlink to nothing); remove it or choose another location",
}


def os_error_line(err: OSError) -> str:
    """One line for a refused file operation: the file, what the system said, and what to do."""
    where = err.filename or "a file"
    return f"{where}: {OS_ERROR_HINTS[err.errno]} ({err.strerror or 'refused'})"


def print_attempt_header(attempt: str, command: list) -> None:
    """`iseat --attempt N COMMAND ...`: one line opening this attempt's part of a job log that every
    attempt appends to (the workflow's GPU rules), so earlier attempts' reasons stay readable."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"=== attempt {attempt}: iseat {' '.join(command)} on {platform.node()} at {now}", flush=True)


def leading_options(argv: list[str]) -> tuple[bool, list[str]]:
    """The workflow's options before the subcommand: `--pin-gpu` (a training packed with others into one job
    takes one GPU of the job's) and `--attempt N` (its header printed, once for all processes of a torchrun
    launch); whether to pin, and the rest."""
    pin_gpu = argv[:1] == ["--pin-gpu"]
    argv = argv[pin_gpu:]
    if argv[:1] == ["--attempt"] and len(argv) > 1:
        if os.environ.get("RANK", "0") == "0":
            print_attempt_header(argv[1], argv[2:3])
        argv = argv[2:]
    return pin_gpu, argv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="iseat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    pin_gpu, argv = leading_options(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage / error
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"iseat.cli.{COMMANDS[name][0]}")
    command_parser = argparse.ArgumentParser(prog=f"iseat {name}", description=COMMANDS[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(rest)
    try:
        if pin_gpu:
            gpu_slots.pin()
        return int(module.run(args) or 0)
    except ParameterError as err:
        flags = getattr(module, "FLAGS", {})
        print(f"iseat {name}: error: {err.named([flags.get(p, p) for p in err.parameters])}", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"iseat {name}: error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:  # not bad input: its own status (e.g. 3, training diverged)
        print(f"iseat {name}: error: {err}", file=sys.stderr)
        return err.exit_status
    except OSError as err:
        if err.errno not in OS_ERROR_HINTS:
            raise
        print(f"iseat {name}: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"iseat {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
