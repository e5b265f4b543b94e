"""Verified transfer of published files: downloads streamed to a temporary file and hashed on the way, copies
checked before they replace anything, and the manifest conventions of a fetched data folder. Nothing lands
under its final name before its checksum matched, and a source is never modified."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from iseat.common.io import atomic_path
from iseat.data.errors import FetchError
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


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def digest_matches(path: Path, md5: str) -> bool:
    return path.is_file() and file_digest(path, "md5")[0] == md5


def offline_hint(name: str, root: Path, remote: Remote, staged_from: str) -> str:
    return (
        f"get {remote.filename} from {remote.url} (md5 {remote.md5}) on a machine with internet access, "
        f"copy it here and run: iseat fetch {name} --root {root} --from {staged_from}"
    )


def download(url: str, path: Path, algorithm: str, expected: str | None, hint: str) -> tuple[str, int]:
    """Download `url` to `path` atomically; (digest, size). A digest mismatch leaves nothing behind."""
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


def staged_file(source: Path, rel: str) -> Path | None:
    """`rel` inside a staged folder, which may be the data folder or the inner folder (cifar-10-batches-py)."""
    for candidate in (source / rel, source / Path(rel).name):
        if candidate.is_file():
            return candidate
    return None
