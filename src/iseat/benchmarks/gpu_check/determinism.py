"""The check's determinism and resume sections: two identical deterministic `iseat train` processes must
end with bit-identical weights, and a third, killed (SIGKILL) mid-epoch and started again, must match them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from iseat.benchmarks.gpu_check.profile import Budget, Profile
from iseat.benchmarks.gpu_check.report import Report
from iseat.benchmarks.gpu_check.training import training_overrides
from iseat.training.resume_state import ResumeStateError, read_state


def run_training_process(
    settings: list[str], out: Path, kill_mid_epoch: int | None = None, threads: int | None = None
) -> dict:
    """`iseat train` in its own process (deterministic settings take effect before CUDA starts); with
    `kill_mid_epoch`, SIGKILL it once its saved state is two batches into that epoch."""
    env = {
        **os.environ,
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "PYTHONUNBUFFERED": "1",
        **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
    }
    cmd = [sys.executable, "-m", "iseat", "train", "--out", str(out), "--set", *settings]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_mid_epoch is not None:
        wait_for_state(out / "state.pt", proc, kill_mid_epoch)
        proc.send_signal(signal.SIGKILL)
    output, _ = proc.communicate()
    return {"returncode": proc.returncode, "output_tail": output.strip().splitlines()[-3:]}


def wait_for_state(path: Path, proc: subprocess.Popen, epoch: int) -> None:
    while proc.poll() is None:
        try:
            progress = read_state(path)["progress"]
            if progress["epoch"] == epoch and progress["batch"] >= 2:
                return
        except ResumeStateError:  # not written yet
            pass
        time.sleep(0.05)


def identical_weights(a: Path, b: Path) -> tuple[bool, float]:
    """Whether two checkpoints hold bit-identical weights, and their largest absolute difference."""
    wa = torch.load(a, weights_only=True, map_location="cpu")["model"]
    wb = torch.load(b, weights_only=True, map_location="cpu")["model"]
    if wa.keys() != wb.keys():
        return False, float("inf")
    diff = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)
    return all(torch.equal(wa[k], wb[k]) for k in wa), diff


def determinism_and_resume_sections(
    profile: Profile, data_cfg: dict, device: str, budget: Budget, report: Report, work: Path
) -> None:
    """Runs A and B (identical, deterministic) must match; run C, killed in its last epoch and started
    again, must match A."""
    estimate = profile.check_estimate_s
    if not budget.allows(estimate):
        report.skip("determinism", f"estimated {estimate:.0f} s, {max(budget.left(), 0):.0f} s left")
        return report.skip("resume", "needs the determinism runs")
    settings = training_overrides(
        profile, data_cfg, device, profile.check_arch, profile.check_epochs, deterministic=True
    )
    runs = {}
    start = time.monotonic()
    for name in ("a", "b"):
        runs[name] = run_training_process(
            settings + ["runtime.av_log=false"], work / f"deterministic_{name}", threads=profile.threads
        )
        if runs[name]["returncode"] != 0:
            raise RuntimeError(f"deterministic training run {name} failed: {' / '.join(runs[name]['output_tail'])}")
    same, diff = identical_weights(work / "deterministic_a" / "last.pt", work / "deterministic_b" / "last.pt")
    report.section(
        "determinism",
        {
            "arch": profile.check_arch,
            "epochs": profile.check_epochs,
            "runs": runs,
            "identical_weights": same,
            "max_abs_difference": diff,
            "seconds": time.monotonic() - start,
        },
    )
    print(f"[gpu-check] determinism: two deterministic runs identical: {same} (max |diff| {diff:.3g})", flush=True)
    if not budget.allows(estimate / 2):
        return report.skip("resume", f"{max(budget.left(), 0):.0f} s of the budget left")
    start = time.monotonic()
    resumed = work / "killed_and_resumed"
    # resume state is saved after every batch, so the kill lands between two saved batches
    kill_settings = [s for s in settings if not s.startswith("runtime.checkpoint_minutes")] + [
        "runtime.checkpoint_minutes=0.0001",
        "runtime.av_log=false",
    ]
    killed = run_training_process(
        kill_settings, resumed, kill_mid_epoch=profile.check_epochs - 1, threads=profile.threads
    )
    again = run_training_process(kill_settings, resumed, threads=profile.threads)
    if again["returncode"] != 0:
        raise RuntimeError(f"the resumed training run failed: {' / '.join(again['output_tail'])}")
    same, diff = identical_weights(work / "deterministic_a" / "last.pt", resumed / "last.pt")
    report.section(
        "resume",
        {
            "killed": killed,
            "resumed": again,
            "identical_to_uninterrupted": same,
            "max_abs_difference": diff,
            "seconds": time.monotonic() - start,
        },
    )
    print(f"[gpu-check] resume: killed (SIGKILL) mid-epoch and resumed, identical to uninterrupted: {same}", flush=True)
