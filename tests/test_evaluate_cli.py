"""`iseat evaluate` end to end on a digits checkpoint, and one-line errors (nothing written) on bad input."""

import copy
import csv
import json
from pathlib import Path

import jsonschema
import pytest
import torch
import torch.nn.functional as F
from data_fakes import write_cifar100_folder

from iseat.cli import main
from iseat.data import load_data
from iseat.methods.models import build_model
from iseat.training.checkpoint import architecture_of, model_checkpoint, save_atomic, sha256_of
from iseat.training.config import DEFAULTS

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "src/iseat/schemas/aa.schema.json").read_text())


pytestmark = pytest.mark.usefixtures("one_thread")


def digits_config() -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"]["dataset"], cfg["model"]["arch"] = "digits", "small_cnn"
    return cfg


def trained_small_cnn(cfg: dict, steps: int = 40):
    """A SmallCNN after a few SGD steps on digits: most test points right, none robust at eps 0.2."""
    torch.manual_seed(0)
    model = build_model(**architecture_of(cfg, 10))
    train = load_data(cfg["data"], 0).train
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y, _ = train.batch(torch.randint(len(train), (64,), generator=generator).numpy())
        loss = F.cross_entropy(model(x.contiguous()), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = digits_config()
    path = tmp_path_factory.mktemp("run") / "best.pt"
    save_atomic(model_checkpoint(trained_small_cnn(cfg), architecture_of(cfg, 10), 7, {}, cfg), path)
    return path, cfg


def evaluate(capsys, *args):
    rc = main(["evaluate", "--no-progress", "--device", "cpu", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_end_to_end_autoattack_and_pgd(checkpoint, tmp_path, capsys):
    path, cfg = checkpoint
    out = tmp_path / "results" / "aa.json"
    rc, stdout, _ = evaluate(
        capsys,
        "--checkpoint",
        path,
        "--out",
        out,
        "--n-ex",
        24,
        "--chunk-size",
        10,
        "--batch-size",
        16,
        "--eps",
        0.2,
        "--pgd-steps",
        3,
    )
    assert rc == 0 and stdout.count("\n") == 1 and "AutoAttack (standard)" in stdout
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["checkpoint"]["sha256"] == sha256_of(path) and report["checkpoint"]["epoch"] == 7
    assert report["training_config"] == cfg
    assert report["data"]["dataset"] == "digits" and report["data"]["test_set_size"] == 300
    assert report["n_examples"] == 24 and report["resume"]["chunks"] == 3
    assert report["n_clean_correct"] > 0, "the fixture model should get some digits right"
    assert report["n_robust"] <= report["pgd"]["n_robust"] <= report["n_clean_correct"]
    assert report["autoattack"]["broken_by"]["apgd-ce"] > 0
    with open(out.with_name("aa.per_sample.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(24))
    assert sum(int(r["robust_correct"]) for r in rows) == report["n_robust"]


def test_pgd_only_mode_for_the_analysis(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    out = tmp_path / "pgd50.json"
    rc, stdout, _ = evaluate(
        capsys, "--checkpoint", path, "--out", out, "--attack", "pgd", "--pgd-steps", 50, "--n-ex", 6
    )
    assert rc == 0 and "PGD-50" in stdout
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["autoattack"] is None and report["protocol"] == "pgd" and report["standard"] is False
    assert report["label"] == "PGD-50" and report["robust_accuracy"] == report["pgd"]["robust_accuracy"]
    assert report["pgd"]["steps"] == 50
    with open(out.with_name("pgd50.per_sample.csv")) as f:
        rows = list(csv.DictReader(f))
    assert {r["robust_correct"] for r in rows} == {""} and {r["broken_by"] for r in rows} == {""}


def test_paper_protocol_is_labelled_non_standard(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    out = tmp_path / "aa_paper.json"
    rc, stdout, _ = evaluate(
        capsys, "--checkpoint", path, "--out", out, "--attack", "autoattack-paper-protocol", "--n-ex", 6, "--eps", 0.2
    )
    assert rc == 0 and "non-standard" in stdout
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["protocol"] == "autoattack-torchattacks-protocol" and report["standard"] is False
    assert "non-standard" in report["label"] and report["autoattack"]["settings"]["apgd-ce"]["n_iter"] == 10
    assert report["pgd"] is None


def corrupt(tmp_path, checkpoint):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(checkpoint[0].read_bytes()[:1000])
    return ["--checkpoint", path]


def hundred_classes(tmp_path, checkpoint):
    cfg = digits_config()
    arch = architecture_of(cfg, 100)
    path = tmp_path / "c100.pt"
    save_atomic(model_checkpoint(build_model(**arch), arch, 1, {}, cfg), path)
    return ["--checkpoint", path]


def foreign_weights(tmp_path, checkpoint):
    cfg = digits_config()
    arch = architecture_of(cfg, 10)
    path = tmp_path / "foreign.pt"
    save_atomic(model_checkpoint(torch.nn.Linear(3, 10), arch, 1, {}, cfg), path)
    return ["--checkpoint", path]


def cifar100_data(tmp_path, checkpoint):
    write_cifar100_folder(tmp_path / "c100")
    return ["--checkpoint", checkpoint[0], "--dataset", "cifar100", "--data-root", tmp_path / "c100"]


def ckpt(tmp_path, checkpoint):
    return ["--checkpoint", checkpoint[0]]


BAD_INPUTS = {
    "missing checkpoint": (lambda t, c: ["--checkpoint", t / "nope.pt"], "does not exist"),
    "checkpoint folder": (lambda t, c: ["--checkpoint", t], "is a folder"),
    "corrupt checkpoint": (corrupt, "corrupt or not a torch file"),
    "other architecture": (lambda t, c: ckpt(t, c) + ["--expect-arch", "wide_resnet"], "not the expected wide_resnet"),
    "other number of classes": (hundred_classes, "has 100 classes but the data set has 10"),
    "weights of another model": (foreign_weights, "weights do not fit small_cnn"),
    "data set with other classes": (cifar100_data, "has 10 classes but the data set has 100"),
    "missing data": (
        lambda t, c: ckpt(t, c) + ["--dataset", "cifar10", "--data-root", t / "none"],
        "has no cifar-10-batches-py",
    ),
    "eps in pixels": (lambda t, c: ckpt(t, c) + ["--eps", "8"], "--eps '8' = 8 is outside the accepted range"),
    "eps not a number": (lambda t, c: ckpt(t, c) + ["--eps", "eight"], "not a number"),
    "step size in pixels": (lambda t, c: ckpt(t, c) + ["--pgd-step-size", "2"], "looks like pixels"),
    "two AutoAttack protocols": (
        lambda t, c: ckpt(t, c) + ["--attack", "autoattack", "autoattack-paper-protocol"],
        "choose one AutoAttack protocol",
    ),
    "unknown attack": (lambda t, c: ckpt(t, c) + ["--attack", "deepfool"], "'deepfool' is unknown"),
    "none with attacks": (lambda t, c: ckpt(t, c) + ["--attack", "none", "pgd"], "cannot be combined"),
    "too many samples": (lambda t, c: ckpt(t, c) + ["--n-ex", "301"], "more than the 300 test samples"),
    "restarts without random start": (lambda t, c: ckpt(t, c) + ["--pgd-restarts", "3"], "--pgd-random-start"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, checkpoint, tmp_path, capsys):
    make_args, message = BAD_INPUTS[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out_dir = tmp_path / "out"
    rc, stdout, stderr = evaluate(capsys, *make_args(inputs, checkpoint), "--out", out_dir / "aa.json")
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("iseat evaluate: error: "), stderr
    assert message in stderr
    assert not out_dir.exists()


def test_output_must_be_a_json_file(checkpoint, tmp_path, capsys):
    rc, _, stderr = evaluate(capsys, "--checkpoint", checkpoint[0], "--out", tmp_path / "aa.txt")
    assert rc == 2 and "must be a .json file" in stderr and list(tmp_path.iterdir()) == []


def test_cw_beside_pgd(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    out = tmp_path / "pgd.json"
    rc, stdout, _ = evaluate(
        capsys, "--checkpoint", path, "--out", out, "--attack", "cw", "pgd", "--pgd-steps", 5, "--n-ex", 6
    )
    assert rc == 0 and "PGD-5" in stdout and "CW-inf-5" in stdout
    report = json.loads(out.read_text())
    jsonschema.validate(report, SCHEMA)
    assert (
        report["protocol"] == "pgd" and report["cw"]["label"] == "CW-inf-5" and report["cw"]["settings"]["steps"] == 5
    )
    with open(out.with_name("pgd.per_sample.csv")) as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["cw_correct"]) for r in rows) == report["cw"]["n_robust"]
    assert all(int(r["cw_correct"]) <= int(r["clean_correct"]) for r in rows)
