"""Training methods as compositions of parts, and the single public training step.

A method is PGD (attack) + optional AWP (weight perturbation) + optional logit-smoothing
regulariser with instance weights + optional Eq. 9 penalty. AT, AT-AWP, ISEAT and every ablation
of the paper are presets of these parts (`PRESETS`); hyper-parameters may change per lr stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .attack import PGD
from .regularizer import LogitSmoothing, top_vulnerability_penalty
from .weight_perturbation import AdversarialWeightPerturbation, perturbed_parameters, shift_parameters


@dataclass(frozen=True)
class Method:
    """One lr stage's method: every number the training step needs."""

    attack: PGD = field(default_factory=PGD)
    gamma: float = 0.0  # AWP strength; 0 = no weight perturbation
    lam: float = 0.0  # regulariser strength; 0 = no smoothing term
    smoothing: LogitSmoothing = field(default_factory=LogitSmoothing)
    eta: float = 0.0  # Eq. 9 strength; 0 = off

    @property
    def weight_perturbation(self) -> AdversarialWeightPerturbation | None:
        return AdversarialWeightPerturbation(self.gamma) if self.gamma > 0 else None


@dataclass
class StepResult:
    """Per-sample outcomes of one step (detached), for logging the AV of every instance."""

    clean_loss: torch.Tensor
    adv_loss: torch.Tensor
    av: torch.Tensor  # Eq. 10 with weight perturbation, Eq. 3 without
    clean_correct: torch.Tensor
    adv_correct: torch.Tensor
    loss: float


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  method: Method) -> StepResult:
    """Run exactly one training step of `method` on a batch and update the model through `optimizer`.

    The clean forward pass is done once: its input gradient is PGD's first step (no random start)
    and its graph is the theta branch of the regulariser (Eq. 20), so nothing is computed twice.
    """
    model.train()
    attack = method.attack
    smoothing_on = method.lam != 0
    needs_clean_graph = (smoothing_on and ("clean", "base") in method.smoothing.views) or method.eta != 0
    needs_input_grad = attack.steps > 0 and attack.eps > 0 and not attack.random_start

    x_clean = x.detach().requires_grad_(needs_input_grad)
    with torch.set_grad_enabled(needs_clean_graph or needs_input_grad):
        clean_logits = model(x_clean)
        clean_loss = F.cross_entropy(clean_logits, y, reduction="none")
    clean_input_grad = None
    if needs_input_grad:
        (clean_input_grad,) = torch.autograd.grad(clean_loss.mean(), x_clean, retain_graph=needs_clean_graph)

    x_adv = attack.perturb(model, x, y, clean_input_grad)

    awp = method.weight_perturbation
    v = awp.compute(model, x_adv, y) if awp is not None else None
    params = perturbed_parameters(model, v) if v is not None else None
    adv_logits = functional_call(model, params, (x_adv,)) if v is not None else model(x_adv)
    adv_loss = F.cross_entropy(adv_logits, y, reduction="none")
    av = (adv_loss - clean_loss).detach()

    loss = adv_loss.mean()
    if smoothing_on:
        views = {("adv", "perturbed"): lambda: adv_logits, ("clean", "base"): lambda: clean_logits,
                 ("adv", "base"): lambda: model(x_adv) if v is not None else adv_logits,
                 ("clean", "perturbed"): lambda: functional_call(model, params, (x,)) if v is not None else clean_logits}
        first, second = method.smoothing.views
        loss = loss + method.smoothing(views[first](), views[second](), av, method.lam)
    if method.eta != 0:
        loss = loss + top_vulnerability_penalty(adv_loss, clean_loss, method.eta)

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    apply_update_at_perturbed_weights(model, optimizer, v)

    return StepResult(clean_loss.detach(), adv_loss.detach(), av, clean_logits.detach().argmax(1) == y,
                      adv_logits.detach().argmax(1) == y, loss.item())


def apply_update_at_perturbed_weights(model, optimizer, v) -> None:
    """Eq. 21: the optimiser steps on theta + v (momentum and weight decay see theta + v), then v is removed."""
    if v is None:
        optimizer.step()
        return
    shift_parameters(model, v, +1)
    optimizer.step()
    shift_parameters(model, v, -1)


# ---------------------------------------------------------------------------------------------
# Presets and per-stage schedules

PRESETS: dict[str, dict] = {
    "at": dict(gamma=[0.0], lam=[0.0]),
    "at_awp": dict(gamma=[0.005], lam=[0.0]),
    "at_lsi": dict(gamma=[0.0], lam=[0.0, 0.1], target="lsi"),  # Tab. 4 "+ input smoothing"
    "iseat": dict(gamma=[0.007], lam=[0.0, 0.1], target="lsiw", distance="sq_l2", weighting="linear"),
    "at_eq9": dict(gamma=[0.0], lam=[0.0], eta=[1.0]),  # Section 3 regulariser (Eq. 9)
}


def stage_value(values, stage: int) -> float:
    """One value per lr stage; a shorter list repeats its last value."""
    values = values if isinstance(values, (list, tuple)) else [values]
    return float(values[min(stage, len(values) - 1)])


@dataclass(frozen=True)
class MethodSchedule:
    """A method whose lambda, gamma and eta are given per learning-rate stage."""

    name: str
    gamma: tuple = (0.0,)
    lam: tuple = (0.0,)
    eta: tuple = (0.0,)
    smoothing: LogitSmoothing = field(default_factory=LogitSmoothing)

    @classmethod
    def from_config(cls, cfg: dict) -> "MethodSchedule":
        """`cfg` is the config's `method` section: a preset name plus optional overrides."""
        name = cfg.get("name", "iseat")
        if name not in PRESETS:
            raise ValueError(f"method.name: unknown method {name!r}; choose one of {list(PRESETS)}")
        merged = {"eta": [0.0], **PRESETS[name], **{k: v for k, v in cfg.items() if k != "name"}}
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)
        smoothing = LogitSmoothing(merged.get("target", "lsiw"), merged.get("distance", "sq_l2"),
                                   merged.get("weighting", "linear"))
        return cls(name, as_tuple(merged["gamma"]), as_tuple(merged["lam"]), as_tuple(merged["eta"]), smoothing)

    def at_stage(self, stage: int, attack: PGD) -> Method:
        return Method(attack=attack, gamma=stage_value(self.gamma, stage), lam=stage_value(self.lam, stage),
                      smoothing=self.smoothing, eta=stage_value(self.eta, stage))


def with_attack_budget(method: Method, eps: float, step_size: float) -> Method:
    return replace(method, attack=replace(method.attack, eps=eps, step_size=step_size))
