"""Where the workflow's trainings run on a GPU cluster: several single-GPU runs packed into one job, and
one run across several GPUs of a node.

Packing (`cluster: {gpus_per_node: N}`, N > 1) puts single-GPU trainings into the Snakemake job group
PACK_GROUP, allowed to span N independent trainings (`--group-components`): the SLURM executor submits a
group as one job asking for the sum of its members' resources (N GPUs), and inside it one job step runs
the members side by side, each a process of its own with its own log. Each member is started as
`iseat --pin-gpu ...`, which claims one of the step's GPUs by lock file and narrows CUDA_VISIBLE_DEVICES
to it (iseat.common.gpu_slots). A training that fails leaves its neighbours running to their end, and
their results stay (`apply_packing`).

A data-parallel run (`settings.<name>.gpus_per_run: N`, N > 1) asks for N GPUs on one node and is
launched by `torchrun --standalone --nproc_per_node=N -m iseat ...`; it is never packed.

The functions take the workflow config as validated by workflow/schemas/config.schema.yaml.
"""

from __future__ import annotations

from iseat.common.errors import UserError

PACK_GROUP = "gpu_pack"  # the job group of packed single-GPU trainings


class ClusterConfigError(UserError, ValueError):
    """A `cluster` or `gpus_per_run` value that cannot be placed on the cluster's nodes."""


def gpus_per_node(config: dict) -> int:
    """GPUs of one node that packed trainings share (1: one training per job, no packing)."""
    return int((config.get("cluster") or {}).get("gpus_per_node", 1))


def gpus_per_run(config: dict, setting: str) -> int | None:
    """The setting's `gpus_per_run`; None where it names none (the job's `gpu` resource decides)."""
    value = config["settings"][setting].get("gpus_per_run")
    return None if value is None else int(value)


def check(config: dict) -> None:
    """A data-parallel run must fit on one node: gpus_per_run at most gpus_per_node where that is given."""
    node = gpus_per_node(config)
    for setting in config["settings"]:
        value = gpus_per_run(config, setting)
        if value is not None and node > 1 and value > node:
            raise ClusterConfigError(
                f"config: settings.{setting}.gpus_per_run: {value} GPUs do not fit on a node of "
                f"cluster.gpus_per_node={node} GPUs; lower gpus_per_run or raise gpus_per_node"
            )


def training_gpus(config: dict, setting: str, requested: int) -> int:
    """GPUs of one training job: the setting's gpus_per_run, else the `gpu` resource asked for (0: CPU)."""
    value = gpus_per_run(config, setting)
    return requested if value is None else value


def packed(config: dict, gpus: int) -> bool:
    """Whether a training job of `gpus` GPUs shares its allocation with others: single-GPU ones only."""
    return gpus == 1 and gpus_per_node(config) > 1


def pack_group(config: dict, gpus: int) -> str | None:
    """The job group of a training of `gpus` GPUs: PACK_GROUP when packed, else none (a job of its own)."""
    return PACK_GROUP if packed(config, gpus) else None


def group_components(config: dict) -> dict[str, int]:
    """`--group-components` of packing: up to gpus_per_node trainings in one job."""
    node = gpus_per_node(config)
    return {PACK_GROUP: node} if node > 1 else {}


def apply_packing(workflow, config: dict) -> None:
    """Packing's settings of a Snakemake run (`workflow`): the group's size (a `--group-components` given for
    it wins), and the outputs of a failed group kept (`--keep-incomplete`). When one member of a group
    fails, Snakemake fails the group and would remove every member's outputs, the finished neighbours'
    `summary.json` too, whose run would then train again; kept, they are marked incomplete, and the retry
    (`rerun-incomplete`) finds each finished run and only confirms it. The workflow's outputs are written
    atomically, so a failed job leaves none half-written."""
    components = group_components(config)
    if not components:
        return
    given = workflow.group_settings.group_components
    missing = {k: v for k, v in components.items() if k not in given}
    if missing:
        workflow.group_settings.group_components = {**given, **missing}
    workflow.execution_settings.keep_incomplete = True


def launch_prefix(config: dict, gpus: int) -> str:
    """What starts `iseat` for a training of `gpus` GPUs: torchrun with one process per GPU, `iseat
    --pin-gpu` for a packed run (its own GPU of the job's), else plain `iseat`."""
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node={gpus} -m iseat"
    return "iseat --pin-gpu" if packed(config, gpus) else "iseat"
