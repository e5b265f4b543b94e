"""The pseudo-labelled 80M-TinyImages set (ti500k): the published pickle, staged or downloaded and verified by
sha256, converted into DATA_ROOT/ti500k (`pseudo_labels`); a conversion of the same source is not redone."""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path

from iseat.common.errors import literal
from iseat.common.io import folder_kept_on_success
from iseat.data import pseudo_labels
from iseat.data.errors import DataInputError, FetchError
from iseat.data.pseudo_labels import file_digest
from iseat.data.transfer import download

TI500K_HINT = (
    f"{pseudo_labels.PICKLE_NAME} is published behind a manual download link (see "
    "https://github.com/yaircarmon/semisup-adv, 'Unlabeled data'); download it, copy it here and run: "
    "iseat fetch ti500k --root {root} --from /path/to/" + pseudo_labels.PICKLE_NAME
)


def already_converted(dest: Path, source_record: dict, limit, expected_key: str) -> bool:
    manifest = pseudo_labels.read_manifest(dest)
    return (
        manifest is not None
        and manifest.get("limit") == limit
        and pseudo_labels.outputs_intact(dest, manifest)
        and manifest["source"].get(expected_key) == source_record.get(expected_key)
    )


def fetch_pseudo_labelled(
    root,
    source=None,
    url: str | None = None,
    limit: int | None = None,
    expected_count: int | None = pseudo_labels.PUBLISHED_COUNT,
    sha256: str | None = None,
) -> str:
    """Convert the staged or downloaded pseudo-label pickle into DATA_ROOT/ti500k (see `pseudo_labels`)."""
    root = Path(root)
    dest = root / "ti500k"
    if source is None and url is None:
        raise DataInputError(
            "ti500k needs {0} PATH or {1} URL; " + literal(TI500K_HINT.format(root=root)), "source", "url"
        )
    if limit is not None and limit < 1:
        raise DataInputError(f"{{0}}: {limit} must be at least 1", "limit")
    expected_count = expected_count or None
    if source is not None:
        return convert_staged(Path(source), root, dest, limit, expected_count, sha256)
    if already_converted(dest, {"url": url}, limit, "url"):
        return f"ti500k: converted copy of {url} already in {dest} (nothing fetched)"
    with folder_kept_on_success(dest):
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
        try:
            local = staging / pseudo_labels.PICKLE_NAME
            hint = TI500K_HINT.format(root=root)
            digest, size = download(url, local, "sha256", sha256, hint)
            record = {
                "file": Path(urllib.parse.urlparse(url).path).name or pseudo_labels.PICKLE_NAME,
                "url": url,
                "sha256": digest,
                "size": size,
            }
            manifest = pseudo_labels.convert(local, dest, record, limit, expected_count)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return f"ti500k: {manifest['count']} samples converted into {dest} (downloaded from {url})"


def convert_staged(source: Path, root: Path, dest: Path, limit, expected_count, sha256) -> str:
    if source.is_dir():
        source = source / pseudo_labels.PICKLE_NAME
    if not source.is_file():
        raise DataInputError(
            f"{{0}} {literal(source)}: no such file; " + literal(TI500K_HINT.format(root=root)), "source"
        )
    digest, size = file_digest(source, "sha256", progress=True)
    if sha256 and digest != sha256.lower():
        raise FetchError(
            f"{source}: sha256 {digest}, expected {sha256} (corrupted, truncated or the wrong file); "
            f"the staged file was left untouched"
        )
    record = {"file": source.name, "path": str(source.resolve()), "sha256": digest, "size": size}
    if already_converted(dest, record, limit, "sha256"):
        return f"ti500k: converted copy of {source.name} (sha256 {digest[:12]}...) already in {dest} (nothing done)"
    manifest = pseudo_labels.convert(source, dest, record, limit, expected_count)
    return f"ti500k: {manifest['count']} samples converted into {dest} (staged from {source})"
