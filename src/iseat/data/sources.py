"""Labelled image sets as uint8 NHWC arrays: the offline digits demo, any .npz, and torchvision-format folders.

Every reader returns `LabelledArrays`; CIFAR batch files are pickles, so they are read with the restricted
unpickler (numpy arrays only), and SVHN's .mat files with scipy. File names come from torchvision's classes.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision
from torchvision.datasets import SVHN

from iseat.data import registry
from iseat.data.errors import DataError
from iseat.data.safe_pickle import restricted_load

DIGITS_TEST_SIZE = registry.DATASETS["digits"].sizes[1]  # 1797 digits -> 1497 training / 300 test images, a fixed split
IMAGE_SIZE = 32  # every model (small CNN, PreActResNet18, WRN) is built for 32 x 32 inputs
MAX_CLASSES = 1000  # more classes than any image set used here: larger labels are a labelling mistake


@dataclass
class LabelledArrays:
    """A data set's training and test images (uint8, N x H x W x 3) and labels (int64)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def load_source(dataset: str, root: str | None) -> LabelledArrays:
    """Read the `data.dataset` named set from `data.root`, with the reader its registry entry names."""
    entry = registry.DATASETS.get(dataset)
    if entry is None or entry.reader is None:
        raise DataError(
            f"data.dataset: unknown data set {dataset!r}; choose one of {', '.join(registry.TRAINING_SETS)}"
        )
    if entry.needs_root and root is None:
        raise DataError(f"data.root: required for dataset {dataset!r}")
    if entry.reader == "digits":
        return load_digits()
    if entry.reader == "npz":
        return load_npz(root)
    if entry.reader == "cifar":
        return load_cifar(dataset, root)
    return load_svhn(root)


# ---------------------------------------------------------------------------------------------
# digits: scikit-learn's 8x8 handwritten digits, offline


def digits_images(images: np.ndarray) -> np.ndarray:
    """8x8 values 0..16 -> 32x32x3 uint8 (each pixel a 4x4 block, grey in all three channels)."""
    scaled = np.rint(images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    big = scaled.repeat(4, axis=1).repeat(4, axis=2)
    return np.ascontiguousarray(np.repeat(big[..., None], 3, axis=3))


def load_digits() -> LabelledArrays:
    """The demo set: 1497 training and 300 test images, split by a fixed permutation (legacy RandomState(0))."""
    from sklearn.datasets import load_digits as sklearn_digits  # scikit-learn: only for the demo set, slow to import

    bunch = sklearn_digits()
    x = digits_images(bunch.images)
    y = bunch.target.astype(np.int64)
    order = np.random.RandomState(0).permutation(len(y))
    test, train = np.sort(order[:DIGITS_TEST_SIZE]), np.sort(order[DIGITS_TEST_SIZE:])
    return LabelledArrays("digits", x[train], y[train], x[test], y[test], registry.DATASETS["digits"].num_classes)


# ---------------------------------------------------------------------------------------------
# npz: x_train, y_train, x_test, y_test


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def check_images(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise DataError(f"{what}: expected uint8 images N x H x W x 3, got {x.dtype} {x.shape}")
    if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{what}: images are {x.shape[1]} x {x.shape[2]}, but the models take "
            f"{IMAGE_SIZE} x {IMAGE_SIZE}; resize or pad them first"
        )
    return x


def check_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or y.dtype.kind not in "iu":
        raise DataError(f"{what}: expected {n} integer labels, got {y.dtype} {y.shape}")
    if n and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0, found {y.min()}")
    return y.astype(np.int64)


def check_classes(y_train: np.ndarray, y_test: np.ndarray, path) -> int:
    """K, when the training labels are exactly 0..K-1 (every class present, K <= MAX_CLASSES) and the
    test labels fall among them."""
    num_classes = int(y_train.max(initial=-1)) + 1
    if num_classes > MAX_CLASSES:
        raise DataError(f"{path}:y_train: label {num_classes - 1} found; labels must be 0..K-1 with K <= {MAX_CLASSES}")
    missing = np.setdiff1d(np.arange(num_classes), y_train)
    if missing.size:
        raise DataError(
            f"{path}:y_train: labels must be 0..K-1 with every class present; no training image has "
            f"label {int(missing[0])} (K = {num_classes})"
        )
    if y_test.size and y_test.max() >= num_classes:
        raise DataError(
            f"{path}:y_test: label {int(y_test.max())} is not among the training labels 0..{num_classes - 1}"
        )
    return num_classes


def read_npz_arrays(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = set(npz.files)
            arrays = {k: npz[k] for k in NPZ_KEYS if k in present}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: not a readable .npz file ({reason}); write it again with numpy.savez") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; an npz data set needs {list(NPZ_KEYS)}")
    return arrays


def load_npz(path) -> LabelledArrays:
    """Any .npz holding x_train, y_train, x_test, y_test (uint8 NHWC images); loaded without pickle."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.root: {path} is not a file; dataset npz needs the path of an .npz file")
    arrays = read_npz_arrays(path)
    x_train, x_test = (check_images(arrays[k], f"{path}:{k}") for k in ("x_train", "x_test"))
    y_train = check_labels(arrays["y_train"], len(x_train), f"{path}:y_train")
    y_test = check_labels(arrays["y_test"], len(x_test), f"{path}:y_test")
    num_classes = check_classes(y_train, y_test, path)
    return LabelledArrays(path.stem, x_train, y_train, x_test, y_test, num_classes)


# ---------------------------------------------------------------------------------------------
# torchvision-format folders (the layout `iseat fetch` writes)


def layout_folder(root: Path, marker: str, dataset: str) -> Path:
    """The folder holding `marker`: `root` itself, or `root` as the inner folder (e.g. cifar-10-batches-py)."""
    if (root / marker).exists():
        return root
    if root.name == marker and root.exists():
        return root.parent
    raise DataError(
        f"data.root: {root} has no {marker}; fetch or stage it with "
        f"`iseat fetch {dataset} --root DATA_ROOT` and set data.root to DATA_ROOT/{dataset}"
    )


def check_manifest_sizes(folder: Path, dataset: str) -> None:
    """If `iseat fetch` wrote a manifest, every file it lists must still have its recorded size (cheap)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return
    try:
        files = json.loads(manifest.read_text()).get("files", {})
    except ValueError:
        raise DataError(
            f"{manifest}: not valid JSON; run `iseat fetch {dataset} --root {folder.parent}` again"
        ) from None
    for rel, info in files.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != info["size"]:
            raise DataError(
                f"{path}: missing or changed since it was verified; run "
                f"`iseat fetch {dataset} --root {folder.parent}` again"
            )


def read_cifar_batches(folder: Path, names: list[str], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        path = folder / name
        with open(path, "rb") as f:
            entry = restricted_load(f, str(path), encoding="latin1")
        if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
            raise DataError(f"{path}: not a CIFAR batch (expected a dict with 'data' and '{label_key}')")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry[label_key], dtype=np.int64))
    return np.concatenate(images).transpose(0, 2, 3, 1).copy(), np.concatenate(labels)


def load_cifar(dataset: str, root) -> LabelledArrays:
    """CIFAR-10/100 from `root/cifar-10-batches-py` (or `cifar-100-python`), torchvision's layout."""
    entry = registry.DATASETS[dataset]
    tv = getattr(torchvision.datasets, entry.torchvision)
    root = layout_folder(Path(root), tv.base_folder, dataset)
    check_manifest_sizes(root, dataset)
    folder = root / tv.base_folder
    missing = [n for n, _ in tv.train_list + tv.test_list if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {missing}; run `iseat fetch {dataset} --root {root.parent}`")
    x_train, y_train = read_cifar_batches(folder, [n for n, _ in tv.train_list], entry.label_key)
    x_test, y_test = read_cifar_batches(folder, [n for n, _ in tv.test_list], entry.label_key)
    return LabelledArrays(dataset, x_train, y_train, x_test, y_test, entry.num_classes)


def read_svhn_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN split by its name, "train" or "test" (never a boolean)."""
    if split not in ("train", "test"):
        raise ValueError(f"SVHN split must be 'train' or 'test', got {split!r}")
    import scipy.io  # only SVHN's .mat files need it

    path = root / SVHN.split_list[split][1]
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable SVHN .mat file ({err}); run `iseat fetch svhn` again") from None
    x = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)), dtype=np.uint8)
    y = mat["y"].astype(np.int64).reshape(-1)
    y[y == 10] = 0  # SVHN stores digit 0 as label 10
    return x, y


def load_svhn(root) -> LabelledArrays:
    """SVHN train/test from `root/train_32x32.mat` and `root/test_32x32.mat`, torchvision's layout."""
    root = Path(root)
    for split in ("train", "test"):
        layout_folder(root, SVHN.split_list[split][1], "svhn")
    check_manifest_sizes(root, "svhn")
    x_train, y_train = read_svhn_split(root, "train")
    x_test, y_test = read_svhn_split(root, "test")
    return LabelledArrays("svhn", x_train, y_train, x_test, y_test, registry.DATASETS["svhn"].num_classes)
