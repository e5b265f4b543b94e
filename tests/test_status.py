"""`iseat status`: the state of every training of the workflow from its run folder and job log, on a results
folder with runs in each state, one of them being written by another process."""

import json
import subprocess
import sys
import time

import pytest

from iseat.workflow.jobs import Evaluation, Job
from iseat.workflow.status import format_status, workflow_status

EPOCHS = 4


def training(results, setting, run):
    return Job("train", setting, True, run=f"{results}/{setting}/{run}", train={"training": {"epochs": EPOCHS}})


def rows(n, seconds=10.0):
    return "".join(
        json.dumps({"epoch": e, "selection_pgd_acc": 0.5 + e / 100, "epoch_seconds": seconds}) + "\n" for e in range(n)
    )


def results_folder(tmp_path):
    results = tmp_path / "results"
    done = results / "toy" / "at" / "seed0"
    done.mkdir(parents=True)
    (done / "metrics.jsonl").write_text(rows(EPOCHS, 20.0))
    (done / "summary.json").write_text(json.dumps({"best_epoch": 2}))
    (done / "aa.json").write_text(json.dumps({"robust_accuracy": 0.4567}))
    running = results / "toy" / "iseat" / "seed0"
    running.mkdir(parents=True)
    (running / "metrics.jsonl").write_text(rows(1, 30.0))
    logs = results / "logs" / "train" / "toy"
    (logs / "trades").mkdir(parents=True)
    (logs / "trades" / "seed0.log").write_text(
        "=== attempt 1: iseat train on node1 at 2026-12-01T10:00:00Z\n"
        "iseat train: error: data.root: data/x does not exist; fetch it\n"
    )
    (logs / "mart").mkdir(parents=True)  # an earlier attempt failed; the last one is under way
    (logs / "mart" / "seed0.log").write_text(
        "=== attempt 1: iseat train\nslurmstepd: error: *** JOB 7 CANCELLED DUE "
        "TO TIME LIMIT ***\n=== attempt 2: iseat train\n"
    )
    jobs = [
        training(results, "toy", run) for run in ("at/seed0", "iseat/seed0", "trades/seed0", "mart/seed0", "fat/seed0")
    ]
    jobs.append(
        Job("evaluate", "toy", True, run=str(done), evaluation=Evaluation("autoattack"), output=f"{done}/aa.json")
    )
    return results, jobs


def test_each_state_with_its_details_and_the_time_to_the_end(tmp_path):
    results, jobs = results_folder(tmp_path)
    runs = {r.run: r for r in workflow_status(results, jobs)}
    assert {k: r.state for k, r in runs.items()} == {
        "at/seed0": "finished",
        "iseat/seed0": "running",
        "trades/seed0": "failed",
        "mart/seed0": "running",
        "fat/seed0": "not started",
    }
    assert runs["at/seed0"].best_epoch == 3 and runs["at/seed0"].aa == 0.4567 and runs["at/seed0"].evaluated
    assert not runs["iseat/seed0"].evaluated  # no AutoAttack job of it in this workflow
    assert runs["iseat/seed0"].epoch == 1 and runs["iseat/seed0"].remaining_seconds == 3 * 30.0
    assert runs["trades/seed0"].reason == "iseat train: error: data.root: data/x does not exist; fetch it"
    # not started: its setting's mean seconds per epoch (20 and 30) for all its epochs
    assert (
        runs["fat/seed0"].remaining_seconds == EPOCHS * 25.0 and runs["mart/seed0"].remaining_seconds == EPOCHS * 25.0
    )
    table = format_status(list(runs.values()), jobs=2)
    assert "| toy | at/seed0 | finished | best epoch 3, AA 45.7 % |" in table
    assert "| toy | iseat/seed0 | running | epoch 1 of 4, selection PGD 50.0 % | 0m30s | 1m30s |" in table
    assert "5 trainings: 1 finished, 2 running, 1 failed, 1 not started" in table
    assert (
        "time to the end of the trainings: 2m25s at 2 at once" in table
    )  # (90 + 100 + 100) s over 2 jobs; failed: none


WRITER = """
import json, sys, time
path = sys.argv[1]
for epoch in range(400):
    with open(path, "a") as f:  # appends, as a shared file system shows another machine's writes: a line at a time
        line = json.dumps({"epoch": epoch, "selection_pgd_acc": 0.5, "epoch_seconds": 1.0}) + "\\n"
        f.write(line[:10]); f.flush(); f.write(line[10:]); f.flush()
"""


def test_a_run_being_written_by_another_process_reads_consistently(tmp_path):
    results, jobs = results_folder(tmp_path)
    path = results / "toy" / "iseat" / "seed0" / "metrics.jsonl"
    path.write_text("")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    seen = []
    try:
        deadline = time.monotonic() + 20
        while writer.poll() is None and time.monotonic() < deadline:
            run = {r.run: r for r in workflow_status(results, jobs)}["iseat/seed0"]
            assert run.state in ("running", "not started")
            seen.append(run.epoch)
    finally:
        writer.wait(timeout=30)
    assert seen == sorted(seen) and {r.run: r for r in workflow_status(results, jobs)}["iseat/seed0"].epoch == 400


def test_cli_prints_the_table_of_the_workflow_jobs(tmp_path, monkeypatch, capsys):
    import iseat.workflow.jobs
    from iseat.cli import main

    results, jobs = results_folder(tmp_path)
    monkeypatch.setattr(iseat.workflow.jobs, "workflow_jobs", lambda target, configfiles, forceall: jobs)
    assert main(["status", str(results), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "| toy | trades/seed0 | failed | iseat train: error: data.root: data/x does not exist; fetch it |" in out
    assert "5 trainings: 1 finished, 2 running, 1 failed, 1 not started" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--jobs", "0"], "--jobs 0: give the number of trainings"),
        (["--watch", "0"], "--watch 0.0: give the seconds between refreshes"),
    ],
)
def test_cli_bad_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    from iseat.cli import main

    assert main(["status", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
