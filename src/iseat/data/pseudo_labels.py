"""The RST extra data: 500K pseudo-labelled 80M-TinyImages, converted once from its pickle to memory-mapped .npy.

The published file `ti_500K_pseudo_labeled.pickle` (semisup-adv) is a dict with `data` (uint8 N x 32 x 32 x 3)
and `extrapolated_targets` (N labels 0..9). It is read with the restricted unpickler (numpy arrays only),
its schema checked, and written as `data.npy` + `targets.npy` with `manifest.json` (written last) recording
the source's sha256 and size. Training memory-maps `data.npy`; nothing is unpickled at training time.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from iseat.common.errors import literal
from iseat.common.io import atomic_path, write_json_atomic
from iseat.data.errors import DataError, DataInputError
from iseat.data.safe_pickle import restricted_load

PICKLE_NAME = "ti_500K_pseudo_labeled.pickle"
PUBLISHED_COUNT = 500_000
NUM_CLASSES = 10
FORMAT = "iseat-pseudo-labelled-v1"
DATA_FILE, TARGETS_FILE, MANIFEST = "data.npy", "targets.npy", "manifest.json"


def file_digest(path, algorithm: str = "sha256", progress: bool = False) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in 4 MiB chunks."""
    digest, size = hashlib.new(algorithm), 0
    total = os.path.getsize(path)
    with (
        open(path, "rb") as f,
        tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"{algorithm} {Path(path).name}",
            disable=None if progress else True,
            leave=False,
        ) as bar,
    ):
        while chunk := f.read(4 << 20):
            digest.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    return digest.hexdigest(), size


def check_schema(obj, what: str, expected_count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 N x 32 x 32 x 3, targets int64 N in 0..9) of an unpickled set, or a one-line DataError."""
    if not isinstance(obj, dict) or "data" not in obj or "extrapolated_targets" not in obj:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{what}: expected a dict with keys 'data' and 'extrapolated_targets', found {found}")
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (32, 32, 3):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{what}: 'data' must be a uint8 array N x 32 x 32 x 3, found {found}")
    targets = np.asarray(obj["extrapolated_targets"])
    if targets.ndim != 1 or targets.dtype.kind not in "iu" or len(targets) != len(data):
        raise DataError(
            f"{what}: 'extrapolated_targets' must be {len(data)} integer labels, found {targets.dtype} {targets.shape}"
        )
    if len(data) == 0 or targets.min() < 0 or targets.max() >= NUM_CLASSES:
        bad = "no samples" if len(data) == 0 else f"labels {targets.min()}..{targets.max()}"
        raise DataError(f"{what}: labels must be 0..{NUM_CLASSES - 1} and the set non-empty, found {bad}")
    if expected_count and len(data) != expected_count:
        raise DataInputError(
            f"{literal(what)}: holds {len(data)} samples, expected {expected_count}; pass {{0}} "
            f"{len(data)} (or 0) if this is the set you mean",
            "expected_count",
        )
    return data, targets.astype(np.int64)


def read_pickle(path, expected_count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a pseudo-label pickle with the restricted unpickler and check its schema."""
    with open(path, "rb") as f:
        obj = restricted_load(f, str(path))
    return check_schema(obj, str(path), expected_count)


def save_npy_atomic(path: Path, array: np.ndarray) -> dict:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    digest, size = file_digest(path)
    return {"sha256": digest, "size": size}


def convert(source, dest, source_record: dict, limit: int | None = None, expected_count: int | None = None) -> dict:
    """Convert the pickle at `source` into `dest/{data.npy,targets.npy,manifest.json}`; returns the manifest.

    `source_record` (file name, sha256, size, and path or url) goes into the manifest as given. The old
    manifest is removed first, so a folder whose manifest exists is always complete.
    """
    dest = Path(dest)
    data, targets = read_pickle(source, expected_count)
    if limit is not None:
        if limit < 1:
            raise DataInputError(f"{{0}}: {limit} must be at least 1", "limit")
        data, targets = data[:limit], targets[:limit]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)
    files = {
        DATA_FILE: save_npy_atomic(dest / DATA_FILE, np.ascontiguousarray(data)),
        TARGETS_FILE: save_npy_atomic(dest / TARGETS_FILE, targets),
    }
    manifest = {
        "format": FORMAT,
        "name": "ti500k",
        "source": source_record,
        "count": int(len(data)),
        "limit": limit,
        "shape": list(data.shape),
        "num_classes": NUM_CLASSES,
        "label_counts": np.bincount(targets, minlength=NUM_CLASSES).tolist(),
        "files": files,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(dest / MANIFEST, manifest)
    return manifest


def read_manifest(folder) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        return None
    return manifest if manifest.get("format") == FORMAT else None


def outputs_intact(folder, manifest: dict) -> bool:
    """The converted files exist with the sizes the manifest records (cheap; no hashing)."""
    return all(
        (Path(folder) / name).is_file() and (Path(folder) / name).stat().st_size == info["size"]
        for name, info in manifest["files"].items()
    )


class PseudoLabelledSet:
    """A converted extra set: `data` memory-mapped (opened lazily in each process), `targets` in memory."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.manifest = self.checked_manifest()
        self.targets = np.load(self.folder / TARGETS_FILE, allow_pickle=False).astype(np.int64)
        self._data = None
        if len(self.targets) != self.manifest["count"] or self.data.shape != tuple(self.manifest["shape"]):
            raise DataError(
                f"data.extra: {self.folder} does not match its manifest; convert it again with iseat fetch ti500k"
            )

    def checked_manifest(self) -> dict:
        if self.folder.is_file():
            raise DataError(
                f"data.extra: {self.folder} is a file; convert it first (iseat fetch ti500k --root DATA_ROOT "
                f"--from {self.folder}) and set data.extra to DATA_ROOT/ti500k"
            )
        manifest = read_manifest(self.folder)
        if manifest is None or not outputs_intact(self.folder, manifest):
            raise DataError(
                f"data.extra: {self.folder} holds no complete converted set; run "
                f"iseat fetch ti500k --root DATA_ROOT --from {PICKLE_NAME}"
            )
        return manifest

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            self._data = np.load(self.folder / DATA_FILE, mmap_mode="r", allow_pickle=False)
        return self._data

    def __len__(self) -> int:
        return len(self.targets)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_data"] = None  # each worker maps the file itself instead of receiving a copy
        return state
