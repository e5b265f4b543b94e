"""The training schedules read from the config: lr milestones, the lr stage of an epoch, the attack budget's
ramp, and the method (its lambda, gamma, attack) at a given iteration."""

from __future__ import annotations

from iseat.common.fraction import parse_fraction
from iseat.methods.presets import warm_start
from iseat.methods.training_attack import PGD


def milestone_epochs(cfg: dict) -> list[int]:
    epochs = cfg["training"]["epochs"]
    return sorted(int(round(f * epochs)) for f in cfg["training"]["lr_milestones"])


def lr_stage(epoch: int, milestones: list[int]) -> int:
    """Number of lr decays before `epoch`: lambda and gamma are given per stage."""
    return sum(epoch >= m for m in milestones)


def attack_budget(cfg: dict, iteration: int, iters_per_epoch: int) -> tuple[float, float]:
    """eps and step size, ramped linearly per iteration over the first `ramp_epochs` (SVHN)."""
    eps, step = parse_fraction(cfg["attack"]["eps"]), parse_fraction(cfg["attack"]["step_size"])
    ramp = cfg["attack"]["ramp_epochs"] * iters_per_epoch
    scale = min(1.0, (iteration + 1) / ramp) if ramp else 1.0
    return eps * scale, step * scale


def method_at(cfg: dict, schedule, stage: int, iteration: int, n_batches: int):
    """The method of training step `iteration` (counted over the whole run) in lr stage `stage`."""
    eps, step = attack_budget(cfg, iteration, n_batches)
    attack = PGD(eps, step, cfg["attack"]["steps"], cfg["attack"]["random_start"])
    epoch, epochs = iteration // n_batches, cfg["training"]["epochs"]
    method = schedule.at_stage(stage, attack, epoch=epoch, epochs=epochs)  # baselines' schedules need the epoch
    in_ramp = epoch < cfg["attack"]["ramp_epochs"]
    return warm_start(method) if in_ramp else method
