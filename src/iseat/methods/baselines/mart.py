"""MART (Wang et al., ICLR 2020): boosted cross-entropy on x' plus beta times KL(f(x) || f(x'))
weighted by 1 - p_y(x), the misclassification-aware term.

Source: YisenWang/MART `mart.py` and `train_wideresnet.py`. Defaults there: beta = 6, eps = 0.031,
step 0.007, 10 steps of cross-entropy PGD from x + 0.001 * N(0, I) (`attacks.GaussianStartPGD`).
The constants 1.0001, 1e-12 and 1.0000001 are the original's.

Modes and BatchNorm running statistics (`mart_loss`): the attack in eval mode (no update); the loss
in train mode, f(x) first, then f(x'), each updating the running statistics: x, x'. MART-AWP (no
released code) keeps this order at theta + v; its ascent pass leaves the statistics alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BETA = 6.0


def boosted_cross_entropy(adv_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE per sample: CE(f(x'), y) - log(1 - max_{k != y} p_k(x'))."""
    adv_probs = F.softmax(adv_logits, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    margin = F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), runner_up, reduction="none")
    return F.cross_entropy(adv_logits, y, reduction="none") + margin


def mart_per_sample(clean_logits, adv_logits, y, beta: float = BETA) -> torch.Tensor:
    """BCE(x', y) + beta * KL(f(x) || f(x')) * (1 - p_y(x)) per sample; its batch mean is the MART loss."""
    adv_probs = F.softmax(adv_logits, dim=1)
    nat_probs = F.softmax(clean_logits, dim=1)
    true_probs = nat_probs.gather(1, y.unsqueeze(1)).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    return boosted_cross_entropy(adv_logits, y) + beta * kl * (1.0000001 - true_probs)
