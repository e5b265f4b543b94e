"""`iseat fetch`: checksum verification, atomic and idempotent staging and download, clear offline errors.

The official files cannot be downloaded here, so each test builds fake files in the official layout and
points the data set's checksum table at them (the verification code is the real one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from data_fakes import md5_of, tar_folder, write_cifar10_folder, write_svhn_folder

from iseat.cli import main as cli_main
from iseat.data import FetchError, load_data
from iseat.data import fetch as fetch_module
from iseat.data.fetch import DatasetSpec, Remote, fetch

CLOSED_PORT_URL = "http://127.0.0.1:9/cifar-10-python.tar.gz"


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A fake cifar-10-python.tar.gz registered as the official file (its md5s in the spec)."""
    folder = write_cifar10_folder(tmp_path / "made")
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    files = {f"cifar-10-batches-py/{p.name}": md5_of(p) for p in sorted(folder.iterdir())}
    spec = DatasetSpec("cifar10", files, archive=Remote(archive.name, archive.as_uri(), md5_of(archive)))
    monkeypatch.setitem(fetch_module.DATASETS, "cifar10", spec)
    return archive, folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_download_verifies_extracts_and_writes_manifest_last(tmp_path, fake_cifar10):
    archive, folder = fake_cifar10
    root = tmp_path / "data"
    summary = fetch("cifar10", root)
    assert "7 files verified" in summary and "downloaded from file://" in summary
    dest = root / "cifar10"
    assert snapshot(dest / "cifar-10-batches-py") == snapshot(folder)
    manifest = json.loads((dest / "manifest.json").read_text())
    assert set(manifest["files"]) == set(fetch_module.DATASETS["cifar10"].files)
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no staging leftovers, no archive
    assert load_data({"dataset": "cifar10", "root": str(dest), "validation_size": 4}, seed=0).num_classes == 10


def test_verified_copy_is_not_fetched_again(tmp_path, fake_cifar10, monkeypatch):
    root = tmp_path / "data"
    fetch("cifar10", root)
    before = snapshot(root / "cifar10")
    spec = fetch_module.DATASETS["cifar10"]
    monkeypatch.setitem(
        fetch_module.DATASETS,
        "cifar10",
        DatasetSpec("cifar10", spec.files, archive=Remote(spec.archive.filename, CLOSED_PORT_URL, spec.archive.md5)),
    )
    assert "nothing fetched" in fetch("cifar10", root)
    assert snapshot(root / "cifar10") == before


def test_truncated_download_is_refused_and_removed(tmp_path, fake_cifar10, monkeypatch):
    archive, _ = fake_cifar10
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    root = tmp_path / "data"
    with pytest.raises(
        FetchError,
        match=r"md5 \w+ of the \d+ bytes received, expected \w+ \(corrupted or truncated download, removed\)",
    ):
        fetch("cifar10", root, url=truncated.as_uri())
    assert [p for p in (root / "cifar10").rglob("*")] == []


def test_corrupted_staged_archive_is_refused_and_left_untouched(tmp_path, fake_cifar10):
    archive, _ = fake_cifar10
    staged = tmp_path / "hand" / "cifar-10-python.tar.gz"
    staged.parent.mkdir()
    corrupt = bytearray(archive.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    staged.write_bytes(bytes(corrupt))
    root = tmp_path / "data"
    with pytest.raises(
        FetchError, match="expected .* \\(corrupted, truncated or the wrong file\\); the staged file was left untouched"
    ):
        fetch("cifar10", root, source=staged)
    assert staged.read_bytes() == bytes(corrupt)
    assert not (root / "cifar10" / "manifest.json").exists() and not (root / "cifar10" / "cifar-10-batches-py").exists()


def test_a_bad_file_in_a_staged_folder_never_half_replaces_a_copy(tmp_path, fake_cifar10):
    archive, folder = fake_cifar10
    root = tmp_path / "data"
    fetch("cifar10", root, source=archive)
    dest = root / "cifar10" / "cifar-10-batches-py"
    (dest / "data_batch_2").write_bytes(b"damaged")  # the copy no longer verifies
    staged = tmp_path / "staged"
    shutil.copytree(folder, staged / "cifar-10-batches-py")
    (staged / "cifar-10-batches-py" / "data_batch_2").write_bytes((folder / "data_batch_2").read_bytes()[:-10])
    with pytest.raises(FetchError, match="data_batch_2: md5 .*nothing was replaced"):
        fetch("cifar10", root, source=staged)
    assert (dest / "data_batch_2").read_bytes() == b"damaged"  # neither replaced by the bad copy nor removed
    assert not (root / "cifar10" / "manifest.json").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("layout", ["data_folder", "inner_folder", "folder_with_archive"])
def test_staged_folder_verifies(tmp_path, fake_cifar10, layout):
    archive, folder = fake_cifar10
    staged = tmp_path / "staged"
    if layout == "folder_with_archive":
        staged.mkdir()
        shutil.copy(archive, staged)
    else:
        shutil.copytree(folder, staged / "cifar-10-batches-py")
        staged = staged / "cifar-10-batches-py" if layout == "inner_folder" else staged
    root = tmp_path / "data"
    assert "staged from" in fetch("cifar10", root, source=staged)
    assert snapshot(root / "cifar10" / "cifar-10-batches-py") == snapshot(folder)
    assert (root / "cifar10" / "manifest.json").is_file()


def test_offline_error_names_the_file_its_source_and_the_staging_command(tmp_path, fake_cifar10, capsys):
    root = tmp_path / "data"
    code = cli_main(["fetch", "cifar10", "--root", str(root), "--url", CLOSED_PORT_URL])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    md5 = fetch_module.DATASETS["cifar10"].archive.md5
    assert f"cannot download {CLOSED_PORT_URL}" in err and f"(md5 {md5})" in err
    assert f"iseat fetch cifar10 --root {root} --from /path/to/cifar-10-python.tar.gz" in err


def test_svhn_stages_each_file_and_reports_a_missing_one(tmp_path, monkeypatch):
    made = write_svhn_folder(tmp_path / "made")
    remotes = tuple(Remote(p.name, f"http://127.0.0.1:9/{p.name}", md5_of(p)) for p in sorted(made.iterdir()))
    monkeypatch.setitem(
        fetch_module.DATASETS, "svhn", DatasetSpec("svhn", {r.filename: r.md5 for r in remotes}, remotes=remotes)
    )
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(made / "train_32x32.mat", partial)
    root = tmp_path / "data"
    with pytest.raises(FetchError, match=r"cannot download http://127.0.0.1:9/test_32x32.mat .*get test_32x32.mat"):
        fetch("svhn", root, source=partial)
    assert (root / "svhn" / "train_32x32.mat").is_file() and not (root / "svhn" / "manifest.json").exists()
    assert "staged from" in fetch("svhn", root, source=made)
    assert (
        load_data({"dataset": "svhn", "root": str(root / "svhn"), "validation_size": 2}, seed=0).augmentation == "none"
    )


def test_digits_fetch_writes_a_manifest_without_network(tmp_path):
    assert cli_main(["fetch", "digits", "--root", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "digits" / "manifest.json").read_text())
    assert manifest["num_train"] == 1497 and manifest["num_test"] == 300
    assert "nothing done" in fetch("digits", tmp_path)


def test_cli_names_match_the_library_and_options_are_checked(tmp_path, capsys):
    from iseat.data.registry import FETCHED

    assert fetch_module.NAMES == FETCHED
    assert cli_main(["fetch", "cifar10", "--root", str(tmp_path), "--limit", "3"]) == 2
    assert "--limit and --sha256 apply only to ti500k" in capsys.readouterr().err
    assert cli_main(["fetch", "cifar10", "--root", str(tmp_path), "--from", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert cli_main(["fetch", "ti500k", "--root", str(tmp_path), "--from", "a", "--url", "b"]) == 2
    assert "not both" in capsys.readouterr().err
