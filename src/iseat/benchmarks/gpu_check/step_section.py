"""The check's step section: Tab. 4 step timing (`iseat.benchmarks.step_timing`) per model and speed variant,
each entry run only when its estimate (scaled from what was measured so far) fits the budget."""

from __future__ import annotations

import time
import traceback

from iseat.benchmarks import step_timing
from iseat.benchmarks.gpu_check.profile import COMPILE_SECONDS, MODEL_COST, VARIANTS, Budget, Profile
from iseat.benchmarks.gpu_check.report import Report
from iseat.benchmarks.tab4_setups import AT, ISEAT


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
        iseat, at = (ISEAT, "fast"), (AT, "fast")
        if iseat in by and at in by:
            result["iseat_over_at"] = by[iseat]["median_s"] / by[at]["median_s"]
