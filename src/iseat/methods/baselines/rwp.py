"""Robust Weight Perturbation (RWP, Yu et al., IJCAI 2022): AWP's weight ascent restricted to the
samples whose adversarial loss is below a threshold (the "loss stationary condition").

Source: ChaojianYu/Robust-Weight-Perturbation `AT_AWP_RWP/utils_rwp.py` and `train_cifar10.py`
(AT) and `trades_AWP_RWP/utils_rwp.py` (TRADES). Defaults of the AT script: gamma = 0.01, threshold
(`LSC_loss`) 1.7, 10 ascent steps, no warm-up, PGD-10 with step 2/255 and a uniform start. Both
TRADES scripts (`trades_AWP_RWP/train_trades_cifar.py`, `RST_AWP_RWP/robust_self_training.py`) use
gamma = 0.005 and AWP from 1-indexed epoch 10 on; the RST one attacks with step 0.007.

Modes and BatchNorm running statistics (AT, `train_cifar10.py`): `model.train()` is called after
each attack and `model.eval()` only for the end-of-epoch evaluation, so `attack_pgd` runs in train
mode: its K steps and its restart-scoring pass at x' use the batch's statistics and each updates
the running statistics; then the loss pass f(x'; theta + v) updates them once more (K + 2 updates).
The ascent passes run on proxy models (no update). (Theirs attacks the first batch of each epoch
after the first in eval mode, left so by the evaluation; here every batch is attacked in train
mode.) TRADES-RWP attacks in eval mode and runs x', x, x at theta + v (`trades`).
`attack_mode: eval` is the variant with the eval-mode attack.
Each step ascends mean_i(l_i * 1[l_i < threshold]) at theta + v; the steps' gradients add up to D
and v = gamma * ||W|| * D / ||D||, one global norm over all conv/linear weights (not layer-wise
as AWP). The threshold is tested on the method's own per-sample loss (cross-entropy for AT; the
TRADES per-sample loss for TRADES/RST, as `TradesRWP` intends). The authors' `TradesRWP.calc_awp`
adds the per-sample CE (shape B) to a KL it never sums over classes (shape B x C): that only runs
when the batch size equals the class count, and then mixes samples with classes. Here the KL is
summed over classes, so l_i = CE_i + beta * KL_i is each sample's TRADES loss, the quantity the
loss stationary condition tests.
"""

from __future__ import annotations

import torch

from iseat.common import distributed

THRESHOLD = 1.7
STEPS = 10
GAMMA = 0.01
TRADES_GAMMA = 0.005  # trades_AWP_RWP and RST_AWP_RWP: --awp-gamma 0.005
TRADES_WARMUP = 10  # their --awp-warmup 10 (1-indexed epochs)
EPS = 1e-20  # the original's


def below_threshold_mean(per_sample_loss: torch.Tensor, threshold: float) -> torch.Tensor:
    """mean_i(l_i * 1[l_i < threshold]): samples above the threshold add nothing (the batch size
    still divides)."""
    return (per_sample_loss * (per_sample_loss < threshold).to(per_sample_loss.dtype)).mean()


def robust_weight_perturbation(
    weights: dict[str, torch.Tensor], per_sample_loss_at, gamma: float, threshold: float = THRESHOLD, steps: int = STEPS
) -> dict[str, torch.Tensor]:
    """v for the weights `weights` (conv/linear); `per_sample_loss_at(v)` is the per-sample loss at theta + v."""
    total = {n: torch.zeros_like(w) for n, w in weights.items()}
    scaled = {n: torch.zeros_like(w) for n, w in weights.items()}
    weight_norm = torch.cat([w.detach().reshape(-1) for w in weights.values()]).norm()
    for _ in range(steps):
        at = {n: gamma * s for n, s in scaled.items()}
        per_sample = per_sample_loss_at(at)
        loss = distributed.part_of_mean(below_threshold_mean(per_sample, threshold), len(per_sample))
        grads = distributed.all_reduce_gradients(torch.autograd.grad(loss, list(weights.values()), allow_unused=True))
        for n, g in zip(weights, grads):
            if g is not None:
                total[n] = total[n] + g.detach()
        total_norm = torch.cat([t.reshape(-1) for t in total.values()]).norm()
        scaled = {n: weight_norm / (total_norm + EPS) * t for n, t in total.items()}
    return {n: gamma * s for n, s in scaled.items()}
