"""The workflow config's checks: its schemas (defaults filled in) and what they cannot say, names that must
refer to each other. Each mistake is one line naming the key, e.g.
`config: settings.svhn.finetune.base: required: fine-tuned methods or a grid start from this scratch method's run`.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from iseat.common.errors import UserError
from iseat.data import registry
from iseat.workflow import cluster
from iseat.workflow.schema import validate as validate_against_schema


class ConfigError(UserError, ValueError):
    """A workflow config key that is wrong; the message names it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config: {key}: {message}")


def with_catalog(config: dict, catalog_path) -> dict:
    """The method catalog (workflow/methods.yaml) under `methods`; the config's own entries add or replace."""
    catalog = yaml.safe_load(Path(catalog_path).read_text())
    config["methods"] = {**catalog, **(config.get("methods") or {})}
    return config


def validate(section: dict, schema_path, key: str = "") -> None:
    """Validate `section` in place (defaults filled in) against a workflow schema; ConfigError naming the key."""
    try:
        validate_against_schema(section, schema_path)
    except jsonschema.ValidationError as mistake:
        where = ".".join([*([key] if key else []), *(str(part) for part in mistake.absolute_path)])
        raise ConfigError(where or "(top level)", mistake.message.splitlines()[0]) from None


def check_config(config: dict) -> None:
    """What the schema cannot say about the settings: names that must refer to each other."""
    for name, setting in config["settings"].items():
        check_setting(name, setting, config["methods"])
    timing = (config.get("step_timing") or {}).get("setting")
    if timing is not None and timing not in config["settings"]:
        raise ConfigError("step_timing.setting", f"unknown setting {timing!r}; settings: {sorted(config['settings'])}")


def check_setting(name: str, setting: dict, methods: dict) -> None:
    key = f"settings.{name}"
    for i, method in enumerate(setting["methods"]):
        if method not in methods:
            raise ConfigError(
                f"{key}.methods[{i}]", f"unknown method {method!r}; the catalog (methods) has {sorted(methods)}"
            )
        if methods[method].get("tuned") and "tuned" not in setting:
            raise ConfigError(
                f"{key}.tuned", f"required: method {method!r} takes tuned values {methods[method]['tuned']}"
            )
    for method in setting.get("method_train", {}):
        if method not in setting["methods"]:
            raise ConfigError(f"{key}.method_train.{method}", f"{method!r} is not one of this setting's methods")
    check_finetune_base(key, setting, methods)
    grid_method = setting.get("grid", {}).get("method", "iseat")
    if "grid" in setting and grid_method not in methods:
        raise ConfigError(f"{key}.grid.method", f"unknown method {grid_method!r}")
    if setting.get("tuned", {}).get("source") == "grid" and "grid" not in setting:
        raise ConfigError(f"{key}.tuned.source", "'grid' needs a grid block in this setting")
    extends = registry.dataset(setting["extra"]).extends if setting.get("extra") else None
    if extends is not None and setting["dataset"] != extends:
        raise ConfigError(f"{key}.extra", f"{setting['extra']} only extends {extends}")


def check_finetune_base(key: str, setting: dict, methods: dict) -> None:
    needs_base = any(methods[m]["kind"] == "finetune" for m in setting["methods"]) or "grid" in setting
    base = setting.get("finetune", {}).get("base")
    if needs_base and base is None:
        raise ConfigError(
            f"{key}.finetune.base", "required: fine-tuned methods or a grid start from this scratch method's run"
        )
    if base is not None and methods.get(base, {}).get("kind") != "scratch":
        raise ConfigError(f"{key}.finetune.base", f"{base!r} must be a method of kind scratch in the catalog")


def check_analysis(config: dict) -> None:
    """The `analysis` block's names (see config/README.md, `analysis`): runs, the studies' runs, the sweep."""
    analysis, settings, methods = config["analysis"], config["settings"], config["methods"]
    names = [run["name"] for run in analysis["runs"]]
    if len(set(names)) != len(names):
        raise ConfigError("analysis.runs", "a name is given twice")
    for i, run in enumerate(analysis["runs"]):
        check_analysis_run(i, run, config)
    for key in ("table1", "av_figure", "margin.runs", "landscape.runs"):
        section, _, sub = key.partition(".")
        for name in analysis[section][sub] if sub else analysis[section]:
            if name not in names:
                raise ConfigError(f"analysis.{key}", f"{name!r} is not a name in analysis.runs ({sorted(names)})")
    sweep = analysis.get("eta_sweep")
    if sweep is not None and sweep["setting"] not in settings:
        raise ConfigError("analysis.eta_sweep.setting", f"unknown setting {sweep['setting']!r}")
    if sweep is not None and methods.get(sweep["base"], {}).get("kind") != "scratch":
        raise ConfigError("analysis.eta_sweep.base", f"{sweep['base']!r} must be a scratch method of the catalog")


def check_analysis_run(i: int, run: dict, config: dict) -> None:
    settings, seed = config["settings"], config["analysis"]["seed"]
    if "setting" not in run:
        if config["analysis"].get("eta_sweep") is None:
            raise ConfigError(f"analysis.runs[{i}].eta", "needs an analysis.eta_sweep block (setting and base run)")
        return
    setting = settings.get(run["setting"])
    if setting is None:
        raise ConfigError(
            f"analysis.runs[{i}].setting", f"unknown setting {run['setting']!r}; settings has {sorted(settings)}"
        )
    if run["method"] not in [*setting["methods"], setting.get("finetune", {}).get("base")]:
        raise ConfigError(
            f"analysis.runs[{i}].method", f"{run['method']!r} is not a method of setting {run['setting']!r}"
        )
    seeds = setting.get("seeds", config["seeds"])
    if seed not in seeds:
        raise ConfigError("analysis.seed", f"setting {run['setting']!r} runs seeds {seeds}, not {seed}")


def checked(config: dict, catalog, schema, analysis_schema) -> dict:
    """The workflow config as the rules use it: the method catalog (`catalog`, workflow/methods.yaml) merged
    in, the config and analysis schemas applied (defaults filled in), every check passed."""
    with_catalog(config, catalog)
    validate(config, schema)
    check_config(config)
    cluster.check(config)
    validate(config.setdefault("analysis", {}), analysis_schema, key="analysis")
    check_analysis(config)
    return config
