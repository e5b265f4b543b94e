"""Every method and ablation trains the small CNN under the paper's eps and gamma to PGD accuracy
clearly above chance, on real CIFAR-10 images (or, without the sample, the offline digits set)."""

from pathlib import Path

import numpy as np
import pytest

from iseat.training.config import load_config
from iseat.training.loop import train

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_sample.npz"

VARIANTS = {
    "at": [],
    "at_awp": [],
    "at_lsi": [],
    "iseat": [],
    "at_eq9": [],
    "iseat_kl_top10": ["method.distance=kl", "method.weighting=top10"],
    "iseat_uniform_lsi": ["method.weighting=uniform", "method.target=lsi"],
    "iseat_trade_awp": ["method.target=trade_awp"],
}


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory):
    """1,500 real CIFAR-10 training images when the sample is present, else the offline digits set.

    The paper's budget (eps 8/255, step 2/255; gamma 0.005 for AT-AWP, 0.007 for ISEAT; lr 0.1) with a
    shorter PGD (4 steps, enough to reach eps) and three epochs; the floors are well above chance (0.10)."""
    if not SAMPLE.exists():
        return ["data.dataset=digits", "data.validation_size=300"], 0.3
    sample = np.load(SAMPLE)
    subset = tmp_path_factory.mktemp("cifar") / "cifar10_subset.npz"
    np.savez(
        subset,
        x_train=sample["x_train"][:1800],
        y_train=sample["y_train"][:1800],
        x_test=sample["x_test"][:300],
        y_test=sample["y_test"][:300],
    )
    return ["data.dataset=npz", f"data.root={subset}", "data.validation_size=300", "data.augmentation=none"], 0.15


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_method_learns_robust_features(tmp_path, data_overrides, variant):
    data, floor = data_overrides
    name = variant if variant in ("at", "at_awp", "at_lsi", "iseat", "at_eq9") else "iseat"
    cfg = load_config(
        None,
        [
            *data,
            f"method.name={name}",
            *VARIANTS[variant],
            "training.epochs=3",
            "training.lr=0.1",
            "training.batch_size=64",
            "attack.eps=8/255",
            "attack.step_size=2/255",
            "attack.steps=4",
            "evaluation.max_samples=300",
            "evaluation.pgd_steps=5",
            "runtime.device=cpu",
            "runtime.progress=false",
            "data.num_workers=0",
            "runtime.av_log=false",
        ],
    )
    summary = train(cfg, tmp_path / variant, say=lambda *_: None)
    # chance is 0.10 on ten classes
    assert summary["best_selection_pgd_acc"] >= floor, summary
    assert summary["best_selection_clean_acc"] >= summary["best_selection_pgd_acc"]
