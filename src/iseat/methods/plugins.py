"""Training methods from installed packages: the Python entry-point group `iseat.methods`.

An entry point `name = "package.module:MyMethod"` registers the method `name`. `MyMethod` is one
class implementing `iseat.methods.step_parts.TrainingMethod`, built as `MyMethod(attack=<PGD>, **options)`,
with class attributes
  - `label`: the row label of tables and figures,
  - `options_schema`: JSON-schema properties of its options (the `method` keys besides `name`),
  - optionally `source` (a citation) and `step_cost` ((clean-graph term, weight perturbation) as
    bools: the Tab. 4 row whose step time `iseat plan` charges; AT's by default).
`iseat train --set method.name=<name>` validates its options against `options_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

import jsonschema

from iseat.common.errors import UserError, first_line

GROUP = "iseat.methods"


class MethodPluginError(UserError, ValueError):
    """An installed method that cannot be used (does not load, or takes a built-in's name); one line."""


@cache
def installed() -> dict:
    """{name: class} of every installed entry point of the group."""
    return {ep.name: load(ep) for ep in entry_points(group=GROUP)}


def load(entry_point):
    try:
        return entry_point.load()
    except Exception as err:  # any failure of a third-party import: name the entry point, never a traceback
        raise MethodPluginError(
            f"entry point {GROUP}:{entry_point.name} ({entry_point.value}) does not load: "
            f"{type(err).__name__}: {first_line(err)}; fix or uninstall its package"
        ) from None


def options_schema(method) -> dict:
    return {"type": "object", "properties": dict(method.options_schema), "additionalProperties": False}


@dataclass(frozen=True)
class PluginSchedule:
    """An installed method with its options; the same object every epoch (no per-stage values)."""

    method: type
    options: tuple  # sorted (key, value) pairs

    @classmethod
    def from_config(cls, method, cfg: dict) -> PluginSchedule:
        """ValueError naming the first option that its schema refuses."""
        options = {k: v for k, v in cfg.items() if k != "name"}
        known = sorted(method.options_schema)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"method.{unknown[0]}: not an option of {cfg['name']}; its options are {known}")
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(options_schema(method)).iter_errors(options)
        )
        if error is not None:
            raise ValueError(f"method.{'.'.join(map(str, error.absolute_path))}: {error.message}")
        return cls(method, tuple(sorted(options.items())))

    def cost_parts(self, stage: int, epoch: int) -> tuple[bool, float]:
        clean_graph_term, weight_perturbation = getattr(self.method, "step_cost", (False, False))
        return clean_graph_term, float(weight_perturbation)

    def at_stage(self, stage: int, attack, epoch: int = 0, epochs: int = 1):
        return self.method(attack=attack, **dict(self.options))
