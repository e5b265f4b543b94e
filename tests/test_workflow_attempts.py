"""A real workflow job that asked for a GPU, run on this machine's CPU through Snakemake with one retry:
each attempt fails within a minute with the one-line device reason, and the job's log keeps both
attempts, each under its own header."""

import json
import re
import time

import pytest
import yaml
from workflow_run import SNAKEMAKE, scratch_workdir, snakemake

pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
torch = pytest.importorskip("torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_gpu_job_fails_fast_on_every_attempt_and_keeps_each_attempts_log(tmp_path):
    workdir = scratch_workdir(tmp_path / "workdir")
    cfg = yaml.safe_load((workdir / "config" / "demo.yaml").read_text())
    cfg["resources"]["evaluate"]["gpu"] = 1
    del cfg["train"]["runtime"]["device"]  # the demo pins the CPU; a GPU job's own device is cuda
    (workdir / "config" / "gpu.yaml").write_text(yaml.safe_dump(cfg))
    target = f"{cfg['results_dir']}/digits/at/seed0/aa.json"
    run = (workdir / target).parent
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"finished": True}))  # an existing training run: only evaluate runs

    start = time.monotonic()
    out = snakemake(
        workdir,
        target,
        "--profile",
        "profiles/local",
        "--cores",
        "1",
        "--retries",
        "1",
        "--allowed-rules",
        "evaluate",
        "--configfile",
        "config/gpu.yaml",
        timeout=600,
    )
    assert out.returncode != 0 and "Error in rule evaluate" in out.stderr, out.stderr[-3000:]
    assert time.monotonic() - start < 120

    log = workdir / cfg["results_dir"] / "logs" / "evaluate" / "digits" / "at" / "seed0" / "aa.log"
    attempts = [log.with_name(f"aa.log.attempt{n}").read_text() for n in (1, 2)]
    for n, text in enumerate(attempts, 1):
        lines = text.strip().splitlines()
        assert re.fullmatch(rf"=== attempt {n}: iseat evaluate on \S+ at \S+Z", lines[0]), text
        assert len(lines) == 2 and re.fullmatch(r"iseat evaluate: error: device cuda: .+; fix: .+", lines[1]), text
    assert log.read_text() == attempts[1]  # Snakemake's own log: the last attempt
    assert not (run / "aa.json").exists()
