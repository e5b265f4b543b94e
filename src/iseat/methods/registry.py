"""The registry of training methods: the one list of `method.name` values.

Each entry gives a method's table label, its Tab. 4 step-cost row (the step benchmark's label, or
None), its source, and where its schedule is built from the config's `method` section (a
`module:attribute` path, imported only when a run needs it, so that light commands stay free of
torch). The train schema's `method.name` enum (`iseat.training.config.schema`), the planner, the step
benchmark and the tables read it. The parts each method is made of live in `iseat.methods.presets.PRESETS`
and `iseat.methods.baselines.BASELINES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from iseat.methods import plugins as method_plugins


@dataclass(frozen=True)
class MethodSpec:
    name: str
    label: str
    source: str
    schedule: str  # "module:attribute" of the schedule class; its `from_config(cfg)` builds one
    tab4_label: str | None = None  # the step benchmark's row (`iseat benchmark step --methods`)
    plugin: type | None = None  # an installed method's class (`iseat.methods.plugins`)

    def schedule_class(self):
        if self.plugin is not None:
            return method_plugins.PluginSchedule
        module, attribute = self.schedule.split(":")
        return getattr(importlib.import_module(module), attribute)

    def build(self, cfg: dict):
        """The schedule of the config's `method` section (its `at_stage` gives one epoch's method)."""
        if self.plugin is not None:
            return method_plugins.PluginSchedule.from_config(self.plugin, cfg)
        return self.schedule_class().from_config(cfg)

    def defaults(self) -> dict:
        """The method's options and their defaults (a config's `method` section overrides them)."""
        if self.plugin is not None:
            return {k: s.get("default") for k, s in self.plugin.options_schema.items()}
        return self.schedule_class().defaults(self.name)


PRESET = "iseat.methods.presets:MethodSchedule"
BASELINE = "iseat.methods.baselines:BaselineSchedule"
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("at", "AT", "Madry et al. 2018; the ISEAT reference code's AT", PRESET, "AT"),
        MethodSpec("at_awp", "AT-AWP", "Wu et al. 2020 (csdongxian/AWP); ISEAT Eq. 13-14", PRESET, "+AWP"),
        MethodSpec("at_lsi", "+ input smoothing (LSI)", "ISEAT Tab. 4", PRESET, "+LSI"),
        MethodSpec("iseat", "ISEAT", "Li & Spratling, Eq. 15-21", PRESET, "ISEAT"),
        MethodSpec("at_eq9", "AT + Eq. 9", "ISEAT Section 3, Eq. 9", PRESET),
        MethodSpec("trades", "TRADES", "Zhang et al. 2019, yaodongyu/TRADES", BASELINE),
        MethodSpec("mart", "MART", "Wang et al. 2020, YisenWang/MART", BASELINE),
        MethodSpec("trades_awp", "TRADES-AWP", "Wu et al. 2020, csdongxian/AWP trades_AWP", BASELINE),
        MethodSpec("mart_awp", "MART-AWP", "Wu et al. 2020 (no released code: TRADES-AWP's settings)", BASELINE),
        MethodSpec("rwp", "RWP", "Yu et al. 2022, ChaojianYu/Robust-Weight-Perturbation AT_AWP_RWP", BASELINE),
        MethodSpec(
            "trades_rwp", "TRADES-RWP", "Yu et al. 2022, ChaojianYu/Robust-Weight-Perturbation trades_AWP_RWP", BASELINE
        ),
        MethodSpec(
            "gairat",
            "GAIRAT",
            "Zhang et al. 2021, zjfheart/Geometry-aware-Instance-reweighted-Adversarial-Training",
            BASELINE,
        ),
        MethodSpec("gair_trades", "GAIR-TRADES", "Zhang et al. 2021, the same repository's GAIR_RST", BASELINE),
        MethodSpec("fat", "FAT", "Zhang et al. 2020, zjfheart/Friendly-Adversarial-Training", BASELINE),
    )
}
# Tab. 4's rows by the parts a step has: (a smoothing-like clean-graph term, a weight perturbation).
COST_ROWS = {(False, False): "at", (True, False): "at_lsi", (False, True): "at_awp", (True, True): "iseat"}


def methods() -> dict[str, MethodSpec]:
    """The built-in methods, then the installed ones (entry-point group `iseat.methods`)."""
    out = dict(METHODS)
    for name, method in method_plugins.installed().items():
        if name in out:
            raise method_plugins.MethodPluginError(
                f"entry point {method_plugins.GROUP}:{name}: a built-in method has that name; rename it"
            )
        out[name] = MethodSpec(name, method.label, getattr(method, "source", method.__module__), "", plugin=method)
    return out


def plugin_options() -> dict:
    """JSON-schema properties of every installed method's options (the train schema admits them)."""
    return {k: v for s in methods().values() if s.plugin is not None for k, v in s.plugin.options_schema.items()}


def check_options(cfg: dict, attack_steps: int = 10) -> None:
    """ValueError naming the first `method` key that the chosen method does not take, or whose value (with
    the attack's `attack_steps`) leaves its instance weights undefined."""
    chosen = spec(cfg.get("name", "iseat"))
    if chosen.plugin is not None:
        chosen.build(cfg)
        return
    stray = sorted(set(cfg) & set(plugin_options()) - set(chosen.defaults()) - {"name"})
    if stray:
        raise ValueError(f"method.{stray[0]}: an option of an installed method, not of {chosen.name}")
    from iseat.methods.baselines import check_method_options  # the built-ins' own checks

    check_method_options(cfg, attack_steps)


def names() -> list[str]:
    return list(methods())


def spec(name: str) -> MethodSpec:
    """The method `name`; ValueError naming the choices for an unknown one."""
    if name not in methods():
        raise ValueError(f"method.name: unknown method {name!r}; choose one of {names()}")
    return methods()[name]


def tab4_labels() -> dict[str, str]:
    """Method name -> its step-benchmark label, for the methods that are Tab. 4 rows."""
    return {name: s.tab4_label for name, s in methods().items() if s.tab4_label}


def cost_row(clean_graph_term: bool, weight_perturbation: bool) -> str:
    """The Tab. 4 label a step with these parts costs as."""
    return methods()[COST_ROWS[(bool(clean_graph_term), bool(weight_perturbation))]].tab4_label


def theta_branch_labels() -> tuple[str, ...]:
    """The Tab. 4 rows whose step has a theta branch (a clean-graph term): the memory-lean path's."""
    return tuple(cost_row(True, awp) for awp in (False, True))


def schedule(cfg: dict):
    """The schedule of the config's `method` section (its `at_stage` gives one epoch's method)."""
    return spec(cfg.get("name", "iseat")).build(cfg)
