"""The GPU check as a whole: its environment, the sections in order of value under one time budget, and its
command line (`iseat benchmark gpu-check`, `python -m iseat.benchmarks.gpu_check`)."""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

from iseat.benchmarks import module_main
from iseat.benchmarks.gpu_check.data_loader import loader_section
from iseat.benchmarks.gpu_check.determinism import determinism_and_resume_sections
from iseat.benchmarks.gpu_check.profile import FULL, SMOKE, Budget, Profile
from iseat.benchmarks.gpu_check.report import Report, format_report, problems
from iseat.benchmarks.gpu_check.step_section import step_section
from iseat.benchmarks.gpu_check.training import training_section
from iseat.common.device import resolve_device
from iseat.common.errors import UserError
from iseat.common.provenance import provenance


def environment(device: str) -> dict:
    env = {
        "device": device,
        "provenance": provenance(device, 0),
        "torch": torch.__version__,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            capability=f"{props.major}.{props.minor}",
        )
    return env


def gpu_check(
    data: str | None,
    out: str | None,
    smoke: bool = False,
    budget_s: float | None = None,
    sections=("step", "loader", "training", "determinism"),
) -> dict:
    """Run the check (see the package docstring); returns the report and writes it to `out` if given."""
    profile = SMOKE if smoke else FULL
    device = str(resolve_device(profile.device))
    if not smoke and not device.startswith("cuda"):
        raise ValueError("no CUDA device is visible; run it on a GPU node (or --smoke for the CPU version)")
    data_cfg = data_config(data, profile)
    train_data = data_cfg if profile.train_on_given_data else data_config(None, profile)
    if profile.threads:
        torch.set_num_threads(profile.threads)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as in training (runtime.deterministic: false), for every section
    budget = Budget(budget_s if budget_s is not None else profile.budget_s)
    work = Path(out) if out else Path.cwd() / "gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    report = Report(work)
    report.result.update(
        check="gpu_check",
        mode="smoke" if smoke else "full",
        profile=asdict(profile),
        budget_s=budget.seconds,
        data=data_cfg,
        training_data=train_data,
        environment=environment(device),
    )
    report.write()
    # cheap and decisive first; the WRN-34-10 step entries come last, where the guard can drop them
    plan = [
        ("step", lambda: step_section(replace(profile, models=profile.models[:1]), device, budget, report)),
        ("loader", lambda: loader_section(profile, data_cfg, device, budget, report)),
        ("training", lambda: training_section(profile, train_data, device, budget, report, work)),
        ("determinism", lambda: determinism_and_resume_sections(profile, train_data, device, budget, report, work)),
        ("step", lambda: step_section(replace(profile, models=profile.models[1:]), device, budget, report)),
    ]
    for name, section in plan:
        if name in sections:
            run_guarded(name, section, report)
    report.result["elapsed_s"] = budget.elapsed()
    report.write()
    print(format_report(report.result), flush=True)
    return report.result


def run_guarded(name: str, section, report: Report) -> None:
    """A section that fails is reported as failed (with the error's first line); the others still run."""
    try:
        section()
    except Exception as err:
        traceback.print_exc()
        report.fail(name, err)


def data_config(data: str | None, profile: Profile) -> dict:
    """The check's data: the given .npz (the CIFAR-10 sample) or, for --smoke without one, the shipped digits."""
    if data is None:
        if profile.train_on_given_data:
            raise ValueError("--data is required: the CIFAR-10 sample .npz (no downloads here)")
        return {"dataset": "digits", "root": None, "validation_size": profile.validation_size}
    path = Path(data)
    if not path.is_file() or path.suffix != ".npz":
        raise ValueError(
            f"--data {data}: not an .npz file (give the CIFAR-10 sample, e.g. ../shared/data/cifar10_sample.npz)"
        )
    return {"dataset": "npz", "root": str(path.resolve()), "validation_size": profile.validation_size}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="the CIFAR-10 sample .npz (required without --smoke; no downloads)")
    parser.add_argument("--out", default="results/gpu-check", help="folder for gpu_check.json, gpu_check.md and runs")
    parser.add_argument("--smoke", action="store_true", help="the reduced CPU version (test suite)")
    parser.add_argument("--budget-s", type=float, help="global time budget in seconds (default: 570, smoke 150)")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["step", "loader", "training", "determinism"],
        choices=["step", "loader", "training", "determinism"],
        help="sections to run (determinism includes the kill-and-resume check)",
    )


def run(args) -> int:
    try:
        result = gpu_check(args.data, args.out, args.smoke, args.budget_s, tuple(args.sections))
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f"wrote {Path(args.out) / 'gpu_check.json'} and {Path(args.out) / 'gpu_check.md'}")
    return 1 if problems(result) else 0


def main(argv=None) -> int:
    try:
        return module_main(sys.modules[__package__], argv)
    except UserError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
