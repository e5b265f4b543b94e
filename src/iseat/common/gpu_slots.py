"""One GPU of a job's GPUs for each of the trainings packed into it (`iseat --pin-gpu ...`).

A packed SLURM job runs its trainings in one job step that sees all the job's GPUs (CUDA_VISIBLE_DEVICES
lists them). Each training claims the first free one by an exclusive lock on a per-job slot file and
narrows CUDA_VISIBLE_DEVICES to it before CUDA starts. The lock is the process's for its whole life and
the system drops it when the process ends, however it ends: a training that crashed, was killed or was
requeued frees its GPU for the next one, and no file needs cleaning up.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from iseat.common.errors import UserError

_held = []  # the open slot files: closing one would drop its lock


class NoFreeGpu(UserError):
    """Every GPU of the job is claimed by another training of it."""


def visible_devices(env) -> list[str]:
    """The GPUs a process may use (CUDA_VISIBLE_DEVICES); empty where it names none."""
    return [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]


def slot_folder(env) -> Path:
    """Where a job's slot files lie: per user and SLURM job (`local` outside SLURM), in the temp folder."""
    job = env.get("SLURM_JOB_ID", "local")
    return Path(tempfile.gettempdir()) / f"iseat-gpu-slots-{os.getuid()}-{job}"


def claim(devices: list[str], folder: Path) -> str:
    """Lock the first free slot of `devices` (its file in `folder`) for this process; return its device."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, device in enumerate(devices):
        slot = open(folder / f"gpu{index}.lock", "a")  # noqa: SIM115  (held open: the lock lives with it)
        try:
            fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            slot.close()
            continue
        _held.append(slot)
        return device
    raise NoFreeGpu(
        f"all {len(devices)} GPUs of this job (CUDA_VISIBLE_DEVICES={','.join(devices)}) are claimed by its "
        "other trainings; give the job as many GPUs as trainings (cluster.gpus_per_node)"
    )


def pin(env=os.environ, say=print) -> str | None:
    """Narrow CUDA_VISIBLE_DEVICES to one free GPU of the job's; None (nothing changed) where at most one
    is visible. Call it before CUDA is initialised."""
    devices = visible_devices(env)
    if len(devices) <= 1:
        return None
    device = claim(devices, slot_folder(env))
    say(f"pinned to GPU {device} of this job's CUDA_VISIBLE_DEVICES={','.join(devices)}", flush=True)
    env["CUDA_VISIBLE_DEVICES"] = device
    return device
