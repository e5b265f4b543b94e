"""A method from a user's installed package (entry-point group `iseat.methods`): the README's one-file
method is installed into a folder of its own, then validated, trained by `iseat train`, evaluated by
`iseat evaluate` and tabulated as a results-layer row."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "ls-at"
version = "0.1"

[project.entry-points."iseat.methods"]
ls_at = "ls_at:LabelSmoothingAT"

[tool.setuptools]
py-modules = ["ls_at"]
"""


def readme_method() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (block,) = [b for b in blocks if "class LabelSmoothingAT" in b]
    return block


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The plugin package built and installed (no dependencies) into a folder of its own."""
    package = tmp_path_factory.mktemp("ls_at")
    (package / "ls_at.py").write_text(readme_method())
    (package / "pyproject.toml").write_text(PYPROJECT)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    return target


def python(site, *args):
    """The test's Python with the plugin's folder on its path, in the repository root."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT)


def iseat(site, *args):
    return python(site, "-m", "iseat", *args)


TRAIN = [
    "data.dataset=digits",
    "data.validation_size=100",
    "training.epochs=1",
    "training.lr_milestones=[]",
    "training.batch_size=64",
    "attack.steps=2",
    "attack.step_size=4/255",
    "evaluation.max_samples=50",
    "evaluation.pgd_steps=2",
    "runtime.device=cpu",
    "runtime.progress=false",
    "data.num_workers=0",
]


# A workflow config entry for the method (the demo's digits setting, shortened to one epoch), and
# the run's `iseat train --set` arguments as the workflow's rules build them (iseat.workflow.run_config).
WORKFLOW_RUN = """
import shlex, sys, yaml
from pathlib import Path
from iseat.workflow.run_config import RunConfigs, set_args
from iseat.workflow.schema import validate
config = yaml.safe_load(Path("config/demo.yaml").read_text())
config["methods"] = {**yaml.safe_load(Path("workflow/methods.yaml").read_text()), "ls_at": {
    "label": "AT + label smoothing", "kind": "scratch", "train": {
        "method": {"name": "ls_at", "smoothing": 0.2}, "attack": {"steps": 2},
        "training": {"epochs": 1, "lr_milestones": [], "batch_size": 64},
        "evaluation": {"max_samples": 50, "pgd_steps": 2},
        "runtime": {"device": "cpu", "progress": False}}}}
config["settings"]["digits"]["methods"].append("ls_at")
validate(config, Path("workflow/schemas/config.schema.yaml"))
print(set_args(RunConfigs(config).run_overrides("digits", "ls_at", 0)))
"""


def test_readme_method_is_one_short_file():
    assert len(readme_method().strip().splitlines()) <= 35


@pytest.mark.slow
def test_installed_method_is_validated_trained_evaluated_and_tabulated(site, tmp_path):
    bad = iseat(site, "train", "--out", tmp_path / "bad", "--set", *TRAIN, "method.name=ls_at", "method.smoothing=2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "method.smoothing" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()
    stray = iseat(site, "train", "--out", tmp_path / "bad", "--set", *TRAIN, "method.name=at", "method.smoothing=0.2")
    assert stray.returncode == 2 and "method.smoothing: an option of an installed method, not of at" in stray.stderr

    run = tmp_path / "run"
    planned = python(site, "-c", WORKFLOW_RUN)
    assert planned.returncode == 0, planned.stderr[-2000:]
    overrides = shlex.split(planned.stdout)
    assert "method.name=ls_at" in overrides and "method.smoothing=0.2" in overrides
    # the workflow stages its data under data/; the built-in digits need no folder
    trained = iseat(site, "train", "--out", run, "--set", *overrides, "data.root=null", "data.num_workers=0")
    assert trained.returncode == 0, trained.stderr[-2000:]
    import h5py
    import numpy as np

    with h5py.File(run / "av_log.h5") as log:
        assert log["av"].shape[0] == 1 and np.isfinite(log["av"][:]).all() and log["av"][:].std() > 0

    seed = tmp_path / "results" / "digits" / "ls_at" / "seed0"
    evaluated = iseat(
        site,
        "evaluate",
        "--checkpoint",
        run / "best.pt",
        "--out",
        seed / "pgd.json",
        "--attack",
        "pgd",
        "--pgd-steps",
        2,
        "--n-ex",
        20,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.loads((seed / "pgd.json").read_text())
    assert report["training_config"]["method"] == {"name": "ls_at", "smoothing": 0.2}

    from iseat.results import seeds, tables

    (seed.parent / "pgd.json").write_text(json.dumps(seeds.aggregate_seeds([seed / "pgd.json"])))
    entry = {"label": "AT + label smoothing", "kind": "scratch", "train": {"method": {"name": "ls_at"}}}  # a config's
    (row,) = tables.result_rows(
        tables.parse_entries([("digits", "ls_at", "-", str(seed.parent))]),
        {"digits": "Digits"},
        {"ls_at": entry["label"]},
    )
    assert row.label == "Digits / AT + label smoothing"
    assert row.cells["pgd"][0] == pytest.approx(100 * report["robust_accuracy"])


def test_a_broken_or_clashing_plugin_is_one_line(monkeypatch):
    """An entry point that does not import, or takes a built-in's name, is a one-line user error."""
    from importlib.metadata import EntryPoint

    from iseat.common.errors import UserError
    from iseat.methods import plugins as method_plugins
    from iseat.methods import registry as method_registry

    broken = EntryPoint(name="mine", value="no_such_module_here:Mine", group=method_plugins.GROUP)
    with pytest.raises(
        UserError,
        match=r"iseat.methods:mine \(no_such_module_here:Mine\) does not load: "
        r"ModuleNotFoundError",
    ) as err:
        method_plugins.load(broken)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(method_plugins, "installed", lambda: {"at": object})
    with pytest.raises(UserError, match="iseat.methods:at: a built-in method has that name; rename it"):
        method_registry.methods()
