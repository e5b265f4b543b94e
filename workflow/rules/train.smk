"""Adversarial training runs: full trainings from scratch (AT, AT-AWP, ISEAT, RST, ...; the
base AT runs are among them) and the fine-tuned ablations of Tab. 4-6, which start from the
base run of the same seed. A run folder holds config.yaml, best.pt, last.pt, metrics.jsonl,
av_log.h5 and summary.json, written last; a killed job resumes when it runs again. One rule for
both kinds: `finetune` is `train` with the fine-tuned methods, their log folder and resources."""


rule train:
    input:
        unpack(lambda w: PATHS.run_inputs(w.setting, w.method, w.seed)),
    output:
        summary=PATHS.summary(),
    log:
        PATHS.log("train", "{setting}/{method}/seed{seed}.log"),
    wildcard_constraints:
        method=alternatives(PATHS.method_names("scratch")),
    group:
        LAUNCH.group()
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("train")
    resources:
        **RESOURCES.of("train"),
    params:
        launch=LAUNCH.launch(),
        run=lambda w, output: Path(output.summary).parent,
        config=lambda w, input: COMMANDS.tuned_config_arg(input),
        overrides=lambda w: set_args(RUNS.run_overrides(w.setting, w.method, w.seed)),
    shell:
        "{params.launch} --attempt {resources.attempt} train {params.config} --out {params.run} --set {params.overrides} 2>&1 | tee {log}.attempt{resources.attempt} > {log}"


use rule train as finetune with:
    log:
        PATHS.log("finetune", "{setting}/{method}/seed{seed}.log"),
    wildcard_constraints:
        method=alternatives(PATHS.method_names("finetune")),
    threads: RESOURCES.threads("finetune")
    resources:
        **RESOURCES.of("finetune"),
