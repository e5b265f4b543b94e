"""AutoAttack's two gradient attacks (APGD-CE, APGD-T) with a small budget, through pyautoattack: a cheap
check for CPU-scale runs such as the demo, where Square's 5000 queries on a robust model cost seconds per
point. Weaker than standard AutoAttack (no FAB-T, no Square, 20 iterations, 3 targets); always labelled
non-standard, and its gradient-masking check has no Square to compare with."""

from __future__ import annotations

from iseat.evaluation import autoattack_adapter as adapter
from iseat.evaluation.attacks.autoattack import AutoAttackStandard


class AutoAttackAPGDPair(AutoAttackStandard):
    name = "autoattack-apgd"
    description = "AutoAttack's APGD-CE + APGD-T, 20 iterations, 3 targets (non-standard; CPU-scale runs)"
    PROTOCOL = adapter.APGD_PAIR
