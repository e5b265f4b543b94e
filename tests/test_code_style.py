"""Code habits: the Python tree is ruff-clean (lint and format, configured in pyproject.toml) and the
pre-commit configuration runs ruff and snakefmt on what a commit changes."""

import shutil
import subprocess

import pytest
import yaml
from workflow_run import ENV_BIN, ROOT

RUFF = shutil.which("ruff", path=ENV_BIN) or shutil.which("ruff")


def ruff(*args):
    if RUFF is None:
        pytest.fail("ruff is not installed: run `bash scripts/setup.sh` (it is in the test extra)")
    return subprocess.run([RUFF, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    out = ruff("check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_ruff_format_is_clean():
    out = ruff("format", "--no-cache", "--check", ".")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_ruff_finds_a_relative_import(tmp_path):
    """The configured rule set is the one applied: a relative import is refused (TID252)."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "module.py").write_text("from .sibling import name\n\nprint(name)\n")
    out = subprocess.run([RUFF, "check", "--no-cache", "module.py"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1 and "TID252" in out.stdout


def test_pre_commit_runs_ruff_and_snakefmt():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "snakefmt"} <= set(hooks)
    assert "snakefmt" in hooks["snakefmt"]["entry"] and hooks["snakefmt"]["files"].endswith("smk|Snakefile)$")
    pre_commit = shutil.which("pre-commit", path=ENV_BIN)
    if pre_commit:
        out = subprocess.run(
            [pre_commit, "validate-config", ".pre-commit-config.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
