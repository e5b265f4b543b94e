"""Robustness evaluation: clean accuracy, PGD-k and AutoAttack (through pyautoattack) with auditable reports.

`evaluate_checkpoint(checkpoint, out, EvaluationSpec(...))` writes `out` (aa.json, see
schemas/aa.schema.json) and `<out stem>.per_sample.csv`; `evaluate_model` does the same for a model
and a Dataset of (x, y, index).
"""

from .api import evaluate_checkpoint, evaluate_model, resolve_device
from .autoattack_adapter import PROTOCOLS, STANDARD, TORCHATTACKS, Protocol
from .chunks import IndexedTensors, partial_path
from .report import per_sample_path, validate
from .spec import ATTACK_CHOICES, EvaluationError, EvaluationSpec, PGDSettings, parse_fraction

__all__ = ["ATTACK_CHOICES", "EvaluationError", "EvaluationSpec", "IndexedTensors", "PGDSettings", "PROTOCOLS",
           "Protocol", "STANDARD", "TORCHATTACKS", "evaluate_checkpoint", "evaluate_model", "parse_fraction",
           "partial_path", "per_sample_path", "resolve_device", "validate"]
