"""`iseat inspect`: every view against a numpy recomputation, bad input, and a log that another
process is still writing."""

import csv
import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from iseat.cli import main
from iseat.training.avlog import PER_SAMPLE, AVLogWriter

N, EPOCHS = 50, 4


def epoch_values(epoch, n=N):
    rng = np.random.default_rng(epoch)
    values = {
        "clean_loss": rng.random(n).astype(np.float32),
        "adv_loss": (rng.random(n) * 3).astype(np.float32),
        "clean_correct": rng.integers(0, 2, n).astype(np.int8),
        "adv_correct": rng.integers(0, 2, n).astype(np.int8),
    }
    values["av"] = values["adv_loss"] - values["clean_loss"]
    unseen = rng.choice(n, 5, replace=False)  # samples not trained on this epoch
    for name, kind in PER_SAMPLE.items():
        values[name][unseen] = np.nan if kind == "f4" else -1
    return values


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "av_log.h5"
    writer = AVLogWriter(path, np.arange(100, 100 + N), {"config": {"seed": 0}, "seed": 0})
    for epoch in range(EPOCHS):
        writer.write_epoch(epoch, epoch_values(epoch), weight_perturbed=False)
    writer.close()
    return path


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def numpy_statistics(av):
    av = av[~np.isnan(av)].astype(np.float64)
    k = math.ceil(0.1 * av.size)
    ordered = np.sort(av)
    return {
        "av_mean": av.mean(),
        "av_sd": np.sqrt(np.mean((av - av.mean()) ** 2)),
        "av_top10_mean": ordered[-k:].mean(),
        "av_bottom10_mean": ordered[:k].mean(),
        "share_av_ge_1": np.mean(av >= 1),
        "share_av_le_0": np.mean(av <= 0),
        "n_samples": av.size,
    }


def test_summary_equals_numpy_recomputation(log, tmp_path, capsys):
    assert main(["inspect", str(log), "summary", "--csv", str(tmp_path / "s.csv")]) == 0
    table = read_csv(tmp_path / "s.csv")
    assert np.array_equal(table["epoch"], np.arange(EPOCHS))
    for epoch in range(EPOCHS):
        for name, value in numpy_statistics(epoch_values(epoch)["av"]).items():
            assert table[name][epoch] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["epoch", "n_samples", "av_mean"] and len(out.splitlines()) == EPOCHS + 1


@pytest.mark.parametrize("least", [False, True])
def test_top_k_matches_numpy_ranking(log, tmp_path, least):
    args = ["inspect", str(log), "top", "--epoch", "2", "-k", "7", "--csv", str(tmp_path / "t.csv")]
    assert main(args + (["--least"] if least else [])) == 0
    table = read_csv(tmp_path / "t.csv")
    av = epoch_values(2)["av"].astype(np.float64)
    seen = np.flatnonzero(~np.isnan(av))
    ranked = seen[np.argsort(av[seen] if least else -av[seen], kind="stable")][:7]
    assert np.array_equal(table["index"], 100 + ranked)
    assert np.allclose(table["av"], av[ranked])
    assert np.array_equal(table["rank"], np.arange(1, 8))


def test_last_epoch_and_trajectory(log, tmp_path, capsys):
    assert main(["inspect", str(log), "top", "--epoch", "-1", "-k", "1"]) == 0
    assert "at epoch 3" in capsys.readouterr().out
    assert main(["inspect", str(log), "trajectory", "--index", "117", "--csv", str(tmp_path / "tr.csv")]) == 0
    table = read_csv(tmp_path / "tr.csv")
    expected = np.array([epoch_values(e)["av"][17] for e in range(EPOCHS)], dtype=np.float64)
    assert np.array_equal(np.isnan(table["av"]), np.isnan(expected))
    assert np.allclose(table["av"][~np.isnan(expected)], expected[~np.isnan(expected)])
    assert np.array_equal(table["clean_correct"], [epoch_values(e)["clean_correct"][17] for e in range(EPOCHS)])


def test_export_folder_and_single_epoch(log, tmp_path):
    out = tmp_path / "export"
    assert main(["inspect", str(log), "export", "--out", str(out)]) == 0
    wide = np.genfromtxt(out / "av.csv", delimiter=",", names=True)
    assert list(wide.dtype.names) == ["index"] + [f"epoch_{e}" for e in range(EPOCHS)]
    for e in range(EPOCHS):
        assert np.allclose(wide[f"epoch_{e}"], epoch_values(e)["av"], equal_nan=True)
    adv_correct = np.genfromtxt(out / "adv_correct.csv", delimiter=",", names=True)
    assert np.array_equal(adv_correct["epoch_1"], epoch_values(1)["adv_correct"])
    assert read_csv(out / "summary.csv")["av_sd"][2] == pytest.approx(numpy_statistics(epoch_values(2)["av"])["av_sd"])
    assert main(["inspect", str(log), "export", "--epoch", "1", "--out", str(tmp_path / "e1.csv")]) == 0
    one = read_csv(tmp_path / "e1.csv")
    assert np.array_equal(one["index"], np.arange(100, 100 + N))
    assert np.allclose(one["adv_loss"], epoch_values(1)["adv_loss"], equal_nan=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["top", "--epoch", "9"], "epoch 9 is not a complete epoch"),
        (["top", "-k", "0"], "-k must be at least 1"),
        (["trajectory", "--index", "3"], "dataset index 3 is not in"),
        (["export", "--out", "one.csv"], "needs --epoch"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(log, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    assert main(["inspect", str(log), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(tmp_path.iterdir()) == before


def test_missing_and_foreign_files(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.h5"), "summary"]) == 2
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    assert main(["inspect", str(tmp_path / "x.h5"), "summary"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "does not exist" in err[0] and "not a readable HDF5 AV log" in err[1]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from test_inspect import epoch_values, N
    from iseat.training.avlog import AVLogWriter
    path, handshake = Path(sys.argv[1]), int(sys.argv[2])
    writer = AVLogWriter(path, np.arange(100, 100 + N), {"config": {}, "seed": 0})
    for epoch in range(8):
        writer.write_epoch(epoch, epoch_values(epoch), weight_perturbed=False)
        if epoch < handshake:  # wait until the reader has seen this epoch
            (path.parent / f"ready{epoch}").touch()
            deadline = time.time() + 60
            while not (path.parent / f"ack{epoch}").exists() and time.time() < deadline:
                time.sleep(0.02)
        else:
            time.sleep(0.05)
    (path.parent / "done").touch()
    time.sleep(0.5)
    writer.close()
""")


def wait_for(path, proc, timeout=60):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"timed out waiting for {path.name}"
        time.sleep(0.02)


def test_reads_a_log_while_another_process_writes_it(tmp_path, capsys):
    log = tmp_path / "av_log.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log), "3", str(__import__("pathlib").Path(__file__).parent)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for epoch in range(3):  # lock-step: the writer holds the file open and waits for us
            wait_for(tmp_path / f"ready{epoch}", proc)
            assert main(["inspect", str(log), "summary", "--csv", str(tmp_path / "s.csv")]) == 0
            table = read_csv(tmp_path / "s.csv")
            assert np.array_equal(table["epoch"], np.arange(epoch + 1))
            assert table["av_sd"][epoch] == pytest.approx(numpy_statistics(epoch_values(epoch)["av"])["av_sd"])
            assert main(["inspect", str(log), "top", "-k", "3"]) == 0
            assert f"at epoch {epoch}" in capsys.readouterr().out
            (tmp_path / f"ack{epoch}").touch()
        seen = []  # free-running: every view is a complete prefix of the epochs
        while not (tmp_path / "done").exists():
            assert main(["inspect", str(log), "trajectory", "--index", "120", "--csv", str(tmp_path / "tr.csv")]) == 0
            table = read_csv(tmp_path / "tr.csv")
            n = len(table["epoch"])
            assert np.array_equal(table["epoch"], np.arange(n)) and n >= 3
            expected = np.array([epoch_values(e)["av"][20] for e in range(n)], dtype=np.float64)
            assert np.allclose(table["av"], expected, equal_nan=True)
            seen.append(n)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen == sorted(seen)
    capsys.readouterr()
    assert main(["inspect", str(log), "summary"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 8
