"""Placing trainings on a cluster's GPUs (iseat.workflow.cluster) and one GPU per packed training
(iseat.common.gpu_slots), without Snakemake or SLURM."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types

import pytest

from iseat.common import gpu_slots
from iseat.workflow import cluster
from iseat.workflow.run_config import RunConfigs


def workflow_config(gpus_per_node=None, **gpus_per_run):
    settings = {name: {"gpus_per_run": n} for name, n in gpus_per_run.items()}
    settings.setdefault("plain", {})
    config = {"settings": settings}
    if gpus_per_node is not None:
        config["cluster"] = {"gpus_per_node": gpus_per_node}
    return config


def test_by_default_every_training_is_a_job_of_its_own_started_as_iseat():
    config = workflow_config()
    assert cluster.gpus_per_node(config) == 1
    assert cluster.pack_group(config, 1) is None
    assert cluster.group_components(config) == {}
    assert cluster.launch_prefix(config, 1) == "iseat"


def test_packing_groups_single_gpu_trainings_up_to_the_node_and_pins_each_to_a_gpu():
    config = workflow_config(gpus_per_node=4)
    assert cluster.pack_group(config, 1) == cluster.PACK_GROUP
    assert cluster.group_components(config) == {cluster.PACK_GROUP: 4}
    assert cluster.launch_prefix(config, 1) == "iseat --pin-gpu"


def test_cpu_and_multi_gpu_trainings_are_never_packed():
    config = workflow_config(gpus_per_node=4)
    assert cluster.pack_group(config, 0) is None
    assert cluster.launch_prefix(config, 0) == "iseat"
    assert cluster.pack_group(config, 2) is None


def test_a_multi_gpu_run_is_launched_by_torchrun_with_one_process_per_gpu():
    config = workflow_config(wide=3)
    assert cluster.training_gpus(config, "wide", requested=1) == 3
    assert cluster.training_gpus(config, "plain", requested=0) == 0  # no gpus_per_run: the resource decides
    assert cluster.launch_prefix(config, 3) == "torchrun --standalone --nproc_per_node=3 -m iseat"


def test_gpus_per_run_sets_the_gpu_resource_of_training_jobs_only():
    config = {"settings": {"wide": {"gpus_per_run": 2}}, "resources": {"train": {"gpu": 1}}}
    runs = RunConfigs.__new__(RunConfigs)  # job_resources reads only the config and its settings
    runs.config, runs.settings = config, config["settings"]
    assert runs.job_resources("train", "wide")["gpu"] == 2
    assert runs.job_resources("finetune", "wide")["gpu"] == 2
    assert runs.job_resources("evaluate", "wide")["gpu"] == 1


def test_a_run_wider_than_a_node_is_refused_naming_the_keys():
    with pytest.raises(cluster.ClusterConfigError, match=r"settings\.wide\.gpus_per_run: 8 GPUs .*gpus_per_node=4"):
        cluster.check(workflow_config(gpus_per_node=4, wide=8))
    cluster.check(workflow_config(gpus_per_node=4, wide=4))
    cluster.check(workflow_config(wide=8))  # gpus_per_node not given: the node's size is not known


def snakemake_run(group_components):
    return types.SimpleNamespace(
        group_settings=types.SimpleNamespace(group_components=group_components),
        execution_settings=types.SimpleNamespace(keep_incomplete=False),
    )


def test_packing_sets_the_group_size_and_keeps_a_failed_groups_outputs_the_command_line_wins():
    run = snakemake_run({})
    cluster.apply_packing(run, workflow_config(gpus_per_node=4))
    assert run.group_settings.group_components == {cluster.PACK_GROUP: 4}
    assert run.execution_settings.keep_incomplete  # a finished neighbour's summary.json stays

    given = snakemake_run({cluster.PACK_GROUP: 2, "other": 3})
    cluster.apply_packing(given, workflow_config(gpus_per_node=4))
    assert given.group_settings.group_components == {cluster.PACK_GROUP: 2, "other": 3}

    unpacked = snakemake_run({})
    cluster.apply_packing(unpacked, workflow_config())
    assert unpacked.group_settings.group_components == {} and not unpacked.execution_settings.keep_incomplete


# ----------------------------------------------------------------------------- GPU slots

CLAIM = """
import sys, time
from iseat.common import gpu_slots
print(gpu_slots.pin(say=lambda *args, **kwargs: None), flush=True)
time.sleep(float(sys.argv[1]))
"""


def start_claim(env, hold_s):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(hold_s)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def job_env(tmp_path):
    return dict(os.environ, CUDA_VISIBLE_DEVICES="3,5", SLURM_JOB_ID="test", TMPDIR=str(tmp_path))


def first_line(proc):
    return proc.stdout.readline().strip()


def test_packed_trainings_get_distinct_gpus_and_a_third_is_refused(job_env):
    first, second = start_claim(job_env, 30), None
    try:
        pinned_first = first_line(first)
        second = start_claim(job_env, 30)
        pinned_second = first_line(second)
        assert pinned_first.endswith("3") and pinned_second.endswith("5"), (pinned_first, pinned_second)
        third = subprocess.run(
            [sys.executable, "-m", "iseat", "--pin-gpu", "--attempt", "1", "train", "--out", str(job_env["TMPDIR"])],
            env=job_env,
            capture_output=True,
            text=True,
        )
        assert third.returncode == 2
        assert third.stderr.startswith("iseat train: error: all 2 GPUs of this job (CUDA_VISIBLE_DEVICES=3,5) are ")
        assert len(third.stderr.strip().splitlines()) == 1
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_a_gpu_is_free_again_when_its_training_dies(job_env):
    first = start_claim(job_env, 30)
    assert first_line(first).endswith("3")
    first.kill()
    first.wait()
    again = start_claim(job_env, 0)
    out, _ = again.communicate(timeout=60)
    assert out.strip().splitlines()[-1].endswith("3")


def test_pin_narrows_cuda_visible_devices_and_leaves_a_single_gpu_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(gpu_slots, "_held", [])
    env = {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "pin-test"}
    said = []
    assert gpu_slots.pin(env, say=lambda line, **kwargs: said.append(line)) == "0"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert said == ["pinned to GPU 0 of this job's CUDA_VISIBLE_DEVICES=0,1"]
    gpu_slots._held[0].close()
    single = {"CUDA_VISIBLE_DEVICES": "2"}
    assert gpu_slots.pin(single) is None and single["CUDA_VISIBLE_DEVICES"] == "2"
    assert gpu_slots.pin({}) is None


def test_counts_given_as_strings_by_snakemakes_config_option_are_numbers():
    config = {"cluster": {"gpus_per_node": "4"}, "settings": {"wide": {"gpus_per_run": "2"}}}
    assert cluster.gpus_per_node(config) == 4
    assert cluster.training_gpus(config, "wide", requested=1) == 2
