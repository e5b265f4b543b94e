"""The warm start of the eps ramp and SWA's weight average, against hand computations."""

import json

import numpy as np
import torch
from torch import nn

from iseat.methods.swa import WeightAverage
from iseat.training.config import load_config
from iseat.training.loop import train


def tiny_npz(path, n_train=96, n_test=32, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train),
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test),
    )
    return path


def test_ramp_epochs_have_lambda_and_gamma_zero_then_stage_values(tmp_path):
    """The reference's warm start: during the eps ramp lambda = 0 and AWP is off; both on after."""
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = load_config(
        None,
        [
            "data.dataset=npz",
            f"data.root={data}",
            "data.validation_size=32",
            "data.augmentation=none",
            "method.name=iseat",
            "method.lam=[0.1, 0.2]",
            "method.gamma=0.009",
            "attack.ramp_epochs=2",
            "attack.steps=1",
            "training.epochs=4",
            "training.lr_milestones=[0.75]",
            "training.batch_size=32",
            "evaluation.pgd_steps=1",
            "runtime.device=cpu",
            "runtime.progress=false",
            "data.num_workers=0",
            "runtime.av_log=false",
        ],
    )
    train(cfg, tmp_path / "run", say=lambda *_: None)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["lam"], r["gamma"]) for r in rows] == [(0.0, 0.0), (0.0, 0.0), (0.1, 0.009), (0.2, 0.009)]
    assert rows[0]["eps"] < rows[1]["eps"] == rows[2]["eps"] == 8 / 255


def test_swa_average_and_batchnorm_reestimation_equal_a_hand_computation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    alpha = 0.3
    swa = WeightAverage(model, alpha)
    thetas = []
    for _ in range(3):  # three "training steps", each followed by an average update
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        thetas.append([p.detach().clone() for p in model.parameters()])
        swa.update(model)
    # the first update takes the weights as they are; then avg = (1 - alpha) avg + alpha theta
    expected = thetas[0]
    for theta in thetas[1:]:
        expected = [(1 - alpha) * a + alpha * t for a, t in zip(expected, theta)]

    batches = [torch.randn(5, 3, dtype=torch.float64) + i for i in range(3)]
    loader = [(x, torch.zeros(len(x)), torch.arange(len(x))) for x in batches]
    averaged = swa.averaged_model(loader, "cpu")
    for p, e in zip(averaged.parameters(), expected):
        assert torch.allclose(p, e, atol=1e-12, rtol=0)
    # BatchNorm statistics: the cumulative (equal-weight) average over one pass of the batch statistics
    weight, bias = expected[0], expected[1]
    hidden = [x @ weight.T + bias for x in batches]
    mean = sum(h.mean(0) for h in hidden) / len(hidden)
    var = sum(h.var(0, unbiased=True) for h in hidden) / len(hidden)
    bn = averaged[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-12, rtol=0)
    assert torch.allclose(bn.running_var, var, atol=1e-12, rtol=0)
    assert not averaged.training
