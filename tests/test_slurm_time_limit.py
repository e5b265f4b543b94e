"""profiles/slurm on a real single-node SLURM cluster: a training cut by its job's time limit continues in
the retried job instead of starting again. (tests/test_slurm_demo_dag.py covers where jobs run, failures,
scancel and the comparison with the local profile.)"""

import datetime as dt
import json

import pytest
import yaml
from slurm_cluster import rule_of, run_snakemake_on_slurm, slurm_cluster, workflow_jobs  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def tiny_config(results, epochs, train_runtime):
    heavy = {"gpu": 1, "threads": 1, "mem_mb": 1500, "partition": "gpu"}
    return {
        "results_dir": str(results),
        "data_root": "data",
        "seeds": [0],
        "train": {"data": {"validation_size": 200, "num_workers": 0}, "model": {"arch": "small_cnn"},
                  "training": {"epochs": epochs, "lr": 0.05, "lr_milestones": [0.5]},
                  "evaluation": {"max_samples": 100}, "runtime": {"progress": False, "device": "cpu"}},  # fake GPUs
        "evaluation": {"autoattack": {"n_ex": 10}, "pgd": {"steps": 5, "n_ex": 50}},
        "settings": {"digits": {"dataset": "digits", "methods": ["at"]}},
        "resources": {"train": heavy | {"runtime": train_runtime},
                      "finetune": heavy | {"runtime": 10},
                      "evaluate": heavy | {"runtime": 10},
                      "light": {"gpu": 0, "threads": 1, "mem_mb": 1000, "runtime": 5, "partition": "cpu"},
                      "light_local": True},
    }  # fmt: skip


def test_time_limited_training_resumes_in_the_retried_job(slurm_cluster, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    run = results / "digits" / "at" / "seed0"
    # one-minute jobs, a training that needs several: each retry continues from the run's saved state (24
    # epochs of one thread take about 2 minutes on an idle 2-core machine, 12 fit in one job's minute)
    epochs = 24
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(results, epochs=epochs, train_runtime=1)))
    since = dt.datetime.now() - dt.timedelta(seconds=5)
    proc = run_snakemake_on_slurm(
        tmp_path,
        [str(run / "summary.json")],
        ["--configfile", str(tmp_path / "config.yaml"), "--retries", "10"],
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    trains = [row for row in workflow_jobs(tmp_path, since) if rule_of(row) == "train"]
    states = [row["State"].split()[0] for row in trains]
    assert len(trains) >= 2 and states[-1] == "COMPLETED" and "TIMEOUT" in states[:-1], states
    assert all(row["Partition"] == "gpu" and "gres/gpu=1" in row["AllocTRES"].split(",") for row in trains), trains
    log = (results / "logs" / "train" / "digits" / "at" / "seed0.log").read_text()
    assert "resuming from" in log
    assert json.loads((run / "summary.json").read_text())["epochs"] == epochs
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").open()] == list(range(epochs))
