"""ISEAT: Instance-adaptive Smoothness Enhanced Adversarial Training (Li & Spratling).

The library's public surface: models, the PGD attack, adversarial weight perturbation, the
logit-smoothing regularisers with instance weights, method presets, and `training_step`.
"""

__version__ = "0.1.0"

from .attack import PGD  # noqa: E402
from .method import PRESETS, Method, MethodSchedule, StepResult, training_step  # noqa: E402
from .models import build_model  # noqa: E402

__all__ = ["PGD", "PRESETS", "Method", "MethodSchedule", "StepResult", "training_step", "build_model", "__version__"]
