"""Packaging: compatible ranges in pyproject.toml, the exact environment in requirements.lock (versions
and hashes), environment files that agree with it, and a package that imports without the CLI."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def pyproject_requirements(extras=True) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra if extras]
    return [Requirement(d) for d in deps if not d.startswith("iseat")]


def locked() -> dict:
    """{normalised name: (version, number of hashes)} of requirements.lock."""
    text = LOCK.read_text().replace("\\\n", " ")
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", text, re.M)
    return {name.lower().replace("_", "-"): (version, len(hashes.split())) for name, version, hashes in entries}


def pinned(lines) -> dict:
    return {p.split("==")[0].lower(): p.split("==")[1] for p in lines if "==" in p}


def test_pyproject_gives_ranges_and_the_lock_pins_each_within_them_with_hashes():
    lock = locked()
    assert len(lock) > 50 and all(n_hashes >= 1 for _, n_hashes in lock.values())
    for req in pyproject_requirements():
        assert not str(req.specifier).startswith("=="), (
            f"{req}: give a compatible range; exact versions go in requirements.lock"
        )
        version, _ = lock[req.name.lower()]
        assert req.specifier.contains(version), f"requirements.lock has {req.name}=={version}, outside {req}"
    assert lock["torch"][0] == "2.14.1" and lock["torchvision"][0] == "0.29.1"


def test_environment_files_install_from_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r requirements.lock"]
    rules_env = yaml.safe_load((ROOT / "workflow" / "envs" / "iseat.yaml").read_text())
    rules_pip = next(d["pip"] for d in rules_env["dependencies"] if isinstance(d, dict))
    lock = locked()
    assert {name: lock[name][0] for name in pinned(rules_pip)} == pinned(rules_pip)
    assert set(pinned(rules_pip)) == {r.name.lower() for r in pyproject_requirements(extras=False)}
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements.lock" in setup


def test_package_imports_without_the_cli_and_cli_lists_commands():
    out = subprocess.run([sys.executable, "-m", "iseat", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "fetch", "evaluate", "inspect", "analyse", "aggregate", "benchmark"):
        assert command in out.stdout
