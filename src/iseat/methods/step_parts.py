"""The method protocol and the parts every training step shares, below every method.

A training method is one object per epoch (`TrainingMethod`): built by its schedule's `at_stage`
from the config's `method` section (`iseat.methods.registry`), it runs one step on a batch and
returns the per-sample quantities of the AV log (`StepResult`). AT, AT-AWP, every ISEAT preset
and ablation, Eq. 9 (`iseat.methods.presets.Method`), every Tab. 2 baseline (`iseat.methods.baselines.step`) and a
user's installed method implement it. The shared parts: logits in float32 or wider, frozen
parameters while only input gradients are needed, a forward pass at theta + v that may leave the
BatchNorm running statistics alone, and the update on theta + v (Eq. 21).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch.func import functional_call

from iseat.methods.weight_perturbation import forward_keeping_statistics, perturbed_parameters, shift_parameters


@dataclass
class StepResult:
    """Per-sample outcomes of one step (detached), for logging the AV of every instance."""

    clean_loss: torch.Tensor
    adv_loss: torch.Tensor
    av: torch.Tensor  # Eq. 10 with weight perturbation, Eq. 3 without
    clean_correct: torch.Tensor
    adv_correct: torch.Tensor
    loss: float


@runtime_checkable
class TrainingMethod(Protocol):
    """One epoch's method. `attack.eps`, `gamma`, `lam` and `eta` are what the epoch log records
    (0 where a method has no such part)."""

    attack: object
    gamma: float
    lam: float
    eta: float

    def step(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        memory_lean: bool = False,
    ) -> StepResult:
        """Exactly one update of the model through `optimizer` on the batch (x, y)."""

    def warm_start(self) -> TrainingMethod:
        """The method during the reference's warm start (the SVHN eps ramp): no smoothing term and
        no weight perturbation."""


def stage_value(values, stage: int) -> float:
    """One value per lr stage; a shorter list repeats its last value."""
    values = values if isinstance(values, (list, tuple)) else [values]
    return float(values[min(stage, len(values) - 1)])


def as_float(logits: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32: bf16 autocast gives bf16 logits; float32 and float64 are kept as they are."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def device_type(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return p.device.type if p is not None else "cpu"


@contextlib.contextmanager
def parameters_frozen(model: torch.nn.Module, active: bool = True):
    """Parameters set not to require gradients while only input gradients are needed (the attack),
    so no backward pass (eager or compiled) computes parameter gradients; restored afterwards."""
    params = [p for p in model.parameters() if p.requires_grad] if active else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def forward_at(model, x, v: dict | None = None, track_statistics: bool = True) -> torch.Tensor:
    """f(x; theta + v) in the model's current mode, in float32 or wider; with
    `track_statistics=False` the BatchNorm running statistics are left as they are."""
    params = perturbed_parameters(model, v or {})
    if not track_statistics:
        return as_float(forward_keeping_statistics(model, x, params))
    return as_float(model(x) if v is None else functional_call(model, params, (x,)))


def apply_update_at_perturbed_weights(model, optimizer, v) -> None:
    """Eq. 21: the optimiser steps on theta + v (momentum and weight decay see theta + v), then v is removed."""
    if v is not None:
        shift_parameters(model, v, +1)
    optimizer.step()
    if v is not None:
        shift_parameters(model, v, -1)
    if torch.is_autocast_enabled(device_type(model)):
        torch.clear_autocast_cache()  # parameters changed in place: drop autocast's cached copies
