"""Standard AutoAttack and PGD-10 on a small trained CNN and 32 test samples: ordering, per-sample file, schema,
agreement with a plain pyautoattack run, and the adapter's overhead."""

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from iseat.benchmarks import autoattack_overhead
from iseat.benchmarks.toy import train_toy_model
from iseat.evaluation import EvaluationSpec, IndexedTensors, evaluate_model, partial_path, per_sample_path

SCHEMA = Path(__file__).resolve().parents[1] / "src" / "iseat" / "schemas" / "aa.schema.json"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    return train_toy_model(n_test=32)


@pytest.fixture(scope="module")
def evaluated(toy, tmp_path_factory):
    model, x, y = toy
    out = tmp_path_factory.mktemp("eval") / "aa.json"
    spec = EvaluationSpec(attacks=("autoattack", "pgd"), batch_size=64)
    report = evaluate_model(model, IndexedTensors(x, y), out, spec, num_classes=10, progress=False)
    return out, report


@pytest.fixture(scope="module")
def benchmark(toy):
    model, x, y = toy
    return autoattack_overhead.measure(model, x, y, batch_size=64, seed=0, repeats=1)


def read_rows(out):
    with open(per_sample_path(out)) as f:
        return list(csv.DictReader(f))


def test_autoattack_is_at_most_pgd_at_most_clean(evaluated):
    _, report = evaluated
    assert report["n_examples"] == 32
    assert report["clean_accuracy"] >= 0.75, "the toy model should be trained"
    assert 0 < report["autoattack"]["n_robust"] <= report["pgd"]["n_robust"] <= report["n_clean_correct"]
    assert report["robust_accuracy"] == report["autoattack"]["robust_accuracy"]
    assert report["protocol"] == "autoattack-standard" and report["standard"] is True
    assert report["pgd"]["label"] == "PGD-10"


def test_per_sample_file_agrees_with_the_summary(evaluated):
    out, report = evaluated
    rows = read_rows(out)
    assert [int(r["index"]) for r in rows] == list(range(32))
    count = lambda col: sum(int(r[col]) for r in rows)
    assert count("clean_correct") == report["n_clean_correct"]
    assert count("pgd_correct") == report["pgd"]["n_robust"]
    assert count("robust_correct") == report["autoattack"]["n_robust"] == report["n_robust"]
    broken = Counter(r["broken_by"] for r in rows)
    assert broken["clean"] == 32 - report["n_clean_correct"]
    assert broken[""] == report["n_robust"]
    for attack, n in report["autoattack"]["broken_by"].items():
        assert broken[attack] == n
    for r in rows:
        assert int(r["robust_correct"]) <= int(r["clean_correct"]) and int(r["pgd_correct"]) <= int(r["clean_correct"])
        assert (r["broken_by"] == "") == (r["robust_correct"] == "1")
    digest = hashlib.sha256(per_sample_path(out).read_bytes()).hexdigest()
    assert report["per_sample"]["sha256"] == digest


def test_report_validates_against_the_schema_in_the_repo(evaluated):
    out, report = evaluated
    written = json.loads(out.read_text())
    jsonschema.validate(written, json.loads(SCHEMA.read_text()))
    assert written["autoattack"]["settings"]["apgd-t"]["n_iter"] == 100
    assert written["provenance"]["versions"]["pyautoattack"] == "0.2.0"
    assert not partial_path(out).exists(), "the partial file is removed once aa.json is written"


def test_schema_rejects_an_unqualified_non_standard_number(evaluated):
    _, report = evaluated
    schema = json.loads(SCHEMA.read_text())
    forged = json.loads(json.dumps(report))
    forged["autoattack"]["protocol"] = forged["protocol"] = "autoattack-torchattacks-protocol"
    with pytest.raises(jsonschema.ValidationError):  # still claims standard: true
        jsonschema.validate(forged, schema)
    forged["standard"] = forged["autoattack"]["standard"] = False
    forged["autoattack"]["version"] = "custom"
    with pytest.raises(jsonschema.ValidationError):  # label lacks the non-standard qualifier
        jsonschema.validate(forged, schema)
    forged["label"] = forged["autoattack"]["label"] = "AutoAttack, torchattacks protocol (10 it., non-standard)"
    jsonschema.validate(forged, schema)


def test_adapter_matches_a_plain_pyautoattack_run(evaluated, benchmark):
    """Same samples and seed: the per-point verdicts equal those of `run_standard_evaluation`."""
    out, _ = evaluated
    assert benchmark["agree"], "adapter and direct pyautoattack differ inside the benchmark"
    assert [int(r["robust_correct"]) for r in read_rows(out)] == [int(v) for v in benchmark["robust_direct"]]


def test_adapter_costs_nothing_measurable(benchmark, capsys):
    line = autoattack_overhead.report_line(benchmark)
    with capsys.disabled():
        print("\n" + line)
    assert benchmark["cpu_ratio"] < 1.3, line  # CPU time: other processes' load hardly enters it
