"""Aggregation: seeds into mean, std and per-seed values; the paper's tables (Markdown, CSV,
LaTeX) with our numbers beside the paper's and the paired comparisons (from every seed's per-sample
results); figures; and the results index page. Tables and figures are marked for the Snakemake
report (`snakemake --report results/report.html`)."""


include: "aggregate_common.smk"


rule aggregate_seeds:
    input:
        seed_results,
    output:
        result=f"{RESULTS}/{{setting}}/{{method}}/{{evaluation}}.json",
    log:
        f"{RESULTS}/logs/aggregate/{{setting}}/{{method}}/{{evaluation}}.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    shell:
        "iseat aggregate seeds --out {output.result} {input} > {log} 2>&1"


rule aggregate_sweep:
    input:
        lambda wildcards: seed_results(wildcards, "sweep"),
    output:
        result=f"{RESULTS}/{{setting}}/{{method}}/sweep.json",
    log:
        f"{RESULTS}/logs/aggregate/{{setting}}/{{method}}/sweep.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    shell:
        "iseat aggregate seeds --out {output.result} {input} > {log} 2>&1"


rule benchmark_step:
    output:
        timing=STEP_TIMING,
        table=STEP_TIMING.replace(".json", ".md"),
    log:
        f"{RESULTS}/logs/benchmark/step_timing.log",
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
        options=RUNS.step_timing_options(),
        device=lambda wildcards: job_device("evaluate"),
    shell:
        "iseat --attempt {resources.attempt} benchmark step {params.options} --no-memory --device {params.device}"
        " --out {output.timing} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule tables:
    input:
        aggregated_results(),
        sweeps=sweep_results(),
        per_sample=per_sample_results(),
        timing=[STEP_TIMING] if config.get("step_timing") else [],
    output:
        reported(table_outputs(), "Tables", "tables"),
        significance=reported(SIGNIFICANCE_OUTPUTS, "Tables", "significance", "significance"),
    log:
        f"{RESULTS}/logs/aggregate/tables.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        timing=lambda wildcards, input: f"--step-timing {input.timing[0]}" if input.timing else "",
        entries=result_entries(),
        labels=label_args(),
    shell:
        "iseat aggregate tables --out-dir {params.out_dir} {params.entries} {params.labels}"
        " {params.timing} > {log} 2>&1"


rule figure_results:
    input:
        aggregated_results(),
    output:
        figure=report(
            f"{RESULTS}/figures/results_vs_paper.png",
            caption="../report/results_vs_paper.rst",
            category="Figures",
            subcategory="results",
        ),
    log:
        f"{RESULTS}/logs/aggregate/figure_results.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        entries=result_entries(),
        labels=label_args(),
    shell:
        "iseat aggregate figure-results --out {output.figure} {params.entries} {params.labels} > {log} 2>&1"


rule figure_curves:
    input:
        results=lambda wildcards: [
            f"{run_parent(wildcards.setting, m)}/{e}.json"
            for m in methods_of(wildcards.setting)
            for e in ("sweep", "aa")
        ],
    output:
        figure=report(
            f"{RESULTS}/figures/curves_{{setting}}.png",
            caption="../report/curves.rst",
            category="Figures",
            subcategory="robustness curves",
            labels={"setting": "{setting}"},
        ),
    log:
        f"{RESULTS}/logs/aggregate/figure_curves_{{setting}}.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        entries=lambda wildcards: result_entries(wildcards.setting),
        labels=label_args(),
        title=lambda wildcards: shlex.quote(SETTINGS[wildcards.setting].get("label", wildcards.setting)),
    shell:
        "iseat aggregate figure-curves --out {output.figure} --title {params.title} {params.entries} {params.labels} > {log} 2>&1"


rule figure_training:
    input:
        runs=training_runs,
    output:
        figure=report(
            f"{RESULTS}/figures/training_{{setting}}.png",
            caption="../report/training.rst",
            category="Figures",
            subcategory="training",
            labels={"setting": "{setting}"},
        ),
    log:
        f"{RESULTS}/logs/aggregate/figure_training_{{setting}}.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        runs=training_run_args,
        title=lambda wildcards: shlex.quote(SETTINGS[wildcards.setting].get("label", wildcards.setting)),
    shell:
        "iseat aggregate figure-training --out {output.figure} --title {params.title} {params.runs} > {log} 2>&1"


rule figure_grid:
    input:
        winner=f"{RESULTS}/{{setting}}/grid/winner.json",
    output:
        figure=report(
            f"{RESULTS}/figures/grid_{{setting}}.png",
            caption="../report/grid.rst",
            category="Figures",
            subcategory="grid search",
            labels={"setting": "{setting}"},
        ),
    log:
        f"{RESULTS}/logs/aggregate/figure_grid_{{setting}}.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        title=lambda wildcards: shlex.quote(SETTINGS[wildcards.setting].get("label", wildcards.setting)),
    shell:
        "iseat aggregate figure-grid --winner {input.winner} --title {params.title} --out {output.figure} > {log} 2>&1"


rule index:
    input:
        tables=table_outputs() + SIGNIFICANCE_OUTPUTS,
        figures=figure_outputs(),
        results=aggregated_results() + sweep_results(),
        winners=grid_winners(),
        extra=lambda wildcards: EXTRA_FINAL_OUTPUTS,
    output:
        index=f"{RESULTS}/README.md",
    log:
        f"{RESULTS}/logs/aggregate/index.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        labels=label_args(),
    shell:
        "iseat aggregate index --out {output.index} --tables {input.tables} --figures {input.figures}"
        " --results {input.results} --winners {input.winners} --extra {input.extra} {params.labels} > {log} 2>&1"
