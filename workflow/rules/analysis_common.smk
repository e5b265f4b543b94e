"""Set-up and input functions of the Section 3 analysis rules (rules/analysis.smk)."""

validate_config(config.setdefault("analysis", {}), "../schemas/analysis.schema.yaml", key="analysis")

ANALYSIS = config["analysis"]
ANALYSIS_DIR = f"{RESULTS}/analysis"
ANALYSIS_RUNS = {run["name"]: run for run in ANALYSIS["runs"]}
ETA_SWEEP = ANALYSIS.get("eta_sweep")


# ----------------------------------------------------------------------------- config checks


def analysis_check():
    """Names that must refer to each other (see config/README.md, `analysis`)."""
    seed = ANALYSIS["seed"]
    if len(ANALYSIS_RUNS) != len(ANALYSIS["runs"]):
        config_mistake("analysis.runs", "a name is given twice")
    for i, run in enumerate(ANALYSIS["runs"]):
        if "setting" in run:
            produced = methods_of(run["setting"]) + [base_of(run["setting"])] if run["setting"] in SETTINGS else []
            if run["setting"] not in SETTINGS:
                config_mistake(
                    f"analysis.runs[{i}].setting",
                    f"unknown setting {run['setting']!r}; settings has {sorted(SETTINGS)}",
                )
            if run["method"] not in produced:
                config_mistake(
                    f"analysis.runs[{i}].method", f"{run['method']!r} is not a method of setting {run['setting']!r}"
                )
            if seed not in seeds_of(run["setting"]):
                config_mistake(
                    "analysis.seed", f"setting {run['setting']!r} runs seeds {seeds_of(run['setting'])}, not {seed}"
                )
        elif ETA_SWEEP is None:
            config_mistake(f"analysis.runs[{i}].eta", "needs an analysis.eta_sweep block (setting and base run)")
    for key in ("table1", "av_figure", "margin.runs", "landscape.runs"):
        section, _, sub = key.partition(".")
        names = ANALYSIS[section][sub] if sub else ANALYSIS[section]
        for name in names:
            if name not in ANALYSIS_RUNS:
                config_mistake(f"analysis.{key}", f"{name!r} is not a name in analysis.runs ({sorted(ANALYSIS_RUNS)})")
    if ETA_SWEEP is not None:
        if ETA_SWEEP["setting"] not in SETTINGS:
            config_mistake("analysis.eta_sweep.setting", f"unknown setting {ETA_SWEEP['setting']!r}")
        if METHODS.get(ETA_SWEEP["base"], {}).get("kind") != "scratch":
            config_mistake("analysis.eta_sweep.base", f"{ETA_SWEEP['base']!r} must be a scratch method of the catalog")


analysis_check()


# ----------------------------------------------------------------------------- runs and paths


def eta_dir(eta):
    return f"{ANALYSIS_DIR}/eta_sweep/eta{number(eta)}"


def analysis_run_dir(name):
    run = ANALYSIS_RUNS[name]
    if "eta" in run:
        return eta_dir(run["eta"])
    return run_dir(run["setting"], run["method"], ANALYSIS["seed"])


def analysis_checkpoint(wildcards):
    """The checkpoint the run's evaluation used, so AV, margin and robustness describe one model."""
    run = ANALYSIS_RUNS[wildcards.name]
    which = "best" if "eta" in run else METHODS[run["method"]].get("checkpoint", "best")
    return f"{analysis_run_dir(wildcards.name)}/{which}.pt"


def analysis_evaluation(name):
    return f"{analysis_run_dir(name)}/{ANALYSIS['evaluation']}.json"


def margin_names():
    return list(dict.fromkeys(ANALYSIS["table1"] + ANALYSIS["margin"]["runs"]))


def margin_dir(name):
    return f"{ANALYSIS_DIR}/{name}/margin"


def analysis_eta_overrides(eta):
    return RUNS.eta_sweep_overrides(ETA_SWEEP, eta, ANALYSIS["seed"])


def analysis_eta_inputs(wildcards):
    setting = ETA_SWEEP["setting"]
    return {
        "data": data_manifests(setting),
        "base": f"{run_dir(setting, ETA_SWEEP['base'], ANALYSIS['seed'])}/summary.json",
    }


def eta_vulnerability_options(wildcards):
    """`iseat analyse vulnerability` options of the eta sweep's test-set AV (analysis.eta_sweep.test_av)."""
    test_av = ETA_SWEEP.get("test_av", {})
    n = test_av.get("n_examples")
    return " ".join([f"--batch-size {test_av.get('batch_size', 256)}", *([f"--n-examples {n}"] if n else [])])


def analysis_options(section):
    """`--key value` options of `iseat analyse` from a config section (lists as several values)."""
    skip = {"runs", "split", "n", "clip", "pick"}
    args = []
    for key, value in sorted(ANALYSIS[section].items()):  # sorted: key order must not trigger reruns
        if key in skip or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        args += [f"--{key.replace('_', '-')}"] + [
            format(float(v), "g") if isinstance(v, float) else str(v) for v in values
        ]
    return " ".join(args)


def analysis_final_outputs():
    outputs = [f"{ANALYSIS_DIR}/fig1a_{name}.png" for name in ANALYSIS["av_figure"]]
    outputs += [f"{margin_dir(name)}/{fig}.png" for name in margin_names() for fig in ("fig1b", "fig2")]
    outputs += [f"{ANALYSIS_DIR}/{name}/landscape/fig3.png" for name in ANALYSIS["landscape"]["runs"]]
    if ETA_SWEEP is not None:
        outputs.append(f"{ANALYSIS_DIR}/fig4.png")
    if ANALYSIS["table1"]:
        outputs.append(f"{ANALYSIS_DIR}/table1.md")
    return outputs + [f"{ANALYSIS_DIR}/README.md"] if outputs else []
