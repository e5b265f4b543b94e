"""Data for training and evaluation: sources, the validation split, augmentation, extra data and loaders.

`load_data(data_cfg, seed) -> DataBundle` is the entry point (see docs/CONTRACTS.md); `fetch` stages and
verifies the published files (`iseat fetch`); `registry` names the data sets. The names below are imported
on first use, so reading the registry needs no torch.
"""

from importlib import import_module

_HOMES = {
    "DataBundle": "bundle",
    "load_data": "bundle",
    "DataError": "errors",
    "FetchError": "errors",
    "ArrayDataset": "loaders",
}

__all__ = ["ArrayDataset", "DataBundle", "DataError", "FetchError", "load_data"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
