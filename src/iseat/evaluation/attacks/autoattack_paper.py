"""The ISEAT reference code's AutoAttack protocol (torchattacks 3.5.1: 10 iterations, every other class as
target, rescaled Square schedule): weaker than standard AutoAttack and always labelled non-standard."""

from __future__ import annotations

from iseat.evaluation import autoattack_adapter as adapter
from iseat.evaluation.attacks.autoattack import AutoAttackStandard


class AutoAttackPaperProtocol(AutoAttackStandard):
    name = "autoattack-paper-protocol"
    description = "torchattacks' 10-iteration AutoAttack of the reference code (non-standard)"
    PROTOCOL = adapter.TORCHATTACKS
