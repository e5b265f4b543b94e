"""Fetch the data sets (CIFAR-10/100, SVHN, the 80M-TI pseudo-labels, the offline digits set),
verified; each folder's manifest.json is written last and marks it complete."""


rule fetch:
    output:
        manifest=PATHS.manifest(),
    log:
        PATHS.log("fetch", "{dataset}.log"),
    wildcard_constraints:
        dataset=alternatives(registry.FETCHED),
    conda:
        "../envs/iseat.yaml"
    threads: RESOURCES.threads("light")
    resources:
        **RESOURCES.of("light"),
    params:
        root=lambda w, output: Path(output.manifest).parent.parent,
        source=lambda w: COMMANDS.fetch_args(w.dataset),
    shell:
        "iseat fetch {wildcards.dataset} --root {params.root} {params.source} > {log} 2>&1"
