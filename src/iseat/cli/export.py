"""`iseat export robustbench RUN`: the run's model as a RobustBench submission (model-info JSON + state dict).

Examples:
  iseat export robustbench results/cifar10/iseat/seed0
  iseat export robustbench results/cifar10/iseat/seed0 --name Li2023Improving_WRN-34-10 --out submission/
"""

from __future__ import annotations

import argparse

from iseat.export.robustbench import export_robustbench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    rb = formats.add_parser("robustbench", help="RobustBench leaderboard entry and state dict")
    rb.add_argument("run", metavar="RUN", help="training run folder holding aa.json and the checkpoint it evaluated")
    rb.add_argument("--evaluation", default="aa.json", help="standard AutoAttack report in RUN (default aa.json)")
    rb.add_argument("--out", help="output folder (default RUN/robustbench)")
    rb.add_argument("--name", help="model name, e.g. Li2023Improving_WRN-34-10 (default iseat_<dataset>_<arch>)")


def run(args) -> int:
    written = export_robustbench(args.run, args.out, evaluation=args.evaluation, name=args.name)
    info = written["info"]
    print(
        f"{info['architecture']}, clean {info['clean_acc']} %, AutoAttack {info['autoattack_acc']} % -> "
        f"{written['model_info']}, {written['state_dict']}"
    )
    return 0
