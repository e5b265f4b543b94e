"""Opt-in speed and memory options for training on a GPU: channels_last, bf16 autocast, TF32,
torch.compile, pinned memory, and the memory-lean ISEAT step.

All are off by default (`runtime.precision: fp32`, `runtime.channels_last`, `runtime.compile`,
`runtime.tf32`, `runtime.pin_memory`, `runtime.memory_lean` in the training config) and every run
records them (`describe`) in its summary.json; the results tables name those a run used
(`used_options`). channels_last, compile, pinned memory and memory_lean leave the method's maths as
it is (kernels may round differently in the last bits); bf16 autocast and TF32 change the numerics,
so results reported as the paper's reproduction use fp32. With `tf32: false` convolutions and matrix
products on CUDA run in full fp32 (PyTorch's own default lets cuDNN use TF32).

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

DEFAULTS = {
    "precision": "fp32",
    "channels_last": False,
    "compile": False,
    "tf32": False,
    "pin_memory": False,
    "memory_lean": False,
}
# How the results tables name each option when a run used it.
OPTION_NAMES = {
    "precision": "bf16 autocast",
    "channels_last": "channels_last",
    "compile": "torch.compile",
    "tf32": "TF32",
    "pin_memory": "pinned memory",
    "memory_lean": "memory-lean",
}


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
    """Move the model to `device`, in channels_last layout and compiled in place if asked; returns it.
    Also sets whether CUDA convolutions and matrix products may use TF32 (a process-wide setting)."""
    opts = options(runtime_cfg)
    set_tf32(opts["tf32"])
    model = model.to(device)
    if opts["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if opts["compile"]:
        model.compile()
    return model


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matrix products and cuDNN convolutions: on, or off for full fp32."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


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
    changed = ["bf16"] * (opts["precision"] == "bf16") + ["tf32"] * bool(opts["tf32"])
    return {
        **opts,
        "autocast_dtype": "bfloat16" if opts["precision"] == "bf16" else None,
        "compile_scope": "whole model, in place (nn.Module.compile)" if opts["compile"] else None,
        "numerics": f"changed ({', '.join(changed)})" if changed else "fp32",
    }


def used_options(description: dict | None) -> list[str]:
    """Names of the opt-in options a run used, from its recorded `describe` (summary.json's `acceleration`)."""
    description = description or {}
    return [name for key, name in OPTION_NAMES.items() if key in description and description[key] != DEFAULTS[key]]
