"""Logit-stability regularisers: instance-weighted loss smoothing (ISEAT Eq. 16-18), its
Tab. 5/6 ablations, and the Eq. 9 logit-stability penalty of Section 3 (top-10 % by AV).

A smoothing regulariser compares the logits of two (input, weights) views of each sample:
  lsiw      f(x'; theta+v) vs f(x; theta)       ISEAT: input and weight smoothing
  lsi       f(x'; theta)   vs f(x; theta)       input smoothing only
  trade_awp f(x'; theta+v) vs f(x; theta+v)     TRADES-AWP style target
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iseat.common import distributed
from iseat.methods.instance_weighting import instance_weights, rank_descending, top_fraction_count

# (input, weights) of the two views each target compares: adversarial/clean, perturbed/base.
TARGET_VIEWS = {
    "lsiw": (("adv", "perturbed"), ("clean", "base")),
    "lsi": (("adv", "base"), ("clean", "base")),
    "trade_awp": (("adv", "perturbed"), ("clean", "perturbed")),
}
DISTANCES = ("sq_l2", "kl")


def logit_distance(adv_logits: torch.Tensor, clean_logits: torch.Tensor, distance: str) -> torch.Tensor:
    """Per-sample distance o_i between the two views' outputs."""
    if distance == "sq_l2":
        return (adv_logits - clean_logits).pow(2).sum(1)
    if distance == "kl":  # KL(p_clean || p_adv), as TRADES
        log_p_clean = F.log_softmax(clean_logits, 1)
        return (log_p_clean.exp() * (log_p_clean - F.log_softmax(adv_logits, 1))).sum(1)
    raise ValueError(f"method.distance: unknown distance {distance!r}; choose one of {list(DISTANCES)}")


@dataclass(frozen=True)
class LogitSmoothing:
    """lambda * sum_i w_i o_i / m (Eq. 18's second term)."""

    target: str = "lsiw"
    distance: str = "sq_l2"
    weighting: str = "linear"

    def __post_init__(self):
        if self.target not in TARGET_VIEWS:
            raise ValueError(f"method.target: unknown target {self.target!r}; choose one of {list(TARGET_VIEWS)}")

    @property
    def views(self):
        return TARGET_VIEWS[self.target]

    def __call__(self, adv_logits, clean_logits, av, lam: float) -> torch.Tensor:
        weights = distributed.on_global_batch(lambda a: instance_weights(a, self.weighting), av)  # Eq. 15 ranks
        return lam * (weights * logit_distance(adv_logits, clean_logits, self.distance)).sum() / av.numel()


def logit_stability_penalty(
    adv_logits: torch.Tensor, clean_logits: torch.Tensor, av: torch.Tensor, eta: float, fraction: float = 0.1
) -> torch.Tensor:
    """Eq. 9's second term: eta * E_i[ ||f(x_i + d_i) - f(x_i)||_2^2 * 1(x_i, d_i) ], the mean over the
    whole batch, where the indicator selects the `fraction` of the batch with the highest AV (Eq. 3).
    Gradients flow through both logits; the indicator is a constant."""
    top = distributed.on_global_batch(
        lambda a: rank_descending(a) < top_fraction_count(a.numel(), fraction), av.detach()
    )
    indicator = top.to(adv_logits.dtype)
    return eta * (indicator * logit_distance(adv_logits, clean_logits, "sq_l2")).mean()
