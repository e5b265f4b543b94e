"""Robustness of every run on the test set: standard AutoAttack (aa.json) and PGD (pgd.json),
each with a per-sample CSV beside it. With `evaluation.shards: K` each evaluation is K jobs over
disjoint runs of its chunks (shard files in <evaluation>.shards/), then one light job gathers them.
With `evaluation.sweep`, every run's robustness curve (sweep.json) as one more job."""


include: "evaluate_common.smk"


rule evaluate_sweep:
    input:
        summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
    output:
        result=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/sweep.json",
    log:
        f"{RESULTS}/logs/evaluate/{{setting}}/{{method}}/seed{{seed}}/sweep.log",
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
        checkpoint=evaluated_checkpoint,
        sweep=sweep_args,
    shell:
        "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.sweep} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


if SHARDS == 1:

    rule evaluate:
        input:
            summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
        output:
            result=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.json",
            per_sample=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.per_sample.csv",
        log:
            f"{RESULTS}/logs/evaluate/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.log",
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
            checkpoint=evaluated_checkpoint,
            attack=evaluation_args,
        shell:
            "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"

else:

    rule evaluate_shard:
        input:
            summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
        output:
            shard=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.shards/{{shard}}.json",
        log:
            f"{RESULTS}/logs/evaluate/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.shard{{shard}}.log",
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
            checkpoint=evaluated_checkpoint,
            attack=evaluation_args,
            shard=lambda wildcards: f"--shard {wildcards.shard}/{SHARDS}",
        shell:
            "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.shard} {params.attack} {params.shard} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"

    rule evaluate_gather:
        input:
            summary=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/summary.json",
            shards=evaluation_shards,
        output:
            result=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.json",
            per_sample=f"{RESULTS}/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.per_sample.csv",
        log:
            f"{RESULTS}/logs/evaluate/{{setting}}/{{method}}/seed{{seed}}/{{evaluation}}.log",
        conda:
            "../envs/iseat.yaml"
        threads: resource("light", "threads")
        resources:
            **partition_resource("light"),
            mem_mb=resource("light", "mem_mb"),
            runtime=resource("light", "runtime"),
        params:
            checkpoint=evaluated_checkpoint,
            attack=lambda wildcards: evaluation_args(wildcards, "light"),
        shell:
            "iseat evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} --gather {input.shards} > {log} 2>&1"
