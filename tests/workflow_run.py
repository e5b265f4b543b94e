"""Snakemake on this repository's workflow, run in a scratch folder so that nothing in the checkout
(results/, data/, .snakemake/ of a user's earlier runs) changes a test's outcome, and no test writes
into it. The scratch folder is laid out as a deployed workflow's: config/ and profiles/ copied from
the repository, the workflow referenced where it lies (`--snakefile`, `--directory`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
ENV_BIN = str(Path(sys.executable).parent)
SNAKEMAKE = shutil.which("snakemake", path=ENV_BIN) or shutil.which("snakemake")


def scratch_workdir(folder: Path) -> Path:
    """`folder` with copies of the repository's config/ and profiles/; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config", "profiles"):
        shutil.copytree(ROOT / name, folder / name, dirs_exist_ok=True)
    return folder


def snakemake(workdir: Path, *args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """`snakemake ARGS` on the repository's workflow with `workdir` as working directory; relative
    paths in ARGS (config/..., profiles/...) are the scratch copies. The implicit workflow profile is
    off, and `iseat` and `snakemake` come from this test environment."""
    cmd = [SNAKEMAKE, "--snakefile", str(SNAKEFILE), "--directory", str(workdir), "--workflow-profile", "none", *args]
    run_env = dict(os.environ if env is None else env)
    run_env["PATH"] = f"{ENV_BIN}:{run_env.get('PATH', '')}"
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=run_env)
