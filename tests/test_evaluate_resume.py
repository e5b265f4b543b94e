"""A killed evaluation started again continues where it stopped and gives the numbers of an uninterrupted run."""

import json

import pytest
import torch
from data_fakes import self_labelled_linear

from iseat.evaluation import EvaluationError, EvaluationSpec, PGDSettings, evaluate_model, partial_path, per_sample_path
from iseat.evaluation import chunks as chunks_module

SPEC = EvaluationSpec(
    attacks=("autoattack", "pgd"), pgd=PGDSettings(steps=5, restarts=2, random_start=True), batch_size=8, chunk_size=16
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem():
    """A linear classifier on 40 random 3x8x8 images, labelled by itself so that every point starts correct."""
    return self_labelled_linear(40, 8, seed=0, first_index=100)


@pytest.fixture(scope="module")
def uninterrupted(problem, tmp_path_factory):
    model, data = problem
    out = tmp_path_factory.mktemp("whole") / "aa.json"
    return out, evaluate_model(model, data, out, SPEC, num_classes=10, progress=False)


def interrupt_after(monkeypatch, n_chunks):
    """Make the run die (like a kill) when chunk number n_chunks + 1 starts; returns the call log."""
    calls, original = [], chunks_module.evaluate_chunk

    def dying(*args, **kwargs):
        calls.append(len(calls))
        if len(calls) > n_chunks:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(chunks_module, "evaluate_chunk", dying)
    return calls


def counting(monkeypatch):
    calls, original = [], chunks_module.evaluate_chunk
    monkeypatch.setattr(chunks_module, "evaluate_chunk", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def comparable(report):
    drop = {"wall_time_s", "created", "resume", "provenance", "device"}
    out = {k: v for k, v in report.items() if k not in drop}
    out["autoattack"] = {k: v for k, v in report["autoattack"].items() if k != "wall_time_s"}
    out["pgd"] = {k: v for k, v in report["pgd"].items() if k != "wall_time_s"}
    return out


def test_killed_run_resumes_without_redoing_finished_chunks(problem, uninterrupted, tmp_path, monkeypatch):
    model, data = problem
    out = tmp_path / "aa.json"
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(model, data, out, SPEC, num_classes=10, progress=False)
    assert not out.exists() and not per_sample_path(out).exists()
    saved = json.loads(partial_path(out).read_text())
    assert list(saved["chunks"]) == ["0"] and saved["chunks"]["0"]["index"] == list(range(100, 116))

    monkeypatch.undo()
    calls = counting(monkeypatch)
    report = evaluate_model(model, data, out, SPEC, num_classes=10, progress=False)
    assert len(calls) == 2, "only the two unfinished chunks are evaluated again"
    assert report["resume"] == {"chunk_size": 16, "chunks": 3, "runs": 2}
    assert not partial_path(out).exists()
    whole_out, whole = uninterrupted
    assert comparable(report) == comparable(whole)
    assert per_sample_path(out).read_text() == per_sample_path(whole_out).read_text()


def test_results_of_other_settings_are_not_reused(problem, tmp_path, monkeypatch):
    model, data = problem
    out = tmp_path / "aa.json"
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(model, data, out, SPEC, num_classes=10, progress=False)
    monkeypatch.undo()
    other_eps = EvaluationSpec(**{**SPEC.__dict__, "eps": 4 / 255})
    with pytest.raises(EvaluationError, match="another eps"):
        evaluate_model(model, data, out, other_eps, num_classes=10, progress=False)
    other_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10)).eval()
    with pytest.raises(EvaluationError, match="another model"):
        evaluate_model(other_model, data, out, SPEC, num_classes=10, progress=False)
    assert not out.exists()


def test_unreadable_partial_file_is_reported(problem, tmp_path):
    model, data = problem
    out = tmp_path / "aa.json"
    partial_path(out).write_text("{not json")
    with pytest.raises(EvaluationError, match="unreadable; delete"):
        evaluate_model(model, data, out, SPEC, num_classes=10, progress=False)


def test_too_many_samples_is_refused_before_writing(problem, tmp_path):
    model, data = problem
    spec = EvaluationSpec(attacks=("pgd",), n_ex=41)
    with pytest.raises(EvaluationError, match="more than the 40 test samples"):
        evaluate_model(model, data, tmp_path / "aa.json", spec, num_classes=10, progress=False)
    assert list(tmp_path.iterdir()) == []
