"""TRADES (Zhang et al., ICML 2019): natural cross-entropy plus beta times KL(f(x) || f(x')).

Source: yaodongyu/TRADES `trades.py` and `train_trades_cifar10.py`. Defaults there: beta = 6,
eps = 0.031, step 0.007, 10 steps of the KL attack (`attacks.KLAttack`) from x + 0.001 * N(0, I),
`criterion_kl` summed and divided by the batch size. Both arguments of the KL carry gradients (the
original does not detach f(x)).

Modes and BatchNorm running statistics (`trades_loss`): the attack runs in eval mode (no update);
the loss runs three train-mode passes, f(x) for the cross-entropy, then f(x') and f(x) for the KL,
each updating the running statistics: x, x', x (`statistics_passes`; [clean, adv] is the cheaper
variant with one update by x). TRADES-AWP (csdongxian/AWP `trades_AWP/train_trades_cifar.py`) and
TRADES-RWP (`trades_AWP_RWP/train_trades_cifar.py`) compute the same loss at theta + v in the order
x', x, x; their ascent passes run on a proxy model and update none of the model's statistics.
RST-RWP (`RST_AWP_RWP/losses.py` `trades_loss`) runs x', x: the catalog's `rst_rwp` sets that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BETA = 6.0


def kl_per_sample(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(clean) || softmax(adv)) of each sample (torch's `kl_div`, as the original)."""
    return F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1), reduction="none").sum(1)


def trades_per_sample(clean_logits, adv_logits, y, beta: float = BETA) -> torch.Tensor:
    """CE(f(x), y) + beta * KL(f(x) || f(x')) per sample; its batch mean is the TRADES loss."""
    return F.cross_entropy(clean_logits, y, reduction="none") + beta * kl_per_sample(clean_logits, adv_logits)
