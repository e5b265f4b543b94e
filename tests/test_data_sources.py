"""Data sources: the digits demo set, .npz files, torchvision-format CIFAR/SVHN folders, safe CIFAR unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from data_fakes import WritesAFile, write_cifar10_folder, write_cifar100_folder, write_svhn_folder

from iseat.data import DataError, load_data
from iseat.data.sources import load_cifar, load_digits, load_npz, load_svhn, read_svhn_split

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_sample.npz"


def cfg(**data):
    return {
        "dataset": "digits",
        "root": None,
        "augmentation": "auto",
        "extra": None,
        "extra_ratio": 1.0,
        "selection": "validation",
        "validation_size": 100,
        "num_workers": 0,
        **data,
    }


def test_digits_arrays_are_32x32x3_uint8_with_a_fixed_split():
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1497, 32, 32, 3) and a.x_test.shape == (300, 32, 32, 3)
    assert a.x_train.dtype == np.uint8 and a.x_train.max() == 255 and a.x_train.min() == 0
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_test, b.x_test)
    assert set(np.unique(a.y_train)) == set(range(10)) and a.num_classes == 10
    # every 8x8 pixel became a grey 4x4 block
    assert np.array_equal(a.x_train[..., 0], a.x_train[..., 2])
    assert np.array_equal(a.x_train[:, ::4, ::4], a.x_train[:, 3::4, 3::4])


def test_digits_bundle_yields_float_images_in_unit_range_with_unique_indices():
    bundle = load_data(cfg(), seed=0)
    assert bundle.name == "digits" and bundle.num_classes == 10 and bundle.augmentation == "none"
    x, y, index = bundle.test[5]
    assert x.shape == (3, 32, 32) and x.dtype.is_floating_point and str(x.dtype) == "torch.float32"
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and int(index) == 5 and str(y.dtype) == "torch.int64"
    seen = np.concatenate([ix.numpy() for _, _, ix in bundle.train_loader(128, epoch=0, seed=0)])
    assert len(seen) == len(np.unique(seen)) == len(bundle.train) == 1497 - 100
    assert np.array_equal(np.sort(seen), bundle.log_indices)
    xs = [xb for xb, _, _ in bundle.eval_loader(bundle.test, 64)]
    assert sum(len(xb) for xb in xs) == 300 and all(float(xb.max()) <= 1 for xb in xs)


def test_npz_file_loads_and_bad_npz_is_refused_with_one_line(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "set.npz"
    np.savez(
        good,
        x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(20) % 4,
        x_test=rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
        y_test=np.arange(6) % 4,
    )
    arrays = load_npz(good)
    assert arrays.num_classes == 4 and arrays.x_train.shape == (20, 32, 32, 3)
    bundle = load_data(cfg(dataset="npz", root=str(good), validation_size=5), seed=1)
    assert bundle.augmentation == "crop_flip" and len(bundle.train) == 15 and len(bundle.selection) == 5
    bad = tmp_path / "bad.npz"
    np.savez(
        bad,
        x_train=np.zeros((2, 32, 32, 3), np.float32),
        y_train=np.zeros(2, int),
        x_test=np.zeros((1, 32, 32, 3), np.uint8),
        y_test=np.zeros(1, int),
    )
    with pytest.raises(DataError, match=r"x_train: expected uint8 images") as err:
        load_npz(bad)
    assert "\n" not in str(err.value)
    np.savez(bad, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"missing arrays \['y_train', 'x_test', 'y_test'\]"):
        load_npz(bad)


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the shared CIFAR-10 sample is not present")
def test_shared_cifar10_sample_npz_loads():
    bundle = load_data(cfg(dataset="npz", root=str(SAMPLE), validation_size=500), seed=0)
    assert bundle.num_classes == 10 and len(bundle.train) == 5085 - 500 and len(bundle.test) == 500
    x, _, _ = next(iter(bundle.train_loader(32, epoch=0, seed=0)))
    assert x.shape == (32, 3, 32, 32)


@pytest.mark.parametrize("as_inner_folder", [False, True])
def test_torchvision_format_cifar10_folder_loads(tmp_path, as_inner_folder):
    folder = write_cifar10_folder(tmp_path / "cifar10")
    root = folder if as_inner_folder else folder.parent
    arrays = load_cifar("cifar10", root)
    assert arrays.x_train.shape == (20, 32, 32, 3) and arrays.x_test.shape == (6, 32, 32, 3)
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    assert np.array_equal(arrays.x_train[0].transpose(2, 0, 1).reshape(-1), first["data"][0])
    assert arrays.y_train[:4].tolist() == first["labels"]
    bundle = load_data(cfg(dataset="cifar10", root=str(root), validation_size=4), seed=0)
    assert bundle.num_classes == 10 and len(bundle.train) == 16 and bundle.augmentation == "crop_flip"


def test_cifar100_folder_loads_fine_labels(tmp_path):
    write_cifar100_folder(tmp_path / "cifar100")
    arrays = load_cifar("cifar100", tmp_path / "cifar100")
    assert arrays.num_classes == 100 and arrays.x_train.shape == (12, 32, 32, 3) and arrays.y_test.shape == (5,)


def test_cifar_folder_missing_or_malicious_is_refused(tmp_path):
    with pytest.raises(DataError, match="has no cifar-10-batches-py; fetch or stage it"):
        load_cifar("cifar10", tmp_path)
    folder = write_cifar10_folder(tmp_path / "cifar10")
    target = tmp_path / "written"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros(3), "labels": WritesAFile(target)}))
    with pytest.raises(DataError, match=r"data_batch_3: refused to load io.open"):
        load_cifar("cifar10", tmp_path / "cifar10")
    assert not target.exists()


def test_svhn_folder_loads_with_string_splits_and_digit_zero(tmp_path):
    root = write_svhn_folder(tmp_path / "svhn")
    arrays = load_svhn(root)
    assert arrays.x_train.shape == (10, 32, 32, 3) and arrays.x_test.shape == (4, 32, 32, 3)
    assert arrays.y_train.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # label 10 is digit 0
    with pytest.raises(ValueError, match="'train' or 'test'"):
        read_svhn_split(root, True)
    bundle = load_data(cfg(dataset="svhn", root=str(root), validation_size=2), seed=0)
    assert bundle.augmentation == "none"


def test_manifest_size_check_catches_a_truncated_file(tmp_path):
    import json

    folder = write_cifar10_folder(tmp_path / "cifar10")
    files = {f"cifar-10-batches-py/{p.name}": {"md5": "-", "size": p.stat().st_size} for p in folder.iterdir()}
    (folder.parent / "manifest.json").write_text(json.dumps({"files": files}))
    load_cifar("cifar10", folder.parent)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch: missing or changed since it was verified"):
        load_cifar("cifar10", folder.parent)
