"""The GPU check's report: its results as JSON and Markdown, rewritten after every section so that a check
cut short still leaves what it measured, and the problems that make the check fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iseat.benchmarks.step_timing import memory_lean_lines
from iseat.common.io import write_json_atomic, write_text_atomic

# the pass/fail sections and the key holding their verdict
VERDICTS = (("determinism", "identical_weights"), ("resume", "identical_to_uninterrupted"))


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


def problems(result: dict) -> list[str]:
    """Sections that failed, and checks that did not pass."""
    out = [f"{name} failed" for name in result.get("failed", {})]
    for name, key in VERDICTS:
        if name in result.get("sections", {}) and not result["sections"][name][key]:
            out.append(f"{name}: {key.replace('_', ' ')} is false")
    return out


def format_report(result: dict) -> str:
    env = result.get("environment", {})
    sections = result.get("sections", {})
    lines = [
        f"# GPU check ({result.get('mode')})",
        "",
        f"Device: {env.get('gpu', env.get('device'))}; torch {env.get('torch')}; budget "
        f"{result.get('budget_s', 0):.0f} s" + (f", took {result['elapsed_s']:.0f} s" if "elapsed_s" in result else ""),
    ]
    lines += step_lines({k: v for k, v in sections.items() if k.startswith("step/")})
    lines += loader_lines(sections.get("loader"))
    lines += training_lines(sections.get("training"))
    lines += verdict_lines(sections)
    if result.get("failed"):
        lines += ["", "## Failed", ""] + [f"- {k}: {v}" for k, v in result["failed"].items()]
    if result.get("skipped"):
        lines += ["", "## Skipped (time budget)", ""] + [f"- {k}: {v}" for k, v in result["skipped"].items()]
    return "\n".join(lines)


def step_lines(steps: dict) -> list[str]:
    """The step section's table (one row per model, variant, method and path) and its ratios."""
    if not steps:
        return []
    pgd_steps = next(iter(steps.values()))["pgd_steps"]
    lines = [
        "",
        f"## Training step (PGD-{pgd_steps})",
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
        lines += [f"- {key[5:]}: {line}" for line in memory_lean_lines(r["rows"])]
    return lines


def loader_lines(ld: dict | None) -> list[str]:
    if ld is None:
        return []
    lines = ["", "## Data loader", ""]
    for aug, r in ld["loader"].items():
        lines.append(
            f"- {aug}: {r['img_per_s']:.0f} img/s with {ld['num_workers']} workers, "
            f"{ld['ratio'][aug]:.1f}x what one {ld['step']['method']} {ld['step']['arch']} step consumes "
            f"({ld['step']['img_per_s']:.0f} img/s)"
        )
    return lines


def training_lines(t: dict | None) -> list[str]:
    if t is None:
        return []
    return [
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


def verdict_lines(sections: dict) -> list[str]:
    lines = []
    for name, key in VERDICTS:
        if name in sections:
            s = sections[name]
            lines += [
                "",
                f"## {name.capitalize()}",
                "",
                f"{'PASS' if s[key] else 'FAIL'}: {key.replace('_', ' ')} (max |diff| {s['max_abs_difference']:.3g})",
            ]
    return lines
