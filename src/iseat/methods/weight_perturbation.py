"""Adversarial weight perturbation (AWP, Wu et al. 2020; ISEAT Eq. 13-14).

One ascent step on the adversarial loss, scaled layer-wise: for every parameter tensor with more
than one dimension, v_n = gamma * ||theta_n|| * g_n / ||g_n||. BatchNorm parameters and biases
(one-dimensional tensors) are never perturbed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from iseat.common import distributed


def forward_keeping_statistics(model: torch.nn.Module, x: torch.Tensor, params: dict | None = None) -> torch.Tensor:
    """f(x; params) (default: the model's parameters) in the model's current mode, run on copies of the
    buffers: a pass that only serves an ascent, a recomputation or a log leaves the BatchNorm running
    statistics untouched (the reference computes such passes on a proxy copy of the model)."""
    buffer_copies = {name: b.clone() for name, b in model.named_buffers()}
    return functional_call(model, (dict(model.named_parameters()) if params is None else params, buffer_copies), (x,))


def perturbable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Conv kernels and linear weights: the tensors AWP perturbs."""
    return {name: p for name, p in model.named_parameters() if p.dim() > 1}


@dataclass(frozen=True)
class AdversarialWeightPerturbation:
    gamma: float

    def compute(self, model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return v as {parameter name: tensor}; the model is not modified.

        The ascent pass runs on copies of the buffers, as the reference computes it on a proxy copy
        of the model: it leaves the BatchNorm running statistics untouched."""
        params = perturbable_parameters(model)
        logits = forward_keeping_statistics(model, x_adv)
        loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y)
        grads = torch.autograd.grad(distributed.part_of_mean(loss, len(y)), list(params.values()))
        distributed.all_reduce_gradients(grads)  # the layer norms of the global batch's gradient
        return layerwise_scaled(params, grads, self.gamma)


@torch.no_grad()
def layerwise_scaled(params: dict[str, torch.Tensor], grads, gamma: float) -> dict[str, torch.Tensor]:
    """v_n = gamma * ||theta_n|| * g_n / ||g_n|| (a zero gradient gives a zero perturbation)."""
    tiny = torch.finfo(next(iter(params.values())).dtype).tiny
    return {name: gamma * p.norm() * g / (g.norm() + tiny) for (name, p), g in zip(params.items(), grads)}


def perturbed_parameters(model: torch.nn.Module, v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """theta + v as out-of-place tensors: gradients flow back to theta with d(theta+v)/d(theta) = I."""
    return {name: p + v[name] if name in v else p for name, p in model.named_parameters()}


@torch.no_grad()
def shift_parameters(model: torch.nn.Module, v: dict[str, torch.Tensor], sign: float) -> None:
    """theta <- theta + sign * v, in place (used around the optimiser step, Eq. 21)."""
    for name, p in model.named_parameters():
        if name in v:
            p.add_(v[name], alpha=sign)
