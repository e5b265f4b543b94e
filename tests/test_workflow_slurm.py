"""profiles/slurm on a real single-node SLURM cluster: heavy rules become GPU jobs on the partition
the config names, light rules stay on the submitting host, and a training cut by its time limit
continues in the retried job instead of starting again."""

import json

import pytest
import yaml

from slurm_cluster import run_snakemake_on_slurm, sacct_jobs, slurm_cluster  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def tiny_config(results, epochs, train_runtime):
    return {
        "results_dir": str(results),
        "data_root": "data",
        "seeds": [0],
        "train": {"data": {"validation_size": 200, "num_workers": 0}, "model": {"arch": "small_cnn"},
                  "training": {"epochs": epochs, "lr": 0.05, "lr_milestones": [0.5]},
                  "evaluation": {"max_samples": 100}, "runtime": {"progress": False}},
        "evaluation": {"autoattack": {"n_ex": 10}, "pgd": {"steps": 5, "n_ex": 50}},
        "settings": {"digits": {"dataset": "digits", "methods": ["at"]}},
        "resources": {"train": {"gpu": 1, "threads": 1, "mem_mb": 1500, "runtime": train_runtime, "partition": "gpu"},
                      "finetune": {"gpu": 1, "threads": 1, "mem_mb": 1500, "runtime": 10, "partition": "gpu"},
                      "evaluate": {"gpu": 1, "threads": 1, "mem_mb": 1500, "runtime": 10, "partition": "gpu"},
                      "light": {"gpu": 0, "threads": 1, "mem_mb": 1000, "runtime": 5, "partition": "cpu"},
                      "light_local": True},
    }


def jobs_of(workdir):
    return [row for row in sacct_jobs(since="now-2hours") if row["WorkDir"] == str(workdir)]


def rule_of(row):
    """sacct's Comment of a job of the SLURM executor: rule_<name>_wildcards_<values>."""
    return row["Comment"].split("_wildcards")[0]


def test_heavy_rules_are_gpu_jobs_light_rules_run_locally(slurm_cluster, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(results, epochs=1, train_runtime=10)))
    proc = run_snakemake_on_slurm(tmp_path, [str(results / "digits" / "at" / "pgd.json")],
                                  ["--configfile", str(tmp_path / "config.yaml")], timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((results / "digits" / "at" / "pgd.json").read_text())["n_seeds"] == 1
    rows = jobs_of(tmp_path)
    by_rule = {rule_of(row): row for row in rows}
    assert set(by_rule) == {"rule_train", "rule_evaluate"}, rows  # fetch and aggregate_seeds ran locally
    for row in by_rule.values():
        assert row["Partition"] == "gpu" and row["State"] == "COMPLETED"
        assert "gres/gpu=1" in row["AllocTRES"].split(",")
    assert list((tmp_path / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))  # kept job logs


def test_time_limited_training_resumes_in_the_retried_job(slurm_cluster, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    # one-minute jobs, a training that needs several: each retry continues from the run's saved state
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(results, epochs=12, train_runtime=1)))
    proc = run_snakemake_on_slurm(tmp_path, [str(results / "digits" / "at" / "seed0" / "summary.json")],
                                  ["--configfile", str(tmp_path / "config.yaml"), "--retries", "10"], timeout=2400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    trains = [row for row in jobs_of(tmp_path) if rule_of(row) == "rule_train"]
    states = [row["State"].split()[0] for row in trains]
    assert len(trains) >= 2 and states[-1] == "COMPLETED" and "TIMEOUT" in states[:-1], states
    log = (results / "logs" / "train" / "digits" / "at" / "seed0.log").read_text()
    assert "resuming from" in log
    summary = json.loads((results / "digits" / "at" / "seed0" / "summary.json").read_text())
    assert summary["epochs"] == 12
    epochs = [json.loads(line)["epoch"] for line in (results / "digits" / "at" / "seed0" / "metrics.jsonl").open()]
    assert epochs == list(range(12))  # every epoch once: nothing restarted from scratch
