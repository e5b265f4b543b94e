"""CW-inf: PGD-k on the Carlini-Wagner margin loss (Carlini & Wagner 2017), with PGD's budget.

The margin `max_{j != y} z_j - z_y` is positive exactly when the point is misclassified; ascending it
targets the strongest wrong class directly, which the cross-entropy can miss when its gradient
saturates. No confidence clamp (kappa = infinity): every point is pushed as far as the budget allows.
"""

from __future__ import annotations

import torch

from iseat.evaluation.attacks.base import Attack
from iseat.evaluation.attacks.pgd import PGDAttack
from iseat.methods.training_attack import cw_margin


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of max_{j != y} z_j - z_y."""
    return cw_margin(logits, y).mean()


class CWInfAttack(PGDAttack):
    name, section, column = "cw", "cw", "cw_correct"
    description = "CW-inf: PGD on the Carlini-Wagner margin loss, with the PGD budget (--pgd-*)"
    loss = staticmethod(cw_margin_loss)
    record = Attack.record  # the generic section (PGD's keeps its historical layout)

    @property
    def label(self) -> str:
        return self.budget.label.replace("PGD", "CW-inf", 1)

    def settings(self) -> dict:
        return {"loss": "cw_margin", **super().settings()}
