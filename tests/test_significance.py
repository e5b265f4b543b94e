"""Paired significance of a difference between two methods: McNemar's exact test against scipy's binomial test,
the seeds' t-interval against analytic Student-t quantiles and scipy's paired t-test, and the comparison of
per-sample CSVs on fake results with known discordant counts."""

import math

import numpy as np
import pytest
from scipy import stats

from iseat.results.significance import SignificanceError, compare_per_sample, holm, mcnemar_exact, t_interval


def pairs(n_ab, n_ba, n_both, n_neither, seed=0):
    """Shuffled paired flags with exactly these discordant and concordant counts."""
    a = [1] * n_ab + [0] * n_ba + [1] * n_both + [0] * n_neither
    b = [0] * n_ab + [1] * n_ba + [1] * n_both + [0] * n_neither
    order = np.random.default_rng(seed).permutation(len(a))
    return np.array(a, dtype=bool)[order], np.array(b, dtype=bool)[order]


@pytest.mark.parametrize("n_ab, n_ba", [(0, 0), (1, 0), (5, 5), (12, 3), (3, 12), (40, 22), (700, 640), (5, 0)])
def test_mcnemar_exact_equals_the_two_sided_binomial_test(n_ab, n_ba):
    a, b = pairs(n_ab, n_ba, n_both=50, n_neither=20)
    result = mcnemar_exact(a, b)
    assert (result.n_ab, result.n_ba) == (n_ab, n_ba)
    expected = 1.0 if n_ab + n_ba == 0 else stats.binomtest(n_ab, n_ab + n_ba, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_mcnemar_ignores_concordant_images_and_refuses_unpaired_input():
    assert mcnemar_exact(*pairs(9, 1, 0, 0)).p_value == mcnemar_exact(*pairs(9, 1, 900, 300)).p_value
    assert mcnemar_exact(*pairs(9, 1, 0, 0)).p_value == pytest.approx(2 * 11 / 1024)  # 2 P[Bin(10, 1/2) <= 1]
    with pytest.raises(SignificanceError, match="one length"):
        mcnemar_exact([True, False], [True])


def test_t_interval_uses_the_student_quantile():
    """k = 2 seeds: t_{0.975, 1} = tan(0.475 pi); k = 3: t_{0.975, 2} = (2p - 1) / sqrt(2 p (1 - p)), p = 0.975."""
    two = t_interval([0.02, 0.04])
    half = math.tan(0.475 * math.pi) * np.std([0.02, 0.04], ddof=1) / math.sqrt(2)
    assert (two.low, two.high) == pytest.approx((0.03 - half, 0.03 + half), rel=1e-10)
    three = [0.01, 0.03, 0.02]
    p = 0.975
    quantile = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    half = quantile * np.std(three, ddof=1) / math.sqrt(3)
    assert (t_interval(three).low, t_interval(three).high) == pytest.approx((0.02 - half, 0.02 + half), rel=1e-10)
    single = t_interval([0.05])
    assert single.low is None and single.excludes_zero() is None


def test_t_interval_agrees_with_scipys_paired_t_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.55, 0.01, 5), rng.normal(0.53, 0.01, 5)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    ours = t_interval(a - b)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def write_csv(path, flags, indices, column="robust_correct"):
    lines = [f"index,label,clean_correct,pgd_correct,{column},broken_by"]
    lines += [f"{i},3,1,1,{int(f)}," for i, f in zip(indices, flags)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fake_runs(tmp_path):
    """Three seeds of two methods on 200 images; A beats B on (20 + 5 s) images, loses on 8. B's rows are shuffled."""
    runs_a, runs_b, counts = {}, {}, {}
    for seed in range(3):
        a, b = pairs(20 + 5 * seed, 8, n_both=100, n_neither=200 - 128 - 5 * seed, seed=seed)
        indices = np.arange(1000, 1200)
        shuffled = np.random.default_rng(10 + seed).permutation(200)
        runs_a[seed] = write_csv(tmp_path / f"a{seed}.csv", a, indices)
        runs_b[seed] = write_csv(tmp_path / f"b{seed}.csv", b[shuffled], indices[shuffled])
        counts[seed] = (20 + 5 * seed, 8)
    return runs_a, runs_b, counts


def test_comparison_of_per_sample_csvs(fake_runs):
    runs_a, runs_b, counts = fake_runs
    record = compare_per_sample(runs_a, runs_b)
    differences = []
    for row in record["per_seed"]:
        n_ab, n_ba = counts[row["seed"]]
        assert (row["n_ab"], row["n_ba"], row["n_examples"]) == (n_ab, n_ba, 200)
        assert row["difference"] == pytest.approx((n_ab - n_ba) / 200)
        assert row["p_value"] == pytest.approx(stats.binomtest(n_ba, n_ab + n_ba, 0.5).pvalue)
        assert row["significant"] is (row["p_value"] < 0.05)
        differences.append((n_ab - n_ba) / 200)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(differences), scale=stats.sem(differences))
    assert (record["difference"]["low"], record["difference"]["high"]) == pytest.approx((low, high))
    assert record["significant"] is record["interval_excludes_zero"] is bool(low > 0)
    assert record["seeds"] == [0, 1, 2] and record["column"] == "robust_correct"


def test_one_seed_falls_back_to_mcnemar(fake_runs):
    runs_a, runs_b, _ = fake_runs
    record = compare_per_sample({0: runs_a[0]}, {0: runs_b[0]})
    assert record["interval_excludes_zero"] is None
    assert record["significant"] is record["per_seed"][0]["significant"]


def test_unpairable_results_are_refused(fake_runs, tmp_path):
    runs_a, runs_b, _ = fake_runs
    with pytest.raises(SignificanceError, match="share their seeds"):
        compare_per_sample(runs_a, {0: runs_b[0]})
    other = write_csv(tmp_path / "other.csv", [True] * 200, np.arange(200))
    with pytest.raises(SignificanceError, match="different test images"):
        compare_per_sample({0: runs_a[0]}, {0: other})
    empty = tmp_path / "pgd_only.csv"
    empty.write_text("index,label,clean_correct,pgd_correct,robust_correct,broken_by\n0,1,1,1,,\n")
    with pytest.raises(SignificanceError, match="not filled with 0/1"):
        compare_per_sample({0: empty}, {0: empty})


def test_holm_adjustment_equals_a_hand_computation():
    """m = 4, sorted 0.005, 0.01, 0.03, 0.04: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, then
    1 x 0.04 = 0.04 raised to the running maximum 0.06; a comparison not made (None) is not counted."""
    assert holm([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == [] and holm([None]) == [None]
    with pytest.raises(SignificanceError, match="in \\[0, 1\\]"):
        holm([1.5])
