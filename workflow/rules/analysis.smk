"""Section 3 analysis: Tab. 1 (AV statistics and robustness per method), Fig. 1a (AV per epoch),
Fig. 1b and Fig. 2 (margin, Eq. 7), Fig. 3 (loss landscape, Eq. 8) and Fig. 4 (Eq. 9 eta sweep,
fine-tuned from the base run; AV SD over the training set from each run's AV log and over the test set), with an index page under results/analysis/. Settings: the config's
`analysis` block (schemas/analysis.schema.yaml); an empty block adds nothing to `all`."""


wildcard_constraints:
    name=alternatives(ANALYSIS.runs),
    eta=r"[0-9][0-9.e+-]*",


# ----------------------------------------------------------------------------- Eq. 9 eta sweep runs


rule analysis_eta_finetune:
    input:
        unpack(lambda w: ANALYSIS.eta_inputs()),
    output:
        summary=f"{ANALYSIS.eta_dir()}/summary.json",
    log:
        PATHS.log("analysis", "eta_sweep", "eta{eta}.log"),
    group:
        LAUNCH.group("finetune")
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("finetune")
    resources:
        **RESOURCES.of("finetune"),
    params:
        launch=LAUNCH.launch("finetune"),
        run=lambda w, output: Path(output.summary).parent,
        overrides=lambda w: set_args(RUNS.eta_sweep_overrides(ANALYSIS.eta_sweep, w.eta, ANALYSIS.analysis["seed"])),
    shell:
        "{params.launch} --attempt {resources.attempt} train --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_eta_evaluate:
    input:
        summary=f"{ANALYSIS.eta_dir()}/summary.json",
    output:
        result=f"{ANALYSIS.eta_dir()}/{{evaluation}}.json",
        per_sample=f"{ANALYSIS.eta_dir()}/{{evaluation}}.per_sample.csv",
    log:
        PATHS.log("analysis", "eta_sweep", "eta{eta}_{evaluation}.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        checkpoint=lambda w, input: f"{Path(input.summary).parent}/best.pt",
        attack=lambda w: COMMANDS.evaluation_args(w.evaluation, None),
    shell:
        "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_eta_vulnerability:
    input:
        summary=f"{ANALYSIS.eta_dir()}/summary.json",
    output:
        summary=f"{ANALYSIS.eta_dir()}/test_av.json",
        per_sample=f"{ANALYSIS.eta_dir()}/test_av.per_sample.csv",
    log:
        PATHS.log("analysis", "eta_sweep", "eta{eta}_test_av.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        checkpoint=lambda w, input: f"{Path(input.summary).parent}/best.pt",
        options=ANALYSIS_COMMANDS.eta_vulnerability_options() if ANALYSIS.eta_sweep else "",
        device=RESOURCES.device("evaluate"),
    shell:
        "iseat --attempt {resources.attempt} analyse vulnerability --checkpoint {params.checkpoint} --split test --out {output.summary}"
        " {params.options} --device {params.device} --no-progress 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


# ----------------------------------------------------------------------------- studies of one run


rule analysis_margin:
    input:
        summary=lambda w: ANALYSIS.summary(w.name),
    output:
        margins=f"{ANALYSIS.study_dir('margin')}/margins.npz",
        fig1b=report(
            f"{ANALYSIS.study_dir('margin')}/fig1b.png",
            caption="../report/fig1b.rst",
            category="Section 3 analysis",
            subcategory="Fig. 1b margins",
            labels={"run": "{name}"},
        ),
        fig1b_data=f"{ANALYSIS.study_dir('margin')}/fig1b.npz",
        fig2=report(
            f"{ANALYSIS.study_dir('margin')}/fig2.png",
            caption="../report/fig2.rst",
            category="Section 3 analysis",
            subcategory="Fig. 2 perturbed samples",
            labels={"run": "{name}"},
        ),
        fig2_data=f"{ANALYSIS.study_dir('margin')}/fig2.npz",
        summary=f"{ANALYSIS.study_dir('margin')}/margin.json",
    log:
        PATHS.log("analysis", "{name}", "margin.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        checkpoint=lambda w: ANALYSIS.checkpoint(w.name),
        out=lambda w, output: Path(output.summary).parent,
        split=ANALYSIS.analysis["margin"]["split"],
        n=ANALYSIS_COMMANDS.margin_n(),
        device=RESOURCES.device("evaluate"),
        options=ANALYSIS_COMMANDS.options("margin"),
    shell:
        "iseat --attempt {resources.attempt} analyse margin --checkpoint {params.checkpoint} --out {params.out} --split {params.split}"
        " {params.n} --device {params.device} {params.options} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_landscape:
    input:
        summary=lambda w: ANALYSIS.summary(w.name),
        margins=f"{ANALYSIS.study_dir('margin')}/margins.npz",
    output:
        fig3=report(
            f"{ANALYSIS.study_dir('landscape')}/fig3.png",
            caption="../report/fig3.rst",
            category="Section 3 analysis",
            subcategory="Fig. 3 loss landscape",
            labels={"run": "{name}"},
        ),
        fig3_data=f"{ANALYSIS.study_dir('landscape')}/fig3.npz",
        summary=f"{ANALYSIS.study_dir('landscape')}/landscape.json",
    log:
        PATHS.log("analysis", "{name}", "landscape.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        checkpoint=lambda w: ANALYSIS.checkpoint(w.name),
        out=lambda w, output: Path(output.summary).parent,
        split=ANALYSIS.analysis["margin"]["split"],
        pick=ANALYSIS.analysis["landscape"]["pick"],
        clip="--clip" if ANALYSIS.analysis["landscape"]["clip"] else "",
        device=RESOURCES.device("evaluate"),
        options=ANALYSIS_COMMANDS.options("landscape"),
    shell:
        "iseat --attempt {resources.attempt} analyse landscape --checkpoint {params.checkpoint} --out {params.out} --margins {input.margins}"
        " --split {params.split} --pick {params.pick} {params.clip} --device {params.device} {params.options} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule analysis_av_figure:
    input:
        summary=lambda w: ANALYSIS.summary(w.name),
    output:
        figure=report(
            ANALYSIS.file("fig1a_{name}.png"),
            caption="../report/fig1a.rst",
            category="Section 3 analysis",
            subcategory="Fig. 1a AV per epoch",
            labels={"run": "{name}"},
        ),
        data=ANALYSIS.file("fig1a_{name}.csv"),
    log:
        PATHS.log("analysis", "{name}", "fig1a.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        av_log=lambda w, input: f"{Path(input.summary).parent}/av_log.h5",
        title=lambda w: ANALYSIS_COMMANDS.title(w.name),
    shell:
        "iseat analyse av-figure --log {params.av_log} --out {output.figure} --title {params.title} > {log} 2>&1"


# ----------------------------------------------------------------------------- across runs


rule analysis_eta_figure:
    input:
        runs=ANALYSIS.eta_files("summary.json"),
        evals=ANALYSIS.eta_files(f"{ANALYSIS.analysis['evaluation']}.json"),
        test_av=ANALYSIS.eta_files("test_av.json"),
    output:
        figure=report(
            ANALYSIS.file("fig4.png"),
            caption="../report/fig4.rst",
            category="Section 3 analysis",
            subcategory="Fig. 4 eta sweep",
        ),
        data=ANALYSIS.file("fig4.csv"),
    log:
        PATHS.log("analysis", "fig4.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        runs=lambda w, input: " ".join(str(Path(s).parent) for s in input.runs),
    shell:
        "iseat analyse eta-sweep --runs {params.runs} --evals {input.evals} --test-av {input.test_av} --out {output.figure} > {log} 2>&1"


rule analysis_table1:
    input:
        margins=[f"{ANALYSIS.study_dir('margin', name)}/margin.json" for name in ANALYSIS.analysis["table1"]],
        evals=[ANALYSIS.evaluation(name) for name in ANALYSIS.analysis["table1"]],
    output:
        table=report(
            ANALYSIS.file("table1.md"),
            caption="../report/table1.rst",
            category="Section 3 analysis",
            subcategory="Tab. 1",
        ),
        data=ANALYSIS.file("table1.csv"),
    log:
        PATHS.log("analysis", "table1.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        entries=lambda w, input: ANALYSIS_COMMANDS.table1_entries(input.margins, input.evals),
    shell:
        "iseat analyse table1 {params.entries} --out {output.table} > {log} 2>&1"


rule analysis_index:
    input:
        ANALYSIS.final_outputs()[:-1],
    output:
        index=ANALYSIS.index(),
    log:
        PATHS.log("analysis", "index.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    shell:
        "iseat analyse index --out {output.index} {input} > {log} 2>&1"
