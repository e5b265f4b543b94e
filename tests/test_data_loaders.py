"""Training batches: 1:1 extra-data mixing, distinct keyed indices, determinism per (seed, epoch), the split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_fakes import pseudo_label_pickle

from iseat.data import DataError, load_data
from iseat.data.fetch import fetch
from iseat.data.loaders import ExtraStream, batch_sizes
from iseat.data.split import make_split, validation_split

NUM_DIGITS_TRAIN = 1497


def cfg(**data):
    return {
        "dataset": "digits",
        "root": None,
        "augmentation": "none",
        "extra": None,
        "extra_ratio": 1.0,
        "selection": "validation",
        "validation_size": 297,
        "num_workers": 0,
        **data,
    }


@pytest.fixture(scope="module")
def extra_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extra")
    source = pseudo_label_pickle(tmp / "ti.pickle", n=700)
    fetch("ti500k", tmp / "data", source=source, expected_count=None)
    return str(tmp / "data" / "ti500k")


def collect(loader):
    return [(x.clone(), y.clone(), i.clone()) for x, y, i in loader]


def test_extra_batches_hold_exactly_the_configured_counts(extra_folder):
    bundle = load_data(cfg(extra=extra_folder), seed=0)
    n_train = len(bundle.train)  # 1200
    for ratio, expected_extra in ((1.0, 128), (0.5, 64)):
        bundle.extra_ratio = ratio
        batches = collect(bundle.train_loader(128, epoch=0, seed=0))
        assert len(batches) == -(-n_train // 128)
        for x, y, index in batches[:-1]:
            labelled = int((index < NUM_DIGITS_TRAIN).sum())
            assert labelled == 128 and len(index) - labelled == expected_extra and len(x) == len(y) == len(index)
        x, _, index = batches[-1]
        last = n_train % 128
        assert int((index < NUM_DIGITS_TRAIN).sum()) == last and len(index) == last + round(ratio * last)


def test_extra_indices_are_distinct_offset_and_shuffled_without_replacement(extra_folder):
    bundle = load_data(cfg(extra=extra_folder, validation_size=1497 - 256), seed=3)  # 256 labelled -> 2 batches
    extra_seen = []
    for epoch in range(3):  # 3 epochs x 256 extra = 768 draws from a 700-sample set
        for _, _, index in bundle.train_loader(128, epoch=epoch, seed=3):
            extra_seen.append(index[index >= NUM_DIGITS_TRAIN].numpy())
    stream = np.concatenate(extra_seen) - NUM_DIGITS_TRAIN
    assert stream.min() >= 0 and stream.max() < 700
    assert len(np.unique(stream[:700])) == 700  # the first pass is a permutation of the whole extra set
    assert not np.array_equal(stream[:68], stream[700:768])  # the next pass is a new permutation
    assert set(bundle.log_indices.tolist()) >= set((stream + NUM_DIGITS_TRAIN).tolist())
    assert np.all(np.diff(bundle.log_indices) > 0) and len(bundle.log_indices) == 256 + 700


def test_extra_stream_start_is_computed_not_replayed():
    stream = ExtraStream(50, seed=1)
    whole = stream.take(0, 180)
    fresh = ExtraStream(50, seed=1)
    assert np.array_equal(fresh.take(130, 50), whole[130:180])
    for k in range(3):
        assert sorted(whole[50 * k : 50 * (k + 1)]) == list(range(50))


@pytest.mark.parametrize("augmentation", ["crop_flip", "idbh"])
def test_batches_are_a_pure_function_of_seed_and_epoch_whatever_the_workers(extra_folder, augmentation):
    bundle = load_data(cfg(extra=extra_folder, augmentation=augmentation, validation_size=1497 - 300), seed=0)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    serial = collect(bundle.train_loader(64, epoch=2, seed=5, num_workers=0))
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched
    parallel = collect(bundle.train_loader(64, epoch=2, seed=5, num_workers=2))
    assert len(serial) == len(parallel) == 5
    for (xa, ya, ia), (xb, yb, ib) in zip(serial, parallel):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    other_epoch = collect(bundle.train_loader(64, epoch=3, seed=5))
    assert not torch.equal(serial[0][2], other_epoch[0][2])
    other_seed = collect(bundle.train_loader(64, epoch=2, seed=6))
    assert not torch.equal(serial[0][0], other_seed[0][0])


def test_default_config_with_two_workers_iterates():
    from iseat.training.config import DEFAULTS

    bundle = load_data({**DEFAULTS["data"], "validation_size": 297}, seed=0)
    loader = bundle.train_loader(128, epoch=0, seed=0, num_workers=DEFAULTS["data"]["num_workers"])
    assert sum(len(i) for _, _, i in loader) == len(bundle.train) == len(loader.dataset.labelled)


def test_validation_split_is_deterministic_and_disjoint_from_training():
    train, validation = validation_split(1000, 100, seed=4)
    again_train, again_validation = validation_split(1000, 100, seed=4)
    assert np.array_equal(validation, again_validation) and np.array_equal(train, again_train)
    assert len(np.intersect1d(train, validation)) == 0 and len(train) + len(validation) == 1000
    assert not np.array_equal(validation, validation_split(1000, 100, seed=5)[1])
    bundle = load_data(cfg(validation_size=200), seed=4)
    assert bundle.split["validation_indices"] == sorted(bundle.split["validation_indices"])
    assert len(set(bundle.split["validation_indices"]) & set(bundle.train.indices.tolist())) == 0
    assert bundle.selection.indices.tolist() == bundle.split["validation_indices"]
    seen = np.concatenate([i.numpy() for _, _, i in bundle.train_loader(128, epoch=0, seed=4)])
    assert len(np.intersect1d(seen, bundle.selection.indices)) == 0
    with pytest.raises(DataError, match="data.validation_size: 1497 must be between 1 and 1496"):
        validation_split(1497, 1497, seed=0)


def test_selection_on_test_set_is_the_papers_protocol():
    bundle = load_data(cfg(selection="test"), seed=0)
    assert bundle.selection is bundle.test and len(bundle.train) == NUM_DIGITS_TRAIN
    assert bundle.split["selection"] == "test" and bundle.split["validation_indices"] == []
    assert "test set" in make_split(10, "test", 3, 0)[1]["note"]


def test_a_lone_last_sample_is_not_a_batch():
    assert batch_sizes(257, 128) == [128, 128] and batch_sizes(258, 128) == [128, 128, 2]
    assert batch_sizes(256, 128) == [128, 128] and batch_sizes(50, 128) == [50]


def test_eval_loader_is_in_order_and_unaugmented():
    bundle = load_data(cfg(augmentation="idbh"), seed=0)
    batches = list(bundle.eval_loader(bundle.test, 128))
    assert [len(b[0]) for b in batches] == [128, 128, 44]
    assert torch.equal(torch.cat([b[2] for b in batches]), torch.arange(300))
    x0, _, _ = bundle.test[0]
    assert torch.equal(batches[0][0][0], x0)


def test_loader_benchmark_reports_loader_and_step_throughput():
    from iseat.benchmarks.loader import format_report, loader_benchmark

    result = loader_benchmark({"dataset": "digits", "validation_size": 1497 - 300}, batch_size=64, batches=3, steps=1)
    assert set(result["loader"]) == {"crop_flip", "idbh"} and result["step"]["img_per_s"] > 0
    for name, r in result["loader"].items():
        assert r["batches"] == 3 and r["images"] == 3 * 64
        assert result["ratio"][name] == pytest.approx(r["img_per_s"] / result["step"]["img_per_s"])
    assert "img/s" in format_report(result)
