"""Inputs and report marks of the aggregation rules (rules/aggregate.smk)."""

SIGNIFICANCE_OUTPUTS = [f"{RESULTS}/tables/significance.{ext}" for ext in ("csv", "md")]


def per_sample_results():
    """Every seed's AutoAttack per-sample CSV: the paired comparisons (each method against AT, ISEAT
    against each baseline) are made on the same test images."""
    if "aa" not in EVALUATIONS:
        return []
    return [f"{run_dir(s, m, seed)}/aa.per_sample.csv" for s in SETTINGS for m in methods_of(s) for seed in seeds_of(s)]


def reported(paths, category, caption, subcategory=None):
    """Outputs marked for the Snakemake report, each with a caption from workflow/report/."""
    mark = lambda p: report(
        p,
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory or Path(p).stem,
    )
    return [mark(p) for p in paths]
