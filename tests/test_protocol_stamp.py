"""The protocol stamp of aa.json: what it records on a toy evaluation (checksums written out with hashlib),
and the refusal of seeds, tables and significance to put side by side results whose stamps disagree."""

import hashlib
import json
from importlib import metadata

import numpy as np
import pytest
import torch
from data_fakes import self_labelled_linear

from iseat.cli import main
from iseat.evaluation import EvaluationSpec, PGDSettings, evaluate_model, protocol_stamp, validate
from iseat.results import ResultsError
from iseat.results import seeds as seed_stats

pytestmark = pytest.mark.usefixtures("one_thread")

INDICES = list(range(50, 58))


@pytest.fixture(scope="module")
def problem():
    """A linear classifier on 8 random 3x4x4 images with test indices 50..57, labelled by itself."""
    return self_labelled_linear(8, 4, seed=0, first_index=INDICES[0])


def spec(eps=8 / 255):
    return EvaluationSpec(attacks=("pgd",), eps=eps, pgd=PGDSettings(steps=2), batch_size=4, chunk_size=3)


def evaluate(problem, out, eps=8 / 255, model=None):
    return evaluate_model(
        model or problem[0], problem[1], out, spec(eps), num_classes=10, progress=False, data={"dataset": "toy"}
    )


def test_the_stamp_records_the_protocol(problem, tmp_path):
    report = evaluate(problem, tmp_path / "aa.json")
    stamp = report["stamp"]
    x, y = problem[1].x, problem[1].y
    chunk = lambda a, b: hashlib.sha256(
        x[a:b].numpy().astype(np.float32).tobytes() + y[a:b].numpy().astype(np.int64).tobytes()
    ).hexdigest()
    data = hashlib.sha256("\n".join(chunk(a, min(a + 3, 8)) for a in (0, 3, 6)).encode()).hexdigest()
    assert stamp["data"] == {"dataset": "toy", "sha256": data}
    assert stamp["test_indices"] == {"count": 8, "sha256": hashlib.sha256(b"50,51,52,53,54,55,56,57").hexdigest()}
    assert stamp["threat_model"] == {"norm": "Linf", "eps": 8 / 255} and stamp["seed"] == 0
    assert stamp["attacks"] == {"pgd": {"steps": 2, "step_size": 2 / 255, "restarts": 1, "random_start": False}}
    assert stamp["model_mode"] == "eval" and stamp["checkpoint"] is None
    assert set(stamp["versions"]) == {"iseat", "torch", "pyautoattack", "numpy"}
    assert stamp["versions"]["torch"] == metadata.version("torch")
    validate(report)


class TrainsItself(torch.nn.Module):
    """A model that puts itself in train mode at its first forward pass (BatchNorm would then move)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        self.train()
        return self.inner(x)


def test_the_stamp_records_a_model_in_train_mode(problem, tmp_path):
    report = evaluate(problem, tmp_path / "aa.json", model=TrainsItself(problem[0]))
    assert report["stamp"]["model_mode"] == "eval and train"


def test_difference_names_the_first_disagreeing_protocol_field(problem, tmp_path):
    a = evaluate(problem, tmp_path / "a.json")["stamp"]
    b = evaluate(problem, tmp_path / "b.json", eps=0.031)["stamp"]
    assert protocol_stamp.difference(a, b) == f"threat_model.eps: {8 / 255!r} vs 0.031"
    ckpt = {"file": "best.pt", "sha256": "1" * 64, "epoch": 3, "selected_by": "best", "selection_split": "validation"}
    one = {**a, "checkpoint": ckpt}
    other_model = {**a, "checkpoint": {**ckpt, "file": "swa_best.pt", "sha256": "0" * 64, "epoch": 9}}
    assert protocol_stamp.difference(one, other_model) is None  # the model's identity is not the protocol
    assert (
        protocol_stamp.difference(one, {**a, "checkpoint": {**ckpt, "selection_split": "test"}})
        == "checkpoint.selection_split: 'validation' vs 'test'"
    )
    assert protocol_stamp.difference(one, {**one, "model_mode": "train"}) == "model_mode: 'eval' vs 'train'"
    other_data = {**a, "data": {"dataset": "svhn", "sha256": "2" * 64}}
    assert protocol_stamp.difference(a, other_data).startswith("data.dataset")
    assert protocol_stamp.difference(a, other_data, same_dataset=False) is None


def seed_run(problem, root, method, eps):
    """One seed's PGD evaluation (pgd.json, as the workflow names it) and its aggregate."""
    out = root / "toy" / method / "seed0" / "pgd.json"
    evaluate(problem, out, eps)
    (root / "toy" / method / "pgd.json").write_text(json.dumps(seed_stats.aggregate_seeds([out])))
    return ["--entry", "toy", method, "-", str(root / "toy" / method)]


def test_tables_refuse_results_evaluated_at_different_eps(problem, tmp_path, capsys):
    entries = seed_run(problem, tmp_path, "at", 8 / 255) + seed_run(problem, tmp_path, "iseat", 0.031)
    rc = main(["aggregate", "tables", "--out-dir", str(tmp_path / "tables"), *entries])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "pgd results: toy/at and toy/iseat were evaluated under different protocols (threat_model.eps" in err, err
    assert not (tmp_path / "tables").exists()
    # the same eps: the tables are written
    entries = seed_run(problem, tmp_path, "iseat", 8 / 255) + entries[:5]
    assert main(["aggregate", "tables", "--out-dir", str(tmp_path / "tables"), *entries]) == 0
    assert "toy / iseat" in (tmp_path / "tables" / "all_results.md").read_text()


def test_seeds_of_one_result_must_share_the_protocol(problem, tmp_path):
    a, b = tmp_path / "seed0" / "aa.json", tmp_path / "seed1" / "aa.json"
    evaluate(problem, a)
    evaluate(problem, b, eps=4 / 255)
    with pytest.raises(ResultsError, match="different protocols \\(threat_model.eps"):
        seed_stats.aggregate_seeds([a, b])


def test_a_report_before_the_stamp_is_refused_with_the_fix(problem, tmp_path):
    path = tmp_path / "seed0" / "aa.json"
    report = evaluate(problem, path)
    report.pop("stamp")
    path.write_text(json.dumps({**report, "format": "iseat-robustness-v1"}))
    with pytest.raises(ResultsError, match=f"{path} was written before .* rerun its evaluation"):
        seed_stats.aggregate_seeds([path])
