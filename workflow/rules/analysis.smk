"""Section 3 analysis: Tab. 1 (AV statistics and robustness per method), Fig. 1a (AV per epoch),
Fig. 1b and Fig. 2 (margin, Eq. 7), Fig. 3 (loss landscape, Eq. 8) and Fig. 4 (Eq. 9 eta sweep,
fine-tuned from the base run), with an index page under results/analysis/. Settings: the config's
`analysis` block (schemas/analysis.schema.yaml); an empty block adds nothing to `all`."""


validate(config.setdefault("analysis", {}), schema="../schemas/analysis.schema.yaml")

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
                config_mistake(f"analysis.runs[{i}].setting", f"unknown setting {run['setting']!r}; settings has {sorted(SETTINGS)}")
            if run["method"] not in produced:
                config_mistake(f"analysis.runs[{i}].method", f"{run['method']!r} is not a method of setting {run['setting']!r}")
            if seed not in seeds_of(run["setting"]):
                config_mistake("analysis.seed", f"setting {run['setting']!r} runs seeds {seeds_of(run['setting'])}, not {seed}")
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
    """One eta-sweep fine-tune: the setting's model and data, the Eq. 9 protocol, method at_eq9
    with this eta, started from the base run's checkpoint (same seed)."""
    setting, seed, which = ETA_SWEEP["setting"], ANALYSIS["seed"], ETA_SWEEP.get("checkpoint", "best")
    start = {"training": {"finetune_from": f"{run_dir(setting, ETA_SWEEP['base'], seed)}/{which}.pt",
                          "finetune_checkpoint": which}}
    return deep_merge(config.get("train"), SETTINGS[setting].get("train"), ETA_SWEEP.get("train"),
                      {"method": {"name": "at_eq9", "eta": float(eta)}}, data_overrides(setting),
                      {"seed": int(seed)}, start)


def analysis_eta_inputs(wildcards):
    setting = ETA_SWEEP["setting"]
    return {"data": data_manifests(setting),
            "base": f"{run_dir(setting, ETA_SWEEP['base'], ANALYSIS['seed'])}/summary.json"}


def analysis_options(section):
    """`--key value` options of `iseat analyse` from a config section (lists as several values)."""
    skip = {"runs", "split", "n", "clip", "pick"}
    args = []
    for key, value in ANALYSIS[section].items():
        if key in skip or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        args += [f"--{key.replace('_', '-')}"] + [format(float(v), "g") if isinstance(v, float) else str(v) for v in values]
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


EXTRA_FINAL_OUTPUTS.extend(analysis_final_outputs())


wildcard_constraints:
    name=alternatives(ANALYSIS_RUNS),
    eta=r"[0-9][0-9.e+-]*",


if config["resources"].get("light_local", True):

    localrules:
        analysis_av_figure,
        analysis_eta_figure,
        analysis_table1,
        analysis_index,


# ----------------------------------------------------------------------------- Eq. 9 eta sweep runs


rule analysis_eta_finetune:
    input:
        unpack(analysis_eta_inputs),
    output:
        summary=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/summary.json",
    log:
        f"{RESULTS}/logs/analysis/eta_sweep/eta{{eta}}.log",
    params:
        run=lambda wildcards, output: Path(output.summary).parent,
        overrides=lambda wildcards: set_args(analysis_eta_overrides(wildcards.eta)),
    threads: resource("finetune", "threads")
    resources:
        gpu=resource("finetune", "gpu"),
        mem_mb=resource("finetune", "mem_mb"),
        runtime=resource("finetune", "runtime"),
        slurm_partition=resource("finetune", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat train --out {params.run} --set {params.overrides} > {log} 2>&1"


rule analysis_eta_evaluate:
    input:
        summary=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/summary.json",
    output:
        result=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/{{evaluation}}.json",
        per_sample=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/{{evaluation}}.per_sample.csv",
    log:
        f"{RESULTS}/logs/analysis/eta_sweep/eta{{eta}}_{{evaluation}}.log",
    params:
        checkpoint=lambda wildcards, input: f"{Path(input.summary).parent}/best.pt",
        attack=evaluation_args,
    threads: resource("evaluate", "threads")
    resources:
        gpu=resource("evaluate", "gpu"),
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        slurm_partition=resource("evaluate", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} > {log} 2>&1"


# ----------------------------------------------------------------------------- studies of one run


rule analysis_margin:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
    output:
        margins=f"{ANALYSIS_DIR}/{{name}}/margin/margins.npz",
        fig1b=f"{ANALYSIS_DIR}/{{name}}/margin/fig1b.png",
        fig1b_data=f"{ANALYSIS_DIR}/{{name}}/margin/fig1b.npz",
        fig2=f"{ANALYSIS_DIR}/{{name}}/margin/fig2.png",
        fig2_data=f"{ANALYSIS_DIR}/{{name}}/margin/fig2.npz",
        summary=f"{ANALYSIS_DIR}/{{name}}/margin/margin.json",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/margin.log",
    params:
        checkpoint=analysis_checkpoint,
        out=lambda wildcards, output: Path(output.summary).parent,
        split=ANALYSIS["margin"]["split"],
        n=f"--n {ANALYSIS['margin']['n']}" if ANALYSIS["margin"]["n"] else "",
        options=analysis_options("margin"),
    threads: resource("evaluate", "threads")
    resources:
        gpu=resource("evaluate", "gpu"),
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        slurm_partition=resource("evaluate", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse margin --checkpoint {params.checkpoint} --out {params.out} --split {params.split}"
        " {params.n} {params.options} > {log} 2>&1"


rule analysis_landscape:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
    output:
        fig3=f"{ANALYSIS_DIR}/{{name}}/landscape/fig3.png",
        fig3_data=f"{ANALYSIS_DIR}/{{name}}/landscape/fig3.npz",
        summary=f"{ANALYSIS_DIR}/{{name}}/landscape/landscape.json",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/landscape.log",
    params:
        checkpoint=analysis_checkpoint,
        av_log=lambda wildcards, input: f"{Path(input.summary).parent}/av_log.h5",
        out=lambda wildcards, output: Path(output.summary).parent,
        pick=ANALYSIS["landscape"]["pick"],
        clip="--clip" if ANALYSIS["landscape"]["clip"] else "",
        options=analysis_options("landscape"),
    threads: resource("evaluate", "threads")
    resources:
        gpu=resource("evaluate", "gpu"),
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
        slurm_partition=resource("evaluate", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse landscape --checkpoint {params.checkpoint} --out {params.out} --log {params.av_log}"
        " --pick {params.pick} {params.clip} {params.options} > {log} 2>&1"


rule analysis_av_figure:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
    output:
        figure=f"{ANALYSIS_DIR}/fig1a_{{name}}.png",
        data=f"{ANALYSIS_DIR}/fig1a_{{name}}.csv",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/fig1a.log",
    params:
        av_log=lambda wildcards, input: f"{Path(input.summary).parent}/av_log.h5",
        title=lambda wildcards: shlex.quote(ANALYSIS_RUNS[wildcards.name]["label"]),
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
        slurm_partition=resource("light", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse av-figure --log {params.av_log} --out {output.figure} --title {params.title} > {log} 2>&1"


# ----------------------------------------------------------------------------- across runs


rule analysis_eta_figure:
    input:
        runs=[f"{eta_dir(eta)}/summary.json" for eta in (ETA_SWEEP or {}).get("etas", [])],
        evals=[f"{eta_dir(eta)}/{ANALYSIS['evaluation']}.json" for eta in (ETA_SWEEP or {}).get("etas", [])],
    output:
        figure=f"{ANALYSIS_DIR}/fig4.png",
        data=f"{ANALYSIS_DIR}/fig4.csv",
    log:
        f"{RESULTS}/logs/analysis/fig4.log",
    params:
        runs=lambda wildcards, input: " ".join(str(Path(s).parent) for s in input.runs),
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
        slurm_partition=resource("light", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse eta-sweep --runs {params.runs} --evals {input.evals} --out {output.figure} > {log} 2>&1"


rule analysis_table1:
    input:
        margins=[f"{margin_dir(name)}/margin.json" for name in ANALYSIS["table1"]],
        evals=[analysis_evaluation(name) for name in ANALYSIS["table1"]],
    output:
        table=f"{ANALYSIS_DIR}/table1.md",
        data=f"{ANALYSIS_DIR}/table1.csv",
    log:
        f"{RESULTS}/logs/analysis/table1.log",
    params:
        entries=lambda wildcards, input: " ".join(
            f"--entry {shlex.quote(ANALYSIS_RUNS[name]['label'])} {m} {e}"
            for name, m, e in zip(ANALYSIS["table1"], input.margins, input.evals)),
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
        slurm_partition=resource("light", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse table1 {params.entries} --out {output.table} > {log} 2>&1"


rule analysis_index:
    input:
        [path for path in analysis_final_outputs() if not path.endswith("/README.md")],
    output:
        index=f"{ANALYSIS_DIR}/README.md",
    log:
        f"{RESULTS}/logs/analysis/index.log",
    threads: resource("light", "threads")
    resources:
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
        slurm_partition=resource("light", "partition"),
    conda:
        "../envs/iseat.yaml"
    shell:
        "iseat analyse index --out {output.index} {input} > {log} 2>&1"
