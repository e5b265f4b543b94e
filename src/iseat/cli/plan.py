"""`iseat plan`: GPU-hours and jobs of a workflow target, per setting and in total, before it runs.
Run it in the workflow's folder (the repository root), as snakemake.

    iseat plan [--configfile config/config.yaml] [--target all] --gpu-check results/gpu-check/gpu_check.json
    iseat plan --step-time wide_resnet=0.30 --step-time preact_resnet18=0.05 --aa-s-per-image wide_resnet=0.5
"""

from __future__ import annotations

import argparse

from iseat.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="all", help="the workflow target to cost (default: all)")
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config file(s), as for snakemake (default: the workflow's config/config.yaml)",
    )
    parser.add_argument("--gpu-check", help="a gpu-check report (gpu_check.json) with the measured step times")
    parser.add_argument(
        "--step-time",
        action="append",
        default=[],
        metavar="MODEL[:METHOD]=SECONDS",
        help="seconds of one training step at batch 128 (PGD-10, fp32), per model or per model and "
        "method (AT, +LSI, +AWP, ISEAT); overrides the report; repeatable",
    )
    parser.add_argument(
        "--aa-s-per-image",
        action="append",
        default=[],
        metavar="MODEL=SECONDS",
        help="AutoAttack seconds per test image of a model; repeatable",
    )
    add_gpu_arguments(parser)
    parser.add_argument("--forceall", action="store_true", help="cost every job, also those already done")
    parser.add_argument("--json", help="also write the plan here as JSON")


def add_gpu_arguments(parser: argparse.ArgumentParser) -> None:
    """How the trainings use the cluster's GPUs: data-parallel runs, packed jobs."""
    parser.add_argument(
        "--gpus-per-run",
        type=int,
        default=1,
        metavar="N",
        help="each training data-parallel on N GPUs (torchrun): its GPU-hours and wall-clock",
    )
    parser.add_argument(
        "--scaling-efficiency",
        type=float,
        default=1.0,
        metavar="E",
        help="speed-up of N GPUs over one as a fraction of N (default 1: ideal; measure it)",
    )
    parser.add_argument(
        "--gpus-per-node",
        type=int,
        default=1,
        metavar="N",
        help="single-GPU trainings packed N to a job (cluster.gpus_per_node): its GPU-hours and wall-clock",
    )


# the plan's parameters (ParameterError) and the flags that set them
FLAGS = {"gpu_check": "--gpu-check", "step_time": "--step-time", "aa_s_per_image": "--aa-s-per-image"}


def run(args) -> int:
    from iseat.benchmarks import report
    from iseat.workflow.jobs import workflow_jobs
    from iseat.workflow.plan import format_plan, plan
    from iseat.workflow.step_times import measured_step_times

    if not args.gpu_check and not args.step_time:
        raise UserError("give measured step times: --gpu-check REPORT.json or --step-time MODEL=SECONDS")
    times = measured_step_times(args.gpu_check, args.step_time, args.aa_s_per_image)
    if args.gpus_per_run < 1 or args.gpus_per_node < 1 or not 0 < args.scaling_efficiency <= 1:
        raise UserError("--gpus-per-run, --gpus-per-node: give N >= 1, and --scaling-efficiency: a value in (0, 1]")
    jobs = workflow_jobs(args.target, args.configfile, args.forceall)
    result = plan(jobs, times, args.gpus_per_run, args.scaling_efficiency, args.gpus_per_node)
    return report(result, format_plan(result), args.json)
