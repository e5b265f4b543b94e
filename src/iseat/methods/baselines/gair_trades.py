"""GAIR-TRADES, the loss of GAIR-RST (Zhang et al., ICLR 2021, trained on CIFAR-10 + the 500K
pseudo-labelled images as RST): TRADES whose KL term mixes two adversaries per sample, the KL
attack's x' with weight w_i and a CW-margin attack's x'' with weight 1 - w_i, w_i from the geometry
value kappa_i counted on the KL attack's iterates:

    l_i = CE(f(x_i), y_i) + beta * [w_i KL(f(x_i) || f(x'_i)) + (1 - w_i) KL(f(x_i) || f(x''_i))]
        = w_i TRADES_i(x'_i) + (1 - w_i) TRADES_i(x''_i),   w_i = (1 + tanh(Lambda + K/2 - kappa_i)) / 2,

and the loss is mean_i l_i. Unlike GAIRAT's weights (`gairat.gair_weights`) these have no factor
5 / (K/2) and are not normalised: a sample that survives the whole KL walk (kappa = K) is trained
mostly on its CW adversary.

Source: zjfheart/Geometry-aware-Instance-reweighted-Adversarial-Training, `GAIR_RST/losses.py`
(`GAIR_trades_loss`, `pgd_generate`, `cwloss`), `GAIR_RST/robust_self_training_GAIR.py` (`lam`) and
`GAIR_RST/run_training.sh` (the README's recipe for the published model). Defaults there: beta = 6,
eps = 0.031, step 0.007, K = 10; the KL attack from x + 0.001 * N(0, I) (`attacks.KLAttack`); the
CW attack from the same kind of start with confidence 50 (`attacks.CWAttack`), both in eval mode;
Lambda = 3.0 (run_training.sh's `--Lambda=3.0`; the parser's default is 0.0) from 1-indexed epoch
0.5 * epochs on, Lambda = 100 before (the burn-in); for Lambda > 10 the original takes the plain
TRADES loss and runs no CW attack. Its training protocol (WRN28-10, 200 epochs of 50K images,
batch 256 half pseudo-labelled, cosine lr, Nesterov) is RST's; here the setting's, as for `rst`.

Modes and BatchNorm running statistics (`GAIR_trades_loss`): both attacks in eval mode (no update),
then train-mode passes f(x'), f(x'') (for Lambda <= 10) and f(x), each updating them, in that order.
"""

from __future__ import annotations

import torch

LAMBDA = 3.0
BEGIN = 0.5
BURN_IN_LAMBDA = 100.0
PLAIN_TRADES_ABOVE = 10.0


def gair_trades_lambda(epoch: int, epochs: int, lam: float = LAMBDA, begin: float = BEGIN) -> float:
    """`lam(epoch)` of the original (1-indexed epoch): Lambda from epoch >= begin * epochs, 100 before."""
    return lam if epoch + 1 >= begin * epochs else BURN_IN_LAMBDA


def reweights(lam: float) -> bool:
    """The original mixes in the CW adversary only for Lambda <= 10 (else plain TRADES)."""
    return lam <= PLAIN_TRADES_ABOVE


def gair_trades_weights(kappa: torch.Tensor, steps: int, lam: float) -> torch.Tensor:
    """w_i = (1 + tanh(Lambda + K/2 - kappa_i)) / 2: the KL adversary's share of sample i's KL term."""
    return (torch.tanh(lam + steps / 2 - kappa.to(torch.float64)) + 1) / 2
