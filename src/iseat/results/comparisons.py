"""Is the difference real? Paired comparisons on the same test images, from the per-sample results of
each seed (`iseat.results.significance`): every method against AT of its setting, and ISEAT against each
baseline of its setting.

A difference is marked significant when McNemar's exact test on per-sample robust correctness gives
p < 0.05 on every shared seed AND, with two or more seeds, the 95 % Student-t interval of the seed-wise
accuracy differences excludes 0 (with one seed McNemar alone decides). With many rows some such marks are
expected by chance, so each table also adjusts its comparisons' largest per-seed p-values with
Holm-Bonferroni (`significance.holm`) over that table's comparisons: a second mark says the difference
survives it.
"""

from __future__ import annotations

from pathlib import Path

from iseat.results import ResultsError
from iseat.results.significance import ALPHA, CONFIDENCE, SignificanceError, check_covers, compare_per_sample, holm

# The per-sample column that holds each evaluation's robust correctness
CORRECT_COLUMN = {"aa": "robust_correct", "pgd": "pgd_correct"}
MARK = "*"
HOLM_MARK = "†"
RULE = (
    f"{MARK} = significant: McNemar's exact p < {ALPHA:g} on every seed and, with two or more seeds, the "
    f"{100 * CONFIDENCE:.0f} % t-interval of the seed-wise difference excludes 0 (paired, same test images), "
    f"unadjusted; {HOLM_MARK} = still so with the largest per-seed p Holm-Bonferroni adjusted over the "
    f"table's comparisons"
)


def is_baseline(method: str) -> bool:
    """A method ISEAT is compared with: not AT itself, no ISEAT variant, no fine-tuned ablation."""
    return method != "at" and "iseat" not in method and not method.startswith("ft_")


def pairs(methods_by_setting: dict) -> list[tuple[str, str, str]]:
    """(setting, method, reference): every method against AT, ISEAT against each baseline."""
    out = []
    for setting, methods in methods_by_setting.items():
        if "at" in methods:
            out += [(setting, m, "at") for m in methods if m != "at"]
        if "iseat" in methods:
            out += [(setting, "iseat", b) for b in methods if is_baseline(b)]
    return out


def per_sample_files(aggregated: dict | None) -> dict[int, Path]:
    """{seed: per-sample CSV} of an aggregated result (`seeds.aggregate_seeds`), those that exist; each must
    cover its evaluation's test images."""
    files = {}
    for s in (aggregated or {}).get("per_seed", []):
        path = s.get("per_sample")
        if path and Path(path).is_file():
            if s.get("n_examples") is not None:
                try:
                    check_covers(path, s["n_examples"])
                except SignificanceError as err:
                    raise ResultsError(f"{err} (named by {s['source']})") from None
            files[int(s["seed"])] = Path(path)
    return files


def compare(aggregated_a: dict | None, aggregated_b: dict | None, evaluation: str = "aa") -> dict | None:
    """The paired comparison of two aggregated results on their shared seeds, None when they share no seed
    with per-sample files. Differences are in percentage points (A - B)."""
    a, b = per_sample_files(aggregated_a), per_sample_files(aggregated_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    try:
        record = compare_per_sample(
            {s: a[s] for s in shared},
            {s: b[s] for s in shared},
            column=CORRECT_COLUMN[evaluation],
            alpha=ALPHA,
            confidence=CONFIDENCE,
        )
    except SignificanceError as err:
        raise ResultsError(str(err)) from None
    interval = record["difference"]
    p_values = [s["p_value"] for s in record["per_seed"]]
    every_seed = all(p < ALPHA for p in p_values)
    pp = lambda v: None if v is None else 100 * v
    return {
        "evaluation": evaluation,
        "seeds": shared,
        "n_examples": sorted({s["n_examples"] for s in record["per_seed"]}),
        "accuracy_a": 100 * sum(s["accuracy_a"] for s in record["per_seed"]) / len(shared),
        "accuracy_b": 100 * sum(s["accuracy_b"] for s in record["per_seed"]) / len(shared),
        "difference": pp(interval["mean"]),
        "low": pp(interval["low"]),
        "high": pp(interval["high"]),
        "p_values": p_values,
        "p_max": max(p_values),
        "n_ab": sum(s["n_ab"] for s in record["per_seed"]),
        "n_ba": sum(s["n_ba"] for s in record["per_seed"]),
        "interval_excludes_zero": record["interval_excludes_zero"],
        "significant": every_seed and record["interval_excludes_zero"] is not False,
    }


def adjust(family: list) -> list:
    """The comparisons of one table (None: not made) with `p_holm`, their largest per-seed p Holm-adjusted
    over the family, and `significant_holm` (p_holm < alpha and the interval, if any, excluding 0)."""
    adjusted = holm([None if c is None else c["p_max"] for c in family])
    return [
        None
        if c is None
        else {**c, "p_holm": p, "significant_holm": p < ALPHA and c["interval_excludes_zero"] is not False}
        for c, p in zip(family, adjusted)
    ]


def compare_all(aggregated: dict, evaluation: str = "aa") -> dict:
    """{(setting, method, reference): comparison or None} over `aggregated` {(setting, method): result}."""
    methods: dict = {}
    for setting, method in aggregated:
        methods.setdefault(setting, []).append(method)
    return {(s, m, r): compare(aggregated[(s, m)], aggregated[(s, r)], evaluation) for s, m, r in pairs(methods)}


def mark(comparison: dict | None) -> str:
    """'+1.23 *†' (difference in points, the marks when significant unadjusted and after Holm's adjustment),
    '—' when not available."""
    if comparison is None:
        return "—"
    marks = (MARK if comparison["significant"] else "") + (HOLM_MARK if comparison.get("significant_holm") else "")
    return f"{comparison['difference']:+.2f}" + (f" {marks}" if marks else "")
