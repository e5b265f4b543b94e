"""Robustness evaluation: clean accuracy and the attacks of `attacks/` (PGD-k, CW-inf, AutoAttack through
pyautoattack) with auditable reports.

`evaluate_checkpoint(checkpoint, out, EvaluationSpec(...))` writes `out` (aa.json, see
schemas/aa.schema.json) and `<out stem>.per_sample.csv`; `evaluate_model` does the same for a model
and a Dataset of (x, y, index).
"""

from iseat.evaluation.api import evaluate_checkpoint, evaluate_model
from iseat.evaluation.attacks import ATTACKS, Attack, AttackOutcome, register
from iseat.evaluation.autoattack_adapter import APGD_PAIR, PROTOCOLS, STANDARD, TORCHATTACKS, Protocol
from iseat.evaluation.chunks import IndexedTensors, partial_path
from iseat.evaluation.report import per_sample_path, validate
from iseat.evaluation.spec import EvaluationError, EvaluationInputError, EvaluationSpec, PGDSettings, attack_choices

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
