"""Instance weights (Eq. 15 and the Tab. 5 ablations) against a direct computation."""

import numpy as np
import torch

from iseat.methods.instance_weighting import instance_weights


def test_linear_rank_weights():
    rng = np.random.default_rng(0)
    av = rng.normal(size=13)
    w = instance_weights(torch.tensor(av), "linear").numpy()
    m = len(av)
    order = np.argsort(-av)  # most vulnerable first
    for rank, i in enumerate(order):
        assert w[i] == 1 - rank / m
    assert w[np.argmax(av)] == 1.0
    assert np.isclose(w[np.argmin(av)], 1 / m)


def test_top10_and_uniform():
    av = torch.arange(20, dtype=torch.float64)
    top = instance_weights(av, "top10")
    assert top.sum() == 2 and top[-2:].tolist() == [1.0, 1.0]
    assert instance_weights(av, "uniform").tolist() == [1.0] * 20


def test_weights_are_detached():
    av = torch.randn(5, requires_grad=True)
    assert not instance_weights(av, "linear").requires_grad
