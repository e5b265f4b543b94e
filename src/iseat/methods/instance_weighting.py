"""Instance weights from adversarial vulnerability (ISEAT Eq. 15 and the Tab. 5 ablations)."""

from __future__ import annotations

import math

import torch

WEIGHTINGS = ("linear", "top10", "uniform")


def rank_descending(av: torch.Tensor) -> torch.Tensor:
    """r_i: 0 for the largest AV in the batch, m - 1 for the smallest."""
    order = torch.argsort(av, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(av.numel(), device=av.device)
    return ranks


def instance_weights(av: torch.Tensor, scheme: str = "linear") -> torch.Tensor:
    """Per-sample weights (detached) for the regulariser.

    linear: w_i = 1 - r_i / m (1 for the most vulnerable, 1/m for the least; Eq. 15).
    top10:  1 for the ceil(10 %) most vulnerable, 0 otherwise.
    uniform: 1 for every sample.
    """
    av = av.detach()
    m = av.numel()
    if scheme == "uniform":
        return torch.ones_like(av)
    ranks = rank_descending(av)
    if scheme == "linear":
        return 1 - ranks.to(av.dtype) / m
    if scheme == "top10":
        return (ranks < top_fraction_count(m, 0.1)).to(av.dtype)
    raise ValueError(f"method.weighting: unknown scheme {scheme!r}; choose one of {list(WEIGHTINGS)}")


def top_fraction_count(m: int, fraction: float) -> int:
    return max(1, math.ceil(fraction * m))
