"""Memory-lean ISEAT (`runtime.memory_lean`): the theta branch recomputed instead of kept gives the same update.

In float64 the lean step must give the same parameters and BatchNorm statistics as the default step
(max abs diff <= 1e-10, every method variant, two steps so momentum and weight decay take part); its
agreement with the independent, single-graph computation of Eq. 18/20/21 is tested in
tests/test_iseat_update.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_fast_path import VARIANTS, batches

from iseat.methods.models import SmallCNN, WideResNet
from iseat.methods.presets import training_step

TOL = 1e-10

pytestmark = pytest.mark.usefixtures("one_thread")


def lean_step(model, optimizer, x, y, method):
    return training_step(model, optimizer, x, y, method, memory_lean=True)


def run(step_fn, model, method, data):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.05)
    torch.manual_seed(1)
    states, results = [], []
    for x, y in data:
        results.append(step_fn(model, optimizer, x, y, method))
        states.append({k: t.detach().clone() for k, t in model.state_dict().items()})
    return results, states


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def small_cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=10, width=8).double()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_memory_lean_step_equals_default_step(small_cnn, variant):
    method = VARIANTS[variant]
    data = batches(2)
    default_results, default_states = run(training_step, small_cnn, method, data)
    lean_results, lean_states = run(lean_step, small_cnn, method, data)
    for step in range(2):
        # parameters and BatchNorm running statistics alike
        assert max_diff(lean_states[step], default_states[step]) <= TOL, f"step {step + 1}"
        for name in ("clean_loss", "adv_loss", "av"):
            torch.testing.assert_close(
                getattr(lean_results[step], name), getattr(default_results[step], name), atol=TOL, rtol=0
            )
        assert lean_results[step].loss == pytest.approx(default_results[step].loss, abs=TOL)


@pytest.mark.parametrize("variant", ["iseat", "at_eq9_awp", "target_lsi"])
def test_memory_lean_step_equals_default_step_residual_network(variant):
    torch.manual_seed(0)
    model = WideResNet(depth=10, width=1, num_classes=10).double()
    data = batches(2, batch=8)
    _, default_states = run(training_step, model, VARIANTS[variant], data)
    _, lean_states = run(lean_step, model, VARIANTS[variant], data)
    for step in range(2):
        assert max_diff(lean_states[step], default_states[step]) <= TOL


def test_memory_lean_without_recomputed_theta_branch_would_differ(small_cnn, monkeypatch):
    """Not vacuous: skipping the recomputed theta branch (clean views constant only) changes the update."""
    import iseat.methods.presets

    method = VARIANTS["iseat"]
    data = batches(1)
    _, default = run(training_step, small_cnn, method, data)
    monkeypatch.setattr(iseat.methods.presets, "backward_theta_branch", lambda *args: None)
    _, without_theta_branch = run(lean_step, small_cnn, method, data)
    assert max_diff(without_theta_branch[0], default[0]) > 1e-6
