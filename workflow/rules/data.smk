"""Fetch the data sets (CIFAR-10/100, SVHN, the 80M-TI pseudo-labels, the offline digits set),
verified; each folder's manifest.json is written last and marks it complete."""


rule fetch:
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/fetch/{{dataset}}.log",
    wildcard_constraints:
        dataset=alternatives(registry.FETCHED),
    conda:
        "../envs/iseat.yaml"
    threads: resource("light", "threads")
    resources:
        **partition_resource("light"),
        mem_mb=resource("light", "mem_mb"),
        runtime=resource("light", "runtime"),
    params:
        root=lambda wildcards, output: Path(output.manifest).parent.parent,
        source=lambda wildcards: fetch_args(wildcards.dataset),
    shell:
        "iseat fetch {wildcards.dataset} --root {params.root} {params.source} > {log} 2>&1"
