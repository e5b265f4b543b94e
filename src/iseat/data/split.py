"""The validation split: a fixed, seeded part of the training set used for model selection and the grid search.

With `selection: validation` (the default) hyper-parameters and the best checkpoint are chosen on held-out
training images, never on the test set. `selection: test` is the paper's protocol (select on the test set,
train on the whole training set), kept as a clearly named option.
"""

from __future__ import annotations

import numpy as np

from iseat.data.errors import DataError

SELECTION_MODES = ("validation", "test")
SPLIT_STREAM = 11  # keeps the split's random stream apart from the loaders' streams of the same seed


def validation_split(num_train: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices), both sorted int64; a pure function of the three numbers."""
    if not 0 < validation_size < num_train:
        raise DataError(
            f"data.validation_size: {validation_size} must be between 1 and {num_train - 1} "
            f"for a training set of {num_train} images"
        )
    order = np.random.default_rng([seed, SPLIT_STREAM]).permutation(num_train)
    return np.sort(order[validation_size:]).astype(np.int64), np.sort(order[:validation_size]).astype(np.int64)


def make_split(num_train: int, selection: str, validation_size: int, seed: int) -> tuple[np.ndarray, dict]:
    """Training indices and the JSON-able record saved with the run (`split.json`)."""
    if selection == "validation":
        train, validation = validation_split(num_train, validation_size, seed)
        note = "model selection on a held-out part of the training set"
    elif selection == "test":
        train, validation = np.arange(num_train, dtype=np.int64), np.zeros(0, dtype=np.int64)
        note = "model selection on the test set (the paper's protocol); no validation hold-out"
    else:
        raise DataError(f"data.selection: {selection!r} is not one of {list(SELECTION_MODES)}")
    record = {
        "selection": selection,
        "seed": int(seed),
        "num_train": int(len(train)),
        "validation_size": int(len(validation)),
        "validation_indices": validation.tolist(),
        "note": note,
    }
    return train, record
