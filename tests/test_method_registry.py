"""The method registry is the one list of method names and Tab. 4 labels: the schema, the planner,
the step benchmark and the tables find every method there."""

from pathlib import Path

import pytest
import yaml

from iseat.methods import registry as method_registry
from iseat.training.config import load_config, schema

SRC = Path(__file__).resolve().parents[1] / "src" / "iseat"
CATALOG = Path(__file__).resolve().parents[1] / "workflow" / "methods.yaml"


def test_schema_enum_is_the_registry():
    assert schema()["properties"]["method"]["properties"]["name"]["enum"] == method_registry.names()
    shipped = yaml.safe_load((SRC / "schemas" / "train.schema.yaml").read_text())
    assert "enum" not in shipped["properties"]["method"]["properties"]["name"]  # no second list


def test_unknown_method_is_refused_with_the_registry_names():
    from iseat.training.config import ConfigError

    with pytest.raises(ConfigError, match=r"method.name: .*'fat'"):
        load_config(None, ["method.name=nope"])


def test_every_registered_method_builds_and_every_defined_one_is_registered():
    from iseat.methods.baselines import BASELINES
    from iseat.methods.presets import PRESETS

    assert set(PRESETS) | set(BASELINES) == set(method_registry.names())
    for name in method_registry.names():
        schedule = method_registry.schedule({"name": name})
        assert isinstance(schedule, method_registry.spec(name).schedule_class())
        assert method_registry.spec(name).defaults() and method_registry.spec(name).source
        assert method_registry.cost_row(*schedule.cost_parts(0, 0)) in method_registry.tab4_labels().values()


def test_planner_benchmark_and_tables_take_the_registry_labels():
    from iseat.benchmarks.tab4_setups import TAB4_METHODS, THETA_BRANCH_METHODS
    from iseat.results.tables import STEP_TIMING_LABELS, TABLES

    labels = method_registry.tab4_labels()
    assert {label: name for label, (name, _) in TAB4_METHODS.items()} == {v: k for k, v in labels.items()}
    assert set(THETA_BRANCH_METHODS) <= set(labels.values())
    assert set(STEP_TIMING_LABELS.values()) <= set(labels.values())
    catalog = yaml.safe_load(CATALOG.read_text())
    rows = {row for spec in TABLES for _, row, label in spec.rows if "not run" not in label}
    for row in rows:  # each table row that is run is a catalog entry whose method is registered
        assert catalog[row]["train"]["method"]["name"] in method_registry.names(), row
    benchmarks = sorted((SRC / "benchmarks").rglob("*.py"))
    for path in [SRC / "workflow/plan.py", SRC / "workflow/step_times.py", *benchmarks]:
        text = path.read_text()
        assert not any(f'"{label}"' in text for label in labels.values()), path  # written nowhere else
