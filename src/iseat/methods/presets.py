"""Training methods as compositions of parts, and the single public training step.

A method is PGD (attack) + optional AWP (weight perturbation) + optional logit-smoothing
regulariser with instance weights + optional Eq. 9 logit-stability penalty. AT, AT-AWP, ISEAT and every ablation
of the paper are presets of these parts (`PRESETS`); hyper-parameters may change per lr stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch.func import functional_call

from iseat.common import distributed
from iseat.methods import registry as method_registry
from iseat.methods.regularizer import LogitSmoothing, logit_stability_penalty

# StepResult, parameters_frozen and stage_value stay importable from here (the library's public names).
from iseat.methods.step_parts import (
    StepResult,
    apply_update_at_perturbed_weights,
    as_float,
    parameters_frozen,
    stage_value,
)
from iseat.methods.training_attack import PGD
from iseat.methods.weight_perturbation import (
    AdversarialWeightPerturbation,
    forward_keeping_statistics,
    perturbed_parameters,
)


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

    def step(self, model, optimizer, x, y, memory_lean: bool = False) -> StepResult:
        return preset_training_step(model, optimizer, x, y, self, memory_lean)

    def warm_start(self) -> Method:
        return replace(self, lam=0.0, gamma=0.0)


def training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    method,
    memory_lean: bool = False,
) -> StepResult:
    """Run exactly one training step of `method` (any `iseat.methods.step_parts.TrainingMethod`: a preset's
    `Method`, a baseline's step, a user's method) on a batch and update the model through `optimizer`."""
    return method.step(model, optimizer, x, y, memory_lean)


def preset_training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    method: Method,
    memory_lean: bool = False,
) -> StepResult:
    """One training step of a preset's `method` (AT, AT-AWP, ISEAT and its ablations, Eq. 9).

    Nothing is computed twice. The clean forward pass is done once: its input gradient is PGD's
    first step (no random start) and its graph is the theta branch of the regulariser (Eq. 20).
    AWP's theta + v is applied functionally (no copy of the model, no in-place change until the
    update), so the theta+v branch and the theta branch are back-propagated in one backward call.
    While only input gradients are needed (PGD; AT's clean pass) the parameters are frozen, so no
    backward pass, eager or compiled, computes parameter gradients there.
    `iseat.methods.reference_step.reference_training_step` computes the same update the long way.
    Works under autocast (logits are promoted to float32 before any loss), with channels_last
    inputs and with a model compiled in place (`iseat.training.acceleration.prepare_model`).

    `memory_lean=True` (`runtime.memory_lean`) keeps no clean graph: the theta+v branch is
    back-propagated first with the clean views held constant, then the theta branch is recomputed
    by a fresh clean forward pass and back-propagated with the other views held constant (the
    straightforward path's order). Same update (Eq. 20 split by branch), one more clean forward
    and backward, and never two branches' graphs in memory at once.
    """
    model.train()
    attack = method.attack
    awp = method.weight_perturbation
    views = method.smoothing.views if method.lam != 0 else ()
    # Views served by the clean forward pass: f(x; theta), and f(x; theta + v) when v = 0.
    clean_views = {("clean", "base")} if awp is not None else {("clean", "base"), ("clean", "perturbed")}
    needs_clean_graph = any(view in clean_views for view in views) or method.eta != 0
    needs_input_grad = attack.steps > 0 and attack.eps > 0 and not attack.random_start
    recompute_theta_branch = memory_lean and needs_clean_graph
    keep_clean_graph = needs_clean_graph and not recompute_theta_branch

    # Without the theta branch the clean pass, like PGD, needs input gradients only.
    with parameters_frozen(model, not keep_clean_graph):
        x_clean = x.detach().requires_grad_(needs_input_grad)
        with torch.set_grad_enabled(keep_clean_graph or needs_input_grad):
            clean_logits = as_float(model(x_clean))
            clean_loss = F.cross_entropy(clean_logits, y, reduction="none")
        clean_input_grad = None
        if needs_input_grad:
            clean_mean = distributed.part_of_mean(clean_loss.mean(), len(y))
            (clean_input_grad,) = torch.autograd.grad(clean_mean, x_clean, retain_graph=keep_clean_graph)
    if not keep_clean_graph:
        clean_logits, clean_loss = clean_logits.detach(), clean_loss.detach()

    with parameters_frozen(model):
        x_adv = attack.perturb(model, x, y, clean_input_grad)

    v = awp.compute(model, x_adv, y) if awp is not None else None
    params = perturbed_parameters(model, v) if v is not None else None
    adv_logits = as_float(functional_call(model, params, (x_adv,)) if v is not None else model(x_adv))
    adv_loss = F.cross_entropy(adv_logits, y, reduction="none")
    av = (adv_loss - clean_loss).detach()

    # The logits of each (input, weights) view, each computed at most once.
    computed = {("adv", "perturbed"): adv_logits, ("clean", "base"): clean_logits}
    if v is None:
        computed.update({("adv", "base"): adv_logits, ("clean", "perturbed"): clean_logits})
    forward = {
        ("adv", "base"): lambda: as_float(model(x_adv)),
        ("clean", "perturbed"): lambda: as_float(functional_call(model, params, (x,))),
    }

    def view(key):
        if key not in computed:
            computed[key] = forward[key]()
        return computed[key]

    loss = adv_loss.mean()
    if views:
        first, second = views
        loss = loss + method.smoothing(view(first), view(second), av, method.lam)
    eq9 = None
    if method.eta != 0:
        adv_logits_base = view(("adv", "base"))
        av_eq3 = av if v is None else (F.cross_entropy(adv_logits_base, y, reduction="none") - clean_loss).detach()
        eq9 = (adv_logits_base, av_eq3)
        loss = loss + logit_stability_penalty(adv_logits_base, clean_logits, av_eq3, method.eta)

    optimizer.zero_grad(set_to_none=True)
    # Gradients only for the parameters: the clean input's gradient is not needed again.
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss = distributed.part_of_mean(loss, len(y))  # several processes: this slice's part, gradients summed
    loss.backward(inputs=trainable)
    if recompute_theta_branch:
        backward_theta_branch(model, x, method, {key: view(key) for key in views}, clean_views, av, eq9, trainable)
    distributed.reduce_parameter_gradients(model)
    apply_update_at_perturbed_weights(model, optimizer, v)

    return StepResult(
        clean_loss.detach(),
        adv_loss.detach(),
        av,
        clean_logits.detach().argmax(1) == y,
        adv_logits.detach().argmax(1) == y,
        distributed.global_value(loss),
    )


def backward_theta_branch(model, x, method: Method, view_logits: dict, clean_views, av, eq9, inputs) -> None:
    """Memory-lean path, second backward: the theta branch of Eq. 20 from a fresh clean forward pass
    (BatchNorm statistics left as the first clean pass set them), every other view held constant.
    Its parameter gradients add to those of the theta+v branch already in `.grad`."""
    clean_logits = as_float(forward_keeping_statistics(model, x))  # a recomputation must not count the batch twice
    loss = clean_logits.new_zeros(())
    if any(view in clean_views for view in view_logits):
        pair = [clean_logits if view in clean_views else logits.detach() for view, logits in view_logits.items()]
        loss = loss + method.smoothing(*pair, av, method.lam)
    if eq9 is not None:  # Eq. 9: (adversarial logits at theta, their AV), both constants here
        adv_logits_base, av_eq3 = eq9
        loss = loss + logit_stability_penalty(adv_logits_base.detach(), clean_logits, av_eq3, method.eta)
    distributed.part_of_mean(loss, len(x)).backward(inputs=inputs)


# ---------------------------------------------------------------------------------------------
# Presets and per-stage schedules

PRESETS: dict[str, dict] = {
    "at": dict(gamma=[0.0], lam=[0.0]),
    "at_awp": dict(gamma=[0.005], lam=[0.0]),
    "at_lsi": dict(gamma=[0.0], lam=[0.0, 0.1], target="lsi"),  # Tab. 4 "+ input smoothing"
    "iseat": dict(gamma=[0.007], lam=[0.0, 0.1], target="lsiw", distance="sq_l2", weighting="linear"),
    "at_eq9": dict(gamma=[0.0], lam=[0.0], eta=[1.0]),  # Section 3 regulariser (Eq. 9)
}


@dataclass(frozen=True)
class MethodSchedule:
    """A method whose lambda, gamma and eta are given per learning-rate stage."""

    name: str
    gamma: tuple = (0.0,)
    lam: tuple = (0.0,)
    eta: tuple = (0.0,)
    smoothing: LogitSmoothing = field(default_factory=LogitSmoothing)

    @staticmethod
    def defaults(name: str) -> dict:
        return {"eta": [0.0], **PRESETS[name]}

    @classmethod
    def from_config(cls, cfg: dict) -> MethodSchedule:
        """`cfg` is the config's `method` section: a preset name plus optional overrides."""
        name = cfg.get("name", "iseat")
        if name not in PRESETS:  # another kind of method: the registry knows its schedule
            return method_registry.schedule(cfg)
        merged = {**cls.defaults(name), **{k: v for k, v in cfg.items() if k != "name"}}
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)
        smoothing = LogitSmoothing(
            merged.get("target", "lsiw"), merged.get("distance", "sq_l2"), merged.get("weighting", "linear")
        )
        return cls(name, as_tuple(merged["gamma"]), as_tuple(merged["lam"]), as_tuple(merged["eta"]), smoothing)

    def cost_parts(self, stage: int, epoch: int) -> tuple[bool, float]:
        """(whether a term back-propagates the clean graph, the weight perturbation's gamma) of an
        epoch: what its step costs as (`iseat plan`). The Eq. 9 penalty costs as smoothing does."""
        return stage_value(self.lam, stage) != 0 or stage_value(self.eta, stage) != 0, stage_value(self.gamma, stage)

    def at_stage(self, stage: int, attack: PGD, epoch: int = 0, epochs: int = 1) -> Method:
        return Method(
            attack=attack,
            gamma=stage_value(self.gamma, stage),
            lam=stage_value(self.lam, stage),
            smoothing=self.smoothing,
            eta=stage_value(self.eta, stage),
        )


def warm_start(method):
    """The reference's warm start (the SVHN eps ramp): lambda = 0 and no weight perturbation."""
    return method.warm_start()


def with_attack_budget(method: Method, eps: float, step_size: float) -> Method:
    return replace(method, attack=replace(method.attack, eps=eps, step_size=step_size))
