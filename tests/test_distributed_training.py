"""`iseat train` on several processes (torchrun, gloo): the run of one process, one writer, a
common stop on SIGTERM, a rerun with another process count, and no hang when a process dies."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from data_fakes import write_cifar10_folder  # noqa: E402

# Random images: sign-gradient attacks on images with flat regions (digits) turn rounding-level
# differences of any two summation orders into visible ones; on these, one and N processes agree to 1e-9.
SETTINGS = [
    "data.dataset=cifar10",
    "data.augmentation=none",
    "data.num_workers=0",
    "data.validation_size=40",
    "model.arch=small_cnn",
    "method.name=iseat",
    "method.lam=[0,0.5]",
    "training.epochs=2",
    "training.batch_size=50",
    "attack.steps=1",
    "evaluation.max_samples=50",
    "evaluation.pgd_steps=1",
    "runtime.device=cpu",
    "runtime.deterministic=true",
    "runtime.progress=false",
    "seed=3",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_cifar10_folder(tmp_path_factory.mktemp("cifar"), per_batch=40, test=10).parent


def command(out, n, root, *extra):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    return [
        *launcher,
        str(HERE / "float64_train.py"),
        "--out",
        str(out),
        "--set",
        *SETTINGS,
        f"data.root={root}",
        *extra,
    ]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run(out, n, root, *extra):
    done = subprocess.run(command(out, n, root, *extra), env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, root):
    out = tmp_path_factory.mktemp("one")
    run(out, 1, root)
    return out


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def av_log(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}


def assert_same_run(a, b):
    wa, wb = weights(a / "last.pt"), weights(b / "last.pt")
    for key in wa:
        assert torch.allclose(wa[key].double(), wb[key].double(), atol=1e-9, rtol=0), key
    la, lb = av_log(a / "av_log.h5"), av_log(b / "av_log.h5")
    assert la.keys() == lb.keys() and la
    for name in la:
        np.testing.assert_allclose(la[name], lb[name], atol=1e-9, rtol=0, err_msg=name)
    ma = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    for ra, rb in zip(ma, mb, strict=True):
        for key in ("train_loss", "train_adv_acc", "av_sd", "selection_clean_acc", "selection_pgd_acc"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-9), key


def test_two_processes_train_the_run_of_one(one_process, tmp_path, root):
    run(tmp_path, 2, root)
    assert_same_run(one_process, tmp_path)
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "state.pt").exists()


def test_sigterm_then_rerun_on_another_process_count_resumes(one_process, tmp_path, root):
    proc = subprocess.Popen(
        command(tmp_path, 3, root, "runtime.checkpoint_minutes=0.0001"),
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 200
    while not (tmp_path / "state.pt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every process
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "state saved" in output, output[-3000:]
    assert output.count("state saved") == 1  # one writer
    run(tmp_path, 2, root)
    assert_same_run(one_process, tmp_path)


def test_a_killed_process_ends_the_job_non_zero(tmp_path, root):
    proc = subprocess.Popen(
        command(tmp_path, 2, root, "training.epochs=50"),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 200
    workers = []
    while len(workers) < 2:
        assert proc.poll() is None and time.time() < deadline
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(p) for p in found]
        time.sleep(0.2)
    time.sleep(3)  # inside the training loop's collectives
    os.kill(workers[-1], signal.SIGKILL)
    start = time.time()
    try:
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - start < 60


@pytest.mark.parametrize(
    "setting, key",
    [({"training": {"swa": {"enabled": True}}}, "training.swa.enabled"), ({"method": {"name": "fat"}}, "method.name")],
)
def test_what_several_processes_cannot_compute_yet_is_refused(setting, key):
    from iseat.training.config import ConfigError, load_config
    from iseat.training.loop import check_data_parallel

    cfg = load_config(None, [])
    for section, values in setting.items():
        cfg[section].update(values)
    with pytest.raises(ConfigError, match=key):
        check_data_parallel(cfg)
