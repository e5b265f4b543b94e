"""`load_data`: everything training and evaluation need from the `data` config section, as one DataBundle."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iseat.data.augmentation import build_augmentation, resolve_augmentation
from iseat.data.errors import DataError
from iseat.data.loaders import ArrayDataset, EvalLoader, TrainBatches, make_train_loader
from iseat.data.pseudo_labels import PseudoLabelledSet
from iseat.data.sources import LabelledArrays, load_source
from iseat.data.split import make_split


@dataclass
class DataBundle:
    """A loaded data set: selection and test sets, the training loader, and the indices a run logs.

    Dataset indices: labelled training images keep their index in the official training set; extra samples
    are numbered from `extra_offset` (= the size of the training set), so the two never collide. Test images
    carry their index in the test set.
    """

    name: str
    num_classes: int
    train: ArrayDataset  # labelled training images (validation part excluded), unaugmented
    selection: ArrayDataset
    test: ArrayDataset
    split: dict
    augmentation: str
    extra: PseudoLabelledSet | None = None
    extra_ratio: float = 1.0
    extra_offset: int = 0
    log_indices: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.log_indices is None:
            extra = np.arange(len(self.extra), dtype=np.int64) + self.extra_offset if self.extra is not None else []
            self.log_indices = np.sort(np.concatenate([self.train.indices, extra]).astype(np.int64))
        self._augmentation = build_augmentation(self.augmentation, self.name)

    def train_batches(self, batch_size: int, epoch: int, seed: int) -> TrainBatches:
        return TrainBatches(
            self.train, batch_size, epoch, seed, self._augmentation, self.extra, self.extra_offset, self.extra_ratio
        )

    def train_loader(self, batch_size: int, epoch: int, seed: int, num_workers: int = 0, pin_memory: bool = False):
        """Epoch `epoch`'s batches of (x, y, index): batch_size labelled (+ round(extra_ratio * batch_size) extra)."""
        return make_train_loader(self.train_batches(batch_size, epoch, seed), num_workers, pin_memory)

    def eval_loader(self, dataset: ArrayDataset, batch_size: int) -> EvalLoader:
        """In-order, unaugmented batches of `dataset` (e.g. `bundle.selection` or `bundle.test`)."""
        return EvalLoader(dataset, batch_size)


def load_extra(path, num_classes: int) -> PseudoLabelledSet:
    extra = PseudoLabelledSet(path)
    if extra.manifest["num_classes"] > num_classes:
        raise DataError(
            f"data.extra: labels 0..{extra.manifest['num_classes'] - 1} do not fit a {num_classes}-class data set"
        )
    return extra


def make_bundle(arrays: LabelledArrays, data_cfg: dict, seed: int, dataset: str) -> DataBundle:
    n_train = len(arrays.y_train)
    train_rows, split = make_split(
        n_train, data_cfg.get("selection", "validation"), data_cfg.get("validation_size", 1000), seed
    )
    split["dataset"] = dataset
    validation = np.asarray(split["validation_indices"], dtype=np.int64)
    train = ArrayDataset(arrays.x_train, arrays.y_train, train_rows)
    test = ArrayDataset(arrays.x_test, arrays.y_test, np.arange(len(arrays.y_test)))
    selection = test if split["selection"] == "test" else ArrayDataset(arrays.x_train, arrays.y_train, validation)
    extra = load_extra(data_cfg["extra"], arrays.num_classes) if data_cfg.get("extra") else None
    if extra is not None:
        split["extra"] = {
            "folder": str(extra.folder),
            "count": len(extra),
            "index_offset": n_train,
            "source_sha256": extra.manifest["source"].get("sha256"),
        }
    augmentation = resolve_augmentation(data_cfg.get("augmentation", "auto"), dataset)
    return DataBundle(
        dataset,
        arrays.num_classes,
        train,
        selection,
        test,
        split,
        augmentation,
        extra,
        float(data_cfg.get("extra_ratio", 1.0)),
        n_train,
    )


def load_data(data_cfg: dict, seed: int) -> DataBundle:
    """Load the `data` config section (see schemas/train.schema.yaml). Raises DataError (one line) on bad input."""
    dataset = data_cfg.get("dataset", "digits")
    arrays = load_source(dataset, data_cfg.get("root"))
    return make_bundle(arrays, data_cfg, seed, dataset)
