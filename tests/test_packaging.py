"""Packaging: pinned dependencies, and environment.yml agreeing with pyproject.toml."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return [d for d in deps if not d.startswith("iseat")]


def test_every_dependency_is_pinned():
    for dep in pyproject_pins():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", dep), dep


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pyproject_pins()) == {p for p in pip if "==" in p}


def test_package_imports_without_the_cli_and_cli_lists_commands():
    out = subprocess.run([sys.executable, "-m", "iseat", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "fetch", "evaluate", "inspect", "analyse", "aggregate", "benchmark"):
        assert command in out.stdout
