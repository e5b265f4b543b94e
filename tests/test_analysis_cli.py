"""`iseat analyse`: every study end to end on a small CNN and a data bundle built to the `iseat.data`
contract (tensors in [0, 1], dataset indices that differ from positions); outputs agree with each other;
bad input fails with one line and writes nothing."""

import copy
import json
import types

import numpy as np
import pytest
import torch
import yaml

from iseat.analysis import inputs as study_inputs
from iseat.cli import main
from iseat.methods.models import build_model
from iseat.training.avlog import PER_SAMPLE, AVLogWriter
from iseat.training.checkpoint import model_checkpoint, save_atomic
from iseat.training.config import DEFAULTS

OFFSET = 1000  # dataset index = OFFSET + position


class IndexedTensors(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], torch.tensor(OFFSET + i)


def fake_bundle(with_train=True):
    bundle = types.SimpleNamespace(
        name="cifar10",
        num_classes=10,
        test=IndexedTensors(12, 1),
        eval_loader=lambda ds, bs: torch.utils.data.DataLoader(ds, batch_size=bs),
    )
    if with_train:
        bundle.train = IndexedTensors(20, 2)
    return bundle


@pytest.fixture
def data(monkeypatch):
    """Stand-in for `iseat.data.load_data` with the contract's DataBundle; returns the list of its calls."""
    calls, state = [], {"train": True}

    def fake_load_data(cfg, seed):
        calls.append((cfg, seed))
        return fake_bundle(state["train"])

    monkeypatch.setattr(study_inputs, "load_data", fake_load_data)
    return types.SimpleNamespace(calls=calls, state=state)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", 10).eval()
    arch = {"arch": "small_cnn", "num_classes": 10, "activation": "relu", "depth": 34, "width": 10}
    path = tmp_path / "run" / "best.pt"
    save_atomic(model_checkpoint(model, arch, 3, {}, copy.deepcopy(DEFAULTS)), path)
    return path


FAST = ["--pgd-steps", "2", "--device", "cpu", "--batch-size", "16"]
COARSE = ["--scan-step", "0.5", "--scan-growth", "0.2", "--tol", "0.01"]  # few forward passes per sample


def test_margin_outputs_agree(data, checkpoint, tmp_path):
    out = tmp_path / "margin"
    assert (
        main(
            [
                "analyse",
                "margin",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--n",
                "13",
                "--mu-max",
                "20",
                "--figure-mus",
                "0",
                "2",
                "20",
                *FAST,
                *COARSE,
            ]
        )
        == 0
    )
    margins = dict(np.load(out / "margins.npz"))
    summary = json.loads((out / "margin.json").read_text())
    assert np.array_equal(margins["index"], OFFSET + np.arange(13))
    assert np.all((margins["mu"] > 0) & (margins["mu"] <= 20))
    assert np.array_equal(margins["crossed"], margins["mu"] < 20) or np.all(margins["mu"][~margins["crossed"]] == 20)
    assert summary["n_samples"] == 13 and summary["share_disordered"] == pytest.approx(np.mean(~margins["crossed"]))
    assert summary["av_statistics"]["av_sd"] == pytest.approx(np.std(margins["adv_loss"] - margins["clean_loss"]))
    assert summary["attack"]["steps"] == 2 and summary["search"]["mu_max"] == 20 and summary["search"]["tol"] == 0.01
    assert summary["throughput"]["search_samples_per_s"] > 0
    fig1b = np.load(out / "fig1b.npz")
    assert np.array_equal(fig1b["mu_sorted"], np.sort(margins["mu"]))
    assert fig1b["budget"] == pytest.approx(margins["delta_norm"].mean())
    fig2 = np.load(out / "fig2.npz")
    assert fig2["images"].shape[:2] == (len(summary["figure2_indices"]), 3)
    assert set(fig2["index"]) <= set(margins["index"]) and list(fig2["index"]) == summary["figure2_indices"]
    assert np.array_equal(fig2["pred"][:, 0], margins["clean_pred"][fig2["index"] - OFFSET])
    assert data.calls[0][0]["dataset"] == DEFAULTS["data"]["dataset"]


def test_margin_on_test_split_with_data_root_override(data, checkpoint, tmp_path):
    out = tmp_path / "m"
    assert (
        main(
            [
                "analyse",
                "margin",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--split",
                "test",
                "--data-root",
                "/elsewhere",
                "--mu-max",
                "5",
                *FAST,
                *COARSE,
            ]
        )
        == 0
    )
    assert len(np.load(out / "margins.npz")["mu"]) == 12 and data.calls[0][0]["root"] == "/elsewhere"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "train"], "no un-augmented training set"),
        (["--eps", "8"], "--eps '8' = 8 is outside"),
        (["--n", "0"], "--n must be at least 1"),
        (["--tol", "0"], "must be > 0"),
    ],
)
def test_margin_bad_input_writes_nothing(data, checkpoint, tmp_path, capsys, extra, message):
    data.state["train"] = False
    out = tmp_path / "margin"
    assert main(["analyse", "margin", "--checkpoint", str(checkpoint), "--out", str(out), *FAST, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_missing_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "margin"
    assert main(["analyse", "margin", "--checkpoint", str(tmp_path / "no.pt"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_vulnerability_of_the_test_set(data, checkpoint, tmp_path, capsys):
    out = tmp_path / "av" / "test_av.json"
    assert (
        main(
            [
                "analyse",
                "vulnerability",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--n-examples",
                "5",
                "--device",
                "cpu",
                "--batch-size",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads(out.read_text())
    rows = np.genfromtxt(tmp_path / "av" / "test_av.per_sample.csv", delimiter=",", names=True)
    assert np.array_equal(rows["index"], OFFSET + np.arange(5)) and summary["n_samples"] == 5
    test = fake_bundle().test
    model = build_model("small_cnn", 10)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    with torch.no_grad():
        clean = torch.nn.functional.cross_entropy(model.eval()(test.x[:5]), test.y[:5], reduction="none")
    assert np.array_equal(rows["label"], test.y[:5].numpy())
    assert np.allclose(rows["clean_loss"], clean.numpy(), atol=1e-6)
    assert np.allclose(rows["av"], rows["adv_loss"] - rows["clean_loss"], atol=1e-12)
    assert summary["av_statistics"]["av_sd"] == pytest.approx(np.std(rows["av"]))
    assert (summary["attack"]["eps"], summary["attack"]["steps"]) == (8 / 255, DEFAULTS["attack"]["steps"])
    assert data.calls[0][0]["selection"] == "test" and "SD" in capsys.readouterr().out


def test_vulnerability_of_the_training_set_uses_the_runs_split(data, checkpoint, tmp_path):
    out = tmp_path / "train_av.json"
    assert (
        main(
            [
                "analyse",
                "vulnerability",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--split",
                "train",
                "--n-examples",
                "3",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    rows = np.genfromtxt(tmp_path / "train_av.per_sample.csv", delimiter=",", names=True)
    assert np.array_equal(rows["label"], fake_bundle().train.y[:3].numpy())
    assert json.loads(out.read_text())["split"] == "train"
    assert data.calls[0][0]["selection"] == DEFAULTS["data"]["selection"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "valid"], "unknown split 'valid'; give one of train, test"),
        (["--n-examples", "13"], "13 samples asked for, but the test set has 12"),
        (["--out", "{tmp}/av.csv"], "must be a .json file"),
        (["--checkpoint", "{tmp}/none.pt"], "does not exist"),
    ],
)
def test_vulnerability_bad_input_writes_nothing(data, checkpoint, tmp_path, capsys, extra, message):
    before = set(tmp_path.rglob("*"))
    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "av.json"), "--device", "cpu", *extra]
    assert main(["analyse", "vulnerability", *[a.format(tmp=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before


def write_log(path, indices, av_rows, extra=None):
    writer = AVLogWriter(path, np.asarray(indices), {"config": {}, "seed": 0})
    for epoch, av in enumerate(av_rows):
        values = {
            name: np.zeros(len(indices), np.float32) if kind == "f4" else np.ones(len(indices), np.int8)
            for name, kind in PER_SAMPLE.items()
        }
        values["av"] = np.asarray(av, np.float32)
        writer.write_epoch(epoch, values, False)
    writer.close()


def test_landscape_picks_most_and_least_vulnerable_from_the_log(data, checkpoint, tmp_path):
    av = np.linspace(-1, 2, 20)
    av[[4, 9]] = [5.0, -3.0]
    write_log(tmp_path / "av_log.h5", OFFSET + np.arange(20), [np.zeros(20), av])
    out = tmp_path / "land"
    assert (
        main(
            [
                "analyse",
                "landscape",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--log",
                str(tmp_path / "av_log.h5"),
                "--pick",
                "1",
                "--steps",
                "3",
                *FAST,
            ]
        )
        == 0
    )
    info = json.loads((out / "landscape.json").read_text())
    assert info["indices"] == [OFFSET + 4, OFFSET + 9]
    fig3 = np.load(out / "fig3.npz")
    assert fig3["loss"].shape == (2, 3, 3) and list(fig3["index"]) == info["indices"]
    assert np.allclose(fig3["loss"][:, 1, 1], info["clean_loss"])


def test_landscape_rejects_unknown_indices(data, checkpoint, tmp_path, capsys):
    out = tmp_path / "land"
    assert (
        main(
            [
                "analyse",
                "landscape",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--indices",
                "3",
                "--steps",
                "3",
                *FAST,
            ]
        )
        == 2
    )
    assert "dataset indices [3] are not in the 20 samples" in capsys.readouterr().err and not out.exists()


def make_run(root, eta, av, seed):
    run = root / f"eta{eta}"
    run.mkdir(parents=True)
    cfg = copy.deepcopy(DEFAULTS) | {"method": {"name": "at_eq9", "eta": [eta]}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    write_log(run / "av_log.h5", np.arange(len(av)), [np.random.default_rng(seed).normal(size=len(av)), av])
    (root / f"eval{eta}.json").write_text(
        json.dumps({"clean_accuracy": 0.8 - 0.01 * eta, "robust_accuracy": 0.4 + 0.01 * eta})
    )
    return run, root / f"eval{eta}.json"


def test_av_figure_eta_sweep_table_and_index(tmp_path, capsys):
    rng = np.random.default_rng(0)
    runs = [
        make_run(tmp_path, eta, rng.normal(scale=1 / (1 + eta), size=30), i) for i, eta in enumerate([1.0, 0.0, 0.5])
    ]
    assert (
        main(["analyse", "av-figure", "--log", str(runs[0][0] / "av_log.h5"), "--out", str(tmp_path / "fig1a.png")])
        == 0
    )
    fig1a = np.genfromtxt(tmp_path / "fig1a.csv", delimiter=",", names=True)
    assert np.array_equal(fig1a["epoch"], [0, 1])
    test_av = []
    for i, (run, _) in enumerate(runs):  # `analyse vulnerability` summaries of the test set
        test_av.append(run / "test_av.json")
        test_av[-1].write_text(json.dumps({"av_statistics": {"av_sd": 0.25 * (i + 1)}, "attack": {"steps": 10}}))
    assert (
        main(
            [
                "analyse",
                "eta-sweep",
                "--runs",
                *[str(r) for r, _ in runs],
                "--evals",
                *[str(e) for _, e in runs],
                "--test-av",
                *map(str, test_av),
                "--out",
                str(tmp_path / "fig4.png"),
            ]
        )
        == 0
    )
    fig4 = np.genfromtxt(tmp_path / "fig4.csv", delimiter=",", names=True)
    assert np.array_equal(fig4["eta"], [0.0, 0.5, 1.0]) and np.allclose(fig4["accuracy"], [0.8, 0.795, 0.79])
    assert np.array_equal(fig4["test_av_sd"], [0.5, 0.75, 0.25])
    from iseat.training.avlog import AVLog

    with AVLog(runs[1][0] / "av_log.h5") as log:  # eta = 0
        assert fig4["av_sd"][0] == pytest.approx(np.std(log.values("av", 1).astype(np.float64)))
    assert (
        main(
            [
                "analyse",
                "table1",
                "--entry",
                "AT",
                str(runs[1][0] / "av_log.h5"),
                str(runs[1][1]),
                "--entry",
                "Eq. 9",
                str(runs[0][0] / "av_log.h5"),
                str(runs[0][1]),
                "--out",
                str(tmp_path / "t1.md"),
            ]
        )
        == 0
    )
    assert "| Eq. 9 |" in (tmp_path / "t1.md").read_text()
    (tmp_path / "fig1a_at.png").write_bytes((tmp_path / "fig1a.png").read_bytes())
    assert (
        main(
            [
                "analyse",
                "index",
                "--out",
                str(tmp_path / "idx" / "index.md"),
                str(tmp_path / "fig1a.png"),
                str(tmp_path / "fig1a_at.png"),
                str(tmp_path / "fig4.png"),
                str(tmp_path / "t1.md"),
            ]
        )
        == 0
    )
    index = (tmp_path / "idx" / "index.md").read_text()
    assert "[Fig. 1a: AV statistics of the training set per epoch](../fig1a.png)" in index and "(../t1.md)" in index
    assert "[Fig. 1a: AV statistics of the training set per epoch](../fig1a_at.png)" in index


@pytest.mark.parametrize(
    "argv, message",
    [
        (["av-figure", "--log", "{log}", "--out", "{tmp}/f.jpeg"], "must end in one of"),
        (["av-figure", "--log", "{tmp}/none.h5", "--out", "{tmp}/f.png"], "does not exist"),
        (
            ["eta-sweep", "--runs", "{tmp}/a", "--evals", "{tmp}/x.json", "{tmp}/y.json", "--out", "{tmp}/f.png"],
            "--runs gives 1 runs but --evals 2 files",
        ),
        (["table1", "--entry", "AT", "{log}", "{tmp}/none.json", "--out", "{tmp}/t.md"], "not a readable JSON"),
        (["table1", "--entry", "AT", "{log}", "{tmp}/none.json", "--out", "{tmp}/t.txt"], "Markdown"),
        (["index", "--out", "{tmp}/i.md", "{tmp}/none.png"], "not found"),
    ],
)
def test_figure_commands_bad_input(tmp_path, capsys, argv, message):
    log = tmp_path / "av_log.h5"
    write_log(log, np.arange(5), [np.zeros(5)])
    before = set(tmp_path.iterdir())
    argv = [a.format(tmp=tmp_path, log=log) for a in argv]
    assert main(["analyse", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.iterdir()) == before


def test_margin_and_landscape_on_the_real_digits_bundle(checkpoint, tmp_path):
    """The real `iseat.data` (offline digits set): training split by dataset index."""
    from iseat.data import load_data

    bundle = load_data(DEFAULTS["data"], DEFAULTS["seed"])
    out = tmp_path / "margin"
    assert (
        main(
            [
                "analyse",
                "margin",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--n",
                "6",
                "--mu-max",
                "10",
                *FAST,
                *COARSE,
            ]
        )
        == 0
    )
    margins = np.load(out / "margins.npz")
    assert np.array_equal(margins["index"], bundle.train.indices[:6])
    assert np.array_equal(margins["label"], bundle.train.labels[bundle.train.rows[:6]])
    wanted = [int(bundle.train.indices[4]), int(bundle.train.indices[0])]
    assert (
        main(
            [
                "analyse",
                "landscape",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "land"),
                "--indices",
                *map(str, wanted),
                "--steps",
                "2",
                *FAST,
            ]
        )
        == 0
    )
    assert list(np.load(tmp_path / "land" / "fig3.npz")["index"]) == wanted
