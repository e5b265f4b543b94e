"""Data for training and evaluation: sources, the validation split, augmentation, extra data and loaders.

`load_data(data_cfg, seed) -> DataBundle` is the entry point (see docs/CONTRACTS.md); `fetch` stages and
verifies the published files (`iseat fetch`).
"""

from .bundle import DataBundle, load_data
from .errors import DataError, FetchError
from .loaders import ArrayDataset

__all__ = ["ArrayDataset", "DataBundle", "DataError", "FetchError", "load_data"]
