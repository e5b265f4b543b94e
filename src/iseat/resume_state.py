"""A training run's resume state (`state.pt`), stored so that reading it can run no code.

The state is a plain tree of tensors, numbers, strings, lists and dicts, read back with
`torch.load(weights_only=True)`: a planted pickle that would run code on load is refused. The two
RNG states that are not plain (NumPy's holds an array; Python's is a tuple) are stored as a tensor
and a list. A state is accepted only if it carries this format and the run's own config.
"""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import save_atomic
from .errors import ResumeStateError, first_line

FORMAT = "iseat-resume-state-v1"
REQUIRED = ("format", "model", "optimizer", "scheduler", "swa", "progress", "rng", "config")


def rng_states() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as plain values and tensors."""
    version, internal, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    states = {"python": [version, list(internal), gauss],
              "numpy": {"bit_generator": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["bit_generator"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
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
        raise ResumeStateError(f"{path} is not a loadable resume state ({type(err).__name__}: {reason}); "
                               f"{advice}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeStateError(f"{path} is not an iseat resume state (expected format {FORMAT}); {advice}")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise ResumeStateError(f"{path} lacks {missing}; {advice}")
    return state


def check_belongs_to(state: dict, path, config: dict) -> None:
    """A state saved by another run (another config) is refused rather than adopted."""
    if state["config"] != config:
        raise ResumeStateError(f"{path} was saved by a run with another config than its folder's config.yaml; "
                               f"delete {path} to restart the run, or restore the matching config.yaml")
