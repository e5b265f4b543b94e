"""Per-sample adversarial-vulnerability (AV) log in HDF5.

Layout (format `iseat-avlog-v1`):
  index                 (N,)   int64   dataset index of each column (labelled and extra samples)
  epoch                 (E,)   int32   epoch of each complete row; its length is the number of
                                       complete epochs (it is written last, so a reader never sees
                                       a half-written epoch)
  av, clean_loss, adv_loss            (E, N) float32, NaN where a sample was not trained on
  clean_correct, adv_correct          (E, N) int8, -1 where a sample was not trained on
  weight_perturbed      (E,)   bool    AV is Eq. 10 (with weight perturbation) if true, else Eq. 3
  summary/<statistic>   (E,)   float64 see `STATISTICS`
  attributes: format, config (YAML), provenance (JSON), seed
The file is written in SWMR mode: other processes can read it while training runs, and every
complete epoch survives a kill.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from iseat.common.errors import AVLogError, AVLogMissing
from iseat.common.hdf5_open import DamagedFile, open_hdf5, open_swmr_reader
from iseat.common.io import atomic_path

FORMAT = "iseat-avlog-v1"
PER_SAMPLE = {"av": "f4", "clean_loss": "f4", "adv_loss": "f4", "clean_correct": "i1", "adv_correct": "i1"}
STATISTICS = ("av_mean", "av_sd", "av_top10_mean", "av_bottom10_mean", "share_av_ge_1", "share_av_le_0", "n_samples")
CHUNK_COLUMNS = 1 << 16


def av_statistics(av: np.ndarray) -> dict:
    """Per-epoch statistics over the samples seen (NaN = not seen): population SD (Eq. 6), mean of the
    top and bottom 10 % (ceil(0.1 n) samples each), share with AV >= 1 and with AV <= 0."""
    av = np.asarray(av, dtype=np.float64)
    av = av[~np.isnan(av)]
    n = av.size
    if n == 0:
        return {name: math.nan for name in STATISTICS} | {"n_samples": 0}
    k = max(1, math.ceil(0.1 * n))
    ordered = np.sort(av)
    return {
        "av_mean": float(av.mean()),
        "av_sd": float(av.std()),
        "av_top10_mean": float(ordered[-k:].mean()),
        "av_bottom10_mean": float(ordered[:k].mean()),
        "share_av_ge_1": float((av >= 1).mean()),
        "share_av_le_0": float((av <= 0).mean()),
        "n_samples": n,
    }


class EpochBuffer:
    """Collects one epoch's per-sample values on the training device (no host sync per step)."""

    def __init__(self, indices: np.ndarray, device):
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.sorted = bool(np.all(np.diff(indices) > 0))
        self.device = device
        self.reset()

    def reset(self):
        n = len(self.indices)
        self.values = {
            name: torch.full(
                (n,),
                math.nan if kind == "f4" else -1,
                dtype=torch.float32 if kind == "f4" else torch.int8,
                device=self.device,
            )
            for name, kind in PER_SAMPLE.items()
        }

    def columns(self, dataset_index: torch.Tensor) -> torch.Tensor:
        idx = dataset_index.to("cpu", torch.int64)
        cols = torch.searchsorted(self.indices, idx) if self.sorted else None
        if cols is None or not torch.equal(self.indices[cols.clamp(max=len(self.indices) - 1)], idx):
            raise ValueError("AV log: a batch holds a dataset index that is not in the log's index")
        return cols.to(self.device)

    def record(self, dataset_index: torch.Tensor, result) -> None:
        cols = self.columns(dataset_index)
        for name in PER_SAMPLE:
            self.values[name][cols] = getattr(result, name).to(self.values[name].dtype)

    def to_numpy(self) -> dict:
        return {name: t.cpu().numpy() for name, t in self.values.items()}


class AVLogWriter:
    """Appends one row per epoch. `resume_epochs` keeps that many complete rows of an existing log."""

    def __init__(self, path, indices: np.ndarray, attrs: dict, resume_epochs: int = 0):
        self.path = Path(path)
        self.n = len(indices)
        if resume_epochs and self.path.exists():
            self.file = self._reopen(resume_epochs)
        else:
            self.file = self._create(np.asarray(indices, dtype=np.int64), attrs)
        self.file.swmr_mode = True

    def _create(self, indices, attrs):
        """The empty log is built in memory and written with one plain write: a full disk or a file-size
        limit then fails as an ordinary OSError naming the file (HDF5 itself would fail inside its own
        clean-up, where the error cannot be caught), and no half-made log is left behind."""
        image = io.BytesIO()
        f = h5py.File(image, "w", libver="latest")
        f.attrs["format"] = FORMAT
        f.attrs["config"] = yaml.safe_dump(attrs.get("config", {}), sort_keys=False)
        f.attrs["provenance"] = json.dumps(attrs.get("provenance", {}))
        f.attrs["seed"] = attrs.get("seed", -1)
        f.create_dataset("index", data=indices)
        chunk = (1, min(self.n, CHUNK_COLUMNS))
        for name, kind in PER_SAMPLE.items():
            f.create_dataset(
                name,
                shape=(0, self.n),
                maxshape=(None, self.n),
                dtype=kind,
                chunks=chunk,
                compression="gzip",
                compression_opts=4,
                shuffle=True,
                fillvalue=np.nan if kind == "f4" else -1,
            )
        f.create_dataset("epoch", shape=(0,), maxshape=(None,), dtype="i4", chunks=(256,))
        f.create_dataset("weight_perturbed", shape=(0,), maxshape=(None,), dtype=bool, chunks=(256,))
        for name in STATISTICS:
            f.create_dataset(f"summary/{name}", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        f.close()
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(image.getvalue())
        return open_hdf5(self.path, "a", libver="latest")

    def _reopen(self, keep: int):
        """Open for appending, keeping `keep` complete rows. A log left open by a killed writer cannot be
        reopened for writing (HDF5 consistency flags), so its complete rows are copied to a new file."""
        check_resumable(self.path)
        try:
            f = open_hdf5(self.path, "a", libver="latest")
        except OSError:
            f = None
        if f is not None:
            self._truncate(f, keep)
            return f
        tmp = self.path.with_name(f".{self.path.name}.rebuild")
        try:
            with open_swmr_reader(self.path) as src, open_hdf5(tmp, "w", libver="latest") as dst:
                for key, value in src.attrs.items():
                    dst.attrs[key] = value
                for name in src:
                    src.copy(name, dst)
                self._truncate(dst, keep)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return open_hdf5(self.path, "a", libver="latest")

    @staticmethod
    def _truncate(f, keep: int):
        have = f["epoch"].shape[0]
        if have < keep:
            raise AVLogError(
                f"AV log {f.filename} holds {have} epochs but the run has completed {keep}; restore "
                f"a good copy, or delete state.pt beside it to restart the run from its first epoch"
            )
        for name in [*PER_SAMPLE, "epoch", "weight_perturbed", *(f"summary/{s}" for s in STATISTICS)]:
            f[name].resize(keep, axis=0)

    @property
    def epochs_written(self) -> int:
        return self.file["epoch"].shape[0]

    def write_epoch(self, epoch: int, values: dict, weight_perturbed: bool) -> dict:
        """Append one epoch; returns its summary statistics."""
        row = self.epochs_written
        for name in PER_SAMPLE:
            ds = self.file[name]
            ds.resize(row + 1, axis=0)
            ds[row] = values[name]
            ds.flush()
        stats = av_statistics(values["av"])
        for name in STATISTICS:
            self._append(f"summary/{name}", row, stats[name])
        self._append("weight_perturbed", row, weight_perturbed)
        self._append("epoch", row, epoch)  # last: marks the row complete
        return stats

    def _append(self, name, row, value):
        ds = self.file[name]
        ds.resize(row + 1, axis=0)
        ds[row] = value
        ds.flush()

    def close(self):
        if self.file:
            self.file.close()
            self.file = None


def check_resumable(path: Path) -> None:
    """A log to append to must be intact: a damaged one is left untouched and the run refused (one line)."""
    try:
        open_swmr_reader(path).close()
    except DamagedFile as err:
        raise AVLogError(
            f"AV log {path} is damaged ({err}); the run cannot resume with it: restore a good "
            f"copy, or move it away and delete state.pt beside it to restart the run"
        ) from None


class AVLog:
    """Read access to an AV log, also while it is being written."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise AVLogMissing(f"AV log {self.path} does not exist")
        try:
            self.file = open_swmr_reader(self.path)
        except DamagedFile as err:
            raise AVLogError(f"{self.path} is not a readable HDF5 AV log: {err}") from None
        if self.file.attrs.get("format") != FORMAT:
            self.file.close()
            raise AVLogError(f"{self.path} is not an iseat AV log (format {FORMAT})")

    def refresh(self):
        for ds in self.file.values():
            if isinstance(ds, h5py.Dataset):
                ds.refresh()
        for ds in self.file["summary"].values():
            ds.refresh()

    @property
    def epochs(self) -> np.ndarray:
        self.file["epoch"].refresh()
        return self.file["epoch"][:]

    @property
    def indices(self) -> np.ndarray:
        return self.file["index"][:]

    def row(self, epoch: int) -> int:
        rows = np.flatnonzero(self.epochs == epoch)
        if rows.size == 0:
            raise KeyError(f"epoch {epoch} is not (yet) in {self.path}; complete epochs: {self.epochs.tolist()}")
        return int(rows[-1])

    def values(self, name: str, epoch: int) -> np.ndarray:
        ds = self.file[name]
        ds.refresh()
        return ds[self.row(epoch)]

    def summary(self) -> dict:
        n = len(self.epochs)
        out = {"epoch": self.epochs}
        for name in STATISTICS:
            ds = self.file[f"summary/{name}"]
            ds.refresh()
            out[name] = ds[:n]
        return out

    def trajectory(self, dataset_index: int, name: str = "av") -> np.ndarray:
        cols = np.flatnonzero(self.indices == dataset_index)
        if cols.size == 0:
            raise KeyError(f"dataset index {dataset_index} is not in {self.path}")
        ds = self.file[name]
        ds.refresh()
        return ds[: len(self.epochs), int(cols[0])]

    @property
    def config(self) -> dict:
        return yaml.safe_load(self.file.attrs["config"])

    @property
    def provenance(self) -> dict:
        return json.loads(self.file.attrs["provenance"])

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
