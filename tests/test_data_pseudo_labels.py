"""The pseudo-labelled extra set: restricted unpickling, schema checks, conversion to .npy + manifest, loading."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
from data_fakes import evil_bytes, images, load_stock, pseudo_label_pickle

from iseat.cli import main as cli_main
from iseat.data import DataError, FetchError, load_data
from iseat.data.fetch import fetch
from iseat.data.pseudo_labels import PseudoLabelledSet, read_pickle
from iseat.data.safe_pickle import restricted_load


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_small_pickle_of_the_schema_converts_and_loads_memory_mapped(tmp_path, protocol):
    source = pseudo_label_pickle(tmp_path / "ti_500K_pseudo_labeled.pickle", n=40, protocol=protocol)
    summary = fetch("ti500k", tmp_path / "data", source=source, expected_count=40)
    assert "40 samples converted" in summary
    dest = tmp_path / "data" / "ti500k"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["source"]["size"] == source.stat().st_size and manifest["count"] == 40
    assert manifest["label_counts"] == [4] * 10
    extra = PseudoLabelledSet(dest)
    assert isinstance(extra.data, np.memmap) and extra.data.shape == (40, 32, 32, 3)
    assert np.array_equal(extra.data, images(40, 7)) and extra.targets.tolist() == (np.arange(40) % 10).tolist()
    assert pickle.loads(pickle.dumps(extra))._data is None  # workers map the file; they never get a copy


def test_limit_makes_a_small_subset_and_conversion_is_idempotent(tmp_path):
    source = pseudo_label_pickle(tmp_path / "ti.pickle", n=40)
    root = tmp_path / "data"
    assert (
        cli_main(
            ["fetch", "ti500k", "--root", str(root), "--from", str(source), "--limit", "12", "--expect-count", "0"]
        )
        == 0
    )
    extra = PseudoLabelledSet(root / "ti500k")
    assert len(extra) == 12 and json.loads((root / "ti500k" / "manifest.json").read_text())["limit"] == 12
    mtime = (root / "ti500k" / "data.npy").stat().st_mtime_ns
    assert "nothing done" in fetch("ti500k", root, source=source, limit=12, expected_count=None)
    assert (root / "ti500k" / "data.npy").stat().st_mtime_ns == mtime
    assert "converted" in fetch("ti500k", root, source=source, limit=20, expected_count=None)
    assert len(PseudoLabelledSet(root / "ti500k")) == 20


def test_pickle_whose_reduce_writes_a_file_is_refused_and_nothing_is_written(tmp_path):
    data = evil_bytes(tmp_path / "proof")
    load_stock(data)  # the stock unpickler does run it: the file appears
    assert (tmp_path / "proof").exists()
    target = tmp_path / "must_not_exist"
    source = tmp_path / "evil.pickle"
    source.write_bytes(evil_bytes(target))
    with pytest.raises(DataError, match=r"refused to load io.open: not a numpy array part"):
        fetch("ti500k", tmp_path / "data", source=source, expected_count=None)
    assert not target.exists()
    assert not (tmp_path / "data" / "ti500k" / "manifest.json").exists()


@pytest.mark.parametrize(
    "module,name",
    [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"), ("builtins", "getattr")],
)
def test_only_numpy_array_parts_resolve(module, name):
    crafted = f"c{module}\n{name}\n(S'true'\ntR.".encode()  # protocol 0: GLOBAL then REDUCE
    with pytest.raises(DataError, match=f"refused to load {module}.{name}"):
        restricted_load(crafted, "crafted")


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"extrapolated_targets": np.arange(39)}, "must be 40 integer labels"),
        ({"extrapolated_targets": np.full(40, 10)}, r"labels must be 0..9"),
        ({"data": images(40, 1).astype(np.float32)}, r"'data' must be a uint8 array N x 32 x 32 x 3, found float32"),
        ({"data": images(40, 1)[:, :16]}, r"found uint8 \(40, 16, 32, 3\)"),
    ],
)
def test_schema_violations_are_refused_with_one_line(tmp_path, overrides, message):
    source = pseudo_label_pickle(tmp_path / "bad.pickle", n=40, **overrides)
    with pytest.raises(DataError, match=message) as err:
        read_pickle(source)
    assert "\n" not in str(err.value)


def test_missing_keys_wrong_count_truncation_and_sha256_are_refused(tmp_path):
    bad = tmp_path / "keys.pickle"
    bad.write_bytes(pickle.dumps({"images": images(3, 0)}))
    with pytest.raises(DataError, match=r"keys 'data' and 'extrapolated_targets', found \['images'\]"):
        read_pickle(bad)
    source = pseudo_label_pickle(tmp_path / "ok.pickle", n=40)
    with pytest.raises(DataError, match="holds 40 samples, expected 500000; pass expected_count 40") as err:
        fetch("ti500k", tmp_path / "data", source=source)
    assert "pass --expect-count 40" in err.value.named(["--expect-count"])  # as `iseat fetch` says it
    truncated = tmp_path / "truncated.pickle"
    truncated.write_bytes(source.read_bytes()[:5000])
    with pytest.raises(DataError, match="may be truncated"):
        read_pickle(truncated)
    with pytest.raises(FetchError, match="sha256 .*, expected 00ff .*left untouched"):
        fetch("ti500k", tmp_path / "data", source=source, expected_count=None, sha256="00ff")


def test_url_download_converts_and_no_source_explains_where_to_get_it(tmp_path, capsys):
    source = pseudo_label_pickle(tmp_path / "ti_500K_pseudo_labeled.pickle", n=20)
    root = tmp_path / "data"
    assert "downloaded from" in fetch("ti500k", root, url=source.as_uri(), expected_count=20)
    assert json.loads((root / "ti500k" / "manifest.json").read_text())["source"]["url"] == source.as_uri()
    assert "nothing fetched" in fetch("ti500k", root, url=source.as_uri(), expected_count=20)
    assert not [p for p in (root / "ti500k").iterdir() if p.name.startswith(".")]
    assert cli_main(["fetch", "ti500k", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert (
        "semisup-adv" in err
        and f"iseat fetch ti500k --root {root} --from /path/to/ti_500K_pseudo_labeled.pickle" in err
    )


def test_extra_folder_must_be_converted(tmp_path):
    source = pseudo_label_pickle(tmp_path / "ti.pickle", n=10)
    cfg = {"dataset": "digits", "validation_size": 100, "extra": str(source)}
    with pytest.raises(DataError, match="is a file; convert it first"):
        load_data(cfg, seed=0)
    with pytest.raises(DataError, match="holds no complete converted set"):
        load_data({**cfg, "extra": str(tmp_path)}, seed=0)
