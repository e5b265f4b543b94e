"""Inputs and options of the evaluation rules (rules/evaluate.smk)."""


def sweep_args(wildcards):
    """`iseat evaluate --eps-sweep` options from `evaluation.sweep`."""
    n_ex = SWEEP.get("n_ex")
    args = ["--eps-sweep", *(str(eps) for eps in SWEEP["eps"]), "--pgd-steps", str(SWEEP.get("steps", 10))]
    device = ["--device", job_device("evaluate", wildcards.setting)]
    return " ".join([*args, *(["--n-ex", str(n_ex)] if n_ex else []), *device, "--no-progress"])


def sweep_results():
    """Every (setting, method)'s aggregated sweep.json (none without `evaluation.sweep`)."""
    return [f"{RESULTS}/{s}/{m}/sweep.json" for s in SETTINGS for m in methods_of(s)] if SWEEP else []
