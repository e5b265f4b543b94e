"""The straightforward ISEAT training step, organised as the reference implementation does it.

It computes the same parameter update as `iseat.methods.presets.training_step` by the long way round and
serves as the oracle in the tests and as the baseline in the step-timing benchmark:
  - a separate clean forward pass for the AV (no graph kept);
  - PGD computes its own first gradient (a second clean forward and backward);
  - AWP gradients through `.grad` of the model, then v is added to the model in place;
  - the theta+v branch is back-propagated on its own, v is removed, and the theta branch is
    back-propagated after a fresh clean forward pass; the parameter gradients of both are summed;
  - the optimiser steps on theta + v, then v is removed (Eq. 21).
Each term that compares two views is back-propagated in the branch of each view with the other
view held constant, which is Eq. 20 written out. BatchNorm running statistics end up different
from the fast path's (a different number of train-mode forward passes); parameters do not.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from iseat.methods.presets import Method, StepResult
from iseat.methods.regularizer import logit_stability_penalty
from iseat.methods.weight_perturbation import shift_parameters


def awp_by_gradient_buffers(model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor, gamma: float) -> dict:
    """v_n = gamma * ||theta_n|| * g_n / ||g_n|| for every parameter with more than one dimension,
    with g from an ordinary `.backward()` into the gradient buffers of a proxy copy of the model, as
    the reference does it (so the model's BatchNorm running statistics are not touched)."""
    proxy = copy.deepcopy(model)
    proxy.zero_grad(set_to_none=True)
    F.cross_entropy(_float(proxy(x_adv)), y).backward()
    v = {}
    with torch.no_grad():
        for (name, p), (_, g_source) in zip(model.named_parameters(), proxy.named_parameters()):
            if p.dim() > 1:
                g = g_source.grad if g_source.grad is not None else torch.zeros_like(p)
                v[name] = gamma * p.norm() * g / (g.norm() + torch.finfo(p.dtype).tiny)
    return v


def reference_training_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, method: Method
) -> StepResult:
    """One training step of `method`, computed the straightforward way (see the module docstring)."""
    model.train()
    attack = method.attack

    # 1. A separate clean forward pass, only for the AV and as the constant side of the theta+v branch.
    with torch.no_grad():
        clean_logits_const = _float(model(x))
        clean_loss_const = F.cross_entropy(clean_logits_const, y, reduction="none")

    # 2. PGD from scratch: it computes its own gradient at the clean input.
    x_adv = attack.perturb(model, x, y)

    # 3. AWP: v from the gradient buffers, added to the model in place.
    v = awp_by_gradient_buffers(model, x_adv, y, method.gamma) if method.gamma > 0 else None
    if v is not None:
        shift_parameters(model, v, +1)
        _model_changed()

    # 4. The theta+v branch: every "perturbed" view with its graph, every "base" view held constant.
    optimizer.zero_grad(set_to_none=True)
    adv_logits = _float(model(x_adv))
    adv_loss = F.cross_entropy(adv_logits, y, reduction="none")
    av = (adv_loss - clean_loss_const).detach()
    views = method.smoothing.views if method.lam != 0 else ()
    perturbed = {("adv", "perturbed"): adv_logits}
    if ("clean", "perturbed") in views:
        perturbed[("clean", "perturbed")] = _float(model(x))
    loss_perturbed = adv_loss.mean()
    if any(view in perturbed for view in views):
        constants = {("clean", "base"): clean_logits_const}
        loss_perturbed = loss_perturbed + method.smoothing(*_pick(views, perturbed, constants), av, method.lam)
    loss_perturbed.backward()
    loss_value = float(loss_perturbed.detach())

    # 5. Remove v; the theta branch from fresh forward passes, every theta+v view held constant.
    if v is not None:
        shift_parameters(model, v, -1)
        _model_changed()
    loss_base = torch.zeros((), dtype=adv_loss.dtype, device=adv_loss.device)
    base = {view: _float(model(x if view[0] == "clean" else x_adv)) for view in views if view[1] == "base"}
    if base:
        constants = {key: t.detach() for key, t in perturbed.items()}
        term = method.smoothing(*_pick(views, base, constants), av, method.lam)
        loss_base = loss_base + term
        if not any(view in perturbed for view in views):  # the term's value was not counted above
            loss_value += float(term.detach())
    if method.eta != 0:  # Eq. 9 at theta, ranked by the AV of Eq. 3, from fresh forward passes
        clean_fresh, adv_fresh = _float(model(x)), _float(model(x_adv))
        av_eq3 = (
            F.cross_entropy(adv_fresh, y, reduction="none") - F.cross_entropy(clean_fresh, y, reduction="none")
        ).detach()
        term = logit_stability_penalty(adv_fresh, clean_fresh, av_eq3, method.eta)
        loss_base = loss_base + term
        loss_value += float(term.detach())
    if loss_base.requires_grad:
        loss_base.backward()  # accumulates into the gradients of the theta+v branch (Eq. 20)

    # 6. Eq. 21: step on theta + v, then remove v.
    if v is not None:
        shift_parameters(model, v, +1)
    optimizer.step()
    if v is not None:
        shift_parameters(model, v, -1)
    _model_changed()

    return StepResult(
        clean_loss_const,
        adv_loss.detach(),
        av,
        clean_logits_const.argmax(1) == y,
        adv_logits.detach().argmax(1) == y,
        loss_value,
    )


def _pick(views, with_graph: dict, constants: dict):
    """The two views of a smoothing term: from this branch with their graph, else held constant."""
    return [with_graph[view] if view in with_graph else constants[view] for view in views]


def _float(logits: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 (bf16 autocast gives bf16 logits; float64 stays float64)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _model_changed() -> None:
    """Parameters were changed in place: drop autocast's cached low-precision copies of them."""
    if torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled("cpu"):
        torch.clear_autocast_cache()
