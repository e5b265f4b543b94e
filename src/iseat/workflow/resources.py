"""What a workflow job asks of the machine: threads, memory, runtime, GPUs, the SLURM partition, and the
device its command runs on. Every rule names one resource class (`kind`): train, finetune, evaluate
(GPU jobs) or light; its values are the defaults < the config's `resources.<kind>` < the setting's.

`gpu_count` is the one place a job's GPU count is decided; the rules' `resources:` and `threads:`
come from `RuleResources` (Snakemake calls them per job with its wildcards and attempt).
"""

from __future__ import annotations

from iseat.training.config import deep_merge
from iseat.workflow import cluster

RESOURCE_DEFAULTS = {
    "train": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 1440, "partition": ""},
    "finetune": {"gpu": 1, "threads": 8, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "evaluate": {"gpu": 1, "threads": 4, "mem_mb": 16000, "runtime": 720, "partition": ""},
    "light": {"gpu": 0, "threads": 1, "mem_mb": 4000, "runtime": 60, "partition": ""},
}
GPU_KINDS = ("train", "finetune", "evaluate")  # rules that may ask for a GPU, and are retried per attempt
TRAINING_KINDS = ("train", "finetune")  # the resource classes of trainings (`gpus_per_run` applies)


def job_resources(config: dict, kind: str, setting: str | None = None) -> dict:
    """A job's resources: the defaults < the config's `resources` < the setting's; a training's GPUs are the
    setting's `gpus_per_run` where it names them."""
    resources = deep_merge(
        RESOURCE_DEFAULTS[kind],
        config["resources"].get(kind),
        config["settings"][setting].get("resources", {}).get(kind) if setting else None,
    )
    if setting and kind in TRAINING_KINDS:
        resources["gpu"] = cluster.training_gpus(config, setting, resources["gpu"])
    return resources


def gpu_count(config: dict, kind: str, setting: str | None = None) -> int:
    """The GPUs one job of this class asks for (`gpu` of its resources)."""
    return int(job_resources(config, kind, setting)["gpu"])


def job_device(config: dict, kind: str, setting: str | None = None) -> str:
    """The device given to a job's command: CUDA when the job asks for a GPU (the command then fails fast on
    a node without a usable one), else the CPU. A config's own runtime.device (its `train` blocks) wins,
    for evaluations and analyses too."""
    train = deep_merge(config.get("train"), config["settings"][setting].get("train") if setting else None)
    return train.get("runtime", {}).get("device") or ("cuda" if gpu_count(config, kind, setting) > 0 else "cpu")


def partition_named(config: dict, kind: str) -> bool:
    """Whether the config names a partition for this class (globally or in a setting); otherwise the
    profile's default-resources/set-resources (the site's) decide."""
    named = [config["resources"].get(kind, {}).get("partition")]
    named += [s.get("resources", {}).get(kind, {}).get("partition") for s in config["settings"].values()]
    return any(named)


def attempt_number(wildcards, attempt):
    """The `attempt` resource: which try of the job this is (1, 2, ... with `retries`). Snakemake empties a
    job's log before each attempt, so GPU jobs also write <log>.attempt<N>: the reason a job was retried
    (a time limit, a node failure) stays readable after the retry."""
    return attempt


class RuleResources:
    """The `threads:` and `resources:` of the rules of one config, per resource class."""

    def __init__(self, config: dict):
        self.config = config

    def value(self, kind: str, key: str):
        """A resource value per job, from its setting wildcard (if any)."""
        return lambda wildcards: job_resources(self.config, kind, getattr(wildcards, "setting", None))[key]

    def threads(self, kind: str):
        return self.value(kind, "threads")

    def of(self, kind: str) -> dict:
        """The `resources:` of a rule of this class: slurm_partition (only when the config names one), gpu
        and attempt (GPU classes), mem_mb and runtime."""
        resources = {"slurm_partition": self.value(kind, "partition")} if partition_named(self.config, kind) else {}
        if kind in GPU_KINDS:
            gpus = lambda wildcards: gpu_count(self.config, kind, getattr(wildcards, "setting", None))  # noqa: E731
            resources |= {"gpu": gpus, "attempt": attempt_number}
        return resources | {"mem_mb": self.value(kind, "mem_mb"), "runtime": self.value(kind, "runtime")}

    def device(self, kind: str, setting: str | None = None) -> str:
        return job_device(self.config, kind, setting)


def run_kind(config: dict, wildcards) -> str:
    """The resource class of a run of the `train` rule family: finetune for a catalog method of that kind."""
    return "finetune" if config["methods"][wildcards.method]["kind"] == "finetune" else "train"


class RuleLaunch:
    """The `group:` and the launch command of the training rules (iseat.workflow.cluster): packed single-GPU
    trainings share a job, a run of N GPUs starts under torchrun. `kind` None: the class of the run's method."""

    def __init__(self, config: dict, workflow):
        self.config, self.workflow = config, workflow

    def gpus(self, kind: str | None, wildcards) -> int:
        return gpu_count(self.config, kind or run_kind(self.config, wildcards), getattr(wildcards, "setting", None))

    def launch(self, kind: str | None = None):
        return lambda wildcards: cluster.launch_prefix(self.config, self.gpus(kind, wildcards))

    def group(self, kind: str | None = None):
        """Packing's settings go into the Snakemake run here, when jobs are made: it replaces them after parsing."""

        def group(wildcards):
            cluster.apply_packing(self.workflow, self.config)
            return cluster.pack_group(self.config, self.gpus(kind, wildcards))

        return group
