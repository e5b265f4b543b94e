"""Small fake data files in the published layouts (CIFAR batches, SVHN .mat, the pseudo-label pickle) for tests."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def md5_of(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def cifar_batch(n: int, seed: int, label_key: str = "labels", num_classes: int = 10) -> dict:
    x = images(n, seed)
    labels = np.random.default_rng(seed + 100).integers(0, num_classes, n).tolist()
    return {
        "batch_label": f"batch {seed}",
        label_key: labels,
        "data": x.transpose(0, 3, 1, 2).reshape(n, -1),
        "filenames": [f"img_{seed}_{i}.png" for i in range(n)],
    }


def write_cifar10_folder(root: Path, per_batch: int = 4, test: int = 6) -> Path:
    """root/cifar-10-batches-py with five training batches, a test batch and batches.meta; returns the folder."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(per_batch, i), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(test, 0)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return folder


def write_cifar100_folder(root: Path, train: int = 12, test: int = 5) -> Path:
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train").write_bytes(pickle.dumps(cifar_batch(train, 1, "fine_labels", 100)))
    (folder / "test").write_bytes(pickle.dumps(cifar_batch(test, 2, "fine_labels", 100)))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return folder


def tar_folder(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def write_svhn_folder(root: Path, train: int = 10, test: int = 4) -> Path:
    """train_32x32.mat / test_32x32.mat in SVHN's layout (X: 32 x 32 x 3 x N, y: N x 1 with 10 for digit 0)."""
    import scipy.io

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train_32x32.mat", train, 1), ("test_32x32.mat", test, 2)):
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10
        scipy.io.savemat(root / name, {"X": images(n, seed).transpose(1, 2, 3, 0), "y": y})
    return root


def pseudo_label_pickle(path: Path, n: int = 40, protocol: int = 4, **overrides) -> Path:
    """A pickle with the schema of ti_500K_pseudo_labeled.pickle."""
    obj = {"data": images(n, 7), "extrapolated_targets": np.arange(n) % 10}
    obj.update(overrides)
    Path(path).write_bytes(pickle.dumps(obj, protocol=protocol))
    return Path(path)


class WritesAFile:
    """Unpickled by a stock unpickler, this object creates `path` (through open(path, "w"))."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_bytes(target: Path) -> bytes:
    """A pseudo-label pickle whose valid arrays are followed by an object that would write `target`."""
    return pickle.dumps({"data": images(4, 1), "extrapolated_targets": np.arange(4), "x": WritesAFile(target)})


def load_stock(data: bytes):
    return pickle.load(io.BytesIO(data))


def self_labelled_linear(n: int, side: int, seed: int, first_index: int):
    """A linear 10-class classifier (eval mode) on n random 3 x side x side images labelled by itself, so every
    point starts correct, as IndexedTensors with test indices first_index .. first_index + n - 1."""
    import torch

    from iseat.evaluation import IndexedTensors

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * side * side, 10)).eval()
    x = torch.rand(n, 3, side, side)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, IndexedTensors(x, y, torch.arange(first_index, first_index + n))
