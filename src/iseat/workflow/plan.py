"""The cost of a workflow target before it runs: GPU-hours and jobs, per setting and in total.

The jobs are the workflow's own: Snakemake's DAG of the target (iseat.workflow.jobs), each training with
the whole config its rule builds (iseat.workflow.run_config), each evaluation with what it computes. Each
job's GPU time is estimated from measured step times (iseat.workflow.step_times: a `gpu-check` report, or
seconds given per model and method):

  training   sum over epochs of  images per epoch / 128 * t(model, method of the epoch's lr stage)
             + per epoch the selection PGD-k on n_sel images:  n_sel / 128 * t(model, AT) * (k + 1) / (s + 1)
  PGD eval   n_test / 128 * t(model, AT) * (k + 1) / (s + 1)
  AutoAttack n_test * a(model)  (seconds per test image, measured by gpu-check's short training: a lower
             bound, since a better-trained model keeps more points robust for the later attacks)

with t the median step time at batch 128 (PGD-s, s = the training's attack steps, 10 in the paper), the
method of an epoch being AT, +LSI, +AWP or ISEAT by whether its stage's lambda and gamma are non-zero,
images per epoch = training images (less the validation hold-out) x (1 + extra_ratio with extra data),
and WRN-d-10 scaled from WRN-34-10 by its block count (d - 4) / 30.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from iseat.common.fraction import parse_fraction
from iseat.data.registry import DATASETS
from iseat.methods import registry as method_registry
from iseat.workflow.jobs import Evaluation, Job
from iseat.workflow.step_times import REFERENCE_BATCH, PlanError, StepTimes

AT_ROW = method_registry.cost_row(False, False)
# Training images and test images per data set (iseat.data.registry).
DATASET_SIZES = {name: d.sizes for name, d in DATASETS.items() if d.reader is not None and d.sizes is not None}


# ----------------------------------------------------------------------------- the cost model


def model_key(cfg: dict) -> tuple[str, float]:
    """The measured model a run's model is timed as, and the scale on its time."""
    model = cfg["model"]
    if model["arch"] == "wide_resnet":
        return "wide_resnet", (model["depth"] - 4) / 30 * (model["width"] / 10) ** 2
    return model["arch"], 1.0


def stage_rows(cfg: dict) -> list[str]:
    """The Tab. 4 row every epoch's step costs as, from the parts of the method's step in that epoch."""
    from iseat.training.loop import lr_stage, milestone_epochs

    schedule = method_registry.schedule(cfg["method"])
    milestones = milestone_epochs(cfg)
    return [
        method_registry.cost_row(*schedule.cost_parts(lr_stage(epoch, milestones), epoch))
        for epoch in range(cfg["training"]["epochs"])
    ]


def dataset_sizes(data: dict) -> tuple[int, int]:
    if data["dataset"] == "npz":
        import numpy as np

        with np.load(data["root"]) as arrays:
            return len(arrays["y_train"]), len(arrays["y_test"])
    if data["dataset"] not in DATASET_SIZES:
        raise PlanError(f"unknown data set size for {data['dataset']!r}")
    return DATASET_SIZES[data["dataset"]]


def pgd_cost(images: int, steps: int, cfg: dict, times: StepTimes) -> float:
    """A PGD-k pass over `images` images, from the AT step time (PGD-s: about s + 1 forward-backward passes)."""
    arch, scale = model_key(cfg)
    at = times.step(arch, cfg["runtime"], AT_ROW) * scale
    return images / REFERENCE_BATCH * at * (steps + 1) / (cfg["attack"]["steps"] + 1)


def training_seconds(cfg: dict, times: StepTimes) -> float:
    arch, scale = model_key(cfg)
    n_train, n_test = dataset_sizes(cfg["data"])
    validation = cfg["data"]["selection"] == "validation"
    if validation:
        n_train -= cfg["data"]["validation_size"]
    extra = 1 + float(cfg["data"].get("extra_ratio", 1.0)) if cfg["data"].get("extra") else 1
    images = n_train * extra
    seconds = sum(images / REFERENCE_BATCH * times.step(arch, cfg["runtime"], row) * scale for row in stage_rows(cfg))
    n_sel = cfg["data"]["validation_size"] if validation else n_test
    if cfg["evaluation"]["max_samples"]:
        n_sel = min(n_sel, cfg["evaluation"]["max_samples"])
    return seconds + cfg["training"]["epochs"] * pgd_cost(n_sel, cfg["evaluation"]["pgd_steps"], cfg, times)


def evaluation_seconds(evaluation: Evaluation, cfg: dict, times: StepTimes) -> float | None:
    """An evaluation's cost; a shard costs its fraction of it (the K shards sum to the whole), the gather of
    the shards nothing, an eps sweep one PGD pass per positive budget (eps 0 is clean accuracy)."""
    if evaluation.gather:
        return 0.0
    _, n_test = dataset_sizes(cfg["data"])
    n = evaluation.n_ex or n_test
    if evaluation.attack == "sweep":
        passes = sum(parse_fraction(b) > 0 for b in evaluation.budgets)
        return passes * pgd_cost(n, evaluation.pgd_steps, cfg, times)
    if evaluation.attack == "pgd":
        return evaluation.fraction * pgd_cost(n, evaluation.pgd_steps, cfg, times)
    arch, scale = model_key(cfg)
    rate = times.aa_s_per_image.get(arch)
    return None if rate is None else evaluation.fraction * n * rate * scale


# ----------------------------------------------------------------------------- the plan


def plan(
    jobs: list[Job], times: StepTimes, gpus_per_run: int = 1, efficiency: float = 1.0, gpus_per_node: int = 1
) -> dict:
    """Per setting: jobs (all, and GPU jobs), GPU-hours of trainings and evaluations; the totals. Each
    training on `gpus_per_run` GPUs (data-parallel) at `efficiency` (its speed-up is N x efficiency):
    its GPU-hours grow by 1 / efficiency and `data_parallel` gives the trainings' wall-clock. With
    `gpus_per_node` > 1 (single-GPU trainings only), `packing` gives the packed jobs' GPU-hours and wall-clock."""
    configs = {Path(job.run).as_posix(): job.train for job in jobs if job.kind == "train"}
    per_setting: dict[str, dict] = {}
    longest = 0.0  # one GPU's hours of the longest training
    train_hours = []  # one GPU's hours of each GPU training, in the DAG's order
    for job in jobs:
        row = per_setting.setdefault(
            job.group, {"jobs": 0, "gpu_jobs": 0, "train_hours": 0.0, "evaluate_hours": 0.0, "not_estimated": 0}
        )
        row["jobs"] += 1
        row["gpu_jobs"] += job.gpu
        seconds = None
        if job.kind == "train":
            seconds = training_seconds(job.train, times)
            row["train_hours"] += seconds / 3600
            longest = max(longest, seconds / 3600)
            if job.gpu:  # CPU trainings are not packed
                train_hours.append(seconds / 3600)
        elif job.kind == "evaluate":
            run_dir = Path(job.run).as_posix()
            cfg = configs.get(run_dir) or saved_config(run_dir)
            seconds = evaluation_seconds(job.evaluation, cfg, times) if cfg else None
            row["evaluate_hours"] += (seconds or 0.0) / 3600
        if job.gpu and seconds is None:
            row["not_estimated"] += 1
    for row in per_setting.values():
        row["gpu_hours"] = row["train_hours"] + row["evaluate_hours"]
    last = {"analysis": 1, "(shared)": 2}
    per_setting = dict(sorted(per_setting.items(), key=lambda item: (last.get(item[0], 0), item[0])))
    total = {
        key: sum(r[key] for r in per_setting.values())
        for key in ("jobs", "gpu_jobs", "train_hours", "evaluate_hours", "gpu_hours", "not_estimated")
    }
    return {
        "per_setting": per_setting,
        "total": total,
        "step_times": times.source,
        "aa_s_per_image": times.aa_s_per_image,
        "data_parallel": data_parallel(total["train_hours"], longest, gpus_per_run, efficiency),
        "packing": packing(train_hours, gpus_per_node if gpus_per_run == 1 else 1),
    }


def packing(train_hours: list[float], gpus_per_node: int) -> dict:
    """Single-GPU trainings packed `gpus_per_node` to a job, in the DAG's order (Snakemake picks a job's
    members among the trainings ready together): a job holds its GPUs until its longest member ends, so its
    GPU-hours are gpus_per_node x that member's hours; the wall-clock of the longest job and of all jobs one
    after another on one node."""
    jobs = [train_hours[i : i + gpus_per_node] for i in range(0, len(train_hours), gpus_per_node)]
    held = sum(max(job) * gpus_per_node for job in jobs)
    return {
        "gpus_per_node": gpus_per_node,
        "jobs": len(jobs),
        "train_gpu_hours": held,
        "idle_gpu_hours": held - sum(train_hours),
        "longest_job_wall_hours": max((max(job) for job in jobs), default=0.0),
        "serial_wall_hours": sum(max(job) for job in jobs),
    }


def data_parallel(train_hours: float, longest: float, gpus: int, efficiency: float) -> dict:
    """The trainings on `gpus` GPUs each, `efficiency` of ideal scaling: their GPU-hours, the
    wall-clock of the longest one and of all of them one after another."""
    speed_up = gpus * efficiency
    return {
        "gpus_per_run": gpus,
        "efficiency": efficiency,
        "train_gpu_hours": train_hours * gpus / speed_up,
        "longest_train_wall_hours": longest / speed_up,
        "serial_train_wall_hours": train_hours / speed_up,
    }


def saved_config(run_dir: str) -> dict | None:
    """The config of a run whose training already happened (not in the dry run)."""
    path = Path(run_dir) / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def format_plan(result: dict) -> str:
    lines = [
        f"Step times: {result['step_times']}",
        "",
        "| setting | jobs | GPU jobs | training GPU-h | evaluation GPU-h | GPU-hours |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = list(result["per_setting"].items()) + [("**total**", result["total"])]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['jobs']} | {r['gpu_jobs']} | {r['train_hours']:.1f} | {r['evaluate_hours']:.1f} "
            f"| {r['gpu_hours']:.1f} |"
        )
    dp = result.get("data_parallel")
    if dp and dp["gpus_per_run"] > 1:
        lines += [
            "",
            f"Trainings on {dp['gpus_per_run']} GPUs each (scaling efficiency {dp['efficiency']:g}, assumed): "
            f"{dp['train_gpu_hours']:.1f} training GPU-hours; wall-clock {dp['longest_train_wall_hours']:.1f} h "
            f"for the longest training, {dp['serial_train_wall_hours']:.1f} h for all of them one after another.",
        ]
    pk = result.get("packing")
    if pk and pk["gpus_per_node"] > 1:
        lines += [
            "",
            f"Trainings packed {pk['gpus_per_node']} to a job ({pk['jobs']} jobs): {pk['train_gpu_hours']:.1f} "
            f"training GPU-hours held, {pk['idle_gpu_hours']:.1f} of them idle beside a longer member; wall-clock "
            f"{pk['longest_job_wall_hours']:.1f} h for the longest job, {pk['serial_wall_hours']:.1f} h for all "
            "of them one after another on one node.",
        ]
    if result["total"]["not_estimated"]:
        lines += [
            "",
            f"{result['total']['not_estimated']} GPU jobs are not in the GPU-hours: AutoAttack evaluations "
            "without seconds per test image for their model (--aa-s-per-image MODEL=SECONDS, or a gpu-check "
            "report) and GPU analysis jobs other than trainings and evaluations.",
        ]
    return "\n".join(lines)
