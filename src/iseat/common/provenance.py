"""What produced a result: package versions, git commit, device."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The packages whose versions a result depends on (the full environment: requirements.lock).
PACKAGES = (
    "iseat",
    "torch",
    "torchvision",
    "numpy",
    "h5py",
    "pyautoattack",
    "scikit-learn",
    "PyYAML",
    "jsonschema",
    "matplotlib",
)


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["torch_cuda"] = torch.version.cuda  # the CUDA build of torch (None: a CPU-only build)
    return out


def git_commit() -> str | None:
    """The commit of the source tree this package is imported from (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def device_description(device) -> str:
    import torch

    if str(device).startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# Where on a cluster a process ran: its GPUs, SLURM job and step, and its part of a data-parallel run.
PLACEMENT_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_STEP_GPUS", "WORLD_SIZE")


def placement() -> dict:
    """The PLACEMENT_VARIABLES set in this process's environment."""
    return {name: os.environ[name] for name in PLACEMENT_VARIABLES if name in os.environ}


def provenance(device=None, seed=None) -> dict:
    out = {"versions": package_versions(), "git_commit": git_commit(), "host": platform.node()}
    out["placement"] = placement()
    if device is not None:
        out["device"] = device_description(device)
    if seed is not None:
        out["seed"] = seed
    return out
