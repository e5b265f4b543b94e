"""Smoke test of the SLURM test cluster: GPU jobs, failures and cancellations reach sacct as on a real cluster."""

import subprocess
import textwrap

import pytest
from slurm_cluster import (  # noqa: F401  (slurm_cluster is a fixture)
    run_snakemake_on_slurm,
    sacct_jobs,
    sbatch,
    slurm_cluster,
    wait_for_job,
    wait_for_state,
)

pytestmark = pytest.mark.slurm


def test_cluster_has_a_default_cpu_partition_and_a_gpu_partition(slurm_cluster):
    assert slurm_cluster.partitions == ("cpu", "gpu")
    assert slurm_cluster.default_partition == "cpu"
    assert slurm_cluster.gpus >= 1


@pytest.fixture(scope="module")
def smoke_jobs(slurm_cluster, tmp_path_factory):
    """Submit the smoke jobs together, so that the tests wait for them side by side."""
    out = tmp_path_factory.mktemp("smoke")
    return {
        "gpu": sbatch(
            "--partition=gpu",
            "--gpus=1",
            "--job-name=iseat-smoke-gpu",
            f"--output={out / 'gpu.out'}",
            "--wrap",
            'echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"',
        ),  # fmt: skip
        "gpu_output": out / "gpu.out",
        "exit3": sbatch("--job-name=iseat-smoke-exit3", f"--output={out / 'exit3.out'}", "--wrap", "exit 3"),
        "sleep": sbatch("--job-name=iseat-smoke-sleep", f"--output={out / 'sleep.out'}", "--wrap", "sleep 300"),
    }


def test_gpu_job_gets_one_gpu_and_completes(smoke_jobs):
    row = wait_for_job(smoke_jobs["gpu"])

    assert (row["Partition"], row["State"], row["ExitCode"]) == ("gpu", "COMPLETED", "0:0")
    assert "gres/gpu=1" in row["AllocTRES"].split(","), row["AllocTRES"]
    visible = smoke_jobs["gpu_output"].read_text().strip().removeprefix("CUDA_VISIBLE_DEVICES=")
    assert visible not in ("", "unset"), "the job saw no CUDA_VISIBLE_DEVICES"


def test_failing_job_is_failed_with_its_exit_code(smoke_jobs):
    row = wait_for_job(smoke_jobs["exit3"])

    assert (row["Partition"], row["State"], row["ExitCode"]) == ("cpu", "FAILED", "3:0")


def test_cancelled_job_is_cancelled(smoke_jobs):
    job = smoke_jobs["sleep"]
    wait_for_state(job, "RUNNING")

    subprocess.run(["scancel", job], check=True)
    row = wait_for_job(job)

    assert row["State"].split()[0] == "CANCELLED", row["State"]


@pytest.mark.slow
def test_snakemake_gpu_rule_runs_on_the_gpu_partition(slurm_cluster, tmp_path):
    """The plumbing the workflow's SLURM profile relies on: executor plugin, --gpus, sacct status."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """\
            rule all:
                input: "gpu.txt"

            rule on_gpu:
                output: "gpu.txt"
                resources: gpu=1, slurm_partition="gpu", runtime=5
                shell: "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES > {output}"
            """
        )
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("executor: slurm\njobs: 2\n")

    proc = run_snakemake_on_slurm(tmp_path, ["all"], profile=profile, snakefile=tmp_path / "Snakefile", timeout=600)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "gpu.txt").read_text().strip() != "CUDA_VISIBLE_DEVICES="
    jobs = [row["JobID"] for row in sacct_jobs(since="now-1hour") if row["WorkDir"] == str(tmp_path)]
    assert len(jobs) == 1, f"expected one SLURM job from {tmp_path}, sacct shows {jobs}"
    row = wait_for_job(jobs[0])
    assert (row["Comment"], row["Partition"], row["State"]) == ("rule_on_gpu", "gpu", "COMPLETED")
    assert "gres/gpu=1" in row["AllocTRES"].split(",")
