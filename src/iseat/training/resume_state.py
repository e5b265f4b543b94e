"""A training run's resume state (`state.pt`), stored so that reading it can run no code.

The state is a plain tree of tensors, numbers, strings, lists and dicts, read back with
`torch.load(weights_only=True)`: a planted pickle that would run code on load is refused. The two
RNG states that are not plain (NumPy's holds an array; Python's is a tuple) are stored as a tensor
and a list. A state is accepted only if it carries this format and the run's own config, and
(`check_fits`) every field fits the run: progress within its epochs and batches, tensors of the model's,
optimiser's, weight average's and AV buffer's shapes and finite, RNG states of their generators' sizes.
"""

from __future__ import annotations

import math
import pickle
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from iseat.common.errors import ResumeStateError, first_line
from iseat.training.avlog import PER_SAMPLE
from iseat.training.checkpoint import save_atomic

FORMAT = "iseat-resume-state-v1"
REQUIRED = ("format", "model", "optimizer", "scheduler", "swa", "progress", "rng", "config")


def rng_states() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as plain values and tensors."""
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": name,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state(
        (n["bit_generator"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(path, **parts) -> None:
    """Write the state atomically; `parts` are the REQUIRED entries but `format` (and optionally `buffer`)."""
    save_atomic({"format": FORMAT, **parts}, path)


def read_state(path) -> dict:
    """The state at `path`, loaded without running code; ResumeStateError (one line) if it is not a valid one."""
    path = Path(path)
    advice = f"delete {path} to restart the run from its first epoch, or restore a good copy"
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a pickle protocol it did not write itself
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for empty, truncated, foreign or planted files
        if isinstance(err, pickle.UnpicklingError):
            reason = "it holds objects other than tensors and plain values, which could run code"
        else:
            reason = first_line(err) if str(err).strip() else "empty or truncated"
        raise ResumeStateError(
            f"{path} is not a loadable resume state ({type(err).__name__}: {reason}); {advice}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeStateError(f"{path} is not an iseat resume state (expected format {FORMAT}); {advice}")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ResumeStateError(f"{path} lacks {missing}; {advice}")
    return state


def check_belongs_to(state: dict, path, config: dict) -> None:
    """A state saved by another run (another config) is refused rather than adopted."""
    if state["config"] != config:
        raise ResumeStateError(
            f"{path} was saved by a run with another config than its folder's config.yaml; "
            f"delete {path} to restart the run, or restore the matching config.yaml"
        )


# ----------------------------------------------------------------------------- does the state fit the run?


@dataclass(frozen=True)
class RunShape:
    """What a resume state must fit: the run's config and the objects it would be loaded into."""

    epochs: int  # training.epochs
    batches: int  # batches per epoch
    model: dict  # the model's state_dict
    params: list  # the shapes of the optimiser's parameters, in order
    swa: dict | None  # the weight average's state_dict; None without SWA
    log_size: int  # samples of the AV buffer
    progress_fields: tuple  # the names of the progress record


def check_fits(state: dict, path, run: RunShape) -> None:
    """ResumeStateError naming the first field of `state` that does not fit `run`, before any of it is used."""
    problem = next(
        (
            p
            for p in (
                fit_progress(state["progress"], run),
                fit_tensors(state["model"], run.model, "model"),
                fit_optimizer(state["optimizer"], run.params),
                fit_scheduler(state, run),
                fit_swa(state["swa"], run.swa),
                fit_rng(state["rng"]),
                fit_buffer(state, run),
            )
            if p
        ),
        None,
    )
    if problem:
        raise ResumeStateError(
            f"{path}: {problem}; delete {path} to restart the run from its first epoch, or restore a good copy"
        )


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fit_progress(progress, run: RunShape) -> str | None:
    if not isinstance(progress, dict) or set(progress) != set(run.progress_fields):
        return (
            f"progress holds {sorted(progress) if isinstance(progress, dict) else type(progress).__name__}, "
            f"not the fields {sorted(run.progress_fields)}"
        )
    epoch, batch = progress["epoch"], progress["batch"]
    if not is_int(epoch) or not 0 <= epoch <= run.epochs:
        return f"progress.epoch {epoch!r} is outside 0..{run.epochs} (training.epochs)"
    last = run.batches if epoch < run.epochs else 0  # a stop after an epoch's last batch saves batch = batches
    if not is_int(batch) or not 0 <= batch <= last:
        return f"progress.batch {batch!r} is outside 0..{last} (batches of epoch {epoch + 1})"
    for key in ("best_epoch", "swa_best_epoch"):
        if not is_int(progress[key]) or not -1 <= progress[key] < epoch:
            return f"progress.{key} {progress[key]!r} is outside -1..{epoch - 1} (completed epochs)"
    if not is_int(progress["av_log_epochs"]) or not 0 <= progress["av_log_epochs"] <= epoch:
        return f"progress.av_log_epochs {progress['av_log_epochs']!r} is outside 0..{epoch} (completed epochs)"
    for key in ("best_pgd", "swa_best_pgd"):
        if not is_number(progress[key]) or not -1 <= progress[key] <= 1:
            return f"progress.{key} {progress[key]!r} is not an accuracy (or -1 for none)"
    sums = progress["sums"]
    if batch and (not isinstance(sums, dict) or set(sums) != set(SUMS) or not all(map(is_number, sums.values()))):
        return f"progress.sums is not the running sums {list(SUMS)} of the current epoch"
    return None


SUMS = ("loss", "n", "clean_correct", "adv_correct")


def fit_tensors(found, expected: dict, field: str) -> str | None:
    """Same names, shapes and dtype kinds as `expected` (a state_dict), every float finite."""
    if not isinstance(found, dict) or set(found) != set(expected):
        return f"{field} does not hold this run's {len(expected)} tensors"
    for key, want in expected.items():
        have = found[key]
        if not isinstance(want, torch.Tensor):
            continue
        if not isinstance(have, torch.Tensor) or have.shape != want.shape:
            return f"{field}.{key} has shape {getattr(have, 'shape', type(have).__name__)}, not {tuple(want.shape)}"
        if have.is_floating_point() and not bool(torch.isfinite(have).all()):
            return f"{field}.{key} holds non-finite values"
    return None


def fit_optimizer(optimizer, params: list) -> str | None:
    if (
        not isinstance(optimizer, dict)
        or not isinstance(optimizer.get("param_groups"), list)
        or not isinstance(optimizer.get("state"), dict)
    ):
        return "optimizer is not an SGD state (state, param_groups)"
    ids = [
        i for group in optimizer["param_groups"] for i in (group.get("params", []) if isinstance(group, dict) else [])
    ]
    if sorted(ids) != list(range(len(params))):
        return f"optimizer.param_groups name {len(ids)} parameters, not the model's {len(params)}"
    for i, entry in optimizer["state"].items():
        if i not in ids:
            return f"optimizer.state[{i!r}] names no parameter"
        buf = entry.get("momentum_buffer") if isinstance(entry, dict) else None
        if buf is not None and (not isinstance(buf, torch.Tensor) or buf.shape != params[i]):
            return (
                f"optimizer.state[{i}].momentum_buffer has shape {getattr(buf, 'shape', type(buf).__name__)}, "
                f"not its parameter's {tuple(params[i])}"
            )
        if buf is not None and not bool(torch.isfinite(buf).all()):
            return f"optimizer.state[{i}].momentum_buffer holds non-finite values"
    return None


def fit_scheduler(state: dict, run: RunShape) -> str | None:
    scheduler, epoch = state["scheduler"], state["progress"]["epoch"]
    if not isinstance(scheduler, dict) or scheduler.get("last_epoch") != epoch:
        return f"scheduler.last_epoch is not {epoch}, the completed epochs of progress.epoch"
    return None


def fit_swa(swa, expected: dict | None) -> str | None:
    if expected is None:
        return None if swa is None else "swa holds a weight average, but this run has none (training.swa)"
    return fit_tensors(swa, expected, "swa")


RNG_SIZES = {"python": 625, "numpy": 624}  # Mersenne Twister: 624 words (+ Python's position)


def fit_rng(rng) -> str | None:
    if not isinstance(rng, dict) or not {"python", "numpy", "torch"} <= set(rng):
        return "rng lacks the python, numpy and torch states"
    python, numpy = rng["python"], rng["numpy"]
    if not (
        isinstance(python, list)
        and len(python) == 3
        and isinstance(python[1], list)
        and len(python[1]) == RNG_SIZES["python"]
        and all(map(is_int, python[1]))
    ):
        return f"rng.python is not Python's state (a key of {RNG_SIZES['python']} integers)"
    key = numpy.get("key") if isinstance(numpy, dict) else None
    if not isinstance(key, torch.Tensor) or key.shape != (RNG_SIZES["numpy"],) or key.is_floating_point():
        return f"rng.numpy.key has shape {getattr(key, 'shape', type(key).__name__)}, not ({RNG_SIZES['numpy']},)"
    if (
        numpy.get("bit_generator") != "MT19937"
        or not is_int(numpy.get("pos"))
        or not 0 <= numpy["pos"] <= RNG_SIZES["numpy"]
    ):
        return f"rng.numpy is not an MT19937 state with pos in 0..{RNG_SIZES['numpy']}"
    want = torch.get_rng_state()
    if (
        not isinstance(rng["torch"], torch.Tensor)
        or rng["torch"].shape != want.shape
        or rng["torch"].dtype != want.dtype
    ):
        return f"rng.torch is not torch's {tuple(want.shape)} {want.dtype} state"
    return None


def fit_buffer(state: dict, run: RunShape) -> str | None:
    """The AV buffer of a part-done epoch: one value per logged sample for each per-sample quantity."""
    if "buffer" not in state:
        return None
    buffer = state["buffer"]
    if not isinstance(buffer, dict) or set(buffer) != set(PER_SAMPLE):
        return f"buffer does not hold {sorted(PER_SAMPLE)}"
    for name, values in buffer.items():
        if not isinstance(values, torch.Tensor) or values.shape != (run.log_size,):
            return f"buffer.{name} has shape {getattr(values, 'shape', type(values).__name__)}, not ({run.log_size},)"
    return None
