"""`iseat train`: train or fine-tune one run from a YAML config plus `--set key=value` overrides."""

from __future__ import annotations

import yaml

from . import UserError


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="YAML config (missing keys take the defaults of iseat.config.DEFAULTS)")
    parser.add_argument("--out", help="run folder: checkpoints, metrics, AV log; rerun to resume")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. --set training.epochs=10 method.lam=[0,0.1]")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args) -> int:
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        return 0
    if not args.out:
        raise UserError("--out: give the run folder, e.g. --out results/demo/iseat/seed0")

    from ..checkpoint import CheckpointError
    from ..device import DeviceUnavailable
    from ..training import RunConflict, train

    try:
        train(cfg, args.out)
    except (RunConflict, CheckpointError, DeviceUnavailable) as err:
        raise UserError(str(err)) from None
    return 0
