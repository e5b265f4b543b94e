"""The lambda x gamma grid search: fine-tune the grid's method from the base run at every
point, select on the validation split, write the winner with its evidence, and turn the
winner into the tuned values of the methods that take them (when `tuned.source: grid`)."""


rule grid_finetune:
    input:
        unpack(grid_inputs),
    output:
        summary=f"{RESULTS}/{{setting}}/grid/lam{{lam}}_gamma{{gamma}}/summary.json",
    log:
        f"{RESULTS}/logs/grid/{{setting}}/lam{{lam}}_gamma{{gamma}}.log",
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
        overrides=lambda wildcards: set_args(grid_overrides(wildcards.setting, wildcards.lam, wildcards.gamma)),
    shell:
        "{params.launch} --attempt {resources.attempt} train --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule grid_select:
    input:
        runs=lambda wildcards: [
            f"{grid_dir(wildcards.setting, lam, gamma)}/summary.json" for lam, gamma in grid_points(wildcards.setting)
        ],
    output:
        winner=f"{RESULTS}/{{setting}}/grid/winner.json",
    log:
        f"{RESULTS}/logs/grid/{{setting}}/winner.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        points=grid_point_args,
    shell:
        "iseat aggregate grid --out {output.winner} {params.points} > {log} 2>&1"


rule grid_tuned:
    input:
        winner=f"{RESULTS}/{{setting}}/grid/winner.json",
    output:
        tuned=f"{RESULTS}/{{setting}}/{{method}}/tuned.yaml",
    log:
        f"{RESULTS}/logs/grid/{{setting}}/{{method}}_tuned.log",
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        tuned_keys=lambda wildcards: " ".join(METHODS[wildcards.method]["tuned"]),
        warmup=lambda wildcards: "--lam-warmup" if lam_warmup(wildcards.setting, wildcards.method) else "",
    shell:
        "iseat aggregate tuned --winner {input.winner} --keys {params.tuned_keys} {params.warmup} --out {output.tuned} > {log} 2>&1"
