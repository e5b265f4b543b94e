"""Clean correctness and PGD-k robustness per sample (worst case over restarts), model in eval mode.

A point is PGD-robust when it is classified correctly clean and after every restart, the same
convention as AutoAttack's (an attacker may always submit the clean point), so that
AutoAttack robust <= PGD robust <= clean holds per point up to the attacks' strength.
"""

from __future__ import annotations

import torch

from ..attack import PGD
from .spec import PGDSettings


@torch.no_grad()
def predictions(model, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    out = [model(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def clean_correct(model, x: torch.Tensor, y: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    model.eval()
    return predictions(model, x, batch_size, device) == y


def pgd_correct(model, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, settings: PGDSettings, eps: float,
                batch_size: int, device) -> torch.Tensor:
    """Bool per point: clean-correct and correct after each of `settings.restarts` PGD runs (uses torch's RNG)."""
    model.eval()
    attack = PGD(eps=eps, step_size=settings.step_size, steps=settings.steps, random_start=settings.random_start)
    robust = clean.clone()
    for _ in range(settings.restarts):
        remaining = robust.nonzero().flatten()
        for start in range(0, len(remaining), batch_size):
            points = remaining[start:start + batch_size]
            xb, yb = x[points].to(device), y[points].to(device)
            x_adv = attack.perturb(model, xb, yb)
            with torch.no_grad():
                robust[points] = (model(x_adv).argmax(1) == yb).cpu()
    return robust
