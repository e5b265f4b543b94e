"""Model checkpoints (best/last, for evaluation and fine-tuning) and atomic torch.save.

A model checkpoint is a dict with `format`, `model` (state_dict), `architecture` (the arguments of
`build_model`), `epoch`, `metrics` and the run's `config`; `load_model` rebuilds the model from it.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from iseat.common.errors import UserError
from iseat.common.io import atomic_path
from iseat.methods.models import build_model

FORMAT = "iseat-checkpoint-v1"


def save_atomic(obj, path) -> None:
    """torch.save through memory, so that a full disk surfaces as an OSError naming the file (torch's own
    writer reports it as a RuntimeError without the cause)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def architecture_of(cfg: dict, num_classes: int) -> dict:
    m = cfg["model"]
    return {
        "arch": m["arch"],
        "num_classes": num_classes,
        "activation": m["activation"],
        "depth": m["depth"],
        "width": m["width"],
    }


def model_checkpoint(model, architecture: dict, epoch: int, metrics: dict, config: dict) -> dict:
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "architecture": architecture,
        "epoch": epoch,
        "metrics": metrics,
        "config": config,
    }


class CheckpointError(UserError, ValueError):
    """A missing, corrupt or mismatched checkpoint; the message is one line."""


def read_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint file such as {path / 'best.pt'}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an iseat model checkpoint (expected format {FORMAT})")
    return ckpt


def load_model(path, device="cpu", expect_num_classes: int | None = None, expect_arch: str | None = None):
    """Rebuild the model stored in a checkpoint; returns (model in eval mode, checkpoint dict)."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt, path, device, expect_num_classes, expect_arch), ckpt


def model_from_checkpoint(
    ckpt: dict, path, device="cpu", expect_num_classes: int | None = None, expect_arch: str | None = None
):
    """The model (eval mode) of a checkpoint already read by `read_checkpoint`; `path` names it in errors."""
    arch = ckpt.get("architecture")
    if not isinstance(arch, dict) or "arch" not in arch or "num_classes" not in arch:
        raise CheckpointError(f"{path} has no valid architecture entry")
    if expect_arch is not None and arch["arch"] != expect_arch:
        raise CheckpointError(f"{path} holds a {arch['arch']}, not the expected {expect_arch}")
    if expect_num_classes is not None and arch["num_classes"] != expect_num_classes:
        raise CheckpointError(f"{path} has {arch['num_classes']} classes but the data set has {expect_num_classes}")
    try:
        model = build_model(**arch)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid architecture entry ({str(err).splitlines()[0]})") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path}: weights do not fit {arch['arch']} ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def sha256_of(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
