"""`iseat train`: train or fine-tune one run from a YAML config plus `--set key=value` overrides."""

from __future__ import annotations

import yaml

from iseat.cli import UserError


def add_arguments(parser) -> None:
    parser.add_argument(
        "--config", help="YAML config (missing keys take the defaults of iseat.training.config.DEFAULTS)"
    )
    parser.add_argument("--out", help="run folder: checkpoints, metrics, AV log; rerun to resume")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. --set training.epochs=10 method.lam=[0,0.1]; may be "
        "given more than once (all apply, later ones win)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


FLAGS = {"out": "--out"}  # the run's parameters (ParameterError) and the flags that set them


def run(args) -> int:
    from iseat.training.config import load_config

    cfg = load_config(args.config, args.overrides)  # ConfigError: one line, exit 2 (iseat.cli.main)
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        return 0
    if not args.out:
        raise UserError("--out: give the run folder, e.g. --out results/demo/iseat/seed0")

    from iseat.training.loop import train

    train(cfg, args.out)  # errors of the library are UserErrors, printed as one line by the CLI's main
    return 0
