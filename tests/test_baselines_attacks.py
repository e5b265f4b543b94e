"""The baselines' attacks on a linear two-class model, where the answer is known in closed form.

f(x) = (0, w.x + b): the cross-entropy's input gradient has the sign of +-w everywhere, so each PGD
step moves the logit margin of a sample of class 0 by step * ||w||_1 (no clipping: inputs sit
mid-range and eps is large enough), and the sample is misclassified from the first iterate whose
margin is negative: step k = ceil(-(b + w.x) / (step ||w||_1)) for a sample of class 0.
"""

import math

import pytest
import torch

from iseat.methods.baselines.authors_attacks import EarlyStoppedPGD, GeometryAwarePGD, KLAttack
from iseat.methods.baselines.fat import fat_tau
from iseat.methods.baselines.gairat import gair_lambda, gair_weights

D, STEP, STEPS, EPS = 12, 0.01, 10, 0.2


class Linear2(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(torch.tensor(b))

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


@pytest.fixture
def case():
    torch.manual_seed(0)
    w = torch.randn(D, dtype=torch.float64)
    model = Linear2(w, 0.0)
    # class-0 samples whose margin -(w.x + b) is k_i * step * ||w||_1 minus a little: flip after k_i steps
    flips_after = torch.tensor([1, 2, 3, 5, 8, 20])
    x = torch.full((len(flips_after), D), 0.5, dtype=torch.float64)
    shift = (flips_after.double() - 0.5) * STEP * w.abs().sum() + (x @ w)  # so that w.x_i = -(k_i - 0.5) step ||w||_1
    x = x - (shift[:, None] * w[None, :] / (w @ w))
    y = torch.zeros(len(flips_after), dtype=torch.long)
    return model, x, y, flips_after


def test_margin_construction(case):
    model, x, y, flips_after = case
    w = model.w.detach()
    margin = -(x @ w)
    assert torch.allclose(margin / (STEP * w.abs().sum()), flips_after.double() - 0.5)
    assert ((x - 0.5).abs().max() + STEPS * STEP) < 0.5  # never clipped to [0, 1]


def test_gairat_kappa_counts_the_iterates_before_the_flip(case):
    model, x, y, flips_after = case
    x_adv, kappa = GeometryAwarePGD(EPS, STEP, STEPS, random_start=False).perturb(model, x, y)
    # iterates x^(0..K-1); x^(k) is misclassified once k >= flips_after
    assert kappa.tolist() == torch.clamp(flips_after, max=STEPS).tolist()
    assert torch.allclose(x_adv, x + STEP * STEPS * torch.sign(model.w.detach()))


@pytest.mark.parametrize("tau", [0, 1, 3])
def test_fat_stops_tau_steps_after_the_first_misclassification(case, tau):
    model, x, y, flips_after = case
    x_adv = EarlyStoppedPGD(EPS, STEP, STEPS, tau=tau, omega=0.0, random_start=False).perturb(model, x, y)[0]
    steps_taken = torch.clamp(flips_after + tau, max=STEPS)
    expected = x + STEP * steps_taken[:, None].double() * torch.sign(model.w.detach())
    assert torch.allclose(x_adv, expected)


def test_kl_attack_runs_to_the_corner_its_start_points_to(case):
    """From x + 0.001 N(0, I), KL(f(x) || f(x')) grows in the direction the start moved the margin,
    so every step follows sign(+-w) and ends on the eps-ball's corner (steps * step > eps)."""
    model, x, y, _ = case
    attack = KLAttack(eps=0.03, step_size=STEP, steps=STEPS)
    torch.manual_seed(5)
    noise = 0.001 * torch.randn_like(x)
    torch.manual_seed(5)
    x_adv = attack.perturb(model, x, y)[0]
    direction = torch.sign(noise @ model.w.detach())
    assert torch.allclose(x_adv, x + 0.03 * direction[:, None] * torch.sign(model.w.detach()))


def test_gair_weights_tanh_schedule():
    kappa = torch.tensor([0, 5, 10])
    w = gair_weights(kappa, steps=10, lam=-1.0)
    raw = torch.tensor(
        [(1 + math.tanh(-1 + 5)) / 2, (1 + math.tanh(-1)) / 2, (1 + math.tanh(-1 - 5)) / 2], dtype=torch.float64
    )
    assert torch.allclose(w, raw * 3 / raw.sum())
    assert gair_lambda(58, 120) == math.inf and gair_lambda(59, 120) == -1.0  # GAIRAT.py: (epoch + 1) >= 60


def test_fat_tau_schedule_matches_the_original_on_120_epochs():
    original = lambda e: 0 if e <= 50 else (1 if e <= 90 else 2)  # adjust_tau(epoch + 1)
    assert [fat_tau(e, 120) for e in range(120)] == [original(e + 1) for e in range(120)]
