"""ISEAT: Instance-adaptive Smoothness Enhanced Adversarial Training (Li & Spratling).

The library's public surface: models, the PGD attack, adversarial weight perturbation, the
logit-smoothing regularisers with instance weights, method presets, and `training_step`.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it. Imported on first use (PEP 562), so light commands (tables,
# figures, the index) and `import iseat.common.errors` do not pay for importing torch.
_PUBLIC = {
    "PGD": "iseat.methods.training_attack",
    "PRESETS": "iseat.methods.presets",
    "Method": "iseat.methods.presets",
    "MethodSchedule": "iseat.methods.presets",
    "StepResult": "iseat.methods.presets",
    "training_step": "iseat.methods.presets",
    "build_model": "iseat.methods.models",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'iseat' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
