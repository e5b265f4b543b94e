"""Sharded evaluation: K shard jobs on the evaluation's chunk boundaries, then one gather, give the per-sample
verdicts of an unsharded run with the same seed; a missing, damaged or foreign shard fails the gather naming it."""

import copy
import json

import pytest
import torch
from data_fakes import self_labelled_linear

from iseat.cli import main
from iseat.evaluation import (
    EvaluationError,
    EvaluationInputError,
    EvaluationSpec,
    PGDSettings,
    evaluate_model,
    per_sample_path,
)
from iseat.evaluation.shards import Shard
from iseat.methods.models import build_model
from iseat.training.checkpoint import architecture_of, model_checkpoint, save_atomic
from iseat.training.config import DEFAULTS

# AutoAttack and PGD with random starts: both draw random numbers, which must line up across shards
SPEC = EvaluationSpec(
    attacks=("autoattack", "pgd"), pgd=PGDSettings(steps=3, restarts=2, random_start=True), batch_size=4, chunk_size=3
)
PGD_ONLY = EvaluationSpec(attacks=("pgd",), pgd=SPEC.pgd, batch_size=4, chunk_size=3)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem():
    """A linear classifier on 10 random 3x4x4 images (4 chunks: 3, 3, 3, 1), labelled by itself."""
    return self_labelled_linear(10, 4, seed=1, first_index=200)


def run(problem, out, spec=SPEC, **kwargs):
    return evaluate_model(problem[0], problem[1], out, spec, num_classes=10, progress=False, **kwargs)


@pytest.fixture(scope="module")
def shards(problem, tmp_path_factory):
    """Shards 1/3 (chunks 0, 1), 2/3 (chunk 2) and 3/3 (chunk 3) in their shard files."""
    folder = tmp_path_factory.mktemp("shards")
    paths = [folder / f"{i}.json" for i in range(3)]
    for i, path in enumerate(paths):
        run(problem, path, shard=Shard(i, 3))
    return paths


def comparable(report):
    drop = {"wall_time_s", "created", "resume", "provenance", "device"}
    out = {k: v for k, v in report.items() if k not in drop}
    for section in ("autoattack", "pgd"):
        out[section] = {k: v for k, v in report[section].items() if k != "wall_time_s"}
    return out


def test_shards_split_the_chunks_into_contiguous_runs():
    assert [list(Shard(i, 3).chunks(4)) for i in range(3)] == [[0, 1], [2], [3]]
    assert [list(Shard(i, 4).chunks(20)) for i in range(4)] == [list(range(5 * i, 5 * i + 5)) for i in range(4)]
    assert Shard.parse("2/4") == Shard(1, 4) and str(Shard(1, 4)) == "2/4"
    for bad in ("0/4", "5/4", "x"):
        with pytest.raises(EvaluationInputError, match="shard"):
            Shard.parse(bad)
    with pytest.raises(EvaluationInputError, match="more shards than chunks"):
        Shard(0, 5).chunks(4)


def test_gathered_shards_equal_an_unsharded_run(problem, shards, tmp_path):
    whole = run(problem, tmp_path / "whole" / "aa.json")
    gathered = run(problem, tmp_path / "gathered" / "aa.json", gather_from=shards)
    assert (
        per_sample_path(tmp_path / "gathered" / "aa.json").read_text()
        == per_sample_path(tmp_path / "whole" / "aa.json").read_text()
    )
    assert comparable(gathered) == comparable(whole)
    assert gathered["resume"] == {"chunk_size": 3, "chunks": 4, "runs": 3}
    assert json.loads(shards[0].read_text())["chunks"].keys() == {"0", "1"}


def test_a_shard_resumes_like_a_whole_evaluation(problem, tmp_path, monkeypatch):
    from iseat.evaluation import chunks as chunks_module

    run(problem, tmp_path / "uninterrupted.json", PGD_ONLY, shard=Shard(0, 3))
    out = tmp_path / "0.json"
    calls, original = [], chunks_module.evaluate_chunk

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed in its second chunk
        return original(*args, **kwargs)

    monkeypatch.setattr(chunks_module, "evaluate_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        run(problem, out, PGD_ONLY, shard=Shard(0, 3))
    monkeypatch.setattr(chunks_module, "evaluate_chunk", original)
    run(problem, out, PGD_ONLY, shard=Shard(0, 3))
    resumed, first = (json.loads(p.read_text()) for p in (out, tmp_path / "uninterrupted.json"))
    strip = lambda state: {
        k: {key: v for key, v in c.items() if key != "wall_time_s"} for k, c in state["chunks"].items()
    }
    assert strip(resumed) == strip(first) and resumed["runs"] == 2 and len(calls) == 2


def damaged(paths):
    paths[1].write_text(paths[1].read_text()[:40])


def other_settings(paths, problem):
    run(problem, paths[1], PGD_ONLY, shard=Shard(1, 3))


def swapped(paths):
    text = [p.read_text() for p in paths]
    paths[1].write_text(text[2])
    paths[2].write_text(text[1])


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "shard 2/3 (.*1.json) is missing"),
        ("damaged", "shard 2/3 (.*1.json) is damaged; delete it and run that shard again"),
        ("other settings", "shard 2/3 (.*1.json) was made with another attacks"),
        ("swapped", "shard 2/3 (.*1.json) is not shard 2/3"),
    ],
)
def test_a_bad_shard_fails_the_gather_naming_it(problem, shards, tmp_path, case, message):
    copies = [tmp_path / "shards" / p.name for p in shards]
    copies[0].parent.mkdir()
    for source, target in zip(shards, copies):
        target.write_text(source.read_text())
    {
        "missing": lambda: copies[1].unlink(),
        "damaged": lambda: damaged(copies),
        "other settings": lambda: other_settings(copies, problem),
        "swapped": lambda: swapped(copies),
    }[case]()
    out = tmp_path / "gathered" / "aa.json"
    with pytest.raises(EvaluationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(problem, out, gather_from=copies)
    assert not out.exists() and not per_sample_path(out).exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained SmallCNN checkpoint of a digits run."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"]["dataset"], cfg["model"]["arch"] = "digits", "small_cnn"
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "best.pt"
    save_atomic(
        model_checkpoint(build_model(**architecture_of(cfg, 10)).eval(), architecture_of(cfg, 10), 1, {}, cfg), path
    )
    return path


def test_the_command_line_shards_and_gathers(checkpoint, tmp_path, capsys):
    """The workflow's commands: K shard jobs, then the gather (PGD with random restarts: random draws)."""
    common = [
        "--checkpoint",
        checkpoint,
        "--n-ex",
        25,
        "--chunk-size",
        10,
        "--attack",
        "pgd",
        "--pgd-steps",
        2,
        "--pgd-random-start",
        "--pgd-restarts",
        2,
        "--eps",
        0.1,
        "--no-progress",
        "--device",
        "cpu",
    ]
    cli = lambda *args: (main(["evaluate", *map(str, common), *map(str, args)]), capsys.readouterr())
    shards = [tmp_path / "pgd.shards" / f"{i}.json" for i in (1, 2)]
    assert [cli("--out", path, "--shard", f"{i}/2")[0] for i, path in enumerate(shards, 1)] == [0, 0]
    rc, captured = cli("--out", tmp_path / "pgd.json", "--gather", *shards)
    assert rc == 0 and "25 samples" in captured.out
    assert cli("--out", tmp_path / "whole" / "pgd.json")[0] == 0
    assert (tmp_path / "pgd.per_sample.csv").read_text() == (tmp_path / "whole" / "pgd.per_sample.csv").read_text()
    shards[1].unlink()
    rc, captured = cli("--out", tmp_path / "again" / "pgd.json", "--gather", *shards)
    assert rc == 2 and captured.err.count("\n") == 1 and "shard 2/2" in captured.err and "is missing" in captured.err
    assert not (tmp_path / "again" / "pgd.json").exists()
    rc, captured = cli("--out", tmp_path / "x.json", "--shard", "3/2")
    assert rc == 2 and "--shard 3/2" in captured.err, captured.err


def test_a_shard_and_a_gather_exclude_each_other(problem, tmp_path):
    with pytest.raises(EvaluationInputError, match="exclude each other"):
        run(problem, tmp_path / "x.json", shard=Shard(0, 3), gather_from=[tmp_path / "0.json"])
    assert not list(tmp_path.iterdir())
