"""The interface every evaluation attack implements: built once with its budget, called on a batch.

An attack answers, per point, "is the model still right after this attack?" (the point must also be
right unperturbed: an attacker may always submit the clean image). It names itself for the command
line (`name`), the report (`section`, `protocol`, `label`) and the per-sample CSV (`column`), and
describes its exact budget (`settings`), so the runner, the CSV and aa.json need nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch


@dataclass
class AttackOutcome:
    """One batch's verdicts: `robust` (bool per point), extra per-point columns, warnings to report."""

    robust: torch.Tensor
    columns: dict[str, list] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Attack(ABC):
    """An l-inf evaluation attack with a fixed budget. Subclasses set the class attributes and `__call__`."""

    name: ClassVar[str]  # --attack name and registry key
    section: ClassVar[str]  # aa.json key of this attack's record (attacks sharing it are alternatives)
    column: ClassVar[str]  # per-sample CSV column of the per-point verdict
    extra_columns: ClassVar[tuple[str, ...]] = ()  # more per-point CSV columns the outcome fills
    rank: ClassVar[int] = 1  # the report's headline is the highest-ranked attack that ran
    family: ClassVar[str] = ""  # what alternatives sharing a section are protocols of (for error messages)
    description: ClassVar[str] = ""  # one line for `iseat evaluate --help`

    standard: bool = False  # True only for an attack whose number may be reported without qualification

    @classmethod
    @abstractmethod
    def build(cls, spec, model, *, num_classes: int, device) -> Attack:
        """The attack with the budget of `spec` (an EvaluationSpec), ready to call on `model`."""

    @property
    @abstractmethod
    def label(self) -> str:
        """How tables must name this attack's number, e.g. "PGD-10"."""

    @property
    def protocol(self) -> str:
        """The report's `protocol` when this attack gives the headline number."""
        return self.name

    @abstractmethod
    def settings(self) -> dict:
        """The budget the attack will actually run with (JSON-able)."""

    @abstractmethod
    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor) -> AttackOutcome:
        """Verdicts on (x, y); `clean` flags the points right unperturbed (only those need attacking)."""

    def preflight(self, model, x: torch.Tensor, y: torch.Tensor) -> list[str]:
        """Checks on the first batch of an evaluation (e.g. for gradient masking); returns warnings."""
        return []

    def record(self, samples: dict, seconds: float) -> dict:
        """This attack's aa.json section from the merged per-sample columns."""
        n_robust = sum(samples[self.column])
        return {
            "label": self.label,
            "protocol": self.protocol,
            "standard": self.standard,
            "settings": self.settings(),
            "robust_accuracy": n_robust / len(samples["index"]),
            "n_robust": n_robust,
            "wall_time_s": seconds,
        }

    def final_warnings(self, record: dict) -> list[str]:
        """Warnings that need the whole evaluation (e.g. AutoAttack's Square-success check)."""
        return []


def attack_in_batches(
    perturb, model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, batch_size: int, device, restarts: int = 1
) -> torch.Tensor:
    """Bool per point: clean-correct and still correct after each of `restarts` runs of `perturb(model, x, y)`.

    Only points not yet broken are attacked again, in batches of `batch_size`.
    """
    robust = clean.clone()
    for _ in range(restarts):
        remaining = robust.nonzero().flatten()
        for start in range(0, len(remaining), batch_size):
            points = remaining[start : start + batch_size]
            xb, yb = x[points].to(device), y[points].to(device)
            x_adv = perturb(model, xb, yb)
            with torch.no_grad():
                robust[points] = (model(x_adv).argmax(1) == yb).cpu()
    return robust
