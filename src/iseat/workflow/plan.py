"""The cost of a workflow target before it runs: GPU-hours and jobs, per setting and in total.

The jobs are the workflow's own: `snakemake -n -p TARGET` lists every job that would run with the shell
command its rule assembled, and the command of a training (`iseat train --set ...`) holds its whole
config. Each job's GPU time is estimated from measured step times (a `gpu-check` report, or seconds
given per model and method):

  training   sum over epochs of  images per epoch / 128 * t(model, method of the epoch's lr stage)
             + per epoch the selection PGD-k on n_sel images:  n_sel / 128 * t(model, AT) * (k + 1) / (s + 1)
  PGD eval   n_test / 128 * t(model, AT) * (k + 1) / (s + 1)
  AutoAttack n_test * a(model)  (seconds per test image, measured by gpu-check's short training: a lower
             bound, since a better-trained model keeps more points robust for the later attacks)

with t the median step time at batch 128 (PGD-s, s = the training's attack steps, 10 in the paper), the
method of an epoch being AT, +LSI, +AWP or ISEAT by whether its stage's lambda and gamma are non-zero,
images per epoch = training images (less the validation hold-out) x (1 + extra_ratio with extra data),
and WRN-d-10 scaled from WRN-34-10 by its block count (d - 4) / 30. A gpu-check report's step times
are chosen per job by its speed options (compile > bf16 > channels_last > tf32 > fp32; memory-lean
for +LSI and ISEAT when the run sets it).
"""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from iseat.common.errors import ParameterError, UserError, literal
from iseat.common.fraction import parse_fraction
from iseat.data.registry import DATASETS
from iseat.methods import registry as method_registry
from iseat.training.config import DEFAULTS, apply_override, deep_merge

METHOD_ROWS = tuple(method_registry.tab4_labels().values())
AT_ROW = method_registry.cost_row(False, False)
REFERENCE_BATCH = 128
# Training images and test images per data set (iseat.data.registry).
DATASET_SIZES = {name: d.sizes for name, d in DATASETS.items() if d.reader is not None and d.sizes is not None}
SPEED_VARIANT_ORDER = ("compile", "bf16", "channels_last", "tf32", "fp32")


class PlanError(UserError, ValueError):
    """Bad input to the plan (no measurement for a model, an unreadable report); one line."""


class PlanInputError(PlanError, ParameterError):
    """A bad measurement given to the plan (`gpu_check`, `step_time`, `aa_s_per_image`), named so."""


@dataclass
class Job:
    rule: str
    setting: str | None
    command: str = ""
    gpu: bool = False

    @property
    def group(self) -> str:
        """Its setting; the Section 3 analysis and the light shared jobs apart."""
        return self.setting or ("analysis" if self.rule.startswith("analysis") else "(shared)")

    @property
    def kind(self) -> str:
        words = iseat_args(self.command)
        is_iseat = len(words) > 1 and words[0] == "iseat"
        return words[1] if is_iseat and words[1] in ("train", "evaluate") else "other"


@dataclass
class StepTimes:
    """Median seconds of one training step at batch 128 per (model, speed variant, method row, path), and
    AutoAttack seconds per test image per model."""

    steps: dict = field(default_factory=dict)  # (arch, variant, method, path) -> seconds
    aa_s_per_image: dict = field(default_factory=dict)  # arch -> seconds
    source: str = "command line"

    @classmethod
    def from_gpu_check(cls, path) -> StepTimes:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise PlanInputError(
                f"{{0}} {literal(path)}: not a readable gpu-check report ({literal(err)})", "gpu_check"
            ) from None
        check_gpu_check(report, path)
        times = cls(source=f"gpu-check report {path} ({report.get('environment', {}).get('gpu', 'unknown device')})")
        for key, section in report.get("sections", {}).items():
            if key.startswith("step/"):
                _, arch, variant = key.split("/")
                scale = REFERENCE_BATCH / section["batch_size"]
                for row in section["rows"]:
                    times.steps[(arch, variant, row["method"], row["path"])] = row["median_s"] * scale
        training = report.get("sections", {}).get("training")
        if training and training.get("autoattack_seconds"):
            times.aa_s_per_image[training["arch"]] = training["autoattack_seconds"] / training["n_examples"]
        if not times.steps:
            raise PlanInputError(f"{{0}} {literal(path)}: the report holds no step timings", "gpu_check")
        return times

    def add(self, spec: str) -> None:
        """`MODEL=SECONDS` (every method) or `MODEL:METHOD=SECONDS`, e.g. wide_resnet:ISEAT=0.298."""
        try:
            key, seconds = spec.split("=")
            arch, _, method = key.partition(":")
            seconds = float(seconds)
            if not 0 < seconds < math.inf:
                raise ValueError(seconds)
        except ValueError:
            raise PlanInputError(
                f"{{0}} {literal(repr(spec))}: expected MODEL=SECONDS or MODEL:METHOD=SECONDS, SECONDS > 0", "step_time"
            ) from None
        if method and method not in METHOD_ROWS:
            raise PlanInputError(f"{{0}} {literal(repr(spec))}: method must be one of {list(METHOD_ROWS)}", "step_time")
        for row in [method] if method else METHOD_ROWS:
            self.steps[(arch, "fp32", row, "fast")] = seconds

    def step(self, arch: str, runtime: dict, method: str) -> float:
        """Seconds of one step at batch 128 for a run with these speed options."""
        variant = speed_variant(runtime)
        path = (
            "memory_lean" if runtime.get("memory_lean") and method in method_registry.theta_branch_labels() else "fast"
        )
        for candidate in (variant, "fp32"):
            for p in (path, "fast"):
                if (arch, candidate, method, p) in self.steps:
                    return self.steps[(arch, candidate, method, p)]
        raise PlanInputError(
            f"no step time for model {arch!r}, method {method}: give {{0}} {arch}:{method}=SECONDS "
            f"or a {{1}} report that measured it",
            "step_time",
            "gpu_check",
        )


def speed_variant(runtime: dict) -> str:
    wanted = {
        "compile": runtime.get("compile"),
        "bf16": runtime.get("precision") == "bf16",
        "channels_last": runtime.get("channels_last"),
        "tf32": runtime.get("tf32"),
    }
    return next((v for v in SPEED_VARIANT_ORDER[:-1] if wanted[v]), "fp32")


# ----------------------------------------------------------------------------- the jobs


def dry_run(target: str, configfiles=(), snakemake: str = "snakemake", forceall: bool = False, cwd=None) -> str:
    """The text of `snakemake -n -p TARGET` (every job with its shell command)."""
    cmd = [
        snakemake,
        "-n",
        "-p",
        "--nolock",
        "--workflow-profile",
        "none",
        *(["--forceall"] if forceall else []),
        target,
        *(["--configfile", *configfiles] if configfiles else []),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise PlanError(f"{snakemake!r} not found: run inside the environment that has snakemake") from None
    if out.returncode != 0:
        last = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise PlanError(f"snakemake -n {target} failed: {last[0]}")
    return out.stdout + out.stderr


def parse_jobs(text: str) -> list[Job]:
    """Jobs of a dry run: each `rule NAME:` / `localrule NAME:` block, its setting wildcard, whether it
    asks for a GPU, and its shell command."""
    jobs, job = [], None
    for line in text.splitlines():
        head = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)  # indented inside a group job's block
        if head:
            job = Job(head.group(1), None)
            jobs.append(job)
        elif job is None:
            continue
        elif line.strip().startswith("wildcards:"):
            setting = re.search(r"\bsetting=([^,\s]+)", line)
            job.setting = setting.group(1) if setting else None
        elif line.strip().startswith("resources:"):
            job.gpu = re.search(r"\bgpu=([1-9]\d*)", line) is not None
        elif line.startswith("Shell command: ") and not job.command:
            job.command = line[len("Shell command: ") :].strip()
    return jobs


def iseat_args(command: str) -> list[str]:
    """The words of a rule's `iseat` call: without the shell's redirections and pipes, the launcher of a
    data-parallel run (`torchrun ... -m iseat`), and the `--pin-gpu` and `--attempt N` prefixes of the GPU
    rules (`iseat --pin-gpu --attempt 1 train ...` -> `iseat train ...`)."""
    words = shlex.split(re.split(r" 2>&1| \| | > ", command)[0])
    if words[:1] == ["torchrun"] and "-m" in words:
        words = words[words.index("-m") + 1 :]
    if words[1:2] == ["--pin-gpu"]:
        words = [words[0], *words[2:]]
    if words[1:2] == ["--attempt"]:
        words = [words[0], *words[3:]]
    return words


def run_config(command: str) -> tuple[dict, str]:
    """The config of a training command (defaults <- --config file if present <- --set values) and its --out.
    Not `config.load_config`: a plan is made before the data are fetched, and that checks data.root."""
    args = iseat_args(command)
    cfg, out, i = copy.deepcopy(DEFAULTS), "", 2
    while i < len(args):
        if args[i] == "--config":
            path = Path(args[i + 1])
            if path.is_file():
                cfg = deep_merge(cfg, yaml.safe_load(path.read_text()) or {})
            i += 2
        elif args[i] == "--out":
            out, i = args[i + 1], i + 2
        elif args[i] == "--set":
            i += 1
            while i < len(args) and not args[i].startswith("--"):
                apply_override(cfg, args[i])
                i += 1
        else:
            i += 1
    return cfg, out


def option(command: str, name: str, default=None):
    args = iseat_args(command)
    return args[args.index(name) + 1] if name in args else default


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


def evaluation_seconds(command: str, cfg: dict, times: StepTimes) -> float | None:
    """An evaluation's cost; a shard (--shard I/K) costs 1/K of it (the K shards sum to the whole), the
    gather of the shards (--gather) nothing."""
    if "--gather" in iseat_args(command):
        return 0.0
    _, n_test = dataset_sizes(cfg["data"])
    n = int(option(command, "--n-ex", n_test))
    shard = option(command, "--shard")
    fraction = 1 / int(shard.split("/")[1]) if shard else 1.0
    args = iseat_args(command)
    if "--eps-sweep" in args:  # one PGD pass per positive budget (eps 0 is clean accuracy)
        budgets = args[args.index("--eps-sweep") + 1 :]
        budgets = budgets[: next((i for i, a in enumerate(budgets) if a.startswith("--")), len(budgets))]
        passes = sum(parse_fraction(b) > 0 for b in budgets)
        return passes * pgd_cost(n, int(option(command, "--pgd-steps", 10)), cfg, times)
    if option(command, "--attack") == "pgd":
        return fraction * pgd_cost(n, int(option(command, "--pgd-steps", 10)), cfg, times)
    arch, scale = model_key(cfg)
    rate = times.aa_s_per_image.get(arch)
    return None if rate is None else fraction * n * rate * scale


# ----------------------------------------------------------------------------- the plan


def plan(
    jobs: list[Job], times: StepTimes, gpus_per_run: int = 1, efficiency: float = 1.0, gpus_per_node: int = 1
) -> dict:
    """Per setting: jobs (all, and GPU jobs), GPU-hours of trainings and evaluations; the totals. Each
    training on `gpus_per_run` GPUs (data-parallel) at `efficiency` (its speed-up is N x efficiency):
    its GPU-hours grow by 1 / efficiency and `data_parallel` gives the trainings' wall-clock. With
    `gpus_per_node` > 1 (single-GPU trainings only), `packing` gives the packed jobs' GPU-hours and wall-clock."""
    trainings = {id(job): run_config(job.command) for job in jobs if job.kind == "train"}  # parsed once
    configs = {Path(out).as_posix(): cfg for cfg, out in trainings.values()}
    per_setting: dict[str, dict] = {}
    longest = 0.0  # one GPU's hours of the longest training
    train_hours = []  # one GPU's hours of each GPU training, in the dry run's order
    for job in jobs:
        row = per_setting.setdefault(
            job.group, {"jobs": 0, "gpu_jobs": 0, "train_hours": 0.0, "evaluate_hours": 0.0, "not_estimated": 0}
        )
        row["jobs"] += 1
        row["gpu_jobs"] += job.gpu
        seconds = None
        if job.kind == "train":
            seconds = training_seconds(trainings[id(job)][0], times)
            row["train_hours"] += seconds / 3600
            longest = max(longest, seconds / 3600)
            if job.gpu:  # CPU trainings are not packed
                train_hours.append(seconds / 3600)
        elif job.kind == "evaluate":
            run_dir = Path(option(job.command, "--checkpoint")).parent.as_posix()
            cfg = configs.get(run_dir) or saved_config(run_dir)
            seconds = evaluation_seconds(job.command, cfg, times) if cfg else None
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
        "packing": packing(train_hours, gpus_per_node) if gpus_per_run == 1 else packing(train_hours, 1),
    }


def packing(train_hours: list[float], gpus_per_node: int) -> dict:
    """Single-GPU trainings packed `gpus_per_node` to a job, in the dry run's order (Snakemake picks a
    job's members among the trainings ready together): a job holds its GPUs until its longest member
    ends, so its GPU-hours are gpus_per_node x that member's hours; the wall-clock of the longest job
    and of all jobs one after another on one node."""
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


def parse_aa_rate(spec: str) -> tuple[str, float]:
    try:
        arch, seconds = spec.split("=")
        if not 0 <= float(seconds) < math.inf:
            raise ValueError(seconds)
        return arch, float(seconds)
    except ValueError:
        raise PlanInputError(
            f"{{0}} {literal(repr(spec))}: expected MODEL=SECONDS, SECONDS >= 0", "aa_s_per_image"
        ) from None


def check_gpu_check(report, path) -> None:
    """PlanInputError naming the first field of a gpu-check report that breaks schemas/gpu_check.schema.json."""
    schema = json.loads(resources.files("iseat").joinpath("schemas/gpu_check.schema.json").read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(report))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PlanInputError(
            f"{{0}} {literal(path)}: field {literal(where)}: {literal(error.message[:160])}; "
            f"write it with iseat benchmark gpu-check",
            "gpu_check",
        )


def measured_step_times(gpu_check=None, step_times=(), aa_rates=()) -> StepTimes:
    """The step times of a gpu-check report (if any), then `MODEL[:METHOD]=SECONDS` values, and AutoAttack's
    `MODEL=SECONDS` per test image."""
    times = StepTimes.from_gpu_check(gpu_check) if gpu_check else StepTimes()
    for spec in step_times:
        times.add(spec)
    for spec in aa_rates:
        arch, seconds = parse_aa_rate(spec)
        times.aa_s_per_image[arch] = seconds
    return times
