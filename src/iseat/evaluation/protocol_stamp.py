"""The protocol stamp of an aa.json: every choice two robustness numbers must share to stand side by side.

Published robustness claims most often break on a protocol mismatch (eps 0.031 against 8/255, 1,000
against 10,000 test points, BatchNorm in train mode during the attack). The stamp records the threat
model, each attack's exact settings (with the pyautoattack version), the seed, the test indices (count
and hash), the model's mode during the attack, the input normalisation, how the checkpoint was selected,
a checksum of the evaluated test data and the versions of the libraries that compute the numbers.
`difference` names the first field on which two stamps disagree; the checkpoint's own identity (file,
hash, epoch) is the model's, not the protocol's, and is not compared.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np

STAMP_VERSION = 1
# Models take images in [0, 1] and have no normalisation layer (iseat.methods.models, as the reference)
INPUT_NORMALISATION = "none: images in [0, 1], no normalisation layer"
# The libraries whose versions change attack numbers (all versions: provenance.versions)
VERSIONED = ("iseat", "torch", "pyautoattack", "numpy")
# Checkpoint files of a training run and how the training loop chose them (iseat.training.loop); whether the
# weights are SWA's is the model's identity (its file), not the selection rule
SELECTED_BY = {"best": "highest PGD accuracy on the selection split", "last": "last epoch"}
SELECTED_BY |= {f"swa_{stem}": rule for stem, rule in SELECTED_BY.items()}
MODEL_FIELDS = ("checkpoint.file", "checkpoint.sha256", "checkpoint.epoch")  # the model's identity, not compared
PER_DATASET = ("data.", "test_indices.")  # fields only results on one data set share
ABSENT = "(absent)"


def indices_digest(indices) -> dict:
    """Count and sha256 of the evaluated test indices (decimal, comma-separated, in evaluation order)."""
    text = ",".join(str(int(i)) for i in indices)
    return {"count": len(indices), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def samples_digest(x, y) -> str:
    """sha256 of a chunk's images (float32, C order) and labels (int64): what was attacked, byte for byte."""
    digest = hashlib.sha256(np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(y, dtype=np.int64)).tobytes())
    return digest.hexdigest()


def data_digest(chunk_digests: list[str]) -> str:
    """One checksum of the evaluated data from the chunks' `samples_digest`s, in chunk order."""
    return hashlib.sha256("\n".join(chunk_digests).encode()).hexdigest()


def checkpoint_stamp(checkpoint: dict | None, training_config: dict | None) -> dict | None:
    """Which checkpoint was evaluated and how it was selected (None for a bare model)."""
    if checkpoint is None:
        return None
    stem = checkpoint["path"].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".pt")
    split = ((training_config or {}).get("data") or {}).get("selection", "validation")
    return {
        "file": f"{stem}.pt",
        "sha256": checkpoint["sha256"],
        "epoch": checkpoint.get("epoch"),
        "selected_by": SELECTED_BY.get(stem, "given file"),
        "selection_split": split,
    }


@contextmanager
def recorded_modes(model):
    """Yields the set of modes ("eval", "train") the model or any of its submodules was in at each forward
    pass inside the block: BatchNorm in train mode during an attack changes its numbers."""
    modes: set[str] = set()
    hook = model.register_forward_pre_hook(
        lambda module, args: modes.add("train" if any(m.training for m in module.modules()) else "eval")
    )
    try:
        yield modes
    finally:
        hook.remove()


def mode_name(chunks: list[dict]) -> str:
    """The model's mode over all chunks' forward passes: "eval", "train" or "eval and train"."""
    return " and ".join(sorted({mode for chunk in chunks for mode in chunk["model_modes"]}))


def protocol_stamp(
    *,
    norm: str,
    eps: float,
    attack_settings: dict,
    seed: int,
    indices,
    chunk_digests: list[str],
    model_mode: str,
    source: dict,
    dataset: str | None,
    versions: dict,
) -> dict:
    """The stamp of one evaluation (JSON-able)."""
    return {
        "version": STAMP_VERSION,
        "threat_model": {"norm": norm, "eps": eps},
        "attacks": attack_settings,
        "seed": seed,
        "test_indices": indices_digest(indices),
        "model_mode": model_mode,
        "input_normalisation": INPUT_NORMALISATION,
        "checkpoint": checkpoint_stamp(source.get("checkpoint"), source.get("training_config")),
        "data": {"dataset": dataset, "sha256": data_digest(chunk_digests)},
        "versions": {name: versions.get(name) for name in VERSIONED},
    }


def flatten(value, prefix: str = "") -> dict:
    """{dotted path: leaf} of nested dicts (lists and scalars are leaves)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for key, item in value.items():
        out |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return out


def difference(a: dict, b: dict, same_dataset: bool = True) -> str | None:
    """The first protocol field on which stamps `a` and `b` disagree, as 'field: A vs B'; None if they agree.
    With `same_dataset` False the test data and indices are not compared (e.g. CIFAR-10 beside SVHN)."""
    flat_a, flat_b = flatten(a), flatten(b)
    for key in dict.fromkeys([*flat_a, *flat_b]):  # the stamp's order: the threat model first
        if key in MODEL_FIELDS or (not same_dataset and key.startswith(PER_DATASET)):
            continue
        if flat_a.get(key, ABSENT) != flat_b.get(key, ABSENT):
            shown_a, shown_b = (repr(flat[key]) if key in flat else ABSENT for flat in (flat_a, flat_b))
            return f"{key}: {shown_a} vs {shown_b}"
    return None
