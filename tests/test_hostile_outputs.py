"""Bad inputs to the commands after training (aggregate, plan, export, fetch, evaluate) through the command
line (a real process where the failure involves the process: its file-size limit, its imports; else the
same entry point in this process): exit status 2, one stderr line naming the file and key, no traceback,
and nothing left behind (no output, no empty folder, no empty lock file)."""

import json
import resource
import socket
from pathlib import Path

import numpy as np
import pytest
from test_hostile_inputs import TINY, assert_one_line_error, iseat

from iseat.methods.models import build_model
from iseat.results.seeds import aggregate_seeds
from iseat.training.checkpoint import architecture_of, model_checkpoint, save_atomic
from iseat.training.config import load_config

N = 20  # test images per evaluation


def write_evaluation(folder: Path, correct) -> Path:
    """One seed's aa.json naming the first N test images, and its per-sample CSV."""
    folder.mkdir(parents=True)
    rows = ["index,label,clean_correct,pgd_correct,robust_correct,broken_by"]
    rows += [f"{i},0,1,1,{int(c)}," for i, c in enumerate(correct)]
    (folder / "aa.per_sample.csv").write_text("\n".join(rows) + "\n")
    (folder / "aa.json").write_text(
        json.dumps(
            {
                "protocol": "autoattack-standard",
                "label": "AutoAttack (standard)",
                "clean_accuracy": 1.0,
                "robust_accuracy": float(np.mean(correct)),
                "n_examples": N,
                "per_sample": {"file": "aa.per_sample.csv"},
            }
        )
    )
    return folder / "aa.json"


def cut_rows(csv: Path, keep: int):
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[: keep + 1]))


def duplicate_row(csv: Path):
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-1] + [lines[1]]))


@pytest.mark.parametrize(
    "damage,needles",
    [(lambda p: cut_rows(p, 10), ["10 rows", "20 test images"]), (duplicate_row, ["19 distinct", "20 test images"])],
    ids=["cut to 10 of 20 rows", "a row given twice"],
)
def test_per_sample_results_must_cover_the_evaluated_images(tmp_path, damage, needles):
    entries = []
    for method, n_right in (("at", 8), ("iseat", 14)):
        seed = write_evaluation(tmp_path / method / "seed0", np.arange(N) < n_right)
        (tmp_path / method / "aa.json").write_text(json.dumps(aggregate_seeds([seed])))
        entries += ["--entry", "cifar10", method, "cifar10", tmp_path / method]
    damage(tmp_path / "iseat" / "seed0" / "aa.per_sample.csv")
    proc = iseat("aggregate", "tables", "--out-dir", tmp_path / "tables", *entries)
    assert_one_line_error(proc, "iseat/seed0/aa.per_sample.csv", "iseat/seed0/aa.json", *needles)
    assert not (tmp_path / "tables").exists()


def test_a_winner_that_is_not_one_is_refused(tmp_path, in_process):
    winner = tmp_path / "winner.json"
    winner.write_text("{}")
    proc = in_process("aggregate", "tuned", "--winner", winner, "--keys", "lam", "--out", tmp_path / "tuned.yaml")
    assert_one_line_error(proc, str(winner), "grid winner")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["winner.json"]


def test_a_grid_point_without_a_numeric_accuracy_is_refused(tmp_path, in_process):
    run = tmp_path / "p0"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"best_selection_pgd_acc": "high", "best_selection_clean_acc": 0.8}))
    proc = in_process("aggregate", "grid", "--out", tmp_path / "winner.json", "--point", "0.1", "0.005", run)
    assert_one_line_error(proc, "summary.json", "best_selection_pgd_acc", "'high'")
    assert not (tmp_path / "winner.json").exists()


def step_section(**change):
    section = {"batch_size": 128, "rows": [{"method": "AT", "path": "fast", "median_s": 0.1}]}
    section.update(change)
    return {"sections": {"step/small_cnn/fp32": section}}


GPU_CHECKS = {
    "a list": ([], ["(top level)", "object"]),
    "no batch_size": ({"sections": {"step/small_cnn/fp32": {"rows": []}}}, ["batch_size", "required"]),
    "batch_size 0": (step_section(batch_size=0), ["batch_size", "minimum"]),
    "an unknown section": ({"sections": {**step_section()["sections"], "steps": {}}}, ["sections", "'steps'"]),
    "median_s a string": (
        step_section(rows=[{"method": "AT", "path": "fast", "median_s": "0.1"}]),
        ["rows/0/median_s", "number"],
    ),
    "a negative step time": (
        step_section(rows=[{"method": "AT", "path": "fast", "median_s": -1}]),
        ["rows/0/median_s"],
    ),
}


@pytest.mark.parametrize("report,needles", GPU_CHECKS.values(), ids=GPU_CHECKS.keys())
def test_gpu_check_reports_of_the_wrong_shape_are_refused(tmp_path, in_process, report, needles):
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(report))
    proc = in_process("plan", "--gpu-check", path, "--json", tmp_path / "plan.json")
    assert_one_line_error(proc, "--gpu-check", str(path), *needles)
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize(
    "flag,value",
    [("--step-time", "small_cnn=-1"), ("--step-time", "small_cnn:AT=nan"), ("--aa-s-per-image", "small_cnn=-0.5")],
)
def test_negative_costs_are_refused(in_process, flag, value):
    assert_one_line_error(in_process("plan", flag, value, "--step-time", "small_cnn=0.1"), flag, value)


def test_export_refuses_an_out_file_and_an_evaluation_path(tmp_path, in_process):
    run, other = tmp_path / "run", tmp_path / "other"
    run.mkdir()
    other.mkdir()
    (other / "aa.json").write_text("{}")
    blocker = tmp_path / "submission"
    blocker.write_text("keep me")
    assert_one_line_error(in_process("export", "robustbench", run, "--out", blocker), str(blocker), "is a file")
    proc = in_process("export", "robustbench", run, "--evaluation", "../other/aa.json")
    assert_one_line_error(proc, "../other/aa.json", "file name in the run folder")
    assert blocker.read_text() == "keep me" and list(run.iterdir()) == []


@pytest.mark.parametrize("stage", ["garbage archive", "folder without the files"])
def test_a_failed_fetch_leaves_no_empty_folder(tmp_path, stage):
    source = tmp_path / "staged"
    if stage == "garbage archive":
        source = tmp_path / "cifar-10-python.tar.gz"
        source.write_bytes(b"not an archive" * 100)
    else:
        source.mkdir()
    root = tmp_path / "data"
    assert_one_line_error(iseat("fetch", "cifar10", "--root", root, "--from", source), str(source))
    assert not root.exists()


def test_a_failed_evaluation_leaves_no_lock_file(tmp_path):
    """A file-size limit (ulimit -f) one byte below the shortest holder record this host can write cuts the
    lock's record short, as a full disk does."""
    cfg = load_config(None, TINY)
    architecture = architecture_of(cfg, 10)
    save_atomic(model_checkpoint(build_model(**architecture), architecture, 0, {}, cfg), tmp_path / "best.pt")
    out = tmp_path / "eval" / "aa.json"
    out.parent.mkdir()

    limit = len(json.dumps({"host": socket.gethostname(), "pid": 1, "since": "2026-01-01T00:00:00Z"})) - 1

    def no_writes():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = iseat(
        "evaluate",
        "--checkpoint",
        tmp_path / "best.pt",
        "--out",
        out,
        "--attack",
        "none",
        "--n-ex",
        8,
        "--no-progress",
        preexec_fn=no_writes,
    )
    assert_one_line_error(proc, ".aa.json.lock", "no space left")
    assert list(out.parent.iterdir()) == []


def test_a_run_folder_that_is_a_dangling_symlink_is_refused(tmp_path, in_process):
    """`--out` naming a symlink to nothing: one line naming it, and the link left as it was."""
    link = tmp_path / "run"
    link.symlink_to(tmp_path / "gone")
    proc = in_process("train", "--out", link, "--set", "data.dataset=digits", "training.epochs=1", *TINY)
    assert_one_line_error(proc, str(link), "symlink to nothing")
    assert link.is_symlink() and not (tmp_path / "gone").exists()
