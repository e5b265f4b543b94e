"""aa.json and the per-sample CSV beside it: everything a reviewer needs to audit a robustness number.

The report is validated against `schemas/aa.schema.json` before it is written; the CSV is written
first and the JSON last (both atomically), so an existing aa.json always describes a complete run.
CSV columns: index (in the test set), label, clean_correct, pgd_correct, robust_correct (AutoAttack)
as 1/0, empty when that attack was not run; broken_by is "clean" (misclassified unperturbed), the
AutoAttack sub-attack that first fooled the model, or empty (robust, or AutoAttack not run).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import jsonschema

from ..io import write_json_atomic, write_text_atomic
from . import autoattack_adapter as adapter
from .spec import NORM, EvaluationSpec

FORMAT = "iseat-robustness-v1"
COLUMNS = ("index", "label", "clean_correct", "pgd_correct", "robust_correct", "broken_by")
PHASES = ("clean", "pgd", "autoattack")


def per_sample_path(out) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.per_sample.csv")


def merge_chunks(chunks: list[dict]) -> dict:
    """Per-sample columns over all chunks (columns of attacks that were not run are absent)."""
    keys = [k for k in COLUMNS if k in chunks[0]]
    return {k: [v for chunk in chunks for v in chunk[k]] for k in keys}


def per_sample_csv(samples: dict) -> str:
    """index,label,clean_correct,pgd_correct,robust_correct,broken_by; 1/0 flags, empty when not evaluated."""
    n = len(samples["index"])
    flag = lambda key, i: "" if key not in samples else str(int(samples[key][i]))
    rows = [",".join(COLUMNS)]
    for i in range(n):
        broken = samples["broken_by"][i] if "broken_by" in samples else ""
        rows.append(f"{samples['index'][i]},{samples['label'][i]},{flag('clean_correct', i)},"
                    f"{flag('pgd_correct', i)},{flag('robust_correct', i)},{broken}")
    return "\n".join(rows) + "\n"


def summed_times(chunks: list[dict]) -> dict:
    times = {phase: sum(c["wall_time_s"].get(phase, 0.0) for c in chunks) for phase in PHASES}
    times["total"] = sum(times.values())
    return times


def autoattack_section(samples: dict, spec: EvaluationSpec, settings: dict, seconds: float) -> dict:
    protocol = spec.protocol
    n = len(samples["index"])
    broken = {a: samples["broken_by"].count(a) for a in settings["attacks"]}
    n_robust = sum(samples["robust_correct"])
    remaining = n - samples["broken_by"].count(adapter.CLEAN)  # AutoAttack's own clean pass
    after = {"clean": remaining / n}
    for attack in settings["attacks"]:
        remaining -= broken[attack]
        after[attack] = remaining / n
    return {"protocol": protocol.name, "label": protocol.label, "standard": protocol.standard,
            "implementation": "pyautoattack", "version": settings["version"], "settings": settings,
            "seed": spec.seed, "batch_size": spec.batch_size, "robust_accuracy": n_robust / n, "n_robust": n_robust,
            "broken_by": broken, "robust_accuracy_after": after, "wall_time_s": seconds}


def pgd_section(samples: dict, spec: EvaluationSpec, seconds: float) -> dict:
    n_robust = sum(samples["pgd_correct"])
    return {"label": spec.pgd.label, "steps": spec.pgd.steps, "step_size": spec.pgd.step_size,
            "restarts": spec.pgd.restarts, "random_start": spec.pgd.random_start,
            "robust_accuracy": n_robust / len(samples["index"]), "n_robust": n_robust, "wall_time_s": seconds}


def headline(autoattack: dict | None, pgd: dict | None) -> dict:
    """The report's robust accuracy: AutoAttack's when it ran, else PGD's; named so tables cannot mislabel it."""
    if autoattack is not None:
        return {"protocol": autoattack["protocol"], "label": autoattack["label"], "standard": autoattack["standard"],
                "robust_accuracy": autoattack["robust_accuracy"], "n_robust": autoattack["n_robust"]}
    if pgd is not None:
        return {"protocol": "pgd", "label": pgd["label"], "standard": False, "robust_accuracy": pgd["robust_accuracy"],
                "n_robust": pgd["n_robust"]}
    return {"protocol": "none", "label": "clean accuracy only", "standard": False, "robust_accuracy": None,
            "n_robust": None}


def build_report(chunks: list[dict], spec: EvaluationSpec, *, settings: dict | None, device: str, source: dict,
                 data: dict, provenance: dict, runs: int, per_sample_file: str) -> dict:
    samples = merge_chunks(chunks)
    n = len(samples["index"])
    times = summed_times(chunks)
    autoattack = autoattack_section(samples, spec, settings, times["autoattack"]) if settings else None
    pgd = pgd_section(samples, spec, times["pgd"]) if spec.runs_pgd else None
    n_clean = sum(samples["clean_correct"])
    warnings = [w for c in chunks for w in c.get("warnings", [])]
    if autoattack is not None:
        warnings += adapter.square_warnings(autoattack["robust_accuracy_after"])
    warnings = list(dict.fromkeys(warnings))
    return {"format": FORMAT, "clean_accuracy": n_clean / n, **headline(autoattack, pgd),
            "n_examples": n, "n_clean_correct": n_clean, "norm": NORM, "eps": spec.eps, "autoattack": autoattack,
            "pgd": pgd, "per_sample": {"file": per_sample_file, "columns": list(COLUMNS), "sha256": None},
            "wall_time_s": times, "device": device, **source, "data": data,
            "resume": {"chunk_size": spec.chunk_size, "chunks": len(chunks), "runs": runs},
            "warnings": warnings, "provenance": provenance,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def schema() -> dict:
    return json.loads(resources.files("iseat").joinpath("schemas/aa.schema.json").read_text())


def validate(report: dict) -> None:
    """Raise ValueError naming the first field of `report` that breaks the aa.json schema."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(report))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"aa.json field {where}: {error.message}")


def write_outputs(out, report: dict, chunks: list[dict]) -> None:
    """Write the per-sample CSV, then the validated report (both atomically)."""
    csv_text = per_sample_csv(merge_chunks(chunks))
    report["per_sample"]["sha256"] = hashlib.sha256(csv_text.encode()).hexdigest()
    validate(report)
    write_text_atomic(per_sample_path(out), csv_text)
    write_json_atomic(out, report)
