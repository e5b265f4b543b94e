"""CIFAR-10/100 and SVHN into DATA_ROOT/NAME in torchvision's layout: the official files (URLs and md5 sums
from torchvision's dataset classes) downloaded, or staged from a copy made by hand (the archive, or a folder
holding it or its extracted files); `manifest.json` is written last, so a folder with a manifest is complete,
and a copy that already verifies is not fetched again."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torchvision
from torchvision.datasets import SVHN

from iseat.common.errors import literal
from iseat.common.io import folder_kept_on_success, write_json_atomic
from iseat.data import registry
from iseat.data.errors import DataInputError, FetchError
from iseat.data.transfer import (
    FORMAT,
    MANIFEST,
    Remote,
    check_digest,
    copy_verified,
    digest_matches,
    download,
    now,
    offline_hint,
    staged_file,
)


@dataclass(frozen=True)
class DatasetSpec:
    """What `iseat fetch NAME` must leave in DATA_ROOT/NAME: `files` (relative path -> md5)."""

    name: str
    files: dict = field(default_factory=dict)
    archive: Remote | None = None  # one archive holding every file under its relative path (CIFAR)
    remotes: tuple = ()  # files published one by one, relative path == file name (SVHN)

    def remote(self, rel: str) -> Remote:
        return next(r for r in self.remotes if r.filename == rel)


def cifar_spec(name: str, tv) -> DatasetSpec:
    files = {f"{tv.base_folder}/{n}": md5 for n, md5 in tv.train_list + tv.test_list}
    files[f"{tv.base_folder}/{tv.meta['filename']}"] = tv.meta["md5"]
    return DatasetSpec(name, files, archive=Remote(tv.filename, tv.url, tv.tgz_md5))


def svhn_spec() -> DatasetSpec:
    remotes = tuple(
        Remote(SVHN.split_list[s][1], SVHN.split_list[s][0], SVHN.split_list[s][2]) for s in ("train", "test")
    )
    return DatasetSpec("svhn", {r.filename: r.md5 for r in remotes}, remotes=remotes)


def torchvision_spec(entry: registry.DataSet) -> DatasetSpec:
    if entry.reader == "cifar":
        return cifar_spec(entry.name, getattr(torchvision.datasets, entry.torchvision))
    return svhn_spec()


# the sets published as torchvision files; the others (digits, ti500k) have their own fetch below
DATASETS = {n: torchvision_spec(d) for n, d in registry.DATASETS.items() if d.fetched and d.torchvision}


def extract_verified(archive: Path, spec: DatasetSpec, dest: Path, staging: Path) -> None:
    """Extract the spec's files (by member name only) from `archive`, verify them all, then move them in place."""
    try:
        with tarfile.open(archive) as tar:
            for rel, md5 in spec.files.items():
                member = tar.extractfile(rel)
                if member is None:
                    raise KeyError(rel)
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with member, open(out, "wb") as f:
                    shutil.copyfileobj(member, f, 1 << 20)
                check_digest(out, md5, f"{archive}:{rel}", "nothing was replaced")
    except (tarfile.TarError, KeyError, EOFError, OSError) as err:
        raise FetchError(
            f"{archive}: not a complete {spec.archive.filename} ({type(err).__name__}: {err}); nothing was replaced"
        ) from None
    install(spec, staging, dest)


def install(spec: DatasetSpec, staging: Path, dest: Path) -> None:
    """Move every verified file from `staging` to its place under `dest` (renames on one file system)."""
    for rel in spec.files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).replace(dest / rel)


def fetch_archive_set(
    spec: DatasetSpec, root: Path, dest: Path, source: Path | None, url: str | None, staging: Path
) -> str:
    """CIFAR: stage from an archive, a folder of extracted files or a folder holding the archive; else download."""
    archive = spec.archive
    if source is not None:
        if source.is_dir() and (source / archive.filename).is_file():
            source = source / archive.filename
        if source.is_dir():
            found = {rel: staged_file(source, rel) for rel in spec.files}
            missing = [rel for rel, path in found.items() if path is None]
            if missing:
                raise DataInputError(
                    f"{{0}} {literal(source)}: holds neither {archive.filename} nor the extracted "
                    f"files (missing {missing[0]}); give the archive or the folder it extracts to",
                    "source",
                )
            for rel, path in found.items():  # verify every copy before replacing anything
                copy_verified(path, staging / rel, spec.files[rel])
            install(spec, staging, dest)
            return f"staged from {source}"
        check_digest(source, archive.md5, str(source), "the staged file was left untouched and nothing was replaced")
        extract_verified(source, spec, dest, staging)
        return f"staged from {source}"
    url = url or archive.url
    local = staging / archive.filename
    download(
        url,
        local,
        "md5",
        archive.md5,
        offline_hint(spec.name, root, Remote(archive.filename, url, archive.md5), f"/path/to/{archive.filename}"),
    )
    extract_verified(local, spec, dest, staging)
    return f"downloaded from {url}"


def staged_single_file(source: Path | None, rel: str) -> Path | None:
    if source is None:
        return None
    if source.is_file():
        return source if source.name == rel else None
    return staged_file(source, rel)


def fetch_file_set(spec: DatasetSpec, root: Path, dest: Path, source: Path | None, url: str | None) -> str:
    """SVHN: every staged file first (from the folder or file given), then downloads (`url`: a base URL)."""
    done, to_download = [], []
    for rel, md5 in spec.files.items():
        staged = staged_single_file(source, rel)
        if staged is not None:
            copy_verified(staged, dest / rel, md5)
            done.append(f"{rel} staged from {staged}")
        elif not digest_matches(dest / rel, md5):
            to_download.append(rel)
    for rel in to_download:
        file_url = f"{url.rstrip('/')}/{rel}" if url else spec.remote(rel).url
        hint = offline_hint(
            spec.name, root, Remote(rel, file_url, spec.files[rel]), "/path/to/folder-with-the-.mat-files"
        )
        download(file_url, dest / rel, "md5", spec.files[rel], hint)
        done.append(f"{rel} downloaded from {file_url}")
    return "; ".join(done)


def write_data_manifest(spec: DatasetSpec, dest: Path, how: str) -> dict:
    files = {rel: {"md5": md5, "size": (dest / rel).stat().st_size} for rel, md5 in spec.files.items()}
    manifest = {
        "format": FORMAT,
        "name": spec.name,
        "layout": "torchvision",
        "files": files,
        "source": how,
        "torchvision": torchvision.__version__,
        "created": now(),
    }
    write_json_atomic(dest / MANIFEST, manifest)
    return manifest


def fetch_torchvision_set(name: str, root, source=None, url: str | None = None) -> str:
    """Make DATA_ROOT/NAME a verified torchvision-format copy of `name`; returns what was done, in words."""
    spec, root = DATASETS[name], Path(root)
    dest = root / name
    if source is not None and not Path(source).exists():
        raise DataInputError(f"{{0}} {literal(source)}: no such file or folder", "source")
    if all(digest_matches(dest / rel, md5) for rel, md5 in spec.files.items()):
        if not (dest / MANIFEST).is_file():
            write_data_manifest(spec, dest, "verified in place")
        return f"{name}: verified copy already in {dest} (nothing fetched)"
    with folder_kept_on_success(dest):
        (dest / MANIFEST).unlink(missing_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
        try:
            if spec.archive is not None:
                how = fetch_archive_set(spec, root, dest, None if source is None else Path(source), url, staging)
            else:
                how = fetch_file_set(spec, root, dest, None if source is None else Path(source), url)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    write_data_manifest(spec, dest, how)
    return f"{name}: {len(spec.files)} files verified in {dest} ({how})"
