"""Sharded evaluation: one model's evaluation split into K jobs over disjoint slices of the test set.

Shard i of K evaluates a contiguous run of the evaluation's own chunks (`chunks.chunk_bounds`), so every
chunk keeps its number, its seed (`chunks.chunk_seed`) and so its random draws: the gathered report's
per-sample verdicts are those of an unsharded run with the same settings. Each shard is resumable like a
whole evaluation (its partial file beside its shard file) and writes its finished chunks, with the
fingerprint of the settings and the model, to one shard file; the gather checks that every shard is
there, intact, made with the same fingerprint, and covers its chunks, naming the shard that is not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from iseat.common.io import write_json_atomic
from iseat.evaluation.spec import EvaluationError, EvaluationInputError

SHARD_FORMAT = "iseat-evaluation-shard-v1"


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise EvaluationInputError(f"{{0}} {self.index + 1}/{self.count} must be i/K with 1 <= i <= K", "shard")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/K' (1-based, as on the command line)."""
        try:
            i, k = (int(part) for part in str(text).split("/"))
        except ValueError:
            raise EvaluationInputError(f"{{0}} {text!r} must be i/K, e.g. 1/4", "shard") from None
        return cls(i - 1, k)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def chunks(self, n_chunks: int) -> range:
        """The chunk numbers of this shard: K contiguous runs of near-equal length (the first ones longer)."""
        if self.count > n_chunks:
            raise EvaluationInputError(
                f"{{0}} {self} splits {n_chunks} chunks into more shards than chunks; "
                f"use at most {n_chunks} shards or a smaller chunk_size",
                "shard",
            )
        size, extra = divmod(n_chunks, self.count)
        start = self.index * size + min(self.index, extra)
        return range(start, start + size + (self.index < extra))


def write_shard(path, shard: Shard, fingerprint: dict, chunks: dict, runs: int, device: str) -> None:
    """A finished shard: its chunks {number: result}, the fingerprint they were made with, where they ran."""
    write_json_atomic(
        path,
        {
            "format": SHARD_FORMAT,
            "shard": shard.index,
            "shards": shard.count,
            "fingerprint": fingerprint,
            "runs": runs,
            "device": device,
            "chunks": chunks,
        },
        indent=None,
    )


def read_shard(path: Path, shard: Shard, fingerprint: dict, bounds: list[tuple[int, int]]) -> dict:
    """The shard file of `shard`, checked: readable, of this shard, same fingerprint, all its chunks whole."""
    name = f"shard {shard} ({path})"
    if not path.is_file():
        raise EvaluationError(f"{name} is missing; run that shard's evaluation")
    damaged = f"{name} is damaged; delete it and run that shard again"
    try:
        state = json.loads(path.read_text())
        own, saved, chunks = (state["format"], state["shard"], state["shards"]), state["fingerprint"], state["chunks"]
        sizes = {k: len(c["index"]) for k, c in chunks.items()}
    except (OSError, ValueError, KeyError, TypeError):
        raise EvaluationError(damaged) from None
    if own != (SHARD_FORMAT, shard.index, shard.count):
        raise EvaluationError(
            f"{name} is not shard {shard} of this evaluation ({own[0]}, shard index {own[1]} of "
            f"{own[2]}); give the shards in order"
        )
    for key in fingerprint:
        if saved.get(key) != fingerprint[key]:
            raise EvaluationError(f"{name} was made with another {key}; delete it and run that shard again")
    wanted = {str(i): bounds[i][1] - bounds[i][0] for i in shard.chunks(len(bounds))}
    if sizes != wanted:
        raise EvaluationError(damaged)
    return state


def gather(paths, fingerprint: dict, bounds: list[tuple[int, int]]) -> tuple[list[dict], int, str]:
    """All chunks, in order, from the K shard files `paths` (shard 1 first); returns (chunks, runs, devices)."""
    paths = [Path(p) for p in paths]
    states = [read_shard(p, Shard(i, len(paths)), fingerprint, bounds) for i, p in enumerate(paths)]
    chunks = {k: v for state in states for k, v in state["chunks"].items()}
    devices = "; ".join(dict.fromkeys(str(state.get("device")) for state in states))
    return [chunks[str(i)] for i in range(len(bounds))], sum(state["runs"] for state in states), devices
