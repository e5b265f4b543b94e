"""Robustness of every run on the test set: standard AutoAttack (aa.json) and PGD (pgd.json),
each with a per-sample CSV beside it."""


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
