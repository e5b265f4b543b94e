"""Fetching and staging data sets into DATA_ROOT/NAME, verified by checksum, atomic and idempotent.

The official CIFAR-10/100 and SVHN files (URLs and md5 sums from torchvision's dataset classes) are
downloaded, or staged from a copy the user made by hand (`source`: the archive, or a folder holding it or
its extracted files). Nothing lands under its final name before its checksum matched, a source is never
modified, and `manifest.json` is written last: a folder with a manifest is complete. A copy that already
verifies is not fetched again.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torchvision
from torchvision.datasets import SVHN

from iseat.common.errors import literal
from iseat.common.io import atomic_path, folder_kept_on_success, write_json_atomic
from iseat.data import pseudo_labels, registry
from iseat.data.errors import DataInputError, FetchError
from iseat.data.pseudo_labels import file_digest

FORMAT = "iseat-data-v1"
MANIFEST = "manifest.json"
TIMEOUT_S = 60


@dataclass(frozen=True)
class Remote:
    """One published file: its name, where it lives and its md5."""

    filename: str
    url: str
    md5: str


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
NAMES = registry.FETCHED


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def digest_matches(path: Path, md5: str) -> bool:
    return path.is_file() and file_digest(path, "md5")[0] == md5


# ---------------------------------------------------------------------------------------------
# download: streamed to a temporary file, hashed on the way, renamed only when the digest matches


def offline_hint(name: str, root: Path, remote: Remote, staged_from: str) -> str:
    return (
        f"get {remote.filename} from {remote.url} (md5 {remote.md5}) on a machine with internet access, "
        f"copy it here and run: iseat fetch {name} --root {root} --from {staged_from}"
    )


def download(url: str, path: Path, algorithm: str, expected: str | None, hint: str) -> tuple[str, int]:
    """Download `url` to `path` atomically; (digest, size). A digest mismatch leaves nothing behind."""
    from tqdm import tqdm

    digest, size = hashlib.new(algorithm), 0
    try:
        with (
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"User-Agent": "iseat-fetch"}), timeout=TIMEOUT_S
            ) as response,
            atomic_path(path) as tmp,
            open(tmp, "wb") as out,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=None, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            if expected and digest.hexdigest() != expected:
                raise FetchError(
                    f"{url}: {algorithm} {digest.hexdigest()} of the {size} bytes received, expected "
                    f"{expected} (corrupted or truncated download, removed); try again or {hint}"
                )
    except FetchError:
        raise
    except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"cannot download {url} ({reason}); {hint}") from None
    return digest.hexdigest(), size


# ---------------------------------------------------------------------------------------------
# staging helpers


def check_digest(path: Path, md5: str, what: str, consequence: str) -> None:
    found = file_digest(path, "md5", progress=True)[0]
    if found != md5:
        raise FetchError(f"{what}: md5 {found}, expected {md5} (corrupted, truncated or the wrong file); {consequence}")


def copy_verified(src: Path, dst: Path, md5: str) -> None:
    """Copy `src` onto `dst` only if the copy's md5 matches; `src` and any old `dst` are left as they were."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        check_digest(tmp, md5, str(src), "the staged file was left untouched and nothing was replaced")


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


def staged_file(source: Path, rel: str) -> Path | None:
    """`rel` inside a staged folder, which may be the data folder or the inner folder (cifar-10-batches-py)."""
    for candidate in (source / rel, source / Path(rel).name):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# CIFAR-10/100 and SVHN


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


# ---------------------------------------------------------------------------------------------
# the pseudo-labelled 80M-TinyImages set

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


# ---------------------------------------------------------------------------------------------
# the offline demo set


def fetch_digits(root) -> str:
    """Write DATA_ROOT/digits/manifest.json describing the built-in demo set (nothing is downloaded)."""
    import sklearn

    from iseat.data.sources import load_digits

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
