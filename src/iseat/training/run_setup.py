"""What a run sets up before its first step: determinism and seeds, the fine-tuning start, and the refusal of
what several processes cannot compute yet."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from iseat.training.checkpoint import load_model
from iseat.training.config import ConfigError


def set_determinism(enabled: bool) -> None:
    if enabled:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune_source(cfg: dict) -> Path | None:
    src = cfg["training"]["finetune_from"]
    if not src:
        return None
    src = Path(src)
    return src / f"{cfg['training']['finetune_checkpoint']}.pt" if src.is_dir() else src


def load_finetune_start(model: torch.nn.Module, cfg: dict, architecture: dict, say) -> None:
    """Fine-tuning starts from the weights of `training.finetune_from`, checked against this architecture."""
    src = finetune_source(cfg)
    if src is None:
        return
    expect = architecture
    loaded, ckpt = load_model(src, "cpu", expect_num_classes=expect["num_classes"], expect_arch=expect["arch"])
    model.load_state_dict(loaded.state_dict())
    say(f"fine-tuning from {src} ({cfg['training']['finetune_checkpoint']} checkpoint, epoch {ckpt['epoch']})")


def check_data_parallel(cfg: dict) -> None:
    """What several processes cannot yet compute with the numbers of one: refused, naming the key."""
    if cfg["training"]["swa"]["enabled"]:
        raise ConfigError(
            "training.swa.enabled: SWA is not supported on several processes yet; "
            "train on one process or set training.swa.enabled: false"
        )
    if cfg["method"].get("name") == "fat":  # its per-step noise is drawn per running sample
        raise ConfigError("method.name: fat is not supported on several processes yet; train it on one process")
