"""The compute device of every command: the CPU only when asked for, CUDA checked before any work.

A job that asked the cluster for a GPU requests `cuda` explicitly; when that GPU is not usable
(CUDA_VISIBLE_DEVICES empty, a CPU-only torch, no driver, a driver older than torch's CUDA build,
an index past the visible devices) `resolve_device` raises `DeviceUnavailable`, one line naming the
cause and the fix, instead of training on the CPU for days. `auto` (interactive use) still falls
back to the CPU, and says why.
"""

from __future__ import annotations

import os
import warnings

import torch

from iseat.common.errors import UserError

CHOICES = "auto, cpu, cuda or cuda:N"
FIX = (
    "run the job on a node with a working GPU (SLURM: resources gpu=1 / sbatch --gpus=1), "
    "or set runtime.device: cpu (evaluate/analyse: --device cpu) to run on the CPU on purpose"
)


class DeviceUnavailable(UserError, RuntimeError):
    """The requested device cannot be used: the message is one line, cause and fix."""


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here (None when it can), from the environment, torch's build and
    the warning torch raises on a missing or too old driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return "CUDA_VISIBLE_DEVICES is empty, so this job was given no GPU"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch, README: Environment)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    said = " ".join(" ".join(str(w.message).split()) for w in caught)
    if "too old" in said:
        return f"the NVIDIA driver is too old for torch's CUDA {torch.version.cuda} build ({said})"
    where = f"CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "CUDA_VISIBLE_DEVICES unset"
    return f"no usable CUDA device ({where}){': ' + said if said else ''}"


def resolve_device(requested: str = "auto", say=None) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` -> a usable torch.device, or DeviceUnavailable."""
    try:
        device = torch.device("cuda" if requested == "auto" else requested)
    except RuntimeError:
        raise DeviceUnavailable(f"device {requested!r} is not a device ({CHOICES})") from None
    if device.type == "cpu":
        _say(say, "device: cpu (requested)")
        return device
    if device.type != "cuda":
        raise DeviceUnavailable(f"device {requested!r} is not supported ({CHOICES})")
    problem = cuda_problem()
    if problem is None and (device.index or 0) >= torch.cuda.device_count():
        problem = f"{requested} asked for but only {torch.cuda.device_count()} CUDA device(s) are visible"
    if problem is None:
        _say(say, f"device: {device} ({torch.cuda.get_device_name(device)})")
        return device
    if requested == "auto":
        _say(say, f"device: cpu (falling back: {problem})")
        return torch.device("cpu")
    raise DeviceUnavailable(f"device {requested}: {problem}; fix: {FIX}")


def _say(say, line: str) -> None:
    if say is not None:
        say(line)
