"""Friendly Adversarial Training (FAT, Zhang et al., ICML 2020): cross-entropy on the early-stopped
PGD's x' (`attacks.EarlyStoppedPGD`), tau extra steps allowed after the first misclassification.

Source: zjfheart/Friendly-Adversarial-Training `FAT.py` and `earlystop.py`. Defaults there:
eps = 0.031, step 0.007, K = 10, uniform random start, omega = 0.001, dynamic tau: 0 up to
1-indexed epoch 50, 1 up to 90, 2 after (of 120 epochs). Here the tau milestones are fractions of
the epochs (50/120, 90/120), so the schedule follows the run's length.

Modes and BatchNorm running statistics (`FAT.py`, `earlystop.py`): the early-stopped PGD in eval
mode (no update), then one train-mode pass f(x') updates them.
"""

from __future__ import annotations

TAUS = (0, 1, 2)
TAU_MILESTONES = (50 / 120, 90 / 120)
OMEGA = 0.001


def fat_tau(epoch: int, epochs: int, taus=TAUS, milestones=TAU_MILESTONES) -> int:
    """`adjust_tau(epoch + 1)`: taus[j] once the 1-indexed epoch passes j milestones."""
    passed = sum(epoch + 1 > round(m * epochs) for m in milestones)
    return int(taus[min(passed, len(taus) - 1)])


def plain_pgd_warning(taus, steps: int) -> str | None:
    """A warning when some tau >= K: a sample stops at its (tau + 1)-th misclassified iterate of the K
    checked, so then none ever stops and those epochs are PGD-AT with omega noise. A warning, not a
    refusal: short-attack runs (K = 1 or 2 in smoke tests and demos) are legitimate, only no longer FAT."""
    plain = [int(t) for t in taus if int(t) >= steps]
    if plain:
        return (
            f"method.tau: tau {plain} >= attack.steps = {steps} never stops the attack early; those epochs "
            f"train as PGD-AT, not FAT (give tau < attack.steps)"
        )
    return None
