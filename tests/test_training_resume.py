"""Resumption: a real training process killed (SIGKILL) or stopped (SIGTERM) mid-epoch and started again
ends with exactly the weights of an uninterrupted run; finished runs are left alone."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from iseat.training.avlog import AVLog, av_statistics

SETTINGS = [
    "data.dataset=digits",
    "data.num_workers=0",
    "data.validation_size=100",
    "model.arch=small_cnn",
    "method.name=iseat",
    "method.lam=[0,0.5]",
    "training.epochs=3",
    "training.batch_size=128",
    "attack.steps=2",
    "evaluation.max_samples=64",
    "evaluation.pgd_steps=2",
    "runtime.device=cpu",
    "runtime.deterministic=true",
    "runtime.progress=false",
    "runtime.checkpoint_minutes=0.0001",
    "seed=3",
]


def train_command(out):
    return [sys.executable, "-m", "iseat", "train", "--out", str(out), "--set", *SETTINGS]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(train_command(out), check=True, env=env(), capture_output=True)
    return out


def wait_for_mid_epoch_state(out, proc, epoch, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            progress = torch.load(out / "state.pt", weights_only=True)["progress"]  # plain values: no code can run
            if progress["epoch"] == epoch and progress["batch"] >= 2:
                return progress
        except (FileNotFoundError, EOFError, RuntimeError):
            pass
        time.sleep(0.05)
    raise TimeoutError("training never reached the point to interrupt")


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_resumes_bit_identically(uninterrupted, tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(train_command(out), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_mid_epoch_state(out, proc, epoch=1)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, output
        assert "state saved" in output
    else:
        assert proc.returncode == -signal.SIGKILL
        # the AV log of the killed run opens and holds every completed epoch
        with AVLog(out / "av_log.h5") as log:
            assert log.epochs.tolist() == [0]
            assert not np.isnan(log.values("av", 0)).all()
    assert not (out / "summary.json").exists()

    resumed = subprocess.run(train_command(out), env=env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    assert_identical(weights(out / "last.pt"), weights(uninterrupted / "last.pt"))
    assert_identical(weights(out / "best.pt"), weights(uninterrupted / "best.pt"))
    with AVLog(out / "av_log.h5") as a, AVLog(uninterrupted / "av_log.h5") as b:
        assert a.epochs.tolist() == b.epochs.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(a.values("av", 2), b.values("av", 2))


@pytest.mark.slow
def test_finished_run_does_nothing(uninterrupted):
    before = {p.name: p.stat().st_mtime_ns for p in uninterrupted.iterdir()}
    again = subprocess.run(train_command(uninterrupted), env=env(), capture_output=True, text=True)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert before == {p.name: p.stat().st_mtime_ns for p in uninterrupted.iterdir()}


@pytest.mark.slow
def test_av_log_summary_equals_numpy_recomputation(uninterrupted):
    with AVLog(uninterrupted / "av_log.h5") as log:
        summary = log.summary()
        assert log.config["method"]["name"] == "iseat" and "git_commit" in log.provenance
        for row, epoch in enumerate(log.epochs):
            av = log.values("av", epoch).astype(np.float64)
            seen = av[~np.isnan(av)]
            k = int(np.ceil(0.1 * seen.size))
            ranked = np.sort(seen)[::-1]
            assert summary["av_sd"][row] == pytest.approx(np.sqrt(np.mean((seen - seen.mean()) ** 2)), rel=1e-9)
            assert summary["av_top10_mean"][row] == pytest.approx(ranked[:k].mean(), rel=1e-9)
            assert summary["av_bottom10_mean"][row] == pytest.approx(ranked[-k:].mean(), rel=1e-9)
            assert summary["share_av_ge_1"][row] == pytest.approx(np.mean(seen >= 1))
            assert summary["share_av_le_0"][row] == pytest.approx(np.mean(seen <= 0))
            # AV = adversarial loss - clean loss, sample by sample
            adv, clean = log.values("adv_loss", epoch), log.values("clean_loss", epoch)
            np.testing.assert_allclose(av[~np.isnan(av)], (adv - clean)[~np.isnan(av)], atol=1e-5)
            # every training sample is logged, validation samples are not
            assert seen.size == len(log.indices) - 100 or seen.size == len(log.indices)


def test_av_statistics_small_case():
    stats = av_statistics(np.array([np.nan, -1.0, 0.0, 0.5, 2.0, 3.0]))
    assert stats["n_samples"] == 5
    assert stats["share_av_ge_1"] == pytest.approx(0.4)
    assert stats["share_av_le_0"] == pytest.approx(0.4)
    assert stats["av_top10_mean"] == 3.0 and stats["av_bottom10_mean"] == -1.0


BAD_INPUTS = [
    (["training.epochs_typo=3"], "training.epochs_typo"),
    (["training.epochs=three"], "training.epochs"),
    (["method.lam=[0,-0.1]"], "method.lam[1]"),
    (["data.dataset=cifar10", "data.root=/no/such/folder"], "data.root"),
    (["attack.eps=8"], "attack.eps"),
]


@pytest.mark.parametrize("overrides,key", BAD_INPUTS)
def test_bad_config_gives_one_line_error_and_writes_nothing(tmp_path, overrides, key):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "iseat", "train", "--out", str(out), "--set", *overrides],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert not out.exists()
