"""The GPU check (`scripts/gpu-check.sh`, `iseat benchmark gpu-check`): its CPU smoke version runs every
section end to end; the time guard skips and says so; bad input stops it before any output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from iseat.benchmarks import gpu_check
from iseat.common.device import resolve_device

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "cifar10_sample.npz"


def check_command(*args):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check.sh"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_smoke_check_runs_every_section(tmp_path):
    data = ["--data", str(SAMPLE)] if SAMPLE.is_file() else []  # else the shipped digits set
    # a budget large enough that a loaded machine does not skip sections; the guard has its own test
    out = check_command("--smoke", "--out", str(tmp_path / "check"), "--budget-s", "900", *data)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    sections = report["sections"]
    assert not report.get("failed") and not report.get("skipped")
    for variant in ("fp32", "channels_last"):
        rows = {(r["method"], r["path"]): r for r in sections[f"step/small_cnn/{variant}"]["rows"]}
        assert {("AT", "fast"), ("ISEAT", "fast")} <= rows.keys()
        assert all(r["median_s"] > 0 and r["speedup_over_fp32_eager"] > 0 for r in rows.values())
    fp32 = {(r["method"], r["path"]): r for r in sections["step/small_cnn/fp32"]["rows"]}
    assert fp32[("ISEAT", "memory_lean")]["peak_step_bytes"] > 0
    assert sections["loader"]["ratio"]["idbh"] > 0
    training = sections["training"]
    assert training["n_examples"] == gpu_check.SMOKE.aa_samples
    assert training["autoattack_label"].startswith("AutoAttack (standard)")
    assert sections["determinism"]["identical_weights"] is True
    assert sections["resume"]["identical_to_uninterrupted"] is True
    assert sections["resume"]["killed"]["returncode"] == -9

    assert re.search(r"memory-lean ISEAT peak memory: \d+\.\d\dx AT", out.stdout)
    assert re.search(r"memory-lean ISEAT step time: \d+\.\d\dx AT", out.stdout)
    markdown = (tmp_path / "check" / "gpu_check.md").read_text()
    assert "memory-lean ISEAT peak memory" in markdown and "PASS: identical weights" in markdown


def test_time_guard_skips_what_does_not_fit_and_says_so(tmp_path, capsys):
    result = gpu_check.gpu_check(None, str(tmp_path), smoke=True, budget_s=0)
    assert set(result["skipped"]) == {
        "step/small_cnn/fp32",
        "step/small_cnn/channels_last",
        "loader",
        "training",
        "determinism",
        "resume",
    }
    assert "sections" not in result
    assert "skipped (estimated" in capsys.readouterr().out
    assert "## Skipped (time budget)" in (tmp_path / "gpu_check.md").read_text()


def test_step_estimates_scale_from_what_was_measured():
    profile = gpu_check.FULL
    assert gpu_check.step_estimate(profile, {}, "preact_resnet18", "fp32") == profile.first_step_estimate_s
    measured = {("preact_resnet18", "fp32"): 10.0}
    assert gpu_check.step_estimate(profile, measured, "preact_resnet18", "bf16") == 10.0
    assert gpu_check.step_estimate(profile, measured, "wide_resnet", "fp32") == pytest.approx(117.0)
    assert gpu_check.step_estimate(profile, measured, "preact_resnet18", "compile") == 10.0 + 60.0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--smoke", "--data", "/nowhere/cifar.npz"], "--data /nowhere/cifar.npz: not an .npz file"),
        ([], "no CUDA device is visible"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    if message.startswith("no CUDA") and str(resolve_device("auto")) != "cpu":
        pytest.skip("a CUDA device is visible")
    out = check_command("--out", str(tmp_path / "check"), *args)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "check").exists()
