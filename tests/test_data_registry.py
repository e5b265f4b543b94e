"""The data-set registry is the one list of names: the train schema, the workflow schema, `iseat fetch` and the
readers accept exactly its names, and its facts are the published ones."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from iseat.cli import main as cli_main
from iseat.data import registry
from iseat.training.config import DEFAULTS, ConfigError, validate
from iseat.workflow.schema import validate as validate_workflow

ROOT = Path(__file__).resolve().parents[1]


def test_published_facts():
    # CIFAR (Krizhevsky 2009): 50000 / 10000 images, 10 or 100 classes; SVHN (Netzer et al. 2011): 73257 / 26032
    assert registry.dataset("cifar10").sizes == (50000, 10000) and registry.dataset("cifar10").num_classes == 10
    assert registry.dataset("cifar100").sizes == (50000, 10000) and registry.dataset("cifar100").num_classes == 100
    assert registry.dataset("svhn").sizes == (73257, 26032) and registry.dataset("svhn").num_classes == 10
    assert registry.dataset("ti500k").extends == "cifar10" and registry.dataset("ti500k").reader is None


@pytest.mark.parametrize("name", ["cifar11", "ti500k"])
def test_train_config_accepts_only_training_sets(name, tmp_path):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"].update(dataset=name, root=str(tmp_path))
    with pytest.raises(ConfigError, match="data.dataset"):
        validate(cfg)


def test_every_training_set_passes_the_train_schema(tmp_path):
    for name in registry.TRAINING_SETS:
        cfg = copy.deepcopy(DEFAULTS)
        cfg["data"].update(dataset=name, root=str(tmp_path))
        validate(cfg)


def test_workflow_schema_reads_the_registry():
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["fetch"] = {"npz": {}}  # not fetched: no `iseat fetch npz`
    with pytest.raises(jsonschema.ValidationError, match="npz"):
        validate_workflow(config, ROOT / "workflow/schemas/config.schema.yaml")
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["settings"]["digits"]["extra"] = "cifar100"  # not extra data
    with pytest.raises(jsonschema.ValidationError, match="cifar100"):
        validate_workflow(config, ROOT / "workflow/schemas/config.schema.yaml")


def test_fetch_refuses_names_outside_the_registry(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["fetch", "npz", "--root", str(tmp_path)])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
