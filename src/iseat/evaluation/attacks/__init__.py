"""Evaluation attacks as units, one module each: built once with a budget, called on a batch (see `base`).

`ATTACKS` is the registry `iseat evaluate --attack` chooses from, in the order attacks run and their
columns appear in the per-sample CSV. A new attack is one module with an `Attack` subclass, one entry
here (or `register(MyAttack)` from outside the package) and one test.
"""

from __future__ import annotations

from iseat.evaluation.attacks.autoattack import AutoAttackStandard
from iseat.evaluation.attacks.autoattack_apgd import AutoAttackAPGDPair
from iseat.evaluation.attacks.autoattack_paper import AutoAttackPaperProtocol
from iseat.evaluation.attacks.base import Attack, AttackOutcome, attack_in_batches
from iseat.evaluation.attacks.cw import CWInfAttack, cw_margin_loss
from iseat.evaluation.attacks.pgd import PGDAttack

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (PGDAttack, AutoAttackStandard, AutoAttackPaperProtocol, AutoAttackAPGDPair, CWInfAttack)
}


def register(cls: type[Attack]) -> type[Attack]:
    """Add an attack to the registry (usable as a class decorator); a name can be registered once."""
    if cls.name in ATTACKS and ATTACKS[cls.name] is not cls:
        raise ValueError(f"an attack named {cls.name!r} is already registered")
    ATTACKS[cls.name] = cls
    return cls


def sections() -> list[str]:
    """aa.json's attack sections, in registry order (alternatives share one)."""
    return list(dict.fromkeys(cls.section for cls in ATTACKS.values()))


def columns() -> list[str]:
    """Per-sample CSV columns filled by attacks, in registry order."""
    return list(dict.fromkeys(c for cls in ATTACKS.values() for c in (cls.column, *cls.extra_columns)))


__all__ = [
    "ATTACKS",
    "Attack",
    "AttackOutcome",
    "AutoAttackAPGDPair",
    "AutoAttackPaperProtocol",
    "AutoAttackStandard",
    "CWInfAttack",
    "PGDAttack",
    "attack_in_batches",
    "columns",
    "cw_margin_loss",
    "register",
    "sections",
]
