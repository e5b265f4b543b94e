"""Loss landscape around single samples (ISEAT Eq. 8, Fig. 3):

    L(x + alpha delta/||delta||_2 + beta u/||u||_2),   delta from PGD-50,  u ~ U(-eps, eps)^d,

on an (alpha, beta) grid, model in eval mode. Eq. 8 has no clipping; `clip=True` keeps the inputs in
[0, 1] like the margin study.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from iseat.analysis.margin import ANALYSIS_ATTACK, adversarial_direction, evaluation_mode
from iseat.methods.training_attack import PGD


@dataclass
class Landscape:
    alphas: np.ndarray  # (A,)
    betas: np.ndarray  # (B,)
    loss: np.ndarray  # (S, A, B) per-sample cross-entropy at x + alpha d + beta r
    adversarial_direction: np.ndarray  # (S, C, H, W) d = delta / ||delta||_2
    random_direction: np.ndarray  # (S, C, H, W) r = u / ||u||_2

    def arrays(self) -> dict:
        return dict(
            alphas=self.alphas,
            betas=self.betas,
            loss=self.loss,
            adversarial_direction=self.adversarial_direction,
            random_direction=self.random_direction,
        )


def random_direction(shape, eps: float, generator: torch.Generator) -> torch.Tensor:
    """u / ||u||_2 per sample with u ~ U(-eps, eps)^d (drawn on the CPU, so a seed gives the same u anywhere)."""
    u = (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * eps
    return u / u.flatten(1).norm(dim=1).view(-1, *[1] * (len(shape) - 1))


@torch.no_grad()
def loss_on_grid(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    d: torch.Tensor,
    r: torch.Tensor,
    alphas,
    betas,
    clip: bool = False,
    batch_size: int = 512,
) -> np.ndarray:
    """(S, A, B) cross-entropy of every sample at every (alpha, beta)."""
    a = torch.as_tensor(np.asarray(alphas), dtype=x.dtype, device=x.device)
    b = torch.as_tensor(np.asarray(betas), dtype=x.dtype, device=x.device)
    coeff_a, coeff_b = torch.meshgrid(a, b, indexing="ij")
    coeff_a, coeff_b = coeff_a.flatten(), coeff_b.flatten()
    shape = [-1] + [1] * (x.dim() - 1)
    out = torch.empty(len(x), len(coeff_a), dtype=torch.float64)
    for s in range(len(x)):
        for start in range(0, len(coeff_a), batch_size):
            ca, cb = coeff_a[start : start + batch_size].view(shape), coeff_b[start : start + batch_size].view(shape)
            inputs = x[s] + ca * d[s] + cb * r[s]
            if clip:
                inputs = inputs.clamp(0, 1)
            target = y[s].expand(len(inputs))
            out[s, start : start + len(inputs)] = (
                F.cross_entropy(model(inputs), target, reduction="none").double().cpu()
            )
    return out.view(len(x), len(a), len(b)).numpy()


def loss_landscape(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    alphas,
    betas,
    seed: int = 0,
    attack: PGD = ANALYSIS_ATTACK,
    clip: bool = False,
    batch_size: int = 512,
) -> Landscape:
    """Eq. 8 for each sample of a small batch; u is drawn with `seed` and the attack's eps;
    `batch_size` grid points are evaluated per forward pass."""
    with evaluation_mode(model):
        d, _, _ = adversarial_direction(model, x, y, attack)
        r = random_direction(tuple(x.shape), attack.eps, torch.Generator().manual_seed(seed)).to(x.device)
        loss = loss_on_grid(model, x, y, d, r, alphas, betas, clip, batch_size)
    return Landscape(
        np.asarray(alphas, dtype=np.float64),
        np.asarray(betas, dtype=np.float64),
        loss,
        d.cpu().numpy(),
        r.cpu().numpy(),
    )
