"""PGD-k (Madry et al. 2018): l-inf projected gradient ascent on the cross-entropy, worst case over restarts."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import torch.nn.functional as F

from iseat.evaluation.attacks.base import Attack, AttackOutcome, attack_in_batches
from iseat.methods.training_attack import PGD

if TYPE_CHECKING:
    from iseat.evaluation.spec import PGDSettings


class PGDAttack(Attack):
    name, section, column = "pgd", "pgd", "pgd_correct"
    description = "PGD-k on the cross-entropy (--pgd-steps, --pgd-step-size, --pgd-restarts, --pgd-random-start)"
    loss = staticmethod(F.cross_entropy)  # what the steps ascend

    def __init__(self, eps: float, budget: PGDSettings, batch_size: int, device):
        self.budget, self.batch_size, self.device = budget, batch_size, device
        self.pgd = PGD(
            eps=eps, step_size=budget.step_size, steps=budget.steps, random_start=budget.random_start, loss=self.loss
        )

    @classmethod
    def build(cls, spec, model, *, num_classes, device):
        return cls(spec.eps, spec.pgd, spec.batch_size, device)

    @property
    def label(self) -> str:
        return self.budget.label

    def settings(self) -> dict:
        return asdict(self.budget)

    def __call__(self, model, x, y, clean):
        """Uses torch's global RNG for random starts (the runner seeds it per chunk)."""
        model.eval()
        return AttackOutcome(
            attack_in_batches(self.pgd.perturb, model, x, y, clean, self.batch_size, self.device, self.budget.restarts)
        )

    def record(self, samples, seconds):
        """The aa.json `pgd` section as it always was: budget fields at the top level."""
        n_robust = sum(samples[self.column])
        return {
            "label": self.label,
            **self.settings(),
            "robust_accuracy": n_robust / len(samples["index"]),
            "n_robust": n_robust,
            "wall_time_s": seconds,
        }
