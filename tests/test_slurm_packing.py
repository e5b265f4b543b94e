"""profiles/slurm on a real single-node SLURM cluster (two fake GPUs): with `cluster.gpus_per_node: 2` two
single-GPU trainings share one job, each on its own GPU; a setting with `gpus_per_run: 2` trains in one job
with both GPUs and two processes (torchrun); a packed training that fails leaves its neighbour's finished run
in place. What each training saw is read from its own record (the
placement in its summary's provenance: CUDA_VISIBLE_DEVICES, SLURM job, WORLD_SIZE), what was allocated from
sacct. The first two run in one Snakemake run; the node's two GPUs make the jobs follow each other."""

import datetime as dt
import json

import pytest
import yaml
from slurm_cluster import run_snakemake_on_slurm, slurm_cluster, workflow_jobs  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PACKED = [("digits", "at"), ("digits", "trades")]
WIDE = ("wide", "at")


def tiny_config(results, settings=None):
    heavy = {"gpu": 1, "threads": 1, "mem_mb": 1000, "partition": "gpu", "runtime": 10}
    return {
        "results_dir": str(results),
        "data_root": "data",
        "seeds": [0],
        "cluster": {"gpus_per_node": 2},
        "train": {"data": {"validation_size": 100, "num_workers": 0}, "model": {"arch": "small_cnn"},
                  "training": {"epochs": 2, "batch_size": 64, "lr": 0.05, "lr_milestones": [0.5]},
                  "evaluation": {"max_samples": 50}, "runtime": {"progress": False, "device": "cpu"}},  # fake GPUs
        "settings": settings or {"digits": {"dataset": "digits", "methods": ["at", "trades"]},
                                 "wide": {"dataset": "digits", "methods": ["at"], "gpus_per_run": 2}},
        "resources": {"train": heavy, "finetune": heavy, "evaluate": heavy,
                      "light": {"gpu": 0, "threads": 1, "mem_mb": 1000, "runtime": 5, "partition": "cpu"},
                      "light_local": True},
    }  # fmt: skip


@pytest.fixture(scope="module")
def placed_runs(slurm_cluster, tmp_path_factory):  # noqa: F811
    assert slurm_cluster.gpus >= 2, slurm_cluster
    workdir = tmp_path_factory.mktemp("packing")
    results = workdir / "results"
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(results)))
    targets = [str(results / setting / method / "seed0" / "summary.json") for setting, method in [*PACKED, WIDE]]
    since = dt.datetime.now() - dt.timedelta(seconds=5)
    proc = run_snakemake_on_slurm(workdir, targets, ["--configfile", str(workdir / "config.yaml")], timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"results": results, "jobs": {row["JobID"]: row for row in workflow_jobs(workdir, since)}}


def placement(results, setting, method):
    summary = json.loads((results / setting / method / "seed0" / "summary.json").read_text())
    return summary["provenance"]["placement"]


def test_two_packed_trainings_share_one_job_each_on_its_own_gpu(placed_runs):
    results, jobs = placed_runs["results"], placed_runs["jobs"]
    seen = [placement(results, setting, method) for setting, method in PACKED]

    job_ids = {p["SLURM_JOB_ID"] for p in seen}
    assert len(job_ids) == 1, seen
    job = jobs[job_ids.pop()]
    assert (job["Partition"], job["State"], job["ExitCode"]) == ("gpu", "COMPLETED", "0:0"), job
    assert "gres/gpu=2" in job["AllocTRES"].split(","), job
    gpus = [p["CUDA_VISIBLE_DEVICES"] for p in seen]
    assert all("," not in g for g in gpus) and len(set(gpus)) == 2, seen  # one GPU each, not the same one
    assert set(gpus) <= set(seen[0]["SLURM_STEP_GPUS"].split(",")), seen  # both among the step's GPUs
    for setting, method in PACKED:  # a log per run, naming its GPU
        log = (results / "logs" / "train" / setting / method / "seed0.log").read_text()
        assert f"pinned to GPU {placement(results, setting, method)['CUDA_VISIBLE_DEVICES']} " in log, log


def test_a_gpus_per_run_2_training_is_one_job_with_two_gpus_and_two_processes(placed_runs):
    results, jobs = placed_runs["results"], placed_runs["jobs"]
    seen = placement(results, *WIDE)

    job = jobs[seen["SLURM_JOB_ID"]]
    assert (job["Partition"], job["State"], job["ExitCode"]) == ("gpu", "COMPLETED", "0:0"), job
    assert "gres/gpu=2" in job["AllocTRES"].split(","), job
    assert seen["WORLD_SIZE"] == "2" and len(seen["CUDA_VISIBLE_DEVICES"].split(",")) == 2, seen
    assert len(jobs) == 2, jobs  # the packed job and this one: light rules ran on the submitting host
    epochs = [json.loads(line)["epoch"] for line in (results / WIDE[0] / WIDE[1] / "seed0" / "metrics.jsonl").open()]
    assert epochs == [0, 1]


def test_a_failing_packed_training_leaves_its_neighbours_finished_run(slurm_cluster, tmp_path):  # noqa: F811
    missing = tmp_path / "missing" / "best.pt"  # the failing run starts from a checkpoint that is not there
    settings = {"digits": {"dataset": "digits", "methods": ["at"]},
                "broken": {"dataset": "digits", "methods": ["at"],
                           "train": {"training": {"finetune_from": str(missing)}}}}  # fmt: skip
    results = tmp_path / "results"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(results, settings)))
    targets = [str(results / name / "at" / "seed0" / "summary.json") for name in settings]
    since = dt.datetime.now() - dt.timedelta(seconds=5)
    proc = run_snakemake_on_slurm(
        tmp_path, targets, ["--configfile", str(tmp_path / "config.yaml"), "--retries", "0"], timeout=900
    )

    assert proc.returncode != 0, proc.stderr[-4000:]
    (job,) = workflow_jobs(tmp_path, since)  # one job for both
    assert job["State"] == "FAILED" and "gres/gpu=2" in job["AllocTRES"].split(","), job
    assert (
        f"training.finetune_from: {missing} does not exist"
        in (results / "logs" / "train" / "broken" / "at" / "seed0.log").read_text()
    )
    neighbour = results / "digits" / "at" / "seed0"
    assert json.loads((neighbour / "summary.json").read_text())["epochs"] == 2  # trained to its end and kept
    assert placement(results, "digits", "at")["SLURM_JOB_ID"] == job["JobID"]
