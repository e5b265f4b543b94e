"""Section 3 analysis: Tab. 1 (AV statistics and robustness per method), Fig. 1a (AV per epoch),
Fig. 1b and Fig. 2 (margin, Eq. 7), Fig. 3 (loss landscape, Eq. 8) and Fig. 4 (Eq. 9 eta sweep,
fine-tuned from the base run; AV SD over the training set from each run's AV log and over the test set), with an index page under results/analysis/. Settings: the config's
`analysis` block (schemas/analysis.schema.yaml); an empty block adds nothing to `all`."""


include: "analysis_common.smk"


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
    group:
        training_group("finetune")
    conda:
        "../envs/iseat.yaml"
    threads: resource("finetune", "threads")
    resources:
        **partition_resource("finetune"),
        gpu=resource("finetune", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("finetune", "mem_mb"),
        runtime=resource("finetune", "runtime"),
    params:
        launch=training_launch("finetune"),
        run=lambda wildcards, output: Path(output.summary).parent,
        overrides=lambda wildcards: set_args(analysis_eta_overrides(wildcards.eta)),
    shell:
        "{params.launch} --attempt {resources.attempt} train --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_eta_evaluate:
    input:
        summary=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/summary.json",
    output:
        result=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/{{evaluation}}.json",
        per_sample=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/{{evaluation}}.per_sample.csv",
    log:
        f"{RESULTS}/logs/analysis/eta_sweep/eta{{eta}}_{{evaluation}}.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("evaluate", "threads")
    resources:
        **partition_resource("evaluate"),
        gpu=resource("evaluate", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        checkpoint=lambda wildcards, input: f"{Path(input.summary).parent}/best.pt",
        attack=evaluation_args,
    shell:
        "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_eta_vulnerability:
    input:
        summary=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/summary.json",
    output:
        summary=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/test_av.json",
        per_sample=f"{ANALYSIS_DIR}/eta_sweep/eta{{eta}}/test_av.per_sample.csv",
    log:
        f"{RESULTS}/logs/analysis/eta_sweep/eta{{eta}}_test_av.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("evaluate", "threads")
    resources:
        **partition_resource("evaluate"),
        gpu=resource("evaluate", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        checkpoint=lambda wildcards, input: f"{Path(input.summary).parent}/best.pt",
        options=eta_vulnerability_options,
        device=lambda wildcards: job_device("evaluate"),
    shell:
        "iseat --attempt {resources.attempt} analyse vulnerability --checkpoint {params.checkpoint} --split test --out {output.summary}"
        " {params.options} --device {params.device} --no-progress 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


# ----------------------------------------------------------------------------- studies of one run


rule analysis_margin:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
    output:
        margins=f"{ANALYSIS_DIR}/{{name}}/margin/margins.npz",
        fig1b=report(
            f"{ANALYSIS_DIR}/{{name}}/margin/fig1b.png",
            caption="../report/fig1b.rst",
            category="Section 3 analysis",
            subcategory="Fig. 1b margins",
            labels={"run": "{name}"},
        ),
        fig1b_data=f"{ANALYSIS_DIR}/{{name}}/margin/fig1b.npz",
        fig2=report(
            f"{ANALYSIS_DIR}/{{name}}/margin/fig2.png",
            caption="../report/fig2.rst",
            category="Section 3 analysis",
            subcategory="Fig. 2 perturbed samples",
            labels={"run": "{name}"},
        ),
        fig2_data=f"{ANALYSIS_DIR}/{{name}}/margin/fig2.npz",
        summary=f"{ANALYSIS_DIR}/{{name}}/margin/margin.json",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/margin.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("evaluate", "threads")
    resources:
        **partition_resource("evaluate"),
        gpu=resource("evaluate", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        checkpoint=analysis_checkpoint,
        out=lambda wildcards, output: Path(output.summary).parent,
        split=ANALYSIS["margin"]["split"],
        n=f"--n {ANALYSIS['margin']['n']}" if ANALYSIS["margin"]["n"] else "",
        device=lambda wildcards: job_device("evaluate"),
        options=analysis_options("margin"),
    shell:
        "iseat --attempt {resources.attempt} analyse margin --checkpoint {params.checkpoint} --out {params.out} --split {params.split}"
        " {params.n} --device {params.device} {params.options} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_landscape:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
        margins=f"{ANALYSIS_DIR}/{{name}}/margin/margins.npz",
    output:
        fig3=report(
            f"{ANALYSIS_DIR}/{{name}}/landscape/fig3.png",
            caption="../report/fig3.rst",
            category="Section 3 analysis",
            subcategory="Fig. 3 loss landscape",
            labels={"run": "{name}"},
        ),
        fig3_data=f"{ANALYSIS_DIR}/{{name}}/landscape/fig3.npz",
        summary=f"{ANALYSIS_DIR}/{{name}}/landscape/landscape.json",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/landscape.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("evaluate", "threads")
    resources:
        **partition_resource("evaluate"),
        gpu=resource("evaluate", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    params:
        checkpoint=analysis_checkpoint,
        out=lambda wildcards, output: Path(output.summary).parent,
        split=ANALYSIS["margin"]["split"],
        pick=ANALYSIS["landscape"]["pick"],
        clip="--clip" if ANALYSIS["landscape"]["clip"] else "",
        device=lambda wildcards: job_device("evaluate"),
        options=analysis_options("landscape"),
    shell:
        "iseat --attempt {resources.attempt} analyse landscape --checkpoint {params.checkpoint} --out {params.out} --margins {input.margins}"
        " --split {params.split} --pick {params.pick} {params.clip} --device {params.device} {params.options} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_av_figure:
    input:
        summary=lambda wildcards: f"{analysis_run_dir(wildcards.name)}/summary.json",
    output:
        figure=report(
            f"{ANALYSIS_DIR}/fig1a_{{name}}.png",
            caption="../report/fig1a.rst",
            category="Section 3 analysis",
            subcategory="Fig. 1a AV per epoch",
            labels={"run": "{name}"},
        ),
        data=f"{ANALYSIS_DIR}/fig1a_{{name}}.csv",
    log:
        f"{RESULTS}/logs/analysis/{{name}}/fig1a.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        av_log=lambda wildcards, input: f"{Path(input.summary).parent}/av_log.h5",
        title=lambda wildcards: shlex.quote(ANALYSIS_RUNS[wildcards.name]["label"]),
    shell:
        "iseat analyse av-figure --log {params.av_log} --out {output.figure} --title {params.title} > {log} 2>&1"


# ----------------------------------------------------------------------------- across runs


rule analysis_eta_figure:
    input:
        runs=[f"{eta_dir(eta)}/summary.json" for eta in (ETA_SWEEP or {}).get("etas", [])],
        evals=[f"{eta_dir(eta)}/{ANALYSIS['evaluation']}.json" for eta in (ETA_SWEEP or {}).get("etas", [])],
        test_av=[f"{eta_dir(eta)}/test_av.json" for eta in (ETA_SWEEP or {}).get("etas", [])],
    output:
        figure=report(
            f"{ANALYSIS_DIR}/fig4.png",
            caption="../report/fig4.rst",
            category="Section 3 analysis",
            subcategory="Fig. 4 eta sweep",
        ),
        data=f"{ANALYSIS_DIR}/fig4.csv",
    log:
        f"{RESULTS}/logs/analysis/fig4.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        runs=lambda wildcards, input: " ".join(str(Path(s).parent) for s in input.runs),
    shell:
        "iseat analyse eta-sweep --runs {params.runs} --evals {input.evals} --test-av {input.test_av} --out {output.figure} > {log} 2>&1"


rule analysis_table1:
    input:
        margins=[f"{margin_dir(name)}/margin.json" for name in ANALYSIS["table1"]],
        evals=[analysis_evaluation(name) for name in ANALYSIS["table1"]],
    output:
        table=report(
            f"{ANALYSIS_DIR}/table1.md",
            caption="../report/table1.rst",
            category="Section 3 analysis",
            subcategory="Tab. 1",
        ),
        data=f"{ANALYSIS_DIR}/table1.csv",
    log:
        f"{RESULTS}/logs/analysis/table1.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        entries=lambda wildcards, input: " ".join(
            f"--entry {shlex.quote(ANALYSIS_RUNS[name]['label'])} {m} {e}"
            for name, m, e in zip(ANALYSIS["table1"], input.margins, input.evals)
        ),
    shell:
        "iseat analyse table1 {params.entries} --out {output.table} > {log} 2>&1"


rule analysis_index:
    input:
        [path for path in analysis_final_outputs() if path != f"{ANALYSIS_DIR}/README.md"],
    output:
        index=f"{ANALYSIS_DIR}/README.md",
    log:
        f"{RESULTS}/logs/analysis/index.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    shell:
        "iseat analyse index --out {output.index} {input} > {log} 2>&1"
