"""Figures 1-4 and Tab. 1: the arrays saved beside each image are the ones computed from the input."""

import json

import numpy as np
import pytest

from iseat.analysis import study_figures as figures
from iseat.analysis import table1 as tables
from iseat.training.avlog import PER_SAMPLE, AVLogWriter

PNG = b"\x89PNG"


def assert_png(path):
    assert path.read_bytes()[:4] == PNG


def test_figure1a_saves_the_plotted_statistics(tmp_path):
    summary = {
        "epoch": np.arange(4),
        "av_mean": np.array([0.1, 0.2, 0.3, 0.4]),
        "av_sd": np.array([1.0, 0.9, 0.8, 0.7]),
        "av_top10_mean": np.array([3.0, 2.5, 2.0, 1.5]),
        "av_bottom10_mean": np.array([-0.1, 0.0, 0.1, 0.2]),
        "share_av_ge_1": np.array([0.3, 0.2, 0.1, 0.05]),
        "share_av_le_0": np.array([0.4, 0.3, 0.2, 0.1]),
        "n_samples": np.full(4, 100.0),
    }
    out = tmp_path / "fig1a.png"
    data = figures.figure1a_av_statistics(summary, out)
    assert_png(out)
    saved = figures.read_csv(tmp_path / "fig1a.csv")
    for name, values in data.items():
        assert np.array_equal(saved[name], values) and np.array_equal(values, summary[name])
    figures.figure1a_av_statistics(summary, tmp_path / "fig1a.svg")
    assert (tmp_path / "fig1a.svg").read_text().lstrip().startswith("<?xml")


def test_figure1b_histogram_cdf_and_disordered_share(tmp_path):
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.gamma(2.0, 0.8, 90), np.full(10, 50.0)])
    out = tmp_path / "fig1b.png"
    data = figures.figure1b_margin(mu, 50.0, 1.5, out, bins=50)
    assert_png(out)
    saved = dict(np.load(tmp_path / "fig1b.npz"))
    assert set(saved) == set(data)
    assert saved["counts"].sum() == 100 and np.array_equal(saved["counts"], np.histogram(mu, np.linspace(0, 50, 51))[0])
    assert saved["share_disordered"] == pytest.approx(0.1)
    assert saved["share_within_budget"] == pytest.approx(np.mean(mu <= 1.5))
    assert (
        np.all(np.diff(saved["cdf"]) > 0) and saved["cdf"][-1] == 1 and np.array_equal(saved["mu_sorted"], np.sort(mu))
    )


def test_figure2_and_figure3_save_their_arrays(tmp_path):
    rng = np.random.default_rng(1)
    grid = {
        "mu": np.array([0.0, 1.0, 8.0]),
        "images": rng.random((2, 3, 3, 8, 8)),
        "pred": np.array([[0, 0, 3], [1, 2, 2]]),
        "confidence": rng.random((2, 3)),
    }
    data = figures.figure2_perturbation_grid(
        grid,
        tmp_path / "fig2.png",
        labels=np.array([0, 1]),
        indices=np.array([11, 42]),
        class_names=figures.CLASS_NAMES["cifar10"],
    )
    assert_png(tmp_path / "fig2.png")
    saved = np.load(tmp_path / "fig2.npz")
    for key in ("mu", "images", "pred", "confidence", "label", "index"):
        assert np.array_equal(saved[key], data[key])
    assert list(saved["class_names"][:2]) == ["airplane", "automobile"]

    land = {
        "alphas": np.linspace(-1, 1, 4),
        "betas": np.linspace(-1, 1, 5),
        "loss": rng.random((2, 4, 5)),
        "adversarial_direction": rng.random((2, 3, 8, 8)),
        "random_direction": rng.random((2, 3, 8, 8)),
    }
    figures.figure3_landscape(land, tmp_path / "fig3.png", indices=[5, 6])
    assert_png(tmp_path / "fig3.png")
    saved = np.load(tmp_path / "fig3.npz")
    assert np.array_equal(saved["loss"], land["loss"]) and np.array_equal(saved["index"], [5, 6])


def test_figure4_sorted_by_eta(tmp_path):
    out = tmp_path / "fig4.png"
    data = figures.figure4_eta_sweep([1.0, 0.0, 0.5], [0.80, 0.82, 0.81], [0.45, 0.40, 0.43], [0.5, 0.9, 0.7], out)
    assert_png(out)
    saved = figures.read_csv(tmp_path / "fig4.csv")
    assert np.array_equal(saved["eta"], [0.0, 0.5, 1.0]) and np.array_equal(saved["av_sd"], [0.9, 0.7, 0.5])
    assert np.array_equal(data["robustness"], [0.40, 0.43, 0.45])


def test_figure4_draws_train_and_test_av_sd(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out: drawn.append(fig))
    figures.figure4_eta_sweep(
        [1.0, 0.0], [0.80, 0.82], [0.45, 0.40], [0.5, 0.9], tmp_path / "fig4.png", test_av_sd=[0.6, 1.1]
    )
    saved = figures.read_csv(tmp_path / "fig4.csv")
    assert np.array_equal(saved["av_sd"], [0.9, 0.5]) and np.array_equal(saved["test_av_sd"], [1.1, 0.6])
    twin = drawn[0].axes[1]
    curves = {line.get_label(): list(line.get_ydata()) for line in twin.get_lines()}
    assert curves == {"AV SD (train)": [0.9, 0.5], "AV SD (test)": [1.1, 0.6]}


def test_bad_figure_name_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        figures.figure4_eta_sweep([0.0], [0.5], [0.3], [1.0], tmp_path / "fig4.jpeg")
    assert list(tmp_path.iterdir()) == []


def write_log(path, av_rows, weight_perturbed=False):
    n = av_rows.shape[1]
    writer = AVLogWriter(path, np.arange(n), {"config": {}, "seed": 0})
    for epoch, av in enumerate(av_rows):
        values = {
            name: np.zeros(n, np.float32) if kind == "f4" else np.ones(n, np.int8)
            for name, kind in ((k, PER_SAMPLE[k]) for k in PER_SAMPLE)
        }
        values["av"] = av.astype(np.float32)
        writer.write_epoch(epoch, values, weight_perturbed)
    writer.close()


def test_table1_from_margin_summary_and_av_log(tmp_path):
    rng = np.random.default_rng(2)
    av_last = rng.normal(0.5, 1.0, 200)
    write_log(tmp_path / "av_log.h5", np.stack([rng.normal(size=200), av_last]), weight_perturbed=True)
    margin = {
        "av_statistics": {
            "av_sd": 0.5,
            "av_top10_mean": 2.0,
            "av_bottom10_mean": -0.2,
            "share_av_ge_1": 0.1,
            "share_av_le_0": 0.3,
            "av_mean": 0.4,
            "n_samples": 1000,
        },
        "attack": {"steps": 50},
    }
    (tmp_path / "margin.json").write_text(json.dumps(margin))
    (tmp_path / "eval.json").write_text(json.dumps({"clean_accuracy": 0.8, "nested": {"rob": 0.45}}))
    ev = tables.read_evaluation(tmp_path / "eval.json", "clean_accuracy", "nested.rob")
    rows = tables.table1_rows([("AT", tmp_path / "margin.json", ev), ("AWP", tmp_path / "av_log.h5", ev)])
    assert rows[0]["av_sd"] == 0.5 and rows[0]["av_source"].startswith("Eq. 3, PGD-50")
    av = av_last.astype(np.float32).astype(np.float64)
    assert rows[1]["av_sd"] == pytest.approx(av.std()) and rows[1]["share_av_le_0"] == pytest.approx(np.mean(av <= 0))
    assert rows[1]["av_source"] == "training log epoch 1, Eq. 10"
    tables.write_table1(rows, tmp_path / "table1.md")
    text = (tmp_path / "table1.md").read_text()
    assert "| AT | 0.5000 | 2.0000 | -0.2000 | 10.00 | 30.00 | 80.00 | 45.00 |" in text
    saved = figures.read_csv(tmp_path / "table1.csv")
    assert list(saved["method"]) == ["AT", "AWP"] and saved["robustness"][1] == 0.45
    with pytest.raises(ValueError, match="no key 'robust'"):
        tables.read_evaluation(tmp_path / "eval.json", "clean_accuracy", "robust")
