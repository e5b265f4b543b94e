"""The AutoAttack adapter builds the standard attack (and only labels the torchattacks protocol non-standard)."""

import pytest
import torch

from iseat.benchmarks.toy import TinyCNN
from iseat.evaluation import autoattack_adapter as adapter


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyCNN(10, width=4)


def test_standard_settings_are_the_published_ones(model):
    """apgd-ce, apgd-t, fab-t, square; 100 iterations; 9 target classes; 5000 Square queries (Croce & Hein 2020)."""
    aa = adapter.build(model, adapter.STANDARD, 8 / 255, 10, "cpu", seed=0)
    assert aa.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa.version == "standard" and aa.norm == "Linf" and aa.epsilon == pytest.approx(8 / 255)
    assert aa.apgd.n_iter == 100 and aa.apgd.n_restarts == 1
    assert aa.apgd_targeted.n_iter == 100 and aa.apgd_targeted.n_target_classes == 9
    assert aa.apgd_targeted.n_restarts == 1
    assert aa.fab.n_iter == 100 and aa.fab.n_target_classes == 9 and aa.fab.n_restarts == 1
    assert aa.square.n_queries == 5000
    assert not model.training


def test_settings_report_reads_the_attack_objects(model):
    aa = adapter.build(model, adapter.STANDARD, 8 / 255, 10, "cpu", seed=0)
    settings = adapter.settings_of(aa)
    assert settings["apgd-t"] == {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}
    assert settings["fab-t"] == {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9}
    assert settings["square"]["n_queries"] == 5000 and settings["square"]["rescale_schedule"] is False
    aa.square.n_queries = 1000
    assert adapter.settings_of(aa)["square"]["n_queries"] == 1000


@pytest.mark.parametrize(
    "weaken, name",
    [
        (lambda aa: setattr(aa.apgd, "n_iter", 10), "apgd-ce.n_iter"),
        (lambda aa: setattr(aa.apgd_targeted, "n_target_classes", 3), "apgd-t.n_target_classes"),
        (lambda aa: setattr(aa.fab, "n_iter", 10), "fab-t.n_iter"),
        (lambda aa: setattr(aa.square, "n_queries", 1000), "square.n_queries"),
        (lambda aa: setattr(aa, "attacks_to_run", ["apgd-ce"]), "attacks"),
    ],
)
def test_a_weakened_attack_is_refused(model, weaken, name):
    aa = adapter.build(model, adapter.STANDARD, 8 / 255, 10, "cpu", seed=0)
    weaken(aa)
    with pytest.raises(adapter.AutoAttackSettingsError, match=name.replace(".", r"\.")):
        adapter.check_settings(aa, adapter.STANDARD, 10)


@pytest.mark.parametrize("num_classes", [10, 100])
def test_torchattacks_protocol_budget(num_classes):
    """torchattacks 3.5.1's 'standard': 10 iterations, every other class as target, rescaled Square schedule."""
    model = TinyCNN(num_classes, width=4)
    aa = adapter.build(model, adapter.TORCHATTACKS, 8 / 255, num_classes, "cpu", seed=0)
    settings = adapter.settings_of(aa)
    assert settings["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert settings["apgd-ce"]["n_iter"] == settings["apgd-t"]["n_iter"] == settings["fab-t"]["n_iter"] == 10
    assert settings["apgd-t"]["n_target_classes"] == settings["fab-t"]["n_target_classes"] == num_classes - 1
    assert settings["square"] == {"n_queries": 5000, "n_restarts": 1, "p_init": 0.8, "rescale_schedule": True}
    assert aa.apgd.n_iter_2 == 2 and aa.apgd_targeted.n_iter_2 == 2  # step-size checkpoints follow n_iter
    assert settings["version"] == "custom"


def test_only_the_standard_protocol_is_labelled_plain_autoattack():
    assert adapter.STANDARD.standard and adapter.STANDARD.label == "AutoAttack (standard)"
    assert not adapter.TORCHATTACKS.standard
    assert "non-standard" in adapter.TORCHATTACKS.label and "10 it." in adapter.TORCHATTACKS.label
    assert not adapter.APGD_PAIR.standard and "non-standard" in adapter.APGD_PAIR.label
    assert adapter.PROTOCOLS == {
        "autoattack": adapter.STANDARD,
        "autoattack-paper-protocol": adapter.TORCHATTACKS,
        "autoattack-apgd": adapter.APGD_PAIR,
    }


def test_apgd_pair_runs_only_the_two_gradient_attacks_with_its_budget():
    model = TinyCNN(10, width=4)
    aa = adapter.build(model, adapter.APGD_PAIR, 8 / 255, 10, "cpu", seed=0)
    settings = adapter.settings_of(aa)
    assert settings["attacks"] == ["apgd-ce", "apgd-t"]
    assert settings["apgd-ce"]["n_iter"] == settings["apgd-t"]["n_iter"] == 20
    assert settings["apgd-t"]["n_target_classes"] == 3
    aa.attacks_to_run.append("square")  # a changed attack list is refused like a changed budget
    with pytest.raises(adapter.AutoAttackSettingsError, match="attacks"):
        adapter.check_settings(aa, adapter.APGD_PAIR, 10)


def test_breaking_attack_is_recorded_per_point():
    """Points misclassified clean are 'clean'; a steep linear model loses every other point to APGD-CE."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    x = torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 10
    aa = adapter.build(model, adapter.STANDARD, 0.25, 10, "cpu", seed=0)
    result = adapter.run(aa, x, y, batch_size=5)
    assert result.broken_by == ["clean"] * 3 + ["apgd-ce"] * 9
    assert not result.robust.any()
