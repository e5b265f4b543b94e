"""`iseat status`: every training of the workflow with its state (not started, running with epoch k of n,
finished with best epoch and AutoAttack, failed with the log line that says why) and the time to the end.
Run it in the workflow's folder (the repository root), as snakemake, with the workflow's config files:

    iseat status results/demo --configfile config/demo.yaml --watch 30
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("results", help="the workflow's results folder (results_dir), e.g. results/demo")
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config file(s), as for snakemake (default: the workflow's config/config.yaml)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="trainings that run at once, for the time to the end")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until interrupted")


def run(args) -> int:
    from iseat.common.errors import UserError
    from iseat.workflow.jobs import workflow_jobs
    from iseat.workflow.status import format_status, workflow_status

    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give the number of trainings that run at once, 1 or more")
    if args.watch is not None and args.watch <= 0:
        raise UserError(f"--watch {args.watch}: give the seconds between refreshes, more than 0")
    jobs = workflow_jobs("all", args.configfile, forceall=True)
    while True:
        table = format_status(workflow_status(args.results, jobs), args.jobs)
        if args.watch is None:
            print(table)
            return 0
        print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + args.results + "\n" + table, flush=True)
        time.sleep(args.watch)
