"""Datasets and loaders yielding (x, y, index): in-order evaluation batches, and training batches that are a pure
function of (seed, epoch) however many workers load them.

A training epoch is one pass over the labelled training images in a seeded order. With extra data every batch
also carries round(extra_ratio * labelled) pseudo-labelled samples, drawn in order from an endless stream of
seeded permutations of the extra set (so it is shuffled without replacement across epochs); where epoch e
starts in that stream is computed, not replayed. Each batch seeds its own augmentation RNG from
(seed, epoch, batch), so worker count and scheduling cannot change a batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from iseat.data.augmentation import augment_batch

LABELLED_STREAM, EXTRA_STREAM, AUGMENT_STREAM, LOADER_STREAM = 1, 2, 3, 4


def stream_seed(*key: int) -> int:
    """A 63-bit seed derived from integers (seed, stream, epoch, ...) by numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class ArrayDataset(Dataset):
    """Images `images[rows]` with labels, reported under dataset `indices`; no augmentation.

    Yields (x float32 3 x H x W in [0, 1], y int64, index int64).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray, indices: np.ndarray | None = None):
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.indices = self.rows if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        x, y, index = self.batch(np.array([i]))
        return x[0], y[0], index[0]

    def batch(self, positions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The samples at `positions` (into this dataset) as batched tensors."""
        rows = self.rows[positions]
        x = torch.from_numpy(np.ascontiguousarray(self.images[rows])).permute(0, 3, 1, 2).float().div_(255)
        return x, torch.from_numpy(self.labels[rows]), torch.from_numpy(self.indices[positions])


class EvalLoader:
    """In-order, unaugmented batches of an ArrayDataset (no worker processes: slicing arrays is fast)."""

    def __init__(self, dataset: ArrayDataset, batch_size: int):
        self.dataset, self.batch_size = dataset, int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.dataset), self.batch_size):
            yield self.dataset.batch(np.arange(start, min(start + self.batch_size, len(self.dataset))))


class ExtraStream:
    """The extra set's sample order: permutation 0, then permutation 1, ... each seeded by (seed, k)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, k: int) -> np.ndarray:
        if k not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(min(self._cache))
            self._cache[k] = np.random.default_rng(stream_seed(self.seed, EXTRA_STREAM, k)).permutation(self.size)
        return self._cache[k]

    def take(self, start: int, count: int) -> np.ndarray:
        """Rows of the extra set at stream positions start .. start + count - 1."""
        positions = np.arange(start, start + count, dtype=np.int64)
        blocks, offsets = np.divmod(positions, self.size)
        rows = np.empty(count, dtype=np.int64)
        for k in np.unique(blocks):
            mask = blocks == k
            rows[mask] = self.permutation(int(k))[offsets[mask]]
        return rows


def batch_sizes(num_labelled: int, batch_size: int) -> list[int]:
    """Labelled samples per batch of one pass; a last batch of one sample is dropped (BatchNorm needs two)."""
    sizes = [batch_size] * (num_labelled // batch_size)
    if num_labelled % batch_size > 1 or not sizes:
        sizes.append(num_labelled % batch_size or batch_size)
    return sizes


class TrainBatches(Dataset):
    """Batch b of epoch `epoch` as item b: labelled samples, then extra samples, augmented."""

    def __init__(
        self,
        labelled: ArrayDataset,
        batch_size: int,
        epoch: int,
        seed: int,
        augmentation=None,
        extra=None,
        extra_offset: int = 0,
        extra_ratio: float = 1.0,
    ):
        if epoch < 0 or seed < 0:
            raise ValueError(f"epoch ({epoch}) and seed ({seed}) must be non-negative")
        self.labelled, self.augmentation, self.epoch, self.seed = labelled, augmentation, epoch, seed
        self.sizes = batch_sizes(len(labelled), batch_size)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.order = np.random.default_rng(stream_seed(seed, LABELLED_STREAM, epoch)).permutation(len(labelled))
        self.extra, self.extra_offset = extra, extra_offset
        self.extra_sizes = (
            [int(round(extra_ratio * n)) for n in self.sizes] if extra is not None else [0] * len(self.sizes)
        )
        self.extra_starts = np.concatenate([[0], np.cumsum(self.extra_sizes)]).astype(np.int64)
        self.extra_stream = ExtraStream(len(extra), seed) if extra is not None else None

    def __len__(self) -> int:
        return len(self.sizes)

    def extra_rows(self, b: int) -> np.ndarray:
        """Rows of the extra set in batch b: this epoch's slice of the extra stream, at a computed start."""
        epoch_start = self.epoch * int(self.extra_starts[-1])
        return self.extra_stream.take(epoch_start + int(self.extra_starts[b]), self.extra_sizes[b])

    def __getitem__(self, b: int):
        if not 0 <= b < len(self):
            raise IndexError(b)
        positions = self.order[self.starts[b] : self.starts[b + 1]]
        rows = self.labelled.rows[positions]
        images = [self.labelled.images[rows]]
        labels = [self.labelled.labels[rows]]
        indices = [self.labelled.indices[positions]]
        if self.extra_sizes[b]:
            extra_rows = self.extra_rows(b)
            images.append(self.extra.data[extra_rows])
            labels.append(self.extra.targets[extra_rows])
            indices.append(extra_rows + self.extra_offset)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(stream_seed(self.seed, AUGMENT_STREAM, self.epoch, b))
            x = augment_batch(np.concatenate(images), self.augmentation)
        return x, torch.from_numpy(np.concatenate(labels)), torch.from_numpy(np.concatenate(indices))


def make_train_loader(batches: TrainBatches, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over whole batches, in order; its own generator keeps the caller's RNG untouched."""
    generator = torch.Generator().manual_seed(stream_seed(batches.seed, LOADER_STREAM, batches.epoch))
    return DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
        prefetch_factor=4 if num_workers else None,
    )
