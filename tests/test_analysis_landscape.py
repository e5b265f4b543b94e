"""Eq. 8 loss landscape: grid values equal a direct recomputation of the loss."""

import numpy as np
import pytest
import torch
from torch import nn

from iseat.analysis.landscape import loss_landscape, random_direction
from iseat.methods.training_attack import PGD


def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 2])
    return model, x, y


@pytest.mark.parametrize("clip", [False, True])
def test_grid_equals_direct_loss(clip):
    model, x, y = model_and_batch()
    alphas, betas = np.linspace(-2, 2, 5), np.linspace(-1, 1, 3)
    land = loss_landscape(model, x, y, alphas, betas, seed=3, attack=PGD(steps=3), clip=clip)
    assert land.loss.shape == (2, 5, 3)
    d, r = torch.from_numpy(land.adversarial_direction), torch.from_numpy(land.random_direction)
    assert np.allclose(d.flatten(1).norm(dim=1), 1) and np.allclose(r.flatten(1).norm(dim=1), 1)
    for s in range(2):
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                point = x[s] + a * d[s] + b * r[s]
                point = point.clamp(0, 1) if clip else point
                expected = nn.functional.cross_entropy(model(point[None]), y[s : s + 1]).item()
                assert land.loss[s, i, j] == pytest.approx(expected, rel=1e-9)
    clean = nn.functional.cross_entropy(model(x), y, reduction="none").detach().numpy()
    assert np.allclose(land.loss[:, 2, 1], clean)


def test_adversarial_direction_raises_the_loss_and_random_direction_is_seeded():
    model, x, y = model_and_batch()
    land = loss_landscape(model, x, y, [0.0, 0.5], [0.0], seed=1, attack=PGD(steps=5))
    assert np.all(land.loss[:, 1, 0] > land.loss[:, 0, 0])
    a = random_direction((2, 3, 4, 4), 8 / 255, torch.Generator().manual_seed(5))
    b = random_direction((2, 3, 4, 4), 8 / 255, torch.Generator().manual_seed(5))
    c = random_direction((2, 3, 4, 4), 8 / 255, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
