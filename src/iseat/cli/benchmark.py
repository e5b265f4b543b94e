"""`iseat benchmark`: per-step timing of AT, +LSI, +AWP and ISEAT (Tab. 4), the AV log's cost,
the loader's throughput and the AutoAttack adapter's overhead.

    iseat benchmark step --model small_cnn --batch-size 128 --repeats 10 --warmup 2 [--straightforward]
                         [--device cuda] [--precision bf16] [--channels-last] [--compile]
                         --out results/benchmark/step_timing.json
    iseat benchmark avlog --model small_cnn --batch-size 128 --samples 49000 [--out FILE]
    iseat benchmark gpu-check --data cifar10_sample.npz --out results/gpu-check [--smoke] [--budget-s 570]
    iseat benchmark loader [ARGS of python -m iseat.benchmarks.loader]
    iseat benchmark autoattack [ARGS of python -m iseat.benchmarks.autoattack_overhead]
"""

from __future__ import annotations

import argparse
import importlib

from iseat.benchmarks import avlog_cost, gpu_check, step_timing
from iseat.cli import UserError

# benchmarks whose module has its own argument parser: name -> (module, help); imported when run, and a
# missing one is reported as unavailable
FORWARDED = {
    "loader": ("iseat.benchmarks.loader", "training-loader throughput next to the training step's consumption"),
    "autoattack": ("iseat.benchmarks.autoattack_overhead", "AutoAttack adapter overhead against direct pyautoattack"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    step_timing.add_arguments(
        sub.add_parser(
            "step",
            help="time one training step of AT, +LSI, +AWP and ISEAT (Tab. 4), ratios to AT, peak memory",
            description=step_timing.__doc__.splitlines()[0],
        )
    )
    avlog_cost.add_arguments(
        sub.add_parser(
            "avlog",
            help="cost of the per-sample AV log as a share of an epoch's step time",
            description=avlog_cost.__doc__.splitlines()[0],
        )
    )
    gpu_check.add_arguments(
        sub.add_parser(
            "gpu-check",
            help="everything to check on one GPU in 10 minutes: step timing per speed option, loader, "
            "short training with AutoAttack, determinism, kill-and-resume",
            description=gpu_check.__doc__.splitlines()[0],
        )
    )
    for name, (_, help_text) in FORWARDED.items():
        # every argument (options included) is handed to the module's own parser
        forwarded = sub.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
        forwarded.add_argument("forwarded", nargs="*")


def run(args) -> int:
    if args.benchmark == "step":
        return step_timing.run(args)
    if args.benchmark == "avlog":
        return avlog_cost.run(args)
    if args.benchmark == "gpu-check":
        return gpu_check.run(args)
    module_name = FORWARDED[args.benchmark][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise UserError(f"benchmark {args.benchmark!r} is not available ({module_name} is missing)") from None
        raise
    return int(module.main(list(args.forwarded)) or 0)
