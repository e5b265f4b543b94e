"""Seed statistics: the evaluation files of one (setting, method)'s seeds into mean, std and per-seed
values (with each seed's run folder and per-sample file, for the paired comparisons)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from iseat.common.io import write_json_atomic
from iseat.evaluation import gradient_masking as masking
from iseat.results import ResultsError
from iseat.results.protocols import check_side_by_side, protocol_of, stamp_of

SEEDS_FORMAT = "iseat-seeds-v1"


def read_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


def mean_std(values) -> dict:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of finite values."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {
        "mean": mean,
        "std": std,
        "min": min(values, default=math.nan),
        "max": max(values, default=math.nan),
        "values": values,
    }


def seed_of(path) -> int | None:
    match = re.fullmatch(r"seed(\d+)", Path(path).parent.name)
    return int(match.group(1)) if match else None


def aggregate_seeds(paths) -> dict:
    """Mean, std and per-seed values of the evaluation files of one (setting, method)."""
    if not paths:
        raise ResultsError("no evaluation files given")
    per_seed, results = [], []
    for i, path in enumerate(paths):
        result = read_json(path)
        results.append(result)
        for key in ("clean_accuracy", "robust_accuracy"):
            value = result.get(key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ResultsError(f"{path}: {key} must be a fraction in [0, 1], got {value!r}")
        seed = seed_of(path)
        stamp = protocol_of(stamp_of(result, path))
        per_sample = (result.get("per_sample") or {}).get("file")  # the evaluation's per-sample CSV, beside it
        per_seed.append(
            {
                "seed": seed if seed is not None else i,
                "source": str(path),
                "run_dir": str(Path(path).parent),
                "attack": attack_name(result),
                "label": result.get("label"),
                "clean_accuracy": float(result["clean_accuracy"]),
                "robust_accuracy": float(result["robust_accuracy"]),
                "n_examples": result.get("n_examples"),
                "per_sample": str(Path(path).parent / per_sample) if per_sample else None,
                "speed_options": run_speed_options(Path(path).parent),
                "stamp": stamp,
                "masking_flags": list(result.get("masking_flags", [])),
            }
        )
    attacks = sorted({str(s["attack"]) for s in per_seed})
    if len(attacks) > 1:
        raise ResultsError(f"the files mix attacks {attacks}; aggregate one attack at a time")
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise ResultsError(f"seed given twice among {seeds}")
    check_side_by_side({s["source"]: s for s in per_seed}, "seeds of one result")
    n_examples = sorted({s["n_examples"] for s in per_seed if s["n_examples"] is not None})
    return {
        "format": SEEDS_FORMAT,
        "attack": per_seed[0]["attack"],
        "label": per_seed[0]["label"],
        "n_seeds": len(per_seed),
        "seeds": seeds,
        "n_examples": n_examples[0] if len(n_examples) == 1 else n_examples,
        "speed_options": sorted({o for s in per_seed for o in s["speed_options"]}),
        "stamp": per_seed[0]["stamp"],  # the protocol every seed shares (None: not iseat evaluate reports)
        "masking_flags": masking.ordered(f for s in per_seed for f in s["masking_flags"]),  # any seed's
        "clean_accuracy": mean_std(s["clean_accuracy"] for s in per_seed),
        "robust_accuracy": mean_std(s["robust_accuracy"] for s in per_seed),
        "std": "sample standard deviation over seeds (n - 1); 0 for a single seed",
        "per_seed": per_seed,
        **mean_curve(results),
    }


def mean_curve(results: list[dict]) -> dict:
    """{"curve": mean and std over seeds of robust accuracy at each eps} of eps sweeps (sweep.json; their stamps
    agree on the budgets), else {}."""
    if not all(isinstance(r.get("curve"), list) for r in results):
        return {}
    budgets = [p["eps"] for p in results[0]["curve"]]
    return {
        "curve": [
            {"eps": eps, "robust_accuracy": mean_std(r["curve"][i]["robust_accuracy"] for r in results)}
            for i, eps in enumerate(budgets)
        ]
    }


def write_seed_summary(paths, out) -> dict:
    """`aggregate_seeds` of the seeds' evaluation files, written (atomically) as JSON at `out`."""
    result = aggregate_seeds(paths)
    write_json_atomic(out, result)
    return result


def run_speed_options(run_dir: Path) -> list[str]:
    """The opt-in speed options (bf16, TF32, compile, ...) the run in `run_dir` used, from its summary.json."""
    from iseat.training.acceleration import used_options  # here, not at the top: the results layer runs without torch

    summary = run_dir / "summary.json"
    if not summary.is_file():
        return []
    try:
        return used_options(json.loads(summary.read_text()).get("acceleration"))
    except (json.JSONDecodeError, AttributeError):
        return []


def attack_name(result: dict):
    for key in ("protocol", "attack", "name"):
        if result.get(key) is not None:
            value = result[key]
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "unknown"


def percent(stats: dict | None) -> tuple | None:
    """(mean, std) of a seed statistic in %."""
    if not stats:
        return None
    return 100 * stats["mean"], 100 * stats["std"]
