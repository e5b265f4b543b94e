"""Aggregation: seeds into mean, std and per-seed values; the paper's tables (Markdown, CSV,
LaTeX) with our numbers beside the paper's and the paired comparisons (from every seed's per-sample
results); figures; and the results index page. Tables and figures are marked for the Snakemake
report (`snakemake --report results/report.html`)."""


rule aggregate_seeds:
    input:
        lambda w: PATHS.seed_results(w.setting, w.method, w.evaluation),
    output:
        result=PATHS.aggregated(),
    log:
        PATHS.log("aggregate", "{setting}/{method}/{evaluation}.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    shell:
        "iseat aggregate seeds --out {output.result} {input} > {log} 2>&1"


rule aggregate_sweep:
    input:
        lambda w: PATHS.seed_results(w.setting, w.method, "sweep"),
    output:
        result=PATHS.aggregated(evaluation="sweep"),
    log:
        PATHS.log("aggregate", "{setting}/{method}/sweep.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    shell:
        "iseat aggregate seeds --out {output.result} {input} > {log} 2>&1"


rule benchmark_step:
    output:
        timing=PATHS.step_timing(),
        table=PATHS.step_timing("md"),
    log:
        PATHS.log("benchmark", "step_timing.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        options=RUNS.step_timing_options(),
        device=RESOURCES.device("evaluate"),
    shell:
        "iseat --attempt {resources.attempt} benchmark step {params.options} --no-memory --device {params.device}"
        " --out {output.timing} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule tables:
    input:
        PATHS.aggregated_results(),
        sweeps=PATHS.sweep_results(),
        per_sample=PATHS.per_sample_results(),
        timing=[PATHS.step_timing()] if config.get("step_timing") else [],
    output:
        [
            report(p, caption="../report/tables.rst", category="Tables", subcategory=Path(p).stem)
            for p in PATHS.table_outputs()
        ],
        significance=[
            report(p, caption="../report/significance.rst", category="Tables", subcategory="significance")
            for p in PATHS.significance_outputs()
        ],
    log:
        PATHS.log("aggregate", "tables.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        out_dir=lambda w, output: Path(output[0]).parent,
        timing=lambda w, input: f"--step-timing {input.timing[0]}" if input.timing else "",
        entries=COMMANDS.result_entries(),
        labels=COMMANDS.label_args(),
    shell:
        "iseat aggregate tables --out-dir {params.out_dir} {params.entries} {params.labels}"
        " {params.timing} > {log} 2>&1"


rule figure_results:
    input:
        PATHS.aggregated_results(),
    output:
        figure=report(
            PATHS.figure("results_vs_paper"),
            caption="../report/results_vs_paper.rst",
            category="Figures",
            subcategory="results",
        ),
    log:
        PATHS.log("aggregate", "figure_results.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        entries=COMMANDS.result_entries(),
        labels=COMMANDS.label_args(),
    shell:
        "iseat aggregate figure-results --out {output.figure} {params.entries} {params.labels} > {log} 2>&1"


rule figure_curves:
    input:
        results=lambda w: PATHS.curve_inputs(w.setting),
    output:
        figure=report(
            PATHS.figure("curves_{setting}"),
            caption="../report/curves.rst",
            category="Figures",
            subcategory="robustness curves",
            labels={"setting": "{setting}"},
        ),
    log:
        PATHS.log("aggregate", "figure_curves_{setting}.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        entries=lambda w: COMMANDS.result_entries(w.setting),
        labels=COMMANDS.label_args(),
        title=lambda w: COMMANDS.title(w.setting),
    shell:
        "iseat aggregate figure-curves --out {output.figure} --title {params.title} {params.entries} {params.labels} > {log} 2>&1"


rule figure_training:
    input:
        runs=lambda w: [summary for _, summary in PATHS.training_runs(w.setting)],
    output:
        figure=report(
            PATHS.figure("training_{setting}"),
            caption="../report/training.rst",
            category="Figures",
            subcategory="training",
            labels={"setting": "{setting}"},
        ),
    log:
        PATHS.log("aggregate", "figure_training_{setting}.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        runs=lambda w, input: COMMANDS.training_run_args(w.setting, input.runs),
        title=lambda w: COMMANDS.title(w.setting),
    shell:
        "iseat aggregate figure-training --out {output.figure} --title {params.title} {params.runs} > {log} 2>&1"


rule figure_grid:
    input:
        winner=PATHS.grid_winner(),
    output:
        figure=report(
            PATHS.figure("grid_{setting}"),
            caption="../report/grid.rst",
            category="Figures",
            subcategory="grid search",
            labels={"setting": "{setting}"},
        ),
    log:
        PATHS.log("aggregate", "figure_grid_{setting}.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        title=lambda w: COMMANDS.title(w.setting),
    shell:
        "iseat aggregate figure-grid --winner {input.winner} --title {params.title} --out {output.figure} > {log} 2>&1"


rule index:
    input:
        tables=PATHS.table_outputs() + PATHS.significance_outputs(),
        figures=PATHS.figure_outputs(),
        results=PATHS.aggregated_results() + PATHS.sweep_results(),
        winners=PATHS.grid_winners(),
        extra=ANALYSIS.final_outputs(),
    output:
        index=PATHS.index(),
    log:
        PATHS.log("aggregate", "index.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        labels=COMMANDS.label_args(),
    shell:
        "iseat aggregate index --out {output.index} --tables {input.tables} --figures {input.figures}"
        " --results {input.results} --winners {input.winners} --extra {input.extra} {params.labels} > {log} 2>&1"
