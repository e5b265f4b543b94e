"""Is the difference real? Paired comparison of two methods on the same test images (not in the ISEAT paper).

Per seed, McNemar's exact test on per-sample robust correctness: only the discordant images count (right
under A and wrong under B: n_ab; the reverse: n_ba); under "no difference" each is a fair coin flip, so the
two-sided p-value is min(1, 2 P[Binomial(n_ab + n_ba, 1/2) <= min(n_ab, n_ba)]). Over seeds, the mean
accuracy difference with its Student-t interval, mean +- t_{(1+c)/2, k-1} s / sqrt(k) (k seeds, s the sample
standard deviation of the per-seed differences). Over a family of m comparisons (one table's), Holm's
step-down adjustment (Holm 1979): with the p-values sorted p_(1) <= ... <= p_(m), the adjusted
p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where it is below alpha bounds the family-wise
error rate by alpha.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95


class SignificanceError(ValueError):
    """Per-sample results that cannot be paired (one line)."""


@dataclass(frozen=True)
class McNemar:
    n_ab: int  # correct under A, wrong under B
    n_ba: int  # correct under B, wrong under A
    p_value: float  # exact, two-sided


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """McNemar's exact test on paired per-sample correctness (bool arrays over the same images, same order)."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise SignificanceError(f"paired results need two 1-d arrays of one length, got {a.shape} and {b.shape}")
    n_ab, n_ba = int((a & ~b).sum()), int((~a & b).sum())
    n, k = n_ab + n_ba, min(n_ab, n_ba)
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)  # exact: no underflow for large n
    return McNemar(n_ab, n_ba, float(min(Fraction(1), 2 * tail)))


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None  # None with a single seed: no spread to estimate
    high: float | None
    confidence: float
    n: int

    def excludes_zero(self) -> bool | None:
        return None if self.low is None else bool(self.low > 0 or self.high < 0)


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` (e.g. per-seed accuracy differences) with its Student-t confidence interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise SignificanceError("the interval needs at least one value")
    mean, n = float(values.mean()), len(values)
    if n < 2:
        return Interval(mean, None, None, confidence, n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, confidence, n)


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (None entries, comparisons not made, stay None)."""
    given = [(i, float(p)) for i, p in enumerate(p_values) if p is not None]
    if any(not 0 <= p <= 1 for _, p in given):
        raise SignificanceError(f"p-values must lie in [0, 1], got {[p for _, p in given]}")
    adjusted: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(given)
    for rank, (i, p) in enumerate(sorted(given, key=lambda item: item[1])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def per_sample_rows(path, column: str) -> list[dict]:
    """The rows of a per-sample CSV (`aa.per_sample.csv`) that has the columns index and `column`."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise SignificanceError(f"{path}: not readable ({type(err).__name__})") from None
    if not rows or column not in rows[0] or "index" not in rows[0]:
        raise SignificanceError(f"{path}: no rows with the columns index and {column}")
    return rows


def check_covers(path, n_examples: int) -> None:
    """A per-sample CSV must hold one row for each test image its evaluation names (`aa.json`: the first
    `n_examples` images, indices 0 .. n_examples - 1), each once."""
    indices = [row["index"] for row in per_sample_rows(path, "index")]
    if sorted(indices, key=lambda i: int(i) if i.isdigit() else -1) != [str(i) for i in range(n_examples)]:
        raise SignificanceError(
            f"{path}: holds {len(indices)} rows ({len(set(indices))} distinct indices), not one "
            f"for each of the {n_examples} test images (indices 0..{n_examples - 1}) its "
            f"evaluation names; evaluate again or restore the file"
        )


def read_per_sample(path, column: str) -> dict[int, bool]:
    """{test index: flag} from a per-sample CSV (`aa.per_sample.csv`); the column must be filled."""
    rows = per_sample_rows(path, column)
    if any(row[column] not in ("0", "1") for row in rows):
        raise SignificanceError(f"{path}: column {column} is not filled with 0/1 (was that attack run?)")
    return {int(row["index"]): row[column] == "1" for row in rows}


def paired(path_a, path_b, column: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = read_per_sample(path_a, column), read_per_sample(path_b, column)
    if a.keys() != b.keys():
        raise SignificanceError(f"{path_a} and {path_b} hold different test images; evaluate both on the same ones")
    order = sorted(a)
    return np.array([a[i] for i in order]), np.array([b[i] for i in order])


def compare_per_sample(
    runs_a: Mapping[int, str | Path],
    runs_b: Mapping[int, str | Path],
    *,
    column: str = "robust_correct",
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
) -> dict:
    """Method A against method B from their per-seed per-sample CSVs ({seed: path}, the same seeds).

    Returns a JSON-able record: per seed, both accuracies, the difference A - B and McNemar's test; over
    seeds, the mean difference and its t-interval. `significant` is whether the interval excludes 0 (with
    one seed: whether McNemar's p < alpha).
    """
    if not runs_a or set(runs_a) != set(runs_b):
        raise SignificanceError(f"the methods must share their seeds, got {sorted(runs_a)} and {sorted(runs_b)}")
    per_seed = []
    for seed in sorted(runs_a):
        a, b = paired(runs_a[seed], runs_b[seed], column)
        test = mcnemar_exact(a, b)
        per_seed.append(
            {
                "seed": seed,
                "n_examples": len(a),
                "accuracy_a": float(a.mean()),
                "accuracy_b": float(b.mean()),
                "difference": float(a.mean() - b.mean()),
                **asdict(test),
                "significant": test.p_value < alpha,
            }
        )
    interval = t_interval([s["difference"] for s in per_seed], confidence)
    excludes = interval.excludes_zero()
    return {
        "column": column,
        "alpha": alpha,
        "seeds": sorted(runs_a),
        "per_seed": per_seed,
        "difference": asdict(interval),
        "interval_excludes_zero": excludes,
        "significant": excludes if excludes is not None else per_seed[0]["significant"],
    }
