"""Adversarial training runs: full trainings from scratch (AT, AT-AWP, ISEAT, RST, ...; the
base AT runs are among them) and the fine-tuned ablations of Tab. 4-6, which start from the
base run of the same seed. A run folder holds config.yaml, best.pt, last.pt, metrics.jsonl,
av_log.h5 and summary.json, written last; a killed job resumes when it runs again."""


rule train:
    input:
        unpack(run_inputs),
    output:
        summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
    log:
        f"{RESULTS}/logs/train/{{setting}}/{{method}}/seed{{seed}}.log",
    wildcard_constraints:
        method=alternatives(method_names("scratch")),
    group:
        training_group("train")
    conda:
        "../envs/iseat.yaml"
    threads: resource("train", "threads")
    resources:
        **partition_resource("train"),
        gpu=resource("train", "gpu"),
        attempt=attempt_number,
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
    params:
        launch=training_launch("train"),
        run=lambda wildcards, output: Path(output.summary).parent,
        config=run_config_arg,
        overrides=lambda wildcards: set_args(run_overrides(wildcards.setting, wildcards.method, wildcards.seed)),
    shell:
        "{params.launch} --attempt {resources.attempt} train {params.config} --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule finetune:
    input:
        unpack(run_inputs),
    output:
        summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
    log:
        f"{RESULTS}/logs/finetune/{{setting}}/{{method}}/seed{{seed}}.log",
    wildcard_constraints:
        method=alternatives(method_names("finetune")),
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
        config=run_config_arg,
        overrides=lambda wildcards: set_args(run_overrides(wildcards.setting, wildcards.method, wildcards.seed)),
    shell:
        "{params.launch} --attempt {resources.attempt} train {params.config} --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"
