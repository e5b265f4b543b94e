"""Opt-in speed options for training on a GPU: channels_last, bf16 autocast, torch.compile, pinned memory.

All are off by default (`runtime.precision: fp32`, `runtime.channels_last`, `runtime.compile`,
`runtime.pin_memory` in the training config) and every run records them (`describe`) in its
provenance. channels_last, compile and pinned memory leave the method's maths as it is (compiled
kernels may round differently in the last bits); bf16 autocast changes the numerics, so results
reported as the paper's reproduction use fp32.

Usage in a training loop:
    model = prepare_model(build_model(...), cfg["runtime"], device)
    x = to_device(x, cfg["runtime"], device)
    with autocast(cfg["runtime"], device):  # around one step: autocast's weight cache is per step
        result = training_step(model, optimizer, x, y, method)

torch.compile: the model is compiled in place (`nn.Module.compile`), so parameter names, state
dicts, checkpoints and `torch.func.functional_call` (used for AWP's theta + v) are unchanged;
functional calls of the compiled module work and run compiled code. The attack's forward passes
compile to their own graphs (the parameters are frozen while PGD runs, so their backward does not
compute parameter gradients).
"""

from __future__ import annotations

import contextlib

import torch

DEFAULTS = {"precision": "fp32", "channels_last": False, "compile": False, "pin_memory": False}


def options(runtime_cfg: dict | None) -> dict:
    """The speed options of a config's `runtime` section, defaults filled in."""
    cfg = runtime_cfg or {}
    out = {key: cfg.get(key, default) for key, default in DEFAULTS.items()}
    if out["precision"] not in ("fp32", "bf16"):
        raise ValueError(f"runtime.precision: unknown precision {out['precision']!r}; choose fp32 or bf16")
    return out


def device_type(device) -> str:
    return torch.device(device).type


def prepare_model(model: torch.nn.Module, runtime_cfg: dict | None, device) -> torch.nn.Module:
    """Move the model to `device`, in channels_last layout and compiled in place if asked; returns it."""
    opts = options(runtime_cfg)
    model = model.to(device)
    if opts["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if opts["compile"]:
        model.compile()
    return model


def to_device(x: torch.Tensor, runtime_cfg: dict | None, device) -> torch.Tensor:
    """A batch of images on `device` (asynchronously from pinned memory, in channels_last if asked)."""
    opts = options(runtime_cfg)
    non_blocking = opts["pin_memory"] and device_type(device) == "cuda"
    x = x.to(device, non_blocking=non_blocking)
    if opts["channels_last"] and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def pin_memory(runtime_cfg: dict | None, device) -> bool:
    """Whether data loaders should return pinned host memory (only meaningful for CUDA)."""
    return bool(options(runtime_cfg)["pin_memory"]) and device_type(device) == "cuda"


def autocast(runtime_cfg: dict | None, device):
    """bf16 autocast on `device` if `runtime.precision` is bf16, else a context that does nothing.

    Wrap one training step (or one evaluation batch) at a time: autocast caches low-precision
    copies of the weights until its outermost context exits (`training_step` also drops the cache
    after its update).
    """
    if options(runtime_cfg)["precision"] == "bf16":
        return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(runtime_cfg: dict | None) -> dict:
    """The speed options in force, for a run's provenance."""
    opts = options(runtime_cfg)
    return {**opts, "autocast_dtype": "bfloat16" if opts["precision"] == "bf16" else None,
            "compile_scope": "whole model, in place (nn.Module.compile)" if opts["compile"] else None,
            "numerics": "changed (bf16)" if opts["precision"] == "bf16" else "fp32"}
