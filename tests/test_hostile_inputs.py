"""Hostile and broken inputs through the real command line: each is refused with exit status 2, exactly
one line on stderr naming the key or file, no traceback, the output folder as it was, and no planted
code run. Two real processes contend for one run folder; damaged HDF5 logs fail within a time bound."""

import contextlib
import fcntl
import json
import os
import pickle
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from iseat.training.resume_state import FORMAT as STATE_FORMAT
from iseat.training.resume_state import read_state

ISEAT = str(Path(sys.executable).with_name("iseat"))
TINY = [
    "data.num_workers=0",
    "data.validation_size=100",
    "training.batch_size=256",
    "training.lr_milestones=[]",
    "attack.steps=1",
    "evaluation.max_samples=32",
    "evaluation.pgd_steps=1",
    "runtime.device=cpu",
    "runtime.progress=false",
    "runtime.deterministic=true",
]
DAMAGED_LOG_SECONDS = 30  # torch import included; a hang in HDF5's SWMR retry loop lasts hours


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def iseat(*args, timeout=180, preexec_fn=None):
    return subprocess.run(
        [ISEAT, *map(str, args)], capture_output=True, text=True, env=env(), timeout=timeout, preexec_fn=preexec_fn
    )


def train_args(out, *overrides):
    return ["train", "--out", out, "--set", *TINY, *overrides]


def snapshot(folder: Path):
    """Every file below `folder` with its bytes' digest and mtime; None if the folder does not exist."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def write_npz(path, x_train_shape=(40, 32, 32, 3), x_test_shape=(10, 32, 32, 3), y_train=None, y_test=None):
    rng = np.random.default_rng(0)
    y_train = np.arange(x_train_shape[0]) % 4 if y_train is None else y_train
    y_test = np.arange(x_test_shape[0]) % 4 if y_test is None else y_test
    np.savez(
        path,
        x_train=rng.integers(0, 256, x_train_shape, dtype=np.uint8),
        y_train=y_train,
        x_test=rng.integers(0, 256, x_test_shape, dtype=np.uint8),
        y_test=y_test,
    )
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = iseat(*train_args(out, "training.epochs=1"))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A real run stopped (SIGTERM) after its first complete epoch: state.pt, metrics.jsonl, av_log.h5."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    return stop_after_first_epoch(out, train_args(out, "training.epochs=3", "training.batch_size=64"))


def stop_after_first_epoch(out: Path, args: list) -> Path:
    """Start `iseat ARGS` and stop it with SIGTERM once its state holds a completed epoch."""
    proc = subprocess.Popen([ISEAT, *args], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        with contextlib.suppress(Exception):
            if read_state(out / "state.pt")["progress"]["epoch"] >= 1:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    return out


def copy_run(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return out


# ----------------------------------------------------------------------------- nonsense and bad values

CONFIG_CASES = {
    "gamma far above AWP's range": (["method.gamma=5"], ["method.gamma", "0.1"]),
    "gamma of one stage": (["method.gamma=[0,5]"], ["method.gamma[1]", "0.1"]),
    "step size above one": (["attack.step_size=300/255"], ["attack.step_size", "0.25"]),
    "division by zero in eps": (["attack.eps=8/0"], ["attack.eps"]),
    "selection step 1/0": (["evaluation.pgd_step_size=1/0"], ["evaluation.pgd_step_size"]),
    "milestone before the first epoch": (
        ["training.epochs=1", "training.lr_milestones=[0.5]"],
        ["training.lr_milestones[0]", "(0.5, 1)"],
    ),
    "seed as an expression": (["seed=2**40"], ["seed"]),
    "seed beyond numpy's range": (["seed=1099511627776"], ["seed", "4294967295"]),
    "value that is not YAML": (["training.epochs=[1,"], ["training.epochs", "YAML"]),
}


@pytest.mark.parametrize("overrides,needles", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_nonsense_config_is_refused_before_any_work(tmp_path, overrides, needles):
    out = tmp_path / "run"
    assert_one_line_error(iseat("train", "--out", out, "--set", *TINY, *overrides), *needles)
    assert not out.exists()


def test_set_given_twice_accumulates(tmp_path):
    proc = iseat("train", "--print-config", "--set", "training.epochs=7", "--set", "seed=3", "method.lam=0.2")
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert (cfg["training"]["epochs"], cfg["seed"], cfg["method"]["lam"]) == (7, 3, 0.2)


DATA_CASES = {
    "validation larger than the data": (lambda d: ["data.validation_size=100000"], ["data.validation_size"]),
    "empty data root": (lambda d: ["data.dataset=cifar10", f"data.root={d}"], ["data.root"]),
    "truncated npz": (lambda d: ["data.dataset=npz", f"data.root={truncated_npz(d)}"], ["cut.npz", "npz"]),
    "images of the wrong size": (
        lambda d: ["data.dataset=npz", f"data.root={write_npz(d / 'small.npz', (40, 28, 28, 3), (10, 28, 28, 3))}"],
        ["x_train", "28 x 28", "32 x 32"],
    ),
    "test images of another size": (
        lambda d: ["data.dataset=npz", f"data.root={write_npz(d / 'mixed.npz', x_test_shape=(10, 16, 16, 3))}"],
        ["x_test", "16 x 16"],
    ),
    "label of a million": (
        lambda d: [
            "data.dataset=npz",
            f"data.root={write_npz(d / 'huge.npz', y_train=np.r_[np.arange(39) % 4, 10**6])}",
        ],
        ["y_train", "1000000", "1000"],
    ),
    "test label unseen in training": (
        lambda d: ["data.dataset=npz", f"data.root={write_npz(d / 'unseen.npz', y_test=np.r_[np.zeros(9, int), 7])}"],
        ["y_test", "7"],
    ),
}


def truncated_npz(folder: Path) -> Path:
    whole = write_npz(folder / "whole.npz").read_bytes()
    (folder / "cut.npz").write_bytes(whole[: len(whole) // 2])
    return folder / "cut.npz"


@pytest.mark.parametrize("make,needles", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, make, needles):
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "run"
    assert_one_line_error(iseat(*train_args(out, *make(data))), *needles)
    assert not out.exists()


def test_out_naming_a_file_is_refused(tmp_path):
    out = tmp_path / "run"
    out.write_text("not a folder")
    assert_one_line_error(iseat(*train_args(out)), str(out), "file")
    assert out.read_text() == "not a folder"


# ----------------------------------------------------------------------------- the resume state


class Payload:
    """Pickled, it calls os.system on load: what an attacker could plant as state.pt."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant_payload(path: Path, marker: Path):
    torch.save({"format": STATE_FORMAT, "model": Payload(marker)}, path)


def tampered(path: Path, marker: Path):
    state = torch.load(path, weights_only=True)
    state["config"] = {**state["config"], "seed": 12345}
    torch.save(state, path)


STATE_CASES = {
    "code in a planted pickle": (plant_payload, ["state.pt", "not a loadable resume state"]),
    "raw pickle payload": (lambda p, m: p.write_bytes(pickle.dumps(Payload(m))), ["state.pt"]),
    "empty file": (lambda p, m: p.write_bytes(b""), ["state.pt", "delete"]),
    "random bytes": (lambda p, m: p.write_bytes(os.urandom(5000)), ["state.pt"]),
    "a model checkpoint instead": (lambda p, m: shutil.copy(p.parent / "last.pt", p), ["state.pt", "not an iseat"]),
    "another run's config": (tampered, ["state.pt", "another config"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("plant,needles", STATE_CASES.values(), ids=STATE_CASES.keys())
def test_foreign_or_tampered_state_is_refused_and_runs_no_code(interrupted_run, tmp_path, plant, needles):
    out = copy_run(interrupted_run, tmp_path)
    marker = tmp_path / "payload-ran"
    plant(out / "state.pt", marker)
    before = snapshot(out)
    assert_one_line_error(iseat(*train_args(out, "training.epochs=3", "training.batch_size=64")), *needles)
    assert not marker.exists()
    assert snapshot(out) == before


FOLDER_CASES = {
    "state without config.yaml": ("config.yaml", ["config.yaml", "state.pt"]),
    "state without av_log.h5": ("av_log.h5", ["av_log.h5", "1 completed epochs"]),
    "state without metrics.jsonl": ("metrics.jsonl", ["metrics.jsonl", "1 completed epochs"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("missing,needles", FOLDER_CASES.values(), ids=FOLDER_CASES.keys())
def test_state_beside_missing_run_files_is_refused(interrupted_run, tmp_path, missing, needles):
    out = copy_run(interrupted_run, tmp_path)
    (out / missing).unlink()
    before = snapshot(out)
    assert_one_line_error(iseat(*train_args(out, "training.epochs=3", "training.batch_size=64")), *needles)
    assert snapshot(out) == before


@pytest.mark.slow
def test_interrupted_run_left_a_closed_log_and_no_temporaries(interrupted_run, finished_run):
    for run in (interrupted_run, finished_run):
        with h5py.File(run / "av_log.h5", "r") as f:  # plain h5py: refuses a log left open for writing
            assert len(f["epoch"]) >= 1
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- damaged HDF5 logs


def damage_truncate(log: Path, target: Path):
    target.write_bytes(log.read_bytes()[:20000])


def damage_metadata(log: Path, target: Path):
    data = bytearray(log.read_bytes())
    data[64:4096] = bytes(4096 - 64)  # object headers after the superblock; the size is unchanged
    target.write_bytes(bytes(data))


def damage_not_hdf5(log: Path, target: Path):
    target.write_text("epoch,av\n0,0.1\n")


DAMAGES = {
    "truncated": (damage_truncate, "truncated"),
    "metadata zeroed": (damage_metadata, ""),
    "not HDF5": (damage_not_hdf5, "not an HDF5 file"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage,needle", DAMAGES.values(), ids=DAMAGES.keys())
def test_inspect_of_a_damaged_log_fails_within_seconds(finished_run, tmp_path, damage, needle):
    target = tmp_path / "t.h5"
    damage(finished_run / "av_log.h5", target)
    start = time.monotonic()
    proc = iseat("inspect", target, "summary", timeout=DAMAGED_LOG_SECONDS)
    assert time.monotonic() - start < DAMAGED_LOG_SECONDS
    assert_one_line_error(proc, target, needle)


@pytest.mark.slow
def test_resume_with_a_damaged_log_says_what_to_do_and_keeps_it(interrupted_run, tmp_path):
    out = copy_run(interrupted_run, tmp_path)
    damage_truncate(interrupted_run / "av_log.h5", out / "av_log.h5")
    before = snapshot(out)
    proc = iseat(*train_args(out, "training.epochs=3", "training.batch_size=64"), timeout=DAMAGED_LOG_SECONDS + 30)
    assert_one_line_error(proc, "av_log.h5", "damaged", "restore")
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- one writer per run folder


@pytest.mark.slow
def test_second_writer_is_refused_and_a_killed_holder_never_blocks(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [ISEAT, *train_args(out, "training.epochs=50", "training.batch_size=32")],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (out / ".iseat.lock").exists() or not (out / "config.yaml").exists():
            assert first.poll() is None and time.time() < deadline, first.stdout.read()
            time.sleep(0.1)
        second = iseat(*train_args(out, "training.epochs=50", "training.batch_size=32", "seed=5"))
        assert first.poll() is None, "the first writer ended before the second tried"
        assert_one_line_error(second, str(out), f"PID {first.pid}", socket.gethostname())
        assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 0  # still the first writer's
        first.kill()
        first.wait(timeout=60)
        assert (out / ".iseat.lock").exists()  # left by the killed holder; its flock died with it
        leftovers = [out / ".state.pt.k1ll3d.tmp", out / ".av_log.h5.rebuild"]  # what a kill mid-write leaves
        for path in leftovers:
            path.write_bytes(b"")
        restart = subprocess.Popen(
            [ISEAT, *train_args(out, "training.epochs=50", "training.batch_size=32")],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 120
        while json.loads((out / ".iseat.lock").read_text() or "{}").get("pid") != restart.pid or any(
            path.exists() for path in leftovers
        ):  # the new holder clears them
            assert restart.poll() is None and time.time() < deadline, restart.stdout.read()
            time.sleep(0.1)
        restart.send_signal(signal.SIGTERM)
        assert restart.wait(timeout=120) in (128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        first.kill()


# ----------------------------------------------------------------------------- the system refuses a write


@pytest.mark.slow
@pytest.mark.parametrize("limit", [100_000, 8_000], ids=["checkpoint", "av_log"])
def test_disk_full_leaves_nothing_behind(tmp_path, limit):
    """A file-size limit (ulimit -f) makes the first big write fail as a full disk would: the first
    checkpoint (100 kB), or already the AV log's creation (8 kB)."""
    out = tmp_path / "run"

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = iseat(*train_args(out, "training.epochs=1"), preexec_fn=limit_file_size)
    assert_one_line_error(proc, str(out), "ulimit")
    assert not out.exists()


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process cannot write in: mode 555, or (root ignores modes) a read-only tmpfs."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root cannot be denied a write here without a read-only mount: {mounted.stderr.decode()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_unwritable_run_folder_is_one_line(unwritable_folder):
    out = unwritable_folder / "run"
    assert_one_line_error(iseat(*train_args(out, "training.epochs=1")), str(out))
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_checks_every_output_location_before_work(finished_run, unwritable_folder, tmp_path):
    checkpoint = finished_run / "best.pt"
    proc = iseat(
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--out",
        unwritable_folder / "aa.json",
        "--attack",
        "pgd",
        "--n-ex",
        8,
        "--no-progress",
    )
    assert_one_line_error(proc, "aa.json", str(unwritable_folder))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = iseat(
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--out",
        blocker / "sub" / "aa.json",
        "--attack",
        "none",
        "--no-progress",
    )
    assert_one_line_error(proc, str(blocker), "not a folder")
    (tmp_path / "aa.per_sample.csv").mkdir()
    proc = iseat(
        "evaluate", "--checkpoint", checkpoint, "--out", tmp_path / "aa.json", "--attack", "none", "--no-progress"
    )
    assert_one_line_error(proc, "aa.per_sample.csv", "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aa.per_sample.csv", "file", "locked"]


@pytest.mark.slow
def test_evaluation_output_held_by_another_process_is_refused(finished_run, tmp_path):
    out = tmp_path / "held.json"
    with open(tmp_path / ".held.json.lock", "w") as lock:  # this test process is the other writer
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": "2026-01-01T00:00:00Z"}))
        lock.flush()
        proc = iseat(
            "evaluate",
            "--checkpoint",
            finished_run / "best.pt",
            "--out",
            out,
            "--attack",
            "none",
            "--n-ex",
            8,
            "--no-progress",
        )
    assert_one_line_error(proc, str(out), f"PID {os.getpid()}")
    assert [p.name for p in tmp_path.iterdir()] == [".held.json.lock"]
