"""What the paper's figures show: Fig. 2 captions give the ground-truth class's confidence, Fig. 3's
samples are chosen by margin."""

import numpy as np
import torch
from torch import nn

from iseat.analysis.margin import figure3_picks, perturbation_grid


def test_figure2_grid_has_the_ground_truth_confidence():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    d = torch.randn_like(x)
    y = torch.tensor([2, 0])
    grid = perturbation_grid(model, x, d, [0.0, 0.5, 3.0], y)
    for i in range(2):
        for j, mu in enumerate([0.0, 0.5, 3.0]):
            logits = model((x[i : i + 1] + mu * d[i : i + 1]).clamp(0, 1))[0]
            expected = torch.exp(logits[y[i]]) / torch.exp(logits).sum()
            assert abs(grid["true_confidence"][i, j] - expected.item()) < 1e-12


def test_figure3_picks_two_disordered_the_most_robust_and_the_most_vulnerable():
    margins = {
        "index": np.arange(100, 108),
        "label": np.array([0, 1, 2, 3, 4, 5, 6, 7]),
        "clean_pred": np.array([0, 1, 2, 3, 4, 5, 6, 0]),  # the last is misclassified
        "crossed": np.array([True, False, True, False, True, False, True, True]),
        "mu": np.array([0.8, 50, 0.1, 50, 3.2, 50, 1.5, 0.01]),
        "mu_max": np.float64(50),
    }
    indices, titles = figure3_picks(margins, 2)
    assert indices == [101, 103, 104, 102]
    assert "disordered" in titles[0] and "robust" in titles[2] and "vulnerable" in titles[3]
