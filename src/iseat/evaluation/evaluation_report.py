"""aa.json and the per-sample CSV beside it: everything a reviewer needs to audit a robustness number,
with the protocol stamp (`stamp`) that says when two numbers may stand side by side.

The report is validated against `schemas/aa.schema.json` before it is written; the CSV is written
first and the JSON last (both atomically), so an existing aa.json always describes a complete run.
CSV columns: index (in the test set), label, clean_correct, then each registered attack's columns
(`attacks.columns()`: pgd_correct, robust_correct (AutoAttack), broken_by, cw_correct, ...) as 1/0,
empty when that attack was not run; broken_by is "clean" (misclassified unperturbed), the AutoAttack
sub-attack that first fooled the model, or empty (robust, or AutoAttack not run).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import jsonschema

from iseat.common.io import write_json_atomic, write_text_atomic
from iseat.evaluation import attacks
from iseat.evaluation import gradient_masking as masking
from iseat.evaluation.attacks import Attack
from iseat.evaluation.protocol_stamp import mode_name, protocol_stamp
from iseat.evaluation.spec import NORM, EvaluationSpec

FORMAT = "iseat-robustness-v2"  # v2: the protocol stamp (`stamp`)
SAMPLE_COLUMNS = ("index", "label", "clean_correct")


def columns() -> list[str]:
    """CSV columns: the sample, clean correctness, then every registered attack's columns (registry order)."""
    return [*SAMPLE_COLUMNS, *attacks.columns()]


def per_sample_path(out) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.per_sample.csv")


def merge_chunks(chunks: list[dict]) -> dict:
    """Per-sample columns over all chunks (columns of attacks that were not run are absent)."""
    keys = [k for k in columns() if k in chunks[0]]
    return {k: [v for chunk in chunks for v in chunk[k]] for k in keys}


def cell(value) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)


def per_sample_csv(samples: dict) -> str:
    """One row per sample; flags as 1/0; a column is empty when its attack was not run."""
    names = columns()
    rows = [",".join(names)]
    for i in range(len(samples["index"])):
        rows.append(",".join(cell(samples[k][i]) if k in samples else "" for k in names))
    return "\n".join(rows) + "\n"


def summed_times(chunks: list[dict]) -> dict:
    phases = ["clean", *attacks.sections()]
    times = {phase: sum(c["wall_time_s"].get(phase, 0.0) for c in chunks) for phase in phases}
    times["total"] = sum(times.values())
    return times


def headline(ran: list[tuple[Attack, dict]]) -> dict:
    """The report's robust accuracy: the highest-ranked attack's (AutoAttack's when it ran), named by it so
    tables cannot mislabel it; None with clean accuracy only."""
    if not ran:
        return {
            "protocol": "none",
            "label": "clean accuracy only",
            "standard": False,
            "robust_accuracy": None,
            "n_robust": None,
        }
    attack, record = max(ran, key=lambda pair: pair[0].rank)
    return {
        "protocol": attack.protocol,
        "label": attack.label,
        "standard": attack.standard,
        "robust_accuracy": record["robust_accuracy"],
        "n_robust": record["n_robust"],
    }


def build_report(
    chunks: list[dict],
    spec: EvaluationSpec,
    run: list[Attack],
    *,
    device: str,
    source: dict,
    data: dict,
    provenance: dict,
    runs: int,
    per_sample_file: str,
) -> dict:
    """aa.json: clean accuracy, the headline, one section per registered attack (None when not run), audit data."""
    samples = merge_chunks(chunks)
    n = len(samples["index"])
    times = summed_times(chunks)
    ran = [(attack, attack.record(samples, times[attack.section])) for attack in run]
    sections = {section: None for section in attacks.sections()} | {a.section: record for a, record in ran}
    n_clean = sum(samples["clean_correct"])
    warnings = [w for c in chunks for w in c.get("warnings", [])]
    warnings += [w for attack, record in ran for w in attack.final_warnings(record)]
    warnings = list(dict.fromkeys(warnings))
    accuracy = lambda section: (sections.get(section) or {}).get("robust_accuracy")
    flags = masking.ordered(
        masking.flags_from_warnings(warnings) + masking.pgd_gap(accuracy("pgd"), accuracy("autoattack"))
    )
    stamp = protocol_stamp(
        norm=NORM,
        eps=spec.eps,
        attack_settings={a.name: a.settings() for a in run},
        seed=spec.seed,
        indices=samples["index"],
        chunk_digests=[c["data_sha256"] for c in chunks],
        model_mode=mode_name(chunks),
        source=source,
        dataset=data.get("dataset"),
        versions=provenance["versions"],
    )
    return {
        "format": FORMAT,
        "stamp": stamp,
        "clean_accuracy": n_clean / n,
        **headline(ran),
        "n_examples": n,
        "n_clean_correct": n_clean,
        "norm": NORM,
        "eps": spec.eps,
        **sections,
        "per_sample": {"file": per_sample_file, "columns": columns(), "sha256": None},
        "wall_time_s": times,
        "device": device,
        **source,
        "data": data,
        "resume": {"chunk_size": spec.chunk_size, "chunks": len(chunks), "runs": runs},
        "warnings": warnings,
        "masking_flags": flags,
        "provenance": provenance,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def schema(name: str = "aa") -> dict:
    return json.loads(resources.files("iseat").joinpath(f"schemas/{name}.schema.json").read_text())


def validate(report: dict, name: str = "aa") -> None:
    """Raise ValueError naming the first field of `report` that breaks the `name`.json schema (aa, sweep)."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema(name)).iter_errors(report))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(f"{name}.json field {where}: {error.message}")


def write_outputs(out, report: dict, chunks: list[dict]) -> None:
    """Write the per-sample CSV, then the validated report (both atomically)."""
    csv_text = per_sample_csv(merge_chunks(chunks))
    report["per_sample"]["sha256"] = hashlib.sha256(csv_text.encode()).hexdigest()
    validate(report)
    write_text_atomic(per_sample_path(out), csv_text)
    write_json_atomic(out, report)
