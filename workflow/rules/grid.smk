"""The lambda x gamma grid search: fine-tune the grid's method from the base run at every
point, select on the validation split, write the winner with its evidence, and turn the
winner into the tuned values of the methods that take them (when `tuned.source: grid`)."""


rule grid_finetune:
    input:
        unpack(lambda w: PATHS.grid_inputs(w.setting)),
    output:
        summary=f"{PATHS.grid_dir()}/summary.json",
    log:
        PATHS.log("grid", "{setting}/lam{lam}_gamma{gamma}.log"),
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
        overrides=lambda w: set_args(RUNS.grid_overrides(w.setting, w.lam, w.gamma)),
    shell:
        "{params.launch} --attempt {resources.attempt} train --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


rule grid_select:
    input:
        runs=lambda w: PATHS.grid_runs(w.setting),
    output:
        winner=PATHS.grid_winner(),
    log:
        PATHS.log("grid", "{setting}/winner.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        points=lambda w, input: COMMANDS.grid_point_args(w.setting, input.runs),
    shell:
        "iseat aggregate grid --out {output.winner} {params.points} > {log} 2>&1"


rule grid_tuned:
    input:
        winner=PATHS.grid_winner(),
    output:
        tuned=PATHS.tuned(),
    log:
        PATHS.log("grid", "{setting}/{method}_tuned.log"),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        tuned_keys=lambda w: COMMANDS.tuned_keys(w.method),
        warmup=lambda w: "--lam-warmup" if RUNS.lam_warmup(w.setting, w.method) else "",
    shell:
        "iseat aggregate tuned --winner {input.winner} --keys {params.tuned_keys} {params.warmup} --out {output.tuned} > {log} 2>&1"
