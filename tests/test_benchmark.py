"""`iseat benchmark step` and `iseat benchmark avlog` on tiny settings: every method and path is timed,
ratios are against AT, memory and the AV-log share are measured, files are written."""

from __future__ import annotations

import json
import re

import pytest
import torch

from iseat.benchmarks import avlog_cost, step_flops, step_memory
from iseat.cli import main
from iseat.methods.models import build_model
from iseat.training import acceleration


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_step_benchmark_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "step_timing.json"
    code = main(
        [
            "benchmark",
            "step",
            "--model",
            "small_cnn",
            "--batch-size",
            "4",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--straightforward",
            "--no-memory",
            "--no-flops",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    rows = {(r["method"], r["path"]): r for r in result["rows"]}
    assert set(rows) == {(m, p) for m in ("AT", "+LSI", "+AWP", "ISEAT") for p in ("fast", "straightforward")}
    assert rows[("AT", "fast")]["ratio_to_at"] == 1.0
    for r in rows.values():
        assert len(r["times_s"]) == 3 and r["median_s"] > 0 and r["img_per_s"] == pytest.approx(4 / r["median_s"])
        assert r["q1_s"] <= r["median_s"] <= r["q3_s"]
    assert result["device_name"].startswith("cpu") and result["threads"] == 1
    assert result["runtime"]["precision"] == "fp32" and result["graph_bytes"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| ISEAT |" in table and "straightforward ratio to AT" in table
    assert "| ISEAT |" in capsys.readouterr().out


def test_peak_memory_of_a_step():
    runtime = acceleration.options(None)
    torch.set_num_threads(1)
    at = step_memory.memory_probe("small_cnn", 32, "AT", "fast", runtime, 0, 1)
    iseat = step_memory.memory_probe("small_cnn", 32, "ISEAT", "fast", runtime, 0, 1)
    assert at["peak_step_bytes"] > 0 and "memory_measure" in at
    # ISEAT keeps the clean pass's graph while the theta+v graph is built: more memory than AT
    assert iseat["peak_step_bytes"] > at["peak_step_bytes"]
    in_fresh_process = step_memory.cpu_peak_bytes("small_cnn", 8, "AT", "fast", runtime, 0, 1, 1)
    assert in_fresh_process["peak_step_bytes"] > 0


@pytest.mark.slow
def test_memory_lean_step_keeps_no_clean_graph_and_is_reported(tmp_path, capsys):
    runtime = acceleration.options(None)
    torch.set_num_threads(1)
    fast = step_memory.memory_probe("small_cnn", 64, "ISEAT", "fast", runtime, 0, 1)
    lean = step_memory.memory_probe("small_cnn", 64, "ISEAT", "memory_lean", runtime, 0, 1)
    assert 0 < lean["peak_step_bytes"] < fast["peak_step_bytes"]

    out = tmp_path / "step.json"
    assert (
        main(
            [
                "benchmark",
                "step",
                "--model",
                "small_cnn",
                "--batch-size",
                "4",
                "--repeats",
                "2",
                "--warmup",
                "1",
                "--steps",
                "1",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--memory-lean",
                "--methods",
                "AT",
                "+AWP",
                "ISEAT",
                "--no-flops",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = {(r["method"], r["path"]) for r in json.loads(out.read_text())["rows"]}
    # only methods with a theta branch have a memory-lean variant
    assert rows == {("AT", "fast"), ("+AWP", "fast"), ("ISEAT", "fast"), ("ISEAT", "memory_lean")}
    printed = capsys.readouterr().out
    assert re.search(r"memory-lean ISEAT peak memory: \d+\.\d\dx AT \(default ISEAT: \d+\.\d\dx AT\)", printed)
    assert re.search(r"memory-lean ISEAT step time: \d+\.\d\dx AT", printed)


def test_graph_bytes_grow_with_the_batch():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10)
    small = step_memory.graph_bytes(model, torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    large = step_memory.graph_bytes(model, torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long))
    assert large == pytest.approx(2 * small, rel=0.05)


def test_avlog_benchmark_reports_its_share_of_an_epoch(tmp_path):
    out = tmp_path / "avlog.json"
    assert (
        main(
            [
                "benchmark",
                "avlog",
                "--batch-size",
                "8",
                "--samples",
                "2000",
                "--repeats",
                "2",
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["steps_per_epoch"] == 250 and 0 < result["record_s"] < result["step_s"]
    assert result["epoch_log_s"] == pytest.approx(250 * result["record_s"] + result["write_epoch_s"])
    assert result["overhead_fraction"] == pytest.approx(result["epoch_log_s"] / (250 * result["step_s"]))
    assert "%" in avlog_cost.format_report(result)


def test_forwarded_benchmark_reports_a_missing_module(monkeypatch, capsys):
    from iseat.cli import benchmark

    monkeypatch.setitem(benchmark.FORWARDED, "loader", ("iseat.benchmarks.no_such_module", "x"))
    assert main(["benchmark", "loader", "--batches", "1"]) == 2
    assert "not available" in capsys.readouterr().err


def test_fast_path_does_each_pass_once():
    """FLOP accounting: the straightforward step does one more clean forward pass than the fast one for AT
    (the separate pass for the AV) and two more for ISEAT (that one and the fresh pass of the theta branch)."""
    torch.set_num_threads(1)
    flops = {
        (label, path): step_flops.step_flops("small_cnn", 4, "cpu", label, path, 0, 2)
        for label in ("AT", "ISEAT")
        for path in ("fast", "straightforward")
    }
    torch.manual_seed(0)
    model = build_model("small_cnn", 10)
    with step_flops.FlopCount() as forward, torch.no_grad():
        model(torch.rand(4, 3, 32, 32))
    assert forward.total > 0
    assert flops[("AT", "straightforward")] - flops[("AT", "fast")] == forward.total
    assert flops[("ISEAT", "straightforward")] - flops[("ISEAT", "fast")] == 2 * forward.total
    assert flops[("ISEAT", "fast")] > flops[("AT", "fast")]
