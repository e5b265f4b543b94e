"""One training step of a Tab. 2 baseline: its attack (and GAIR-TRADES' second, CW adversary), then
its weight perturbation (none, AWP or RWP, on the method's own loss), then its loss at theta + v,
then the update on theta + v (Eq. 21).

Each method declares, as its authors' code does it, the model's mode during its attack
(`attack_mode`: eval for all but RWP) and which train-mode passes of its loss update the BatchNorm
running statistics, in which order (`statistics_passes`, e.g. TRADES' x, x', x). Train-mode logits
use the batch's statistics, so a repeated pass (TRADES' second f(x)) gives the same logits: it is
run without a graph, for its update of the running statistics only. Forward passes that only serve
an ascent or the AV log run with copies of the BatchNorm buffers, so, like the originals' proxy
models, they leave the running statistics alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from iseat.common import distributed
from iseat.methods.baselines.authors_attacks import evaluating
from iseat.methods.baselines.rwp import robust_weight_perturbation
from iseat.methods.step_parts import StepResult, apply_update_at_perturbed_weights, forward_at, parameters_frozen
from iseat.methods.weight_perturbation import layerwise_scaled, perturbable_parameters


@dataclass(frozen=True)
class BaselineStep:
    """One step's parts. `per_sample_loss(clean_logits, adv_logits, y)`; `needs_clean` says whether
    it reads the clean logits; `instance_weights(kappa)` (or None) reweights it (GAIRAT), or, with a
    `counter_attack`, shares it between the two adversaries: w l(x') + (1 - w) l(x'') (GAIR-TRADES)."""

    attack: object
    per_sample_loss: Callable
    needs_clean: bool
    perturbation: str | None = None  # None | "awp" | "rwp"
    gamma: float = 0.0
    rwp: dict = field(default_factory=dict)  # threshold, steps
    instance_weights: Callable | None = None
    counter_attack: object = None
    attack_mode: str = "eval"  # eval | train: the model's mode while the attacks run
    statistics_passes: tuple = ("adv", "clean")  # inputs (clean | adv | counter) whose passes update them
    lam: float = 0.0  # no ISEAT smoothing term or Eq. 9 penalty (the epoch log's columns)
    eta: float = 0.0

    def step(self, model, optimizer, x, y, memory_lean: bool = False) -> StepResult:
        """One update (`iseat.methods.step_parts.TrainingMethod`); no theta branch to recompute, so
        `memory_lean` changes nothing."""
        return baseline_training_step(model, optimizer, x, y, self)

    def warm_start(self) -> BaselineStep:
        return replace(self, gamma=0.0)

    def loss_terms(self, model, x, x_adv, y, v=None, track_statistics=True, x_counter=None):
        """Clean and adversarial logits, the per-sample loss, and the per-sample loss at the counter
        adversary (None without one); with `track_statistics` the running statistics are updated by
        the passes `statistics_passes` names, in its order."""
        logits = self.logits(
            model, {"adv": x_adv, "clean": x if self.needs_clean else None, "counter": x_counter}, v, track_statistics
        )
        clean_logits, adv_logits, counter_logits = logits.get("clean"), logits["adv"], logits.get("counter")
        counter = self.per_sample_loss(clean_logits, counter_logits, y) if x_counter is not None else None
        return clean_logits, adv_logits, self.per_sample_loss(clean_logits, adv_logits, y), counter

    def logits(self, model, inputs: dict, v, track_statistics: bool) -> dict:
        """f(input; theta + v) of each given input: the declared passes in order (a repeated one
        without a graph, for the statistics only), then any other input without updating them."""
        logits = {}
        for name in self.statistics_passes if track_statistics else ():
            if inputs.get(name) is None:
                continue
            if name in logits:
                with torch.no_grad():
                    forward_at(model, inputs[name], v)
            else:
                logits[name] = forward_at(model, inputs[name], v)
        for name, inp in inputs.items():
            if inp is not None and name not in logits:
                logits[name] = forward_at(model, inp, v, track_statistics=False)
        return logits

    def loss(self, per_sample, weights=None, counter_per_sample=None) -> torch.Tensor:
        """mean_i l_i; mean_i w_i l_i (GAIRAT); mean_i [w_i l_i + (1 - w_i) l''_i] (GAIR-TRADES)."""
        if weights is None:
            return per_sample.mean()
        weights = weights.to(per_sample.dtype)
        if counter_per_sample is None:
            return (per_sample * weights).mean()
        return (weights * per_sample + (1 - weights) * counter_per_sample).mean()

    def weight_perturbation(self, model, x, x_adv, y) -> dict | None:
        if self.perturbation is None or self.gamma <= 0:
            return None
        weights = perturbable_parameters(model)
        if self.perturbation == "awp":  # one ascent step on the method's loss (AWP authors' TradesAWP)
            loss = distributed.part_of_mean(
                self.loss_terms(model, x, x_adv, y, track_statistics=False)[2].mean(), len(y)
            )
            grads = distributed.all_reduce_gradients(torch.autograd.grad(loss, list(weights.values())))
            return layerwise_scaled(weights, grads, self.gamma)
        return robust_weight_perturbation(
            weights,
            lambda v: self.loss_terms(model, x, x_adv, y, v, track_statistics=False)[2],
            self.gamma,
            self.rwp["threshold"],
            self.rwp["steps"],
        )


def baseline_training_step(model, optimizer, x, y, step: BaselineStep) -> StepResult:
    """Exactly one update of `step`'s method on (x, y). The AV of each sample is CE(x'; theta + v)
    - CE(x; theta): Eq. 10 with a weight perturbation, Eq. 3 without (v = 0); x' is the method's
    own attack's (GAIR-TRADES: the KL attack's, whose iterates give kappa)."""
    model.train()
    with parameters_frozen(model), evaluating(model) if step.attack_mode == "eval" else contextlib.nullcontext():
        x_adv, kappa = step.attack.perturb(model, x, y)
        x_counter = step.counter_attack.perturb(model, x, y)[0] if step.counter_attack is not None else None
    v = step.weight_perturbation(model, x, x_adv, y)
    clean_logits, adv_logits, per_sample, counter = step.loss_terms(model, x, x_adv, y, v, x_counter=x_counter)
    weights = distributed.on_global_batch(step.instance_weights, kappa) if step.instance_weights is not None else None
    loss = distributed.part_of_mean(step.loss(per_sample, weights, counter), len(y))

    with torch.no_grad():
        clean_at_theta = (
            clean_logits if clean_logits is not None and v is None else forward_at(model, x, track_statistics=False)
        )
        clean_loss = F.cross_entropy(clean_at_theta, y, reduction="none")
        adv_loss = F.cross_entropy(adv_logits, y, reduction="none")

    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=[p for p in model.parameters() if p.requires_grad])
    distributed.reduce_parameter_gradients(model)
    apply_update_at_perturbed_weights(model, optimizer, v)
    return StepResult(
        clean_loss,
        adv_loss,
        (adv_loss - clean_loss),
        clean_at_theta.argmax(1) == y,
        adv_logits.detach().argmax(1) == y,
        distributed.global_value(loss),
    )
