"""Eps sweep (sweep.json): PGD-k robust accuracy per eps against a linear model's analytic answer, the two
eps-sweep gradient-masking flags on models built to raise them (none on an honest one), the seeds' mean
curve, the flags in the tables and the index, the curve figure, and `iseat evaluate --eps-sweep` end to end
with one-line refusals."""

import json

import pytest
import torch

from iseat.evaluation import IndexedTensors
from iseat.evaluation import gradient_masking as masking
from iseat.evaluation.sweep import SweepSpec, sweep_model

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = (0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 64 / 255)
SPEC = SweepSpec(eps=EPS, steps=5, batch_size=16)


class TwoClassLinear(torch.nn.Module):
    """Logits (0, w.x + b) of flattened 3x4x4 images."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(b)

    def forward(self, x):
        margin = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(margin), margin], 1)


class FarIsSafe(torch.nn.Module):
    """Constant images of label 1; the margin falls linearly as the mean pixel t moves up from 0.5, but beyond
    t = 0.5 + 0.05 it is a large constant (zero gradient): small budgets break every point, a large step jumps
    into the safe region. Robust accuracy then rises with eps."""

    def forward(self, x):
        t = x.flatten(1).mean(1) - 0.5
        margin = torch.where(t < 0.05, 0.5 - 50 * t, torch.full_like(t, 5.0))
        return torch.stack([torch.zeros_like(margin), margin], 1)


def honest_data(n=64):
    """Images in [0.3, 0.7] (no [0, 1] clipping up to eps 0.3) labelled by a linear model, a few flipped."""
    torch.manual_seed(0)
    w = torch.randn(48)
    x = 0.3 + 0.4 * torch.rand(n, 3, 4, 4)
    b = -(x.flatten(1) @ w).median().reshape(())
    y = (x.flatten(1) @ w + b > 0).long()
    y[:4] = 1 - y[:4]
    return TwoClassLinear(w, b), IndexedTensors(x, y)


def oracle(model, data, eps: float) -> int:
    """Points a two-class linear model keeps against the worst l-inf perturbation: the signed margin
    s (w.x + b), s = +1 for label 1 and -1 for label 0, minus eps ||w||_1, in float64 (no clipping in range)."""
    w, b = model.w.detach().double(), model.b.detach().double()
    sign = 2 * data.y.double() - 1
    margin = sign * (data.x.flatten(1).double() @ w + b)
    return int(((margin > 0) & (margin - eps * w.abs().sum() > 0)).sum())


def test_the_curve_of_a_linear_model_is_the_analytic_one(tmp_path):
    model, data = honest_data()
    report = sweep_model(model, data, tmp_path / "sweep.json", SPEC)
    assert [p["eps"] for p in report["curve"]] == sorted(EPS)
    assert [p["n_robust"] for p in report["curve"]] == [oracle(model, data, eps) for eps in sorted(EPS)]
    assert report["curve"][0]["robust_accuracy"] == report["clean_accuracy"] == 60 / 64
    assert report["robust_accuracy"] == report["curve"][3]["robust_accuracy"] and report["headline_eps"] == 8 / 255
    assert report["curve"][-1]["n_robust"] == 0 and report["masking_flags"] == []
    stamp = report["stamp"]
    assert stamp["threat_model"]["eps"] == list(sorted(EPS)) and stamp["test_indices"]["count"] == 64
    assert stamp["model_mode"] == "eval" and stamp["attacks"]["pgd"]["steps"] == 5
    assert json.loads((tmp_path / "sweep.json").read_text()) == report


def test_zero_input_gradients_raise_the_large_eps_flag(tmp_path):
    model, data = honest_data()
    quantised = torch.nn.Sequential(
        type("Round", (torch.nn.Module,), {"forward": lambda s, x: torch.round(x * 8) / 8})(), model
    )
    report = sweep_model(quantised, data, tmp_path / "sweep.json", SPEC)
    assert {p["robust_accuracy"] for p in report["curve"]} == {report["clean_accuracy"]}  # PGD cannot move
    assert report["masking_flags"] == ["large_eps_robust"]


def test_a_curve_that_rises_with_eps_is_flagged(tmp_path):
    data = IndexedTensors(torch.full((8, 3, 4, 4), 0.5), torch.ones(8, dtype=torch.long))
    report = sweep_model(FarIsSafe(), data, tmp_path / "sweep.json", SPEC)
    assert [p["robust_accuracy"] for p in report["curve"]] == [1, 1, 0, 0, 1, 1]
    assert report["masking_flags"] == ["sweep_not_monotone", "large_eps_robust"]


def test_the_sweep_flag_thresholds():
    honest = [(0, 0.8), (2 / 255, 0.6), (8 / 255, 0.4), (64 / 255, 0.0)]
    assert masking.sweep_flags(honest) == []
    assert masking.sweep_flags([(0, 0.8), (2 / 255, 0.4), (8 / 255, 0.42), (64 / 255, 0.05)]) == []  # within 2 points
    assert masking.sweep_flags([(0, 0.8), (2 / 255, 0.4), (8 / 255, 0.43), (64 / 255, 0.0)]) == ["sweep_not_monotone"]
    assert masking.sweep_flags([(0, 0.8), (16 / 255, 0.3), (64 / 255, 0.06)]) == ["large_eps_robust"]
    assert masking.sweep_flags([(0, 0.8), (16 / 255, 0.3)]) == []  # no very large eps: nothing to say


@pytest.mark.parametrize(
    "eps, fix",
    [
        ((0.1,), "at least two budgets"),
        ((0, 4 / 255), "headline budget"),
        ((0, 8 / 255, 1.5), "at least two budgets"),
        ((0, "8/255", "x"), "not a number"),
    ],
)
def test_bad_sweeps_are_refused_naming_the_setting(eps, fix):
    from iseat.evaluation import EvaluationInputError

    with pytest.raises(EvaluationInputError, match=fix) as err:
        SweepSpec(eps=eps)
    assert "eps_sweep" in err.value.parameters


def test_seeds_tables_index_and_figure(tmp_path):
    """Two seeds of an honest and of a masked model as the workflow writes them: the mean curve, the flag
    marked in the tables and on the index page, and the figure drawn."""
    from iseat.results import figures, index, seeds, tables

    model, data = honest_data()
    other = TwoClassLinear(2 * model.w.detach(), model.b.detach() + 0.5)  # the second training seed's model
    entries = []
    for method, models in (("at", (model, other)), ("masked", (FarIsSafe(), FarIsSafe()))):
        folder = tmp_path / "results" / "toy" / method
        for seed, net in enumerate(models):
            sweep_model(net, data, folder / f"seed{seed}" / "sweep.json", SPEC)
        seeds.write_seed_summary([folder / f"seed{s}" / "sweep.json" for s in (0, 1)], folder / "sweep.json")
        entries.append(("toy", method, "-", str(folder)))
    honest = json.loads((tmp_path / "results" / "toy" / "at" / "sweep.json").read_text())
    per_seed = [
        json.loads((tmp_path / "results" / "toy" / "at" / f"seed{s}" / "sweep.json").read_text())["curve"]
        for s in (0, 1)
    ]
    for point, a, b in zip(honest["curve"], *per_seed):
        assert point["eps"] == a["eps"] == b["eps"]
        assert point["robust_accuracy"]["mean"] == pytest.approx((a["robust_accuracy"] + b["robust_accuracy"]) / 2)
        assert point["robust_accuracy"]["std"] == pytest.approx(
            abs(a["robust_accuracy"] - b["robust_accuracy"]) / 2**0.5
        )
    parsed = tables.parse_entries(entries)
    rows = {r.entry.method: r for r in tables.result_rows(parsed, {}, {})}
    assert rows["masked"].flags == ["sweep_not_monotone", "large_eps_robust"] and rows["at"].flags == []
    result_files = [str(tmp_path / "results" / "toy" / m / "sweep.json") for m in ("at", "masked")]
    index.write_index(tmp_path / "results" / "README.md", results=result_files)
    assert f"{masking.MARK} sweep_not_monotone, large_eps_robust" in (tmp_path / "results" / "README.md").read_text()
    out = tmp_path / "curves_toy.png"
    figures.figure_curves(out, parsed, {"at": "AT"}, "toy")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_the_figure_needs_a_sweep(tmp_path):
    from iseat.results import ResultsError, figures, tables

    with pytest.raises(ResultsError, match="no aggregated sweep.json"):
        figures.figure_curves(tmp_path / "c.png", tables.parse_entries([("toy", "at", "-", str(tmp_path))]), {})
    assert not (tmp_path / "c.png").exists()


def test_the_command_line_sweep_and_its_refusals(tmp_path, in_process):
    from test_evaluate_cli import digits_config, trained_small_cnn

    from iseat.training.checkpoint import architecture_of, model_checkpoint, save_atomic

    cfg = digits_config()
    checkpoint = tmp_path / "run" / "best.pt"
    checkpoint.parent.mkdir()
    save_atomic(model_checkpoint(trained_small_cnn(cfg), architecture_of(cfg, 10), 7, {}, cfg), checkpoint)
    out = tmp_path / "sweep.json"
    common = ("evaluate", "--checkpoint", checkpoint, "--out", out, "--device", "cpu", "--n-ex", 40, "--pgd-steps", 3)
    done = in_process(*common, "--eps-sweep", 0, "8/255", "64/255")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["format"] == "iseat-eps-sweep-v1" and report["stamp"]["checkpoint"]["file"] == "best.pt"
    assert (
        report["curve"][0]["robust_accuracy"] == report["clean_accuracy"] > 0
        and report["curve"][-1]["robust_accuracy"] == 0.0
    )
    assert report["masking_flags"] == [] and "8/255" in done.stdout
    for bad, words in (
        ((0, "4/255"), "--eps-sweep must include the headline budget --eps"),
        (("8/255",), "--eps-sweep"),
    ):
        refused = in_process(*common[:4], tmp_path / "other.json", *common[5:], "--eps-sweep", *bad)
        assert refused.returncode == 2 and words in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "other.json").exists()
    with pytest.raises(SystemExit) as refused:  # argparse: a sweep is not sharded
        in_process(*common, "--eps-sweep", 0, "8/255", "--shard", "1/2")
    assert refused.value.code == 2
