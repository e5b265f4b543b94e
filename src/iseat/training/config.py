"""Training configuration: defaults, YAML loading, `key=value` overrides and schema validation.

Validation happens before any work starts, and every mistake is reported as one line naming
the key (e.g. `method.lam[1]: -0.1 is less than the minimum of 0`).
"""

from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from iseat.common.errors import ParameterError, UserError
from iseat.common.fraction import budget
from iseat.data.registry import dataset, schema_definitions
from iseat.methods import registry as method_registry
from iseat.training.trackers import schema_definitions as tracker_definitions

DEFAULTS: dict = {
    "seed": 0,
    "data": {
        "dataset": "digits",
        "root": None,
        "augmentation": "auto",
        "extra": None,
        "extra_ratio": 1.0,
        "selection": "validation",
        "validation_size": 1000,
        "num_workers": 2,
    },
    "model": {"arch": "small_cnn", "depth": 34, "width": 10, "activation": "relu"},
    "method": {"name": "iseat"},
    "attack": {"eps": "8/255", "step_size": "2/255", "steps": 10, "random_start": False, "ramp_epochs": 0},
    "training": {
        "epochs": 200,
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "lr_milestones": [0.5, 0.75],
        "finetune_from": None,
        "finetune_checkpoint": "best",
        "swa": {"enabled": False, "start_epoch": 0, "decay": 0.001},
    },
    "evaluation": {"pgd_steps": 10, "pgd_step_size": None, "max_samples": None, "batch_size": 256},
    "runtime": {
        "device": "auto",
        "deterministic": False,
        "av_log": True,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "tf32": False,
        "pin_memory": False,
        "memory_lean": False,
        "batch_norm_statistics": "global",
        "progress": True,
        "checkpoint_minutes": 15,
        "loggers": [],
    },
}


class ConfigError(UserError, ValueError):
    """An invalid configuration; the message is one line naming the key."""


def schema() -> dict:
    """The train schema, with the data-set names of `iseat.data.registry` and the tracker names of
    `iseat.training.trackers` as its definitions."""
    loaded = yaml.safe_load(resources.files("iseat").joinpath("schemas/train.schema.yaml").read_text())
    loaded["definitions"].update(schema_definitions())
    method = loaded["properties"]["method"]["properties"]
    method["name"]["enum"] = method_registry.names()
    method.update({k: v for k, v in method_registry.plugin_options().items() if k not in method})
    loaded["definitions"].update(tracker_definitions())
    return loaded


def deep_merge(*layers: dict | None) -> dict:
    """A new mapping from `layers`, later ones winning: nested mappings merge, anything else is replaced
    (by a copy); a None layer adds nothing."""
    out: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def apply_override(cfg: dict, assignment: str) -> None:
    """Apply one `section.key=value` override; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected KEY=VALUE, e.g. training.epochs=10")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = cfg
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key!r} is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{dotted}: {raw!r} is not a valid YAML value ({str(err).splitlines()[0]}); "
            "write it as YAML, e.g. 10, 0.1, [0, 0.1] or a quoted string"
        ) from None


def key_path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(cfg: dict) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if not errors:
        return check_semantics(cfg)
    error = errors[0]
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = key_path(error)
        prefix = "" if where == "(top level)" else where + "."
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; valid keys here are {sorted(error.schema['properties'])}"
        )
    if error.validator == "oneOf" and error.context:
        # report the branch that matches the value's type (e.g. the negative item of a list)
        error = min(error.context, key=lambda e: (e.validator == "type", -len(e.absolute_path)))
    raise ConfigError(f"{key_path(error)}: {error.message}{accepted_range(error)}")


def accepted_range(error: jsonschema.ValidationError) -> str:
    """' (accepted: 0 to 0.1)' for a number outside its schema bounds, else ''."""
    if error.validator not in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return ""
    s = error.schema
    low = f"> {s['exclusiveMinimum']}" if "exclusiveMinimum" in s else (f">= {s['minimum']}" if "minimum" in s else "")
    high = f"< {s['exclusiveMaximum']}" if "exclusiveMaximum" in s else (f"<= {s['maximum']}" if "maximum" in s else "")
    return f" (accepted: {' and '.join(b for b in (low, high) if b)})"


def check_semantics(cfg: dict) -> None:
    """Rules a schema cannot express."""
    check_finite(cfg)
    try:
        method_registry.check_options(cfg["method"], cfg["attack"]["steps"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_budgets(cfg)
    check_milestones(cfg["training"])
    data = cfg["data"]
    if dataset(data["dataset"]).needs_root and not data.get("root"):
        raise ConfigError(f"data.root: required for dataset {data['dataset']!r} (a folder, or the .npz file)")
    for key in ("root", "extra"):
        if data.get(key) and not Path(data[key]).exists():
            raise ConfigError(f"data.{key}: {data[key]} does not exist; fetch or stage it first (iseat fetch --help)")
    ft = cfg["training"]["finetune_from"]
    if ft and not Path(ft).exists():
        raise ConfigError(f"training.finetune_from: {ft} does not exist")


def check_finite(node, where: str = "") -> None:
    """Every number finite: a schema's bounds let NaN through (every comparison with it is false)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{where}: {node} is not a finite number; give a finite value")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        check_finite(value, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else key)


BUDGETS = (("attack", "eps", False), ("attack", "step_size", False), ("evaluation", "pgd_step_size", True))


def check_budgets(cfg: dict) -> None:
    """eps and step sizes: numbers or fractions in [0, 0.25] ([0, 1] pixel units); the selection PGD's step > 0."""
    for section, key, positive in BUDGETS:
        if cfg[section][key] is not None:
            try:
                budget(cfg[section][key], f"{section}.{key}", positive)
            except ParameterError as err:
                raise ConfigError(err.named([f"{section}.{key}:"])) from None


def check_milestones(training: dict) -> None:
    """Every lr decay must fall after the first epoch: round(fraction x epochs) >= 1."""
    epochs = training["epochs"]
    for i, fraction in enumerate(training["lr_milestones"]):
        if round(fraction * epochs) < 1:
            raise ConfigError(
                f"training.lr_milestones[{i}]: {fraction} x {epochs} epochs decays the lr before "
                f"the first epoch; accepted: fractions in ({0.5 / epochs:.3g}, 1), or [] for no decay"
            )


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """Defaults <- YAML file <- overrides, validated. Raises ConfigError on any mistake."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        cfg = deep_merge(cfg, loaded)
    for assignment in overrides:
        apply_override(cfg, assignment)
    validate(cfg)
    return cfg
