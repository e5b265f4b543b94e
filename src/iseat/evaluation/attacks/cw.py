"""CW-inf: PGD-k on the Carlini-Wagner margin loss (Carlini & Wagner 2017), with PGD's budget.

The margin `max_{j != y} z_j - z_y` is positive exactly when the point is misclassified; ascending it
targets the strongest wrong class directly, which the cross-entropy can miss when its gradient
saturates. No confidence clamp (kappa = infinity): every point is pushed as far as the budget allows.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ...attack import PGD
from .base import Attack, AttackOutcome, attack_in_batches


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of max_{j != y} z_j - z_y."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return (others.amax(1) - true).mean()


class CWInfAttack(Attack):
    name, section, column = "cw", "cw", "cw_correct"
    description = "CW-inf: PGD on the Carlini-Wagner margin loss, with the PGD budget (--pgd-*)"

    def __init__(self, eps: float, settings, batch_size: int, device):
        self.settings_, self.batch_size, self.device = settings, batch_size, device
        self.pgd = PGD(eps=eps, step_size=settings.step_size, steps=settings.steps,
                       random_start=settings.random_start, loss=cw_margin_loss)

    @classmethod
    def build(cls, spec, model, *, num_classes, device):
        return cls(spec.eps, spec.pgd, spec.batch_size, device)

    @property
    def label(self) -> str:
        return self.settings_.label.replace("PGD", "CW-inf", 1)

    def settings(self) -> dict:
        return {"loss": "cw_margin", **asdict(self.settings_)}

    def __call__(self, model, x, y, clean):
        model.eval()
        return AttackOutcome(attack_in_batches(self.pgd.perturb, model, x, y, clean, self.batch_size, self.device,
                                               self.settings_.restarts))
