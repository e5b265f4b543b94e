"""GPU check: the evidence a reviewer asks for before the paper's runs are launched, from one GPU in minutes.

`iseat benchmark gpu-check --data cifar10_sample.npz --out DIR` (`scripts/gpu-check.sh`) runs, within one
global time budget (a section that would overrun it is skipped, and the report says so):
  step         per-step time, img/s and peak memory of AT, +LSI, +AWP and ISEAT per model at batch 128 in
               fp32 eager, TF32, bf16 autocast, channels_last and torch.compile; each as the speed-up over
               fp32 eager and the ISEAT/AT ratio; memory-lean ISEAT's memory and time (`step_timing`)
  loader       training-loader img/s with IDBH and crop+flip against an ISEAT step's consumption (`loader`)
  training     a short real training (`iseat.training.loop`) with AutoAttack on N test images (`iseat.evaluation`)
  determinism  two identical deterministic training runs end with identical weights
  resume       a deterministic run killed (SIGKILL) mid-epoch and started again ends with the same weights
Every section reuses the library's own code. The report (DIR/gpu_check.json and .md) is rewritten after
each section, so a check cut short still leaves what it measured. `--smoke` runs a reduced version on the
CPU (small CNN, tiny batches, two methods and two speed variants, the digits set unless --data is given).

Budget of the full check (570 s of a 10-minute slot on one H200), estimated from FLOPs: a PGD-10 step at
batch 128 is about 12 forward-backward passes, 2.6 TFLOP for PreActResNet18 (0.56 GFLOP per image
forward) and 11.7x that for WRN-34-10 (`MODEL_COST`). At a third of the H200's fp32 peak that is about
0.1 s (PreActResNet18) and 1.2 s (WRN-34-10) per fp32 step, less with TF32/bf16. One (model, variant)
entry runs about 55 steps (4 methods x (2 warm-up + 5 timed), 2 memory-lean x 7, one memory step each,
FLOP counting in fp32): about 10 s for PreActResNet18 and 70 s for WRN-34-10 in fp32, plus compile
time (`COMPILE_SECONDS`). With the loader (30 s), the training and AutoAttack (120 s) and the three
deterministic training processes (150 s), the whole is about 10-12 minutes, so the entries are ordered
by value: PreActResNet18 first, the WRN-34-10 entries last, each estimated from the times measured so far
and skipped (and listed as skipped) when it would not fit what is left.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from iseat.benchmarks import module_main, step_timing
from iseat.common.device import resolve_device
from iseat.common.errors import UserError
from iseat.common.io import write_json_atomic, write_text_atomic
from iseat.training.resume_state import ResumeStateError, read_state

# Speed variants of the step section: name -> runtime options (fp32 eager is the baseline).
VARIANTS = {
    "fp32": {},
    "tf32": {"tf32": True},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
}
# Relative cost of one step per model (forward FLOPs per image, PreActResNet18 = 1).
MODEL_COST = {"small_cnn": 0.03, "preact_resnet18": 1.0, "wide_resnet": 11.7}
# Budgeted compile time of the compile variant per model (several graphs: PGD, AWP, theta+v, the update).
COMPILE_SECONDS = {"small_cnn": 20.0, "preact_resnet18": 60.0, "wide_resnet": 120.0}


@dataclass(frozen=True)
class Profile:
    """What one check runs: the full GPU check, or the smoke version for the CPU test suite."""

    models: tuple = ("preact_resnet18", "wide_resnet")
    batch_size: int = 128
    variants: tuple = tuple(VARIANTS)
    methods: tuple = tuple(step_timing.TAB4_METHODS)
    compile_methods: tuple = (step_timing.AT, step_timing.ISEAT)  # compiling every method's model copy costs minutes
    pgd_steps: int = 10
    warmup: int = 2
    repeats: int = 5
    memory_every_variant: bool = True
    loader_batches: int = 30
    loader_workers: int = 2
    train_arch: str = "preact_resnet18"
    train_epochs: int = 4
    train_batch_size: int = 128
    train_pgd_steps: int = 10
    validation_size: int = 500
    selection_samples: int = 200  # model selection: PGD on this many validation images per epoch
    aa_samples: int = 500
    check_arch: str = "preact_resnet18"  # determinism and resume
    check_epochs: int = 1  # the kill lands two batches into the last epoch
    check_estimate_s: float = 150.0  # three training processes (start-up, CUDA initialisation, epochs)
    training_estimate_s: float = 120.0
    loader_estimate_s: float = 30.0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (smoke: 1, as small models run fastest so on a shared CPU)
    train_on_given_data: bool = True  # smoke: the trainings use the shipped digits set (1,497 images), always
    budget_s: float = 570.0
    first_step_estimate_s: float = 40.0  # one (model, variant) entry before anything was measured


FULL = Profile()
SMOKE = Profile(
    models=("small_cnn",),
    batch_size=8,
    variants=("fp32", "channels_last"),
    methods=(step_timing.AT, step_timing.ISEAT),
    pgd_steps=2,
    warmup=1,
    repeats=2,
    memory_every_variant=False,
    loader_batches=4,
    loader_workers=0,
    train_arch="small_cnn",
    train_epochs=1,
    train_batch_size=128,
    train_pgd_steps=2,
    validation_size=100,
    selection_samples=32,
    aa_samples=16,
    check_arch="small_cnn",
    check_epochs=1,
    check_estimate_s=40.0,
    training_estimate_s=30.0,
    loader_estimate_s=10.0,
    device="cpu",
    threads=1,
    train_on_given_data=False,
    budget_s=150.0,
    first_step_estimate_s=5.0,
)


class Budget:
    """One global time budget: a section runs only if its estimate fits in what is left."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        return estimate_s <= self.left()


@dataclass
class Report:
    """The check's results, written (JSON + Markdown) after every section."""

    out: Path | None
    result: dict = field(default_factory=dict)

    def section(self, name: str, value: dict) -> None:
        self.result.setdefault("sections", {})[name] = value
        self.write()

    def skip(self, name: str, reason: str) -> None:
        print(f"[gpu-check] {name}: skipped ({reason})", flush=True)
        self.result.setdefault("skipped", {})[name] = reason
        self.write()

    def fail(self, name: str, err: Exception) -> None:
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        print(f"[gpu-check] {name}: FAILED ({reason})", flush=True)
        self.result.setdefault("failed", {})[name] = reason
        self.write()

    def write(self) -> None:
        if self.out is not None:
            write_json_atomic(self.out / "gpu_check.json", self.result)
            write_text_atomic(self.out / "gpu_check.md", format_report(self.result) + "\n")


# ----------------------------------------------------------------------------- sections


def step_section(profile: Profile, device: str, budget: Budget, report: Report) -> None:
    """Tab. 4 step timing for every model and speed variant (iseat.benchmarks.step_timing)."""
    measured: dict[tuple, float] = {}  # (model, variant) -> seconds the measurement took
    for arch in profile.models:
        for variant in profile.variants:
            name = f"step/{arch}/{variant}"
            estimate = step_estimate(profile, measured, arch, variant)
            if not budget.allows(estimate):
                report.skip(name, f"estimated {estimate:.0f} s, {max(budget.left(), 0):.0f} s of the budget left")
                continue
            start = time.monotonic()
            try:
                result = step_timing.step_timing(
                    arch,
                    profile.batch_size,
                    profile.repeats,
                    profile.warmup,
                    device,
                    VARIANTS[variant],
                    methods=profile.compile_methods if variant == "compile" else profile.methods,
                    steps=profile.pgd_steps,
                    threads=profile.threads,
                    memory=profile.memory_every_variant or variant == "fp32",
                    flops=variant == "fp32",
                    memory_lean=variant == "fp32",
                )
            except Exception as err:  # one variant failing (e.g. compile) must not end the check
                traceback.print_exc()
                report.fail(name, err)
                continue
            measured[(arch, variant)] = time.monotonic() - start
            result["seconds"] = measured[(arch, variant)]
            report.section(name, result)
            print(step_timing.format_table(result), flush=True)
        add_speedups(report.result.get("sections", {}), arch)
        report.write()


def step_estimate(profile: Profile, measured: dict, arch: str, variant: str) -> float:
    """Seconds one (model, variant) measurement will take: the fp32 time of this model if measured, else of
    a measured model scaled by MODEL_COST, else a fixed first guess; compile adds its compile time."""
    base = measured.get((arch, "fp32"))
    if base is None and measured:
        (other, _), seconds = next(iter(measured.items()))
        base = seconds * MODEL_COST[arch] / MODEL_COST[other]
    if base is None:
        base = profile.first_step_estimate_s
    return base + (COMPILE_SECONDS[arch] if variant == "compile" else 0.0)


def add_speedups(sections: dict, arch: str) -> None:
    """Per row: speed-up over fp32 eager (same model, method and path) and the ISEAT/AT ratio of the variant."""
    baseline = sections.get(f"step/{arch}/fp32")
    base = {(r["method"], r["path"]): r["median_s"] for r in baseline["rows"]} if baseline else {}
    for key, result in sections.items():
        if not key.startswith(f"step/{arch}/"):
            continue
        by = {(r["method"], r["path"]): r for r in result["rows"]}
        for row in result["rows"]:
            key_ = (row["method"], row["path"])
            row["speedup_over_fp32_eager"] = base[key_] / row["median_s"] if key_ in base else None
        iseat, at = (step_timing.ISEAT, "fast"), (step_timing.AT, "fast")
        if iseat in by and at in by:
            result["iseat_over_at"] = by[iseat]["median_s"] / by[at]["median_s"]


def loader_section(profile: Profile, data_cfg: dict, device: str, budget: Budget, report: Report) -> None:
    from iseat.benchmarks import loader

    estimate = profile.loader_estimate_s
    if not budget.allows(estimate):
        return report.skip("loader", f"estimated {estimate:.0f} s, {max(budget.left(), 0):.0f} s left")
    result = loader.loader_benchmark(
        data_cfg,
        profile.batch_size,
        profile.loader_workers,
        profile.loader_batches,
        steps=3,
        method="iseat",
        arch=profile.train_arch,
        device=device,
        threads=profile.threads,
    )
    print(loader.format_report(result), flush=True)
    report.section("loader", result)


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
    from iseat.evaluation import EvaluationSpec, evaluate_checkpoint
    from iseat.training.config import load_config
    from iseat.training.loop import train

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


# ----------------------------------------------------------------------------- the check


def environment(device: str) -> dict:
    from iseat.common.provenance import provenance

    env = {
        "device": device,
        "provenance": provenance(device, 0),
        "torch": torch.__version__,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            capability=f"{props.major}.{props.minor}",
        )
    return env


def gpu_check(
    data: str | None,
    out: str | None,
    smoke: bool = False,
    budget_s: float | None = None,
    sections=("step", "loader", "training", "determinism"),
) -> dict:
    """Run the check (see the module docstring); returns the report and writes it to `out` if given."""
    profile = SMOKE if smoke else FULL
    device = str(resolve_device(profile.device))
    if not smoke and not device.startswith("cuda"):
        raise ValueError("no CUDA device is visible; run it on a GPU node (or --smoke for the CPU version)")
    data_cfg = data_config(data, profile)
    train_data = data_cfg if profile.train_on_given_data else data_config(None, profile)
    if profile.threads:
        torch.set_num_threads(profile.threads)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as in training (runtime.deterministic: false), for every section
    budget = Budget(budget_s if budget_s is not None else profile.budget_s)
    work = Path(out) if out else Path.cwd() / "gpu-check"
    work.mkdir(parents=True, exist_ok=True)
    report = Report(work)
    report.result.update(
        check="gpu_check",
        mode="smoke" if smoke else "full",
        profile=asdict(profile),
        budget_s=budget.seconds,
        data=data_cfg,
        training_data=train_data,
        environment=environment(device),
    )
    report.write()
    # cheap and decisive first; the WRN-34-10 step entries come last, where the guard can drop them
    plan = [
        ("step", lambda: step_section(replace(profile, models=profile.models[:1]), device, budget, report)),
        ("loader", lambda: loader_section(profile, data_cfg, device, budget, report)),
        ("training", lambda: training_section(profile, train_data, device, budget, report, work)),
        ("determinism", lambda: determinism_and_resume_sections(profile, train_data, device, budget, report, work)),
        ("step", lambda: step_section(replace(profile, models=profile.models[1:]), device, budget, report)),
    ]
    for name, section in plan:
        if name in sections:
            run_guarded(name, section, report)
    report.result["elapsed_s"] = budget.elapsed()
    report.write()
    print(format_report(report.result), flush=True)
    return report.result


def run_guarded(name: str, section, report: Report) -> None:
    """A section that fails is reported as failed (with the error's first line); the others still run."""
    try:
        section()
    except Exception as err:
        traceback.print_exc()
        report.fail(name, err)


def data_config(data: str | None, profile: Profile) -> dict:
    """The check's data: the given .npz (the CIFAR-10 sample) or, for --smoke without one, the shipped digits."""
    if data is None:
        if profile.train_on_given_data:
            raise ValueError("--data is required: the CIFAR-10 sample .npz (no downloads here)")
        return {"dataset": "digits", "root": None, "validation_size": profile.validation_size}
    path = Path(data)
    if not path.is_file() or path.suffix != ".npz":
        raise ValueError(
            f"--data {data}: not an .npz file (give the CIFAR-10 sample, e.g. ../shared/data/cifar10_sample.npz)"
        )
    return {"dataset": "npz", "root": str(path.resolve()), "validation_size": profile.validation_size}


# ----------------------------------------------------------------------------- the report


def format_report(result: dict) -> str:
    env = result.get("environment", {})
    sections = result.get("sections", {})
    lines = [
        f"# GPU check ({result.get('mode')})",
        "",
        f"Device: {env.get('gpu', env.get('device'))}; torch {env.get('torch')}; budget "
        f"{result.get('budget_s', 0):.0f} s" + (f", took {result['elapsed_s']:.0f} s" if "elapsed_s" in result else ""),
    ]
    steps = {k: v for k, v in sections.items() if k.startswith("step/")}
    if steps:
        lines += [
            "",
            "## Training step (PGD-%d)" % next(iter(steps.values()))["pgd_steps"],
            "",
            "| model | variant | method | path | s/step | img/s | peak MiB | speed-up vs fp32 eager | ratio to AT |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for key, r in steps.items():
            _, arch, variant = key.split("/")
            for row in r["rows"]:
                peak = f"{row['peak_step_bytes'] / 2**20:.0f}" if "peak_step_bytes" in row else "—"
                speedup = row.get("speedup_over_fp32_eager")
                lines.append(
                    f"| {arch} | {variant} | {row['method']} | {row['path']} | {row['median_s']:.4f} | "
                    f"{row['img_per_s']:.0f} | {peak} | {f'{speedup:.2f}x' if speedup else '—'} | "
                    f"{row['ratio_to_at']:.3f} |"
                )
        lines.append("")
        for key, r in steps.items():
            if "iseat_over_at" in r:
                lines.append(f"- {key[5:]}: ISEAT/AT {r['iseat_over_at']:.3f}")
            lines += [f"- {key[5:]}: {line}" for line in step_timing.memory_lean_lines(r["rows"])]
    if "loader" in sections:
        ld = sections["loader"]
        lines += ["", "## Data loader", ""]
        for aug, r in ld["loader"].items():
            lines.append(
                f"- {aug}: {r['img_per_s']:.0f} img/s with {ld['num_workers']} workers, "
                f"{ld['ratio'][aug]:.1f}x what one {ld['step']['method']} {ld['step']['arch']} step consumes "
                f"({ld['step']['img_per_s']:.0f} img/s)"
            )
    if "training" in sections:
        t = sections["training"]
        lines += [
            "",
            "## Short training",
            "",
            f"{t['arch']}, ISEAT, {t['epochs']} epochs in {t['seconds']:.0f} s (per epoch "
            + ", ".join(f"{s:.1f}" for s in t["epoch_seconds"])
            + f" s); on {t['n_examples']} test images: "
            f"clean {t['clean_accuracy']:.3f}, {t['autoattack_label']} {t['autoattack_accuracy']:.3f}, "
            f"{t['pgd_label']} {t['pgd_accuracy']:.3f} (chance {t['chance']:.2f}); evaluation "
            f"{t['evaluation_seconds']:.0f} s",
        ]
    for name, key in (("determinism", "identical_weights"), ("resume", "identical_to_uninterrupted")):
        if name in sections:
            s = sections[name]
            lines += [
                "",
                f"## {name.capitalize()}",
                "",
                f"{'PASS' if s[key] else 'FAIL'}: {key.replace('_', ' ')} (max |diff| {s['max_abs_difference']:.3g})",
            ]
    if result.get("failed"):
        lines += ["", "## Failed", ""] + [f"- {k}: {v}" for k, v in result["failed"].items()]
    if result.get("skipped"):
        lines += ["", "## Skipped (time budget)", ""] + [f"- {k}: {v}" for k, v in result["skipped"].items()]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="the CIFAR-10 sample .npz (required without --smoke; no downloads)")
    parser.add_argument("--out", default="results/gpu-check", help="folder for gpu_check.json, gpu_check.md and runs")
    parser.add_argument("--smoke", action="store_true", help="the reduced CPU version (test suite)")
    parser.add_argument("--budget-s", type=float, help="global time budget in seconds (default: 570, smoke 150)")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["step", "loader", "training", "determinism"],
        choices=["step", "loader", "training", "determinism"],
        help="sections to run (determinism includes the kill-and-resume check)",
    )


def run(args) -> int:
    try:
        result = gpu_check(args.data, args.out, args.smoke, args.budget_s, tuple(args.sections))
    except ValueError as err:
        raise UserError(str(err)) from None
    print(f"wrote {Path(args.out) / 'gpu_check.json'} and {Path(args.out) / 'gpu_check.md'}")
    return 1 if problems(result) else 0


def problems(result: dict) -> list[str]:
    """Sections that failed, and checks that did not pass."""
    out = [f"{name} failed" for name in result.get("failed", {})]
    for name, key in (("determinism", "identical_weights"), ("resume", "identical_to_uninterrupted")):
        if name in result.get("sections", {}) and not result["sections"][name][key]:
            out.append(f"{name}: {key.replace('_', ' ')} is false")
    return out


def main(argv=None) -> int:
    try:
        return module_main(sys.modules[__name__], argv)
    except UserError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
