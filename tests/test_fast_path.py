"""The fast training step computes the same parameter update as the straightforward one.

`iseat.methods.presets.training_step` reuses the clean forward pass (its input gradient is PGD's first step,
its graph is the regulariser's theta branch) and perturbs weights functionally;
`iseat.methods.reference_step.reference_training_step` does everything the long way. In float64 the two
must give the same parameters (max abs diff <= 1e-8) after one and after two steps (the second
step exercises SGD's momentum and weight decay), for every method variant. BatchNorm running
statistics are not compared: the two paths run different numbers of train-mode forward passes.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from iseat.methods.models import SmallCNN, WideResNet
from iseat.methods.presets import MethodSchedule, training_step
from iseat.methods.reference_step import reference_training_step
from iseat.methods.training_attack import PGD

TOL = 1e-8


def method_of(name: str, stage: int = 1, attack: PGD | None = None, **overrides):
    cfg = {"name": name, **overrides}
    return MethodSchedule.from_config(cfg).at_stage(stage, attack or PGD(eps=8 / 255, step_size=2 / 255, steps=3))


VARIANTS = {
    "at": method_of("at"),
    "at_awp": method_of("at_awp"),
    "at_lsi": method_of("at_lsi"),
    "iseat": method_of("iseat"),
    "iseat_stage0": method_of("iseat", stage=0),  # lambda = 0: AWP only
    "at_eq9": method_of("at_eq9"),
    "at_eq9_awp": method_of("at_eq9", gamma=[0.01]),
    "target_lsi": method_of("iseat", target="lsi"),
    "target_trade_awp": method_of("iseat", target="trade_awp"),
    "distance_kl": method_of("iseat", distance="kl"),
    "weighting_top10": method_of("iseat", weighting="top10"),
    "weighting_uniform": method_of("iseat", weighting="uniform"),
    "trade_awp_no_awp": method_of("at_lsi", target="trade_awp"),
    "random_start": method_of("iseat", attack=PGD(eps=8 / 255, step_size=2 / 255, steps=3, random_start=True)),
    "random_start_at": method_of("at", attack=PGD(eps=8 / 255, step_size=2 / 255, steps=3, random_start=True)),
}


def batches(n_steps: int, batch: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(batch, 3, 32, 32, generator=g, dtype=torch.float64), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n_steps)
    ]


def run_path(step_fn, model, method, data, seed=1):
    model = copy.deepcopy(model)
    # A large weight decay makes "the optimiser steps on theta + v" (Eq. 21) visible above the tolerance.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.05)
    results, params = [], []
    torch.manual_seed(seed)  # random start draws from the global generator in both paths alike
    for x, y in data:
        results.append(step_fn(model, optimizer, x, y, method))
        params.append({name: p.detach().clone() for name, p in model.named_parameters()})
    return results, params


def max_param_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=10, width=8).double()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fast_step_equals_straightforward_step(small_cnn, variant):
    method = VARIANTS[variant]
    data = batches(2)
    fast_results, fast_params = run_path(training_step, small_cnn, method, data)
    ref_results, ref_params = run_path(reference_training_step, small_cnn, method, data)

    initial = {name: p.detach() for name, p in small_cnn.named_parameters()}
    assert max_param_diff(fast_params[0], initial) > 1e-4  # the step did move the parameters
    for step in range(2):
        assert max_param_diff(fast_params[step], ref_params[step]) <= TOL, f"step {step + 1}"
        fast, ref = fast_results[step], ref_results[step]
        for name in ("clean_loss", "adv_loss", "av"):
            torch.testing.assert_close(getattr(fast, name), getattr(ref, name), atol=TOL, rtol=0)
        assert torch.equal(fast.clean_correct, ref.clean_correct)
        assert torch.equal(fast.adv_correct, ref.adv_correct)
        assert fast.loss == pytest.approx(ref.loss, abs=TOL)


def test_variants_differ_from_each_other(small_cnn):
    """The comparison above is sharp: changing any part of the method changes the update."""
    data = batches(1)
    _, at_params = run_path(training_step, small_cnn, VARIANTS["at"], data)
    for variant in ("at_awp", "at_lsi", "iseat", "at_eq9", "target_lsi", "distance_kl", "weighting_top10"):
        _, params = run_path(training_step, small_cnn, VARIANTS[variant], data)
        assert max_param_diff(params[0], at_params[0]) > 100 * TOL, variant
    _, iseat = run_path(training_step, small_cnn, VARIANTS["iseat"], data)
    _, lsi = run_path(training_step, small_cnn, VARIANTS["target_lsi"], data)
    assert max_param_diff(iseat[0], lsi[0]) > 100 * TOL


def test_regulariser_gradient_reaches_theta_through_both_branches(small_cnn):
    """Dropping the theta branch (clean logits detached) would change the update: the check sees it."""
    method = VARIANTS["iseat"]
    data = batches(1)
    _, fast = run_path(training_step, small_cnn, method, data)
    _, doubled = run_path(training_step, small_cnn, replace(method, lam=2 * method.lam), data)
    assert max_param_diff(fast[0], doubled[0]) > 100 * TOL


@pytest.mark.parametrize("variant", ["iseat", "at_eq9_awp"])
def test_fast_step_equals_straightforward_step_residual_network(variant):
    torch.manual_seed(0)
    model = WideResNet(depth=10, width=1, num_classes=10).double()
    method = VARIANTS[variant]
    data = batches(2, batch=8)
    _, fast_params = run_path(training_step, model, method, data)
    _, ref_params = run_path(reference_training_step, model, method, data)
    for step in range(2):
        assert max_param_diff(fast_params[step], ref_params[step]) <= TOL
