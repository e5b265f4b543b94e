"""Experiment trackers (`runtime.loggers`): each tracker's own reader gets back the metrics of a short
training that was interrupted after its first epoch and resumed, as one tracker run; the evaluation's
accuracies join that run; a failing tracker warns once and the training finishes."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from iseat.training import trackers
from iseat.training.config import load_config
from iseat.training.loop import train

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

EPOCHS = 3


def tiny_npz(path, n_train=64, n_test=16):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(n_train) % 4,
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(n_test) % 4,
    )
    return path


def settings(data, loggers="[tensorboard, wandb, mlflow]"):
    return [
        "data.dataset=npz",
        f"data.root={data}",
        "data.validation_size=16",
        "data.augmentation=none",
        "data.num_workers=0",
        "method.name=at",
        "attack.steps=1",
        f"training.epochs={EPOCHS}",
        "training.batch_size=16",
        "training.lr_milestones=[]",
        "evaluation.pgd_steps=1",
        "runtime.device=cpu",
        "runtime.progress=false",
        f"runtime.loggers={loggers}",
    ]


# The first process stops right after epoch 1 is saved (its `say` raises), as a killed job would.
INTERRUPTED = """
import sys
from iseat.training.config import load_config
from iseat.training.loop import train
def say(line):
    if line.startswith("epoch 1:"):
        raise SystemExit(3)
train(load_config(None, sys.argv[2:]), sys.argv[1], say=say)
"""


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("trackers")
    data = tiny_npz(root / "tiny.npz")
    run = root / "results" / "toy" / "at" / "seed0"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for name in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "WANDB_PROJECT"):
        env.pop(name, None)
    first = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, str(run), *settings(data)], env=env, capture_output=True, text=True
    )
    assert first.returncode == 3 and (run / "state.pt").is_file(), first.stderr[-2000:]
    second = subprocess.run(
        [sys.executable, "-m", "iseat", "train", "--out", str(run), "--set", *settings(data)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 0 and (run / "summary.json").is_file(), second.stderr[-2000:]
    assert "resuming from" in second.stdout and "warning" not in second.stdout + second.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics] == list(range(EPOCHS))
    return run, metrics


def test_tensorboard_events_hold_every_epoch_once(resumed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, metrics = resumed
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    for key in ("train_loss", "lr", "av_sd", "selection_pgd_acc", "epoch_seconds"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == list(range(EPOCHS)), key
        assert np.allclose([s.value for s in scalars], [r[key] for r in metrics], rtol=1e-6), key
    histograms = events.Histograms("av")
    assert [h.step for h in histograms] == list(range(EPOCHS)) and histograms[0].histogram_value.num == 48
    assert events.Scalars("summary/best_selection_pgd_acc")[0].step == EPOCHS - 1


def wandb_records(path):
    """The records of a W&B offline run file: its LevelDB-style log of W&B's protobuf Records (a 7-byte
    file header, then 32 KiB blocks of chunks with a 7-byte header: CRC, length, type full/first/middle/last)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, offset, pending, records = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while offset + 7 <= len(data):
        room = 32768 - offset % 32768
        if room < 7:
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if kind == 0 and length == 0:
            offset += room
            continue
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # full or last chunk: a whole record
            record = Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_folders_are_one_run_with_every_epoch(resumed):
    run, metrics = resumed
    run_id = json.loads((run / trackers.IDS_FILE).read_text())["wandb"]
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith(f"-{run_id}") for f in folders)  # two processes, one run
    history, names = {}, set()
    for folder in folders:
        for record in wandb_records(folder / f"run-{run_id}.wandb"):
            if record.HasField("run"):
                names.add((record.run.display_name, record.run.run_group))
            if record.HasField("history"):
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                if "train_loss" in items:
                    history[items["_step"]] = items
    assert names == {("toy/at/seed0", "toy/at")}
    assert sorted(history) == list(range(EPOCHS))
    assert [history[e]["train_loss"] for e in range(EPOCHS)] == pytest.approx([r["train_loss"] for r in metrics])
    assert history[0]["av/_type"] == "histogram" and sum(history[0]["av/values"]) == 48


def test_mlflow_client_reads_one_run_with_params_and_the_evaluation(resumed):
    from mlflow.tracking import MlflowClient

    run, metrics = resumed
    trackers.log_evaluation(
        run, {"clean_accuracy": 0.5, "robust_accuracy": 0.25, "pgd": {"robust_accuracy": 0.3}}, "aa", say=print
    )
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((run / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("iseat")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_id == json.loads((run / trackers.IDS_FILE).read_text())["mlflow"]
    assert found.info.run_name == "toy/at/seed0" and found.info.status == "FINISHED"
    assert found.data.params["method.name"] == "at" and found.data.params["training.epochs"] == str(EPOCHS)
    assert "provenance.versions.torch" in found.data.params
    history = client.get_metric_history(found.info.run_id, "train_adv_acc")
    assert sorted((m.step, m.value) for m in history) == [(r["epoch"], r["train_adv_acc"]) for r in metrics]
    assert found.data.metrics["aa/robust_accuracy"] == 0.25 and found.data.metrics["aa/pgd_robust_accuracy"] == 0.3
    assert client.get_metric_history(found.info.run_id, "aa/clean_accuracy")[0].step == EPOCHS


class FullDisk(trackers.Tracker):
    name = "mlflow"

    def start(self, params):
        return None

    def log(self, metrics, step, histograms=None):
        raise OSError(28, "No space left on device")

    def close(self):
        raise AssertionError("a dropped tracker is not closed")


def test_a_failing_tracker_warns_once_and_training_finishes(tmp_path, monkeypatch):
    monkeypatch.setitem(trackers.TRACKERS, "mlflow", FullDisk)
    monkeypatch.setitem(
        trackers.TRACKERS,
        "tensorboard",
        type(
            "Missing",
            (trackers.Tracker,),
            {"name": "tensorboard", "start": lambda self, params: __import__("not_a_tracker_package")},
        ),
    )
    lines = []
    cfg = load_config(None, settings(tiny_npz(tmp_path / "tiny.npz"), "[tensorboard, mlflow]"))
    summary = train(cfg, tmp_path / "run", say=lines.append)
    warnings = [line for line in lines if line.startswith("warning")]
    assert len(warnings) == 2 and (tmp_path / "run" / "summary.json").is_file() and summary["epochs"] == EPOCHS
    assert (
        "tracker tensorboard failed to start (ModuleNotFoundError" in warnings[0] and "iseat[trackers]" in warnings[0]
    )
    assert "tracker mlflow failed to log (OSError: [Errno 28] No space left on device)" in warnings[1]


def test_loggers_are_checked_against_the_tracker_registry():
    from iseat.training.config import ConfigError

    assert load_config(None, ["runtime.loggers=[wandb]"])["runtime"]["loggers"] == ["wandb"]
    assert load_config(None)["runtime"]["loggers"] == []
    with pytest.raises(
        ConfigError, match=r"runtime.loggers\[0\]: 'tb' is not one of \['tensorboard', 'wandb', 'mlflow'\]"
    ):
        load_config(None, ["runtime.loggers=[tb]"])
    with pytest.raises(ConfigError, match="runtime.loggers: .* has non-unique elements"):
        load_config(None, ["runtime.loggers=[mlflow, mlflow]"])
