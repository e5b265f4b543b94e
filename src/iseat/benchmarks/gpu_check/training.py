"""The check's training section: a short real ISEAT training (`iseat.training.loop`), then AutoAttack and
PGD on the test images (`iseat.evaluation`); and the `iseat train` settings of every training of the check."""

from __future__ import annotations

import json
import time
from pathlib import Path

from iseat.benchmarks.gpu_check.profile import Budget, Profile
from iseat.benchmarks.gpu_check.report import Report
from iseat.evaluation import EvaluationSpec, evaluate_checkpoint
from iseat.training.config import load_config
from iseat.training.loop import train


def training_overrides(
    profile: Profile,
    data_cfg: dict,
    device: str,
    arch: str,
    epochs: int,
    *,
    deterministic: bool,
    checkpoint_minutes: float = 15,
) -> list[str]:
    """`iseat train --set` values of the check's short ISEAT trainings."""
    data = [f"data.{key}={value}" for key, value in data_cfg.items() if value is not None]
    return [
        *data,
        f"data.num_workers={profile.loader_workers}",
        f"model.arch={arch}",
        "method.name=iseat",
        f"training.epochs={epochs}",
        f"training.batch_size={profile.train_batch_size}",
        f"attack.steps={profile.train_pgd_steps}",
        f"evaluation.max_samples={profile.selection_samples}",
        f"evaluation.pgd_steps={profile.train_pgd_steps}",
        f"runtime.device={device}",
        f"runtime.deterministic={str(deterministic).lower()}",
        "runtime.progress=false",
        f"runtime.checkpoint_minutes={checkpoint_minutes}",
        "seed=0",
        # one epoch has no room for an lr decay (the config refuses a milestone before epoch 1)
        *(["training.lr_milestones=[]"] if epochs < 2 else []),
    ]


def training_section(profile: Profile, data_cfg: dict, device: str, budget: Budget, report: Report, work: Path) -> None:
    """A short ISEAT training of the training model, then AutoAttack (standard) and PGD on the test images."""
    estimate = profile.training_estimate_s
    if not budget.allows(estimate):
        return report.skip("training", f"estimated {estimate:.0f} s, {max(budget.left(), 0):.0f} s left")
    run_dir = work / "training"
    cfg = load_config(
        None,
        training_overrides(profile, data_cfg, device, profile.train_arch, profile.train_epochs, deterministic=False),
    )
    start = time.monotonic()
    summary = train(cfg, run_dir, say=lambda line: print(f"[gpu-check] training: {line}", flush=True))
    train_s = time.monotonic() - start
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    start = time.monotonic()
    aa = evaluate_checkpoint(
        run_dir / "best.pt",
        run_dir / "aa.json",
        EvaluationSpec(attacks=("autoattack", "pgd"), n_ex=profile.aa_samples),
        device=device,
        progress=False,
    )
    result = {
        "arch": profile.train_arch,
        "epochs": profile.train_epochs,
        "seconds": train_s,
        "epoch_seconds": [m["epoch_seconds"] for m in metrics],
        "train_adv_acc": [m["train_adv_acc"] for m in metrics],
        "best_selection_pgd_acc": summary["best_selection_pgd_acc"],
        "evaluation_seconds": time.monotonic() - start,
        "n_examples": aa["n_examples"],
        "autoattack_seconds": aa["wall_time_s"]["autoattack"],
        "pgd_seconds": aa["wall_time_s"]["pgd"],
        "clean_accuracy": aa["clean_accuracy"],
        "autoattack_accuracy": aa["robust_accuracy"],
        "autoattack_label": aa["label"],
        "pgd_accuracy": aa["pgd"]["robust_accuracy"],
        "pgd_label": aa["pgd"]["label"],
        "chance": 1 / 10,
    }
    print(
        f"[gpu-check] training: clean {result['clean_accuracy']:.3f}, AutoAttack {result['autoattack_accuracy']:.3f}"
        f", {result['pgd_label']} {result['pgd_accuracy']:.3f} on {result['n_examples']} test images",
        flush=True,
    )
    report.section("training", result)
