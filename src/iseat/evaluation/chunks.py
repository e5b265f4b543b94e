"""Chunked, resumable evaluation: each finished chunk of the test set is saved beside the output.

A killed evaluation started again with the same settings skips the chunks already in the partial
file (`<out stem>.partial.json`, rewritten atomically after every chunk). Each chunk's numbers depend
only on its samples, the model and the settings (torch's RNG is seeded per chunk before the attacks run,
AutoAttack reseeds itself per batch), so a resumed run gives the numbers of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from iseat.common.io import write_json_atomic
from iseat.evaluation.attacks import Attack
from iseat.evaluation.protocol_stamp import recorded_modes, samples_digest
from iseat.evaluation.robustness import clean_correct
from iseat.evaluation.spec import EvaluationError, EvaluationSpec

PARTIAL_FORMAT = "iseat-evaluation-partial-v2"  # v2: each chunk holds its data checksum


class IndexedTensors(Dataset):
    """In-memory samples as a Dataset of (x, y, index), the layout of `iseat.data` test sets."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, indices=None):
        self.x, self.y = x, y
        self.indices = torch.arange(len(y)) if indices is None else torch.as_tensor(indices)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], self.indices[i]

    def batch(self, positions):
        positions = torch.as_tensor(positions)
        return self.x[positions], self.y[positions], self.indices[positions]


def partial_path(out) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.partial.json")


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def load_samples(dataset, start: int, end: int):
    """Samples start..end-1 of a Dataset of (x, y, index) as batched tensors."""
    if hasattr(dataset, "batch"):
        x, y, index = dataset.batch(np.arange(start, end))
    else:
        items = [dataset[i] for i in range(start, end)]
        x = torch.stack([torch.as_tensor(item[0]) for item in items])
        y, index = (torch.as_tensor([int(item[k]) for item in items]) for k in (1, 2))
    # contiguous: data sets may hand out permuted (channels-last) views, and pyautoattack `.view`s gradients
    return x.float().contiguous(), torch.as_tensor(y, dtype=torch.long), torch.as_tensor(index, dtype=torch.long)


def model_digest(model) -> str:
    """sha256 of the model's parameters and buffers: a partial result is reused only for the same weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def chunk_seed(seed: int, chunk: int) -> int:
    return seed * 1_000_003 + chunk


def read_partial(path: Path, fingerprint: dict) -> dict:
    """The saved chunks of an earlier run with the same fingerprint; an empty state if there is none."""
    if not path.exists():
        return {"format": PARTIAL_FORMAT, "fingerprint": fingerprint, "runs": 0, "chunks": {}}
    try:
        state = json.loads(path.read_text())
        saved = state["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EvaluationError(f"partial results {path} are unreadable; delete the file to start over") from None
    if state.get("format") != PARTIAL_FORMAT:
        raise EvaluationError(
            f"partial results {path} are of an older format ({state.get('format')}); delete the file to start over"
        )
    for key in fingerprint:
        if saved.get(key) != fingerprint[key]:
            raise EvaluationError(
                f"partial results {path} were made with another {key}; delete the file or "
                f"evaluate with the same settings"
            )
    return state


def evaluate_chunk(model, x, y, spec: EvaluationSpec, attacks: list[Attack], device, first: bool) -> dict:
    """Clean correctness and each attack's per-point verdicts on one chunk, with the seconds each took."""
    times, result, warnings = {}, {}, []
    t0 = time.perf_counter()
    clean = clean_correct(model, x, y, spec.batch_size, device)
    result["clean_correct"] = clean.tolist()
    times["clean"] = time.perf_counter() - t0
    for attack in attacks:
        t0 = time.perf_counter()
        if first:
            warnings += attack.preflight(model, x, y)
        outcome = attack(model, x, y, clean)
        result[attack.column] = outcome.robust.tolist()
        result.update(outcome.columns)
        warnings += outcome.warnings
        times[attack.section] = time.perf_counter() - t0
    if warnings:
        result["warnings"] = warnings
    result["wall_time_s"] = times
    return result


def running_totals(chunks, attacks: list[Attack]) -> str:
    """Progress-bar text: correct points so far, clean and under each attack that ran."""
    chunks = list(chunks)
    counts = [
        f"{name} {sum(sum(c[key]) for c in chunks)}"
        for key, name in [("clean_correct", "clean"), *((a.column, a.name) for a in attacks)]
    ]
    return f"of {sum(len(c['index']) for c in chunks)}: " + ", ".join(counts)


def run_chunks(
    model,
    dataset,
    n: int,
    spec: EvaluationSpec,
    attacks: list[Attack],
    device,
    partial: Path,
    fingerprint: dict,
    progress: bool = True,
    only: range | None = None,
) -> tuple[list[dict], int]:
    """Evaluate the first `n` samples chunk by chunk with `attacks` (built from `spec`), resuming from `partial`;
    returns (chunk results, runs). `only`: these chunk numbers (a shard), each as in a whole run."""
    state = read_partial(partial, fingerprint)
    state["runs"] += 1
    bounds = chunk_bounds(n, spec.chunk_size)
    only = range(len(bounds)) if only is None else only
    todo = [i for i in only if str(i) not in state["chunks"]]
    with tqdm(
        total=len(only),
        initial=len(only) - len(todo),
        disable=not progress,
        unit="chunk",
        desc=f"evaluate {sum(bounds[i][1] - bounds[i][0] for i in only)} samples",
    ) as bar:
        for i in todo:
            start, end = bounds[i]
            x, y, index = load_samples(dataset, start, end)
            torch.manual_seed(chunk_seed(spec.seed, i))
            with recorded_modes(model) as modes:
                result = evaluate_chunk(model, x, y, spec, attacks, device, first=i == 0)
            state["chunks"][str(i)] = {
                "index": index.tolist(),
                "label": y.tolist(),
                "data_sha256": samples_digest(x, y),
                "model_modes": sorted(modes),
                **result,
            }
            write_json_atomic(partial, state, indent=None)
            bar.update(1)
            bar.set_postfix_str(running_totals(state["chunks"].values(), attacks))
    return [state["chunks"][str(i)] for i in only], state["runs"]
