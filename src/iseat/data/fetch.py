"""Fetching and staging data sets into DATA_ROOT/NAME, verified by checksum, atomic and idempotent; one
module per source (`torchvision_fetch`, `ti500k_fetch`, the digits here) over `transfer` (download, verify).

The official CIFAR-10/100 and SVHN files (URLs and md5 sums from torchvision's dataset classes) are
downloaded, or staged from a copy the user made by hand (`source`: the archive, or a folder holding it or
its extracted files). Nothing lands under its final name before its checksum matched, a source is never
modified, and `manifest.json` is written last: a folder with a manifest is complete. A copy that already
verifies is not fetched again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from iseat.common.io import write_json_atomic
from iseat.data import pseudo_labels, registry
from iseat.data.errors import DataInputError, FetchError
from iseat.data.sources import load_digits
from iseat.data.ti500k_fetch import fetch_pseudo_labelled
from iseat.data.torchvision_fetch import DATASETS, DatasetSpec, fetch_torchvision_set
from iseat.data.transfer import FORMAT, MANIFEST, Remote, now, read_json

NAMES = registry.FETCHED


def fetch_digits(root) -> str:
    """Write DATA_ROOT/digits/manifest.json describing the built-in demo set (nothing is downloaded)."""
    import sklearn  # only the digits set needs scikit-learn, which takes a second to import

    dest = Path(root) / "digits"
    arrays = load_digits()
    digests = {
        k: hashlib.sha256(getattr(arrays, k).tobytes()).hexdigest() for k in ("x_train", "y_train", "x_test", "y_test")
    }
    manifest_path = dest / MANIFEST
    if manifest_path.is_file() and read_json(manifest_path).get("arrays") == digests:
        return f"digits: manifest already in {dest} (nothing done)"
    manifest = {
        "format": FORMAT,
        "name": "digits",
        "layout": "built-in",
        "source": f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__}), upscaled to 32x32x3",
        "num_train": len(arrays.y_train),
        "num_test": len(arrays.y_test),
        "arrays": digests,
        "created": now(),
    }
    write_json_atomic(manifest_path, manifest)
    return f"digits: manifest written to {manifest_path} ({manifest['num_train']} train / {manifest['num_test']} test)"


def fetch(
    name: str,
    root,
    source=None,
    url: str | None = None,
    limit: int | None = None,
    expected_count: int | None = pseudo_labels.PUBLISHED_COUNT,
    sha256: str | None = None,
) -> str:
    """Fetch or stage one data set by name (`registry.FETCHED`); returns a summary line."""
    if name not in NAMES:
        raise FetchError(f"unknown data set {name!r}; choose one of {list(NAMES)}")
    if source is not None and url is not None:
        raise DataInputError("give either {0} (a staged copy) or {1} (a download), not both", "source", "url")
    if name != "ti500k" and (limit is not None or sha256 is not None):
        raise DataInputError("{0} and {1} apply only to ti500k", "limit", "sha256")
    if name == "ti500k":
        return fetch_pseudo_labelled(root, source, url, limit, expected_count, sha256)
    if name == "digits":
        return fetch_digits(root)
    return fetch_torchvision_set(name, root, source, url)


__all__ = ["DATASETS", "NAMES", "DatasetSpec", "Remote", "fetch", "fetch_digits"]
