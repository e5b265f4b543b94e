"""`iseat evaluate`: clean accuracy and attacks (PGD-k, CW-inf, AutoAttack, ...) of a checkpoint, written to
aa.json + per-sample CSV.

Examples:
  iseat evaluate --checkpoint RUN/best.pt --out results/cifar10/at/aa.json
  iseat evaluate --checkpoint RUN/best.pt --out RUN/pgd50.json --attack pgd --pgd-steps 50
  iseat evaluate --checkpoint RUN/best.pt --out RUN/aa_paper.json --attack autoattack-paper-protocol
  iseat evaluate --checkpoint RUN/best.pt --out RUN/cw.json --attack pgd cw --pgd-steps 20
  # one evaluation as 4 jobs (same settings in each), then the report from their shard files:
  iseat evaluate --checkpoint RUN/best.pt --out RUN/aa.shards/1.json --shard 1/4   # ... up to 4/4
  iseat evaluate --checkpoint RUN/best.pt --out RUN/aa.json --gather RUN/aa.shards/{1,2,3,4}.json
  # robustness curve: PGD-10 at each eps on the same images (eps 0: clean), headline at --eps:
  iseat evaluate --checkpoint RUN/best.pt --out RUN/sweep.json --eps-sweep 0 2/255 4/255 8/255 16/255 64/255
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iseat.common.fraction import budget
from iseat.evaluation import ATTACKS, EvaluationSpec, PGDSettings, evaluate_checkpoint
from iseat.evaluation.attacks import sections
from iseat.evaluation.shards import Shard
from iseat.evaluation.sweep import SweepSpec, sweep_checkpoint
from iseat.training.trackers import log_evaluation

DEFAULT_ATTACKS = ["autoattack", "pgd"]


def attack_help() -> str:
    listed = "; ".join(f"{name}: {cls.description}" for name, cls in ATTACKS.items())
    return f"any of: {listed}; none: clean accuracy only. Default: {' '.join(DEFAULT_ATTACKS)}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (e.g. RUN/best.pt)")
    parser.add_argument(
        "--out",
        required=True,
        help="report file, e.g. results/.../aa.json; the per-sample CSV is written beside it as <name>.per_sample.csv",
    )
    parser.add_argument("--data-root", help="data folder (default: the training run's data.root)")
    parser.add_argument("--dataset", help="evaluate on this data set's test split instead of the training one's")
    parser.add_argument("--expect-arch", help="refuse a checkpoint of another architecture")
    parser.add_argument("--n-ex", type=int, help="evaluate only the first N test samples (default: all)")
    parser.add_argument("--attack", nargs="+", default=DEFAULT_ATTACKS, metavar="ATTACK", help=attack_help())
    parser.add_argument("--eps", default="8/255", help="l-inf budget in [0, 1] units (default 8/255)")
    parser.add_argument("--pgd-steps", type=int, default=10, help="steps of PGD and CW-inf (default 10)")
    parser.add_argument("--pgd-step-size", default="2/255", help="in [0, 1] units (default 2/255)")
    parser.add_argument("--pgd-restarts", type=int, default=1, help="a point is robust only if it survives all")
    parser.add_argument("--pgd-random-start", action="store_true", help="start PGD at a random point of the ball")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=500, help="samples per resumable chunk (default 500)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed of AutoAttack and PGD random starts")
    parser.add_argument("--no-progress", action="store_true", help="no per-chunk progress bar")
    add_mode_arguments(parser)


def add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """One evaluation (default), one shard of it, the report from its shards, or a robustness curve."""
    sharding = parser.add_mutually_exclusive_group()
    sharding.add_argument(
        "--shard",
        metavar="I/K",
        help="evaluate only shard I of K (contiguous runs of chunks); --out is then the shard file that --gather reads",
    )
    sharding.add_argument(
        "--gather",
        nargs="+",
        metavar="SHARD",
        help="write the report from the K shard files (in order, made with the same settings) instead of evaluating",
    )
    sharding.add_argument(
        "--eps-sweep",
        nargs="+",
        metavar="EPS",
        help="robustness curve instead: PGD "
        "(--pgd-steps, step size 2.5 eps / steps) at each budget in [0, 1] (0: clean; include "
        "--eps and a very large one, e.g. 64/255) on the same images, written to --out (sweep.json)",
    )


# the evaluation's parameters (ParameterError) and the flags that set them
FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "eps",
        "pgd_steps",
        "pgd_step_size",
        "pgd_restarts",
        "pgd_random_start",
        "batch_size",
        "chunk_size",
        "n_ex",
        "attack",
        "out",
        "shard",
        "gather",
        "eps_sweep",
    )
}


def spec_from_args(args):
    pgd = PGDSettings(
        steps=args.pgd_steps,
        step_size=budget(args.pgd_step_size, "pgd_step_size", positive=True),
        restarts=args.pgd_restarts,
        random_start=args.pgd_random_start,
    )
    return EvaluationSpec(
        attacks=tuple(args.attack),
        eps=budget(args.eps, "eps", positive=True),
        pgd=pgd,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        seed=args.seed,
        n_ex=args.n_ex,
    )


def summary_line(report: dict) -> str:
    line = f"{report['n_examples']} samples: clean {100 * report['clean_accuracy']:.2f}%"
    for record in (report[section] for section in sections() if report.get(section) is not None):
        line += f", {record['label']} {100 * record['robust_accuracy']:.2f}%"
    return line


def sweep_spec_from_args(args):
    return SweepSpec(
        eps=tuple(args.eps_sweep),
        steps=args.pgd_steps,
        headline_eps=budget(args.eps, "eps", positive=True),
        batch_size=args.batch_size,
        seed=args.seed,
        n_ex=args.n_ex,
    )


def run_sweep(args) -> dict:
    report = sweep_checkpoint(
        args.checkpoint,
        args.out,
        sweep_spec_from_args(args),
        data_root=args.data_root,
        dataset=args.dataset,
        expect_arch=args.expect_arch,
        device=args.device,
    )
    curve = ", ".join(f"{255 * p['eps']:g}/255 {100 * p['robust_accuracy']:.2f}%" for p in report["curve"])
    print(f"{report['n_examples']} samples, {report['label']}: {curve} -> {args.out}")
    for flag in report["masking_flags"]:
        print(f"warning: gradient-masking flag {flag}", file=sys.stderr)
    return report


def run(args) -> int:
    if args.eps_sweep:
        report = run_sweep(args)
        log_evaluation(
            Path(args.checkpoint).parent, report, Path(args.out).stem, say=lambda line: print(line, file=sys.stderr)
        )
        return 0
    shard = Shard.parse(args.shard) if args.shard else None
    report = evaluate_checkpoint(
        args.checkpoint,
        args.out,
        spec_from_args(args),
        data_root=args.data_root,
        dataset=args.dataset,
        expect_arch=args.expect_arch,
        device=args.device,
        progress=not args.no_progress,
        shard=shard,
        gather_from=args.gather,
    )
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    line = f"shard {shard}: {report['n_examples']} samples" if shard else summary_line(report)
    print(f"{line} -> {args.out}")
    if shard is None:  # a whole evaluation (or a gather) goes into the training's tracker runs (runtime.loggers)
        log_evaluation(
            Path(args.checkpoint).parent, report, Path(args.out).stem, say=lambda line: print(line, file=sys.stderr)
        )
    return 0
