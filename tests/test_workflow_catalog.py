"""Snakemake workflow catalog conventions: snakefmt-clean rule files, the catalog file, a license, and a
workflow that runs from a copy of workflow/ alone (as a deployed one does), with the schemas and the
train config schema read through the installed iseat package, never through the source tree."""

import shutil
import subprocess

import pytest
import yaml
from workflow_run import ENV_BIN, ROOT, SNAKEMAKE

SNAKEFMT = shutil.which("snakefmt", path=ENV_BIN) or shutil.which("snakefmt")


@pytest.mark.skipif(SNAKEFMT is None, reason="snakefmt is not installed (pip install -e '.[test]')")
def test_rule_files_are_snakefmt_clean():
    out = subprocess.run([SNAKEFMT, "--check", "workflow"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_catalog_file_and_license():
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog["usage"]) >= {"mandatory-flags", "software-stack-deployment", "report"}
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 the iseat authors" in license_text


def test_workflow_names_no_path_into_the_source_tree():
    for path in (ROOT / "workflow").rglob("*"):
        if path.is_file():
            assert "src/" not in path.read_text(), f"{path.relative_to(ROOT)} reaches into src/"


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
def test_a_copy_of_workflow_alone_plans_the_demo(tmp_path):
    """What `snakedeploy deploy-workflow` sets up (it needs a git host): the workflow's files, the user's
    config/ beside them, the iseat package installed; nothing else of this repository."""
    deployed = tmp_path / "deployed"
    shutil.copytree(ROOT / "workflow", deployed / "workflow")
    shutil.copytree(ROOT / "config", deployed / "config")
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--workflow-profile", "none", "--cores", "1", "--configfile", "config/demo.yaml"],
        cwd=deployed,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": f"{ENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    assert "iseat fetch digits --root data" in out.stdout + out.stderr
    assert "Job stats:" in out.stdout + out.stderr
