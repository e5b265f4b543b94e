"""Measured step times for `iseat plan`: median seconds of one training step at batch 128 per model, speed
variant and Tab. 4 method row, from a `gpu-check` report or given on the command line, and AutoAttack's
seconds per test image. A report's step times are chosen per job by its speed options (compile > bf16 >
channels_last > tf32 > fp32; memory-lean for +LSI and ISEAT when the run sets it)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema

from iseat.common.errors import ParameterError, UserError, literal
from iseat.methods import registry as method_registry

METHOD_ROWS = tuple(method_registry.tab4_labels().values())
REFERENCE_BATCH = 128
SPEED_VARIANT_ORDER = ("compile", "bf16", "channels_last", "tf32", "fp32")


class PlanError(UserError, ValueError):
    """Bad input to the plan (no measurement for a model, an unreadable report); one line."""


class PlanInputError(PlanError, ParameterError):
    """A bad measurement given to the plan (`gpu_check`, `step_time`, `aa_s_per_image`), named so."""


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
