"""The data sets this package knows, by name, and their facts: the one list that the train and workflow
schemas, `iseat fetch`, the readers, augmentation, the planner, the figures and the workflow read.

Plain data, no torch or torchvision: the command line's --help and the workflow's set-up import it.
"""

from __future__ import annotations

from dataclasses import dataclass

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class DataSet:
    """One data set: what it is for, how it is read and fetched, and its published facts."""

    name: str
    reader: str | None  # the reader family in iseat.data.sources (None: not a `data.dataset`, e.g. extra data)
    fetched: bool  # `iseat fetch NAME` writes DATA_ROOT/NAME (and the workflow's fetch rule runs it)
    needs_root: bool = True  # `data.root` must name its folder (or file)
    augmentation: str = "crop_flip"  # what `data.augmentation: auto` means for it
    idbh_variant: str = "weak"  # the IDBH variant of `data.augmentation: idbh`
    num_classes: int | None = None  # None: read from the labels (npz)
    sizes: tuple[int, int] | None = None  # (training images, test images)
    class_names: tuple[str, ...] | None = None
    torchvision: str | None = None  # torchvision.datasets class whose file names and checksums are used
    label_key: str | None = None  # CIFAR batches: the key holding the labels
    extends: str | None = None  # extra data: the only `data.dataset` it may be mixed into
    robustbench: bool = False  # RobustBench keeps an l-inf leaderboard for it


DATASETS = {
    d.name: d
    for d in (
        DataSet(
            "digits",
            reader="digits",
            fetched=True,
            needs_root=False,
            augmentation="none",
            num_classes=10,
            sizes=(1497, 300),
            class_names=DIGIT_CLASSES,
        ),
        DataSet("npz", reader="npz", fetched=False),
        DataSet(
            "cifar10",
            reader="cifar",
            fetched=True,
            num_classes=10,
            sizes=(50000, 10000),
            class_names=CIFAR10_CLASSES,
            torchvision="CIFAR10",
            label_key="labels",
            robustbench=True,
        ),
        DataSet(
            "cifar100",
            reader="cifar",
            fetched=True,
            num_classes=100,
            sizes=(50000, 10000),
            torchvision="CIFAR100",
            label_key="fine_labels",
            robustbench=True,
        ),
        DataSet(
            "svhn",
            reader="svhn",
            fetched=True,
            augmentation="none",
            idbh_variant="svhn",
            num_classes=10,
            sizes=(73257, 26032),
            class_names=DIGIT_CLASSES,
            torchvision="SVHN",
        ),
        DataSet("ti500k", reader=None, fetched=True, sizes=(500000, 0), extends="cifar10"),
    )
}

TRAINING_SETS = tuple(n for n, d in DATASETS.items() if d.reader is not None)  # values of `data.dataset`
FETCHED = tuple(n for n, d in DATASETS.items() if d.fetched)  # names of `iseat fetch`
WORKFLOW_SETS = tuple(n for n in TRAINING_SETS if DATASETS[n].fetched)  # a workflow setting's `dataset`
EXTRA_SETS = tuple(n for n, d in DATASETS.items() if d.extends is not None)  # a workflow setting's `extra`


def dataset(name: str) -> DataSet:
    """The registry entry of `name`; KeyError for an unknown name (the schemas refuse those first)."""
    return DATASETS[name]


def schema_definitions() -> dict:
    """JSON-schema definitions of the names above, for the train and workflow schemas."""
    return {
        "training_set": {"enum": list(TRAINING_SETS)},
        "workflow_set": {"enum": list(WORKFLOW_SETS)},
        "extra_set": {"enum": [*EXTRA_SETS, None]},
        "fetched_set": {"enum": list(FETCHED)},
    }
