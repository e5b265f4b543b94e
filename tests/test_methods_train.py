"""Every method and ablation trains the small CNN to PGD accuracy clearly above chance on real images."""

from pathlib import Path

import pytest

from iseat.config import load_config
from iseat.training import train

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


def data_overrides():
    """The real CIFAR-10 sample when present, else the offline digits set."""
    if SAMPLE.exists():
        return ["data.dataset=npz", f"data.root={SAMPLE}", "data.validation_size=500"], 0.15
    return ["data.dataset=digits", "data.validation_size=200"], 0.3


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_method_learns_robust_features(tmp_path, variant):
    data, floor = data_overrides()
    name = variant if variant in ("at", "at_awp", "at_lsi", "iseat", "at_eq9") else "iseat"
    cfg = load_config(None, [*data, f"method.name={name}", *VARIANTS[variant],
                             "training.epochs=3", "training.lr=0.05", "training.batch_size=128",
                             "attack.steps=3", "attack.step_size=3/255", "evaluation.max_samples=200",
                             "evaluation.pgd_steps=5", "runtime.device=cpu", "runtime.progress=false",
                             "data.num_workers=0"])
    summary = train(cfg, tmp_path / variant, say=lambda *_: None)
    # chance is 0.10 on ten classes
    assert summary["best_selection_pgd_acc"] >= floor, summary
    assert summary["best_selection_clean_acc"] > summary["best_selection_pgd_acc"] - 1e-9
