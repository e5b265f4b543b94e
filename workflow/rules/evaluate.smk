"""Robustness of every run on the test set: standard AutoAttack (aa.json) and PGD (pgd.json),
each with a per-sample CSV beside it. With `evaluation.shards: K` each evaluation is K jobs over
disjoint runs of its chunks (shard files in <evaluation>.shards/), then one light job gathers them.
With `evaluation.sweep`, every run's robustness curve (sweep.json) as one more job."""


rule evaluate_sweep:
    input:
        summary=PATHS.summary(),
    output:
        result=PATHS.evaluation(evaluation="sweep"),
    log:
        PATHS.log("evaluate", "{setting}/{method}/seed{seed}/sweep.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("evaluate")
    resources:
        **RESOURCES.of("evaluate"),
    params:
        checkpoint=lambda w, input: COMMANDS.checkpoint(w.method, input.summary),
        sweep=lambda w: COMMANDS.sweep_args(w.setting),
    shell:
        "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.sweep} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


if PATHS.shards == 1:

    rule evaluate:
        input:
            summary=PATHS.summary(),
        output:
            result=PATHS.evaluation(),
            per_sample=PATHS.run_file("{evaluation}.per_sample.csv"),
        log:
            PATHS.log("evaluate", "{setting}/{method}/seed{seed}/{evaluation}.log"),
        conda:
            "../envs/iseat.yaml"
        threads: RESOURCES.threads("evaluate")
        resources:
            **RESOURCES.of("evaluate"),
        params:
            checkpoint=lambda w, input: COMMANDS.checkpoint(w.method, input.summary),
            attack=lambda w: COMMANDS.evaluation_args(w.evaluation, w.setting),
        shell:
            "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"

else:

    rule evaluate_shard:
        input:
            summary=PATHS.summary(),
        output:
            shard=PATHS.shard(),
        log:
            PATHS.log("evaluate", "{setting}/{method}/seed{seed}/{evaluation}.shard{shard}.log"),
        conda:
            "../envs/iseat.yaml"
        threads: RESOURCES.threads("evaluate")
        resources:
            **RESOURCES.of("evaluate"),
        params:
            checkpoint=lambda w, input: COMMANDS.checkpoint(w.method, input.summary),
            attack=lambda w: COMMANDS.evaluation_args(w.evaluation, w.setting),
            shard=lambda w: COMMANDS.shard_arg(w.shard),
        shell:
            "iseat --attempt {resources.attempt} evaluate --checkpoint {params.checkpoint} --out {output.shard} {params.attack} {params.shard} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"

    rule evaluate_gather:
        input:
            summary=PATHS.summary(),
            shards=lambda w: PATHS.evaluation_shards(w.setting, w.method, w.seed, w.evaluation),
        output:
            result=PATHS.evaluation(),
            per_sample=PATHS.run_file("{evaluation}.per_sample.csv"),
        log:
            PATHS.log("evaluate", "{setting}/{method}/seed{seed}/{evaluation}.log"),
        conda:
            "../envs/iseat.yaml"
        threads: RESOURCES.threads("light")
        resources:
            **RESOURCES.of("light"),
        params:
            checkpoint=lambda w, input: COMMANDS.checkpoint(w.method, input.summary),
            attack=lambda w: COMMANDS.evaluation_args(w.evaluation, w.setting, "light"),
        shell:
            "iseat evaluate --checkpoint {params.checkpoint} --out {output.result} {params.attack} --gather {input.shards} > {log} 2>&1"
