"""Eq. 7 margin search against analytic answers: linear classifiers (no clipping on the path),
clipping at the box, a prediction that changes only inside a band, and the batched study."""

import numpy as np
import pytest
import torch
from torch import nn

from iseat.analysis.margin import (
    MarginSearch,
    adversarial_direction,
    figure2_positions,
    first_crossing,
    margin_study,
    margin_summary,
    perturbation_grid,
)
from iseat.methods.training_attack import PGD

SHAPE = (3, 8, 8)
D = 3 * 8 * 8


def linear_model(seed=0, classes=5):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, classes))
    with torch.no_grad():
        model[1].weight.mul_(4)
    return model.double().eval()


def analytic_crossing(model, x, d):
    """Smallest mu > 0 where another class overtakes F(x) on the line x + mu d (no clipping)."""
    w, b = model[1].weight.detach(), model[1].bias.detach()
    logits = x.flatten(1) @ w.T + b
    slope = d.flatten(1) @ w.T
    c = logits.argmax(1)
    gap = logits.gather(1, c[:, None]) - logits  # >= 0
    closing = slope.gather(1, c[:, None]) - slope  # gap(mu) = gap + mu * closing
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = torch.where(closing < 0, gap / -closing, torch.full_like(gap, np.inf))
    mu[torch.arange(len(x)), c] = np.inf
    return mu.min(1).values


def central_inputs(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.45 + 0.1 * torch.rand((n, *SHAPE), generator=g, dtype=torch.float64)


def sign_direction(n, seed=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (n, *SHAPE), generator=g).double() * 2 - 1) / D**0.5


def test_linear_classifier_matches_analytic_crossing_within_tolerance():
    model, x, d = linear_model(), central_inputs(300), sign_direction(300)
    search = MarginSearch(tol=1e-4)
    mu, crossed = first_crossing(model, x, d, search)
    expected = analytic_crossing(model, x, d)
    # |mu d_i| <= mu / sqrt(D) stays inside [0, 1] from x in [0.45, 0.55] while mu < 0.45 sqrt(D) ~ 6.2
    unclipped = expected < 6.0
    assert unclipped.sum() > 100 and (expected < 0.5).sum() > 5  # the test covers small and large margins
    assert torch.all(mu[unclipped] >= expected[unclipped] - 1e-9)
    assert torch.all(mu[unclipped] <= expected[unclipped] + search.tol + 1e-9)
    assert crossed[unclipped].all()
    assert torch.all(mu[~unclipped] >= 6.0)


def test_prediction_changes_at_returned_mu_and_not_just_below():
    model, x, d = linear_model(3), central_inputs(64, 4), sign_direction(64, 5)
    search = MarginSearch(tol=1e-3)
    mu, crossed = first_crossing(model, x, d, search)
    ref = model(x).argmax(1)
    at = model((x + mu.view(-1, 1, 1, 1) * d).clamp(0, 1)).argmax(1)
    below = model((x + (mu - search.tol).clamp_min(0).view(-1, 1, 1, 1) * d).clamp(0, 1)).argmax(1)
    assert torch.all(at[crossed] != ref[crossed])
    # below the returned mu by one tolerance, the (convex) class region of a linear model still holds
    assert torch.all(below[crossed] == ref[crossed])


def test_clipping_to_the_box_can_prevent_a_crossing():
    # class 1 wins only when pixel 0 exceeds 1.2, which the clipped input never reaches
    model = PixelThreshold(threshold=1.2)
    x = torch.full((2, *SHAPE), 0.5, dtype=torch.float64)
    d = torch.zeros_like(x)
    d[:, 0, 0, 0] = 1.0
    mu, crossed = first_crossing(model, x, d, MarginSearch(mu_max=50))
    assert not crossed.any() and torch.all(mu == 50)
    mu, crossed = first_crossing(PixelThreshold(threshold=0.9), x, d, MarginSearch(tol=1e-4))
    assert crossed.all() and torch.allclose(mu, torch.full_like(mu, 0.4), atol=1.01e-4)


def test_first_band_is_found_and_narrower_bands_than_the_grid_are_documented_misses():
    x = torch.full((1, *SHAPE), 0.1, dtype=torch.float64)
    d = torch.zeros_like(x)
    d[0, 0, 0, 0] = 1.0
    search = MarginSearch(step=0.1, growth=0.0, tol=1e-4, mu_max=5)
    # pixel 0 = 0.1 + mu: class changes inside [0.45, 0.6] and again from 0.8; the first is reported
    mu, crossed = first_crossing(Band([(0.45, 0.6), (0.8, 2.0)]), x, d, search)
    assert crossed.item() and abs(mu.item() - 0.35) <= 1.01e-4
    # a band of width 0.01 between two grid points (mu 0.2 -> 0.3) is not seen by the scan
    mu, crossed = first_crossing(Band([(0.33, 0.34)]), x, d, search)
    assert not crossed.item() and mu.item() == 5


def test_zero_perturbation_is_disordered():
    model, x = linear_model(), central_inputs(4)
    mu, crossed = first_crossing(model, x, torch.zeros_like(x), MarginSearch(mu_max=10))
    assert not crossed.any() and torch.all(mu == 10)


def test_grid_is_increasing_and_ends_at_mu_max():
    grid = MarginSearch(mu_max=50, step=0.1, growth=0.05).grid()
    assert grid[-1] == 50 and np.all(np.diff(grid) > 0) and grid[0] == pytest.approx(0.1)
    steps = np.diff(grid)
    assert steps.max() <= 0.05 * 50 + 1e-12 and len(grid) < 100
    with pytest.raises(ValueError):
        MarginSearch(tol=0)


def test_margin_study_on_pgd_direction_matches_analytic_and_reports_av():
    model = linear_model(7)
    x = central_inputs(40, 8)
    y = model(x).argmax(1)  # correctly classified: PGD pushes away from the predicted class
    loader = [(x[:25], y[:25], torch.arange(25)), (x[25:], y[25:], torch.arange(25, 40))]
    attack = PGD(eps=8 / 255, step_size=2 / 255, steps=5)
    search = MarginSearch(tol=1e-4)
    result = margin_study(model, loader, "cpu", attack, search)
    d, norm, x_adv = adversarial_direction(model, x, y, attack)
    expected = analytic_crossing(model, x, d).numpy()
    ok = expected < 6.0
    assert ok.sum() > 10
    assert np.all(result.mu[ok] >= expected[ok] - 1e-9) and np.all(result.mu[ok] <= expected[ok] + 1e-4 + 1e-9)
    assert np.array_equal(result.index, np.arange(40))
    assert np.allclose(result.delta_norm, norm.numpy())
    ce = nn.functional.cross_entropy
    assert np.allclose(
        result.av, (ce(model(x_adv), y, reduction="none") - ce(model(x), y, reduction="none")).detach().numpy()
    )
    summary = margin_summary(result, attack.eps)
    assert summary["n_samples"] == 40
    assert summary["share_disordered"] == pytest.approx(float((~result.crossed).mean()))
    assert summary["eps_linf_corner_l2"] == pytest.approx(8 / 255 * D**0.5)
    assert set(result.throughput()) == {"attack_samples_per_s", "search_samples_per_s", "total_samples_per_s"}


def test_margin_study_respects_max_samples_and_restores_training_mode():
    model = linear_model().train()
    x, y = central_inputs(10), torch.zeros(10, dtype=torch.long)
    result = margin_study(model, [(x, y, torch.arange(10))], "cpu", PGD(steps=2), MarginSearch(mu_max=5), max_samples=3)
    assert len(result.mu) == 3 and model.training


def test_perturbation_grid_images_and_confidences():
    model, x, d = linear_model(), central_inputs(2), sign_direction(2)
    grid = perturbation_grid(model, x, d, [0, 1, 30])
    assert grid["images"].shape == (2, 3, *SHAPE)
    assert np.allclose(grid["images"][1, 2], (x[1] + 30 * d[1]).clamp(0, 1).numpy())
    probs = torch.softmax(model(x + d), 1)
    assert np.allclose(grid["confidence"][:, 1], probs.max(1).values.detach().numpy())
    assert np.array_equal(grid["pred"][:, 0], model(x).argmax(1).numpy())


def test_figure2_positions_cover_small_median_large_and_disordered():
    from iseat.analysis.margin import MarginResult

    n = 20
    mu = np.linspace(0.1, 2.0, n)
    crossed = np.ones(n, bool)
    crossed[[3, 7]] = False
    mu[[3, 7]] = 50
    zeros = np.zeros(n)
    result = MarginResult(
        np.arange(n), np.zeros(n, int), np.zeros(n, int), zeros.astype(int), mu, crossed, zeros, zeros, zeros
    )
    picks = figure2_positions(result)
    assert 3 in picks and 7 in picks and len(set(picks)) == len(picks) == 5
    crossed_picks = [p for p in picks if crossed[p]]
    assert mu[crossed_picks[0]] < mu[crossed_picks[1]] < mu[crossed_picks[2]]


class PixelThreshold(nn.Module):
    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def forward(self, x):
        s = x.flatten(1)[:, 0]
        return torch.stack([torch.zeros_like(s), s - self.threshold], 1)


class Band(nn.Module):
    """Class 1 while pixel 0 lies in one of the bands, class 0 otherwise."""

    def __init__(self, bands):
        super().__init__()
        self.bands = bands

    def forward(self, x):
        s = x.flatten(1)[:, 0]
        inside = torch.zeros_like(s, dtype=torch.bool)
        for lo, hi in self.bands:
            inside |= (s >= lo) & (s <= hi)
        return torch.stack([(~inside).to(x.dtype), inside.to(x.dtype)], 1)
