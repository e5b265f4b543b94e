"""Robustness evaluation: clean accuracy and the attacks of `attacks/` (PGD-k, CW-inf, AutoAttack through
pyautoattack) with auditable reports.

`evaluate_checkpoint(checkpoint, out, EvaluationSpec(...))` writes `out` (aa.json, see
schemas/aa.schema.json) and `<out stem>.per_sample.csv`; `evaluate_model` does the same for a model
and a Dataset of (x, y, index).

The names below are imported on first use, so the results layer can read `gradient_masking` and
`protocol_stamp` without importing torch.
"""

from importlib import import_module

_HOMES = {
    **dict.fromkeys(("evaluate_checkpoint", "evaluate_model"), "api"),
    **dict.fromkeys(("ATTACKS", "Attack", "AttackOutcome", "register"), "attacks"),
    **dict.fromkeys(("APGD_PAIR", "PROTOCOLS", "STANDARD", "TORCHATTACKS", "Protocol"), "autoattack_adapter"),
    **dict.fromkeys(("IndexedTensors", "partial_path"), "chunks"),
    **dict.fromkeys(("per_sample_path", "validate"), "evaluation_report"),
    **dict.fromkeys(
        ("EvaluationError", "EvaluationInputError", "EvaluationSpec", "PGDSettings", "attack_choices"), "spec"
    ),
}

__all__ = [
    "APGD_PAIR",
    "ATTACKS",
    "Attack",
    "AttackOutcome",
    "EvaluationError",
    "EvaluationInputError",
    "EvaluationSpec",
    "IndexedTensors",
    "PGDSettings",
    "PROTOCOLS",
    "Protocol",
    "STANDARD",
    "TORCHATTACKS",
    "attack_choices",
    "evaluate_checkpoint",
    "evaluate_model",
    "partial_path",
    "per_sample_path",
    "register",
    "validate",
]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"iseat.evaluation.{_HOMES[name]}"), name)
