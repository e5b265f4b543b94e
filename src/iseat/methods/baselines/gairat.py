"""GAIRAT (Zhang et al., ICLR 2021): the adversarial cross-entropy of each sample weighted by its
geometry value kappa (how many PGD iterates it survives, `attacks.GeometryAwarePGD`).

Source: zjfheart/Geometry-aware-Instance-reweighted-Adversarial-Training, `GAIR.py` (Tanh) and
`GAIRAT.py`. Defaults there: eps = 0.031, step 0.007, K = 10, uniform random start; Lambda = -1
("fixed" schedule: Lambda_max = inf, i.e. weight 1 for every sample, until `begin_epoch`, then -1);
`begin_epoch` = 60 of 120 epochs; before it the plain mean cross-entropy. Here `begin` is a
fraction of the epochs (0.5 = 60/120), so the schedule follows the run's length.

Modes and BatchNorm running statistics (`GAIRAT.py`): `GA_PGD` runs in eval mode (no update), then
one train-mode pass f(x') updates them.
"""

from __future__ import annotations

import math

import torch

LAMBDA = -1.0
BEGIN = 0.5
# Below it a batch whose samples all survive every iterate (kappa = K) can get weight 0 for each: in float64,
# 1 + tanh(x) is 0 for x < -18.7, and the argument's least value is Lambda - 5; the normalisation is then 0/0.
LAMBDA_MIN = -10.0


def gair_weights(kappa: torch.Tensor, steps: int, lam: float) -> torch.Tensor:
    """w_i = (1 + tanh(lambda + 5 (1 - 2 kappa_i / K))) / 2, normalised to sum to m (GAIR.py, Tanh;
    the original writes K/2 as int(K/2))."""
    half = int(steps / 2)
    w = (torch.tanh(lam + (half - kappa.to(torch.float64)) * 5 / half) + 1) / 2
    return w * len(w) / w.sum()


def gair_active(epoch: int, epochs: int, begin: float = BEGIN) -> bool:
    """GAIRAT reweights from 1-indexed epoch round(begin * epochs) on (`(epoch + 1) >= begin_epoch`)."""
    return epoch + 1 >= round(begin * epochs)


def gair_lambda(epoch: int, epochs: int, lam: float = LAMBDA, begin: float = BEGIN) -> float:
    """The "fixed" Lambda schedule: Lambda_max = inf before the reweighting starts, then `lam`."""
    return lam if gair_active(epoch, epochs, begin) else math.inf


def check_options(lam: float, steps: int) -> None:
    """ValueError naming the option with which the weights are undefined (0/0, a division by K/2 = 0)."""
    if not lam >= LAMBDA_MIN:  # NaN too
        raise ValueError(
            f"method.gair_lambda: {lam} makes every weight of a batch 0 (their normalisation 0/0); "
            f"accepted: finite values >= {LAMBDA_MIN} (GAIRAT's own: -1)"
        )
    if steps < 2:
        raise ValueError(
            f"attack.steps: GAIRAT's weights divide by int(K/2), 0 for K = {steps}; accepted: "
            f"attack.steps >= 2 (GAIRAT's own: 10)"
        )
