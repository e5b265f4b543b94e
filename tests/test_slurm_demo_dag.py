"""The demo DAG through the shipped `profiles/slurm` on a real single-node SLURM cluster.

Nothing of the workflow, the config or the profile is changed: a run adds, on its command line,
what a user of a cluster adds, i.e. a second config file (`--configfile config/demo.yaml site.yaml`)
with the cluster's partition names, GPU counts and runtimes (the demo asks for no GPU), and the test's
fast status polling. The DAG is cut to one setting, one method and one seed (`digits`, `at`, seed 0:
fetch, train, AutoAttack and PGD evaluation, seed aggregation) by its targets, with AutoAttack on 5
samples, and the training may use a GPU (`runtime.device: auto`; the demo pins the CPU) deterministically.

What is checked, each on the cluster's own records (sacct) or the run's files:
- heavy rules (train, evaluate) run as SLURM jobs, one each, in the `gpu` partition with one GPU;
  light rules run on the submitting host (`light_local: true`, the shipped default) or, with
  `light_local: false`, as jobs in the light partition without a GPU;
- the outputs equal those of the same DAG run with `profiles/local`, file for file and value for value
  (wall times and time stamps aside);
- a job that fails is reported as failed, is retried as often as the profile's `retries` says, and
  Snakemake then exits non-zero instead of hanging;
- a training cancelled with `scancel` mid-run is noticed, submitted again (the profile's `retries`) and
  resumes from its saved state; its log names the resumed epoch;
- a training that asks for CUDA on a node whose GPU is not a real one fails within a minute, its log
  naming the cause (no usable CUDA device, with the CUDA_VISIBLE_DEVICES SLURM set) and the fix,
  instead of training on the CPU.

About five minutes on two cores, most of it the failing run waiting for the plugin's status checks
(their interval grows by 10 s per check that finds no job finished; a failed job does not reset it).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from slurm_cluster import (  # noqa: F401  (slurm_cluster is a fixture)
    REPO,
    finish_snakemake,
    interrupt_snakemake,
    rule_of,
    run_snakemake_on_slurm,
    sacct_jobs,
    slurm_cluster,
    squeue_jobs,
    start_snakemake_on_slurm,
    workflow_jobs,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEFILE = REPO / "workflow" / "Snakefile"
DEMO_CONFIG = REPO / "config" / "demo.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "local"
PROFILE = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
RESULTS = yaml.safe_load(DEMO_CONFIG.read_text())["results_dir"]

SETTING, METHOD, SEED = "digits", "at", 0
RUN = f"{RESULTS}/{SETTING}/{METHOD}/seed{SEED}"
TRAIN_LOG = f"{RESULTS}/logs/train/{SETTING}/{METHOD}/seed{SEED}.log"
TARGETS = [f"{RESULTS}/{SETTING}/{METHOD}/aa.json", f"{RESULTS}/{SETTING}/{METHOD}/pgd.json"]
HEAVY_RULES = {"train", "evaluate"}
LIGHT_RULES = {"fetch", "aggregate_seeds"}
GPU_PARTITION, LIGHT_PARTITION = "gpu", "cpu"

# Keys whose values differ between two runs of the same computation: durations, time stamps and where it ran
# (SLURM job, GPUs), and the checkpoint's hash (the checkpoint stores its epoch's metrics, epoch_seconds included).
VOLATILE_KEYS = {"epoch_seconds", "wall_time_s", "created", "placement"}
VOLATILE_PATHS = {("checkpoint", "sha256")}

NO_GPU = re.compile(
    r"^iseat train: error: device cuda: no usable CUDA device \(CUDA_VISIBLE_DEVICES=(\S+)\).*; fix: .+$", re.M
)
RESUMED = re.compile(r"^resuming from (\S+): epoch (\d+), batch (\d+)$", re.M)
# Long enough for a cold cluster shared with other test sessions; a normal run takes a fraction of it.
RUN_TIMEOUT_S = 600


def site_config(path: Path, **extra) -> list[str]:
    """Write what a user adds for their cluster to the demo config; return the `--configfile` arguments."""
    heavy = {"gpu": 1, "partition": GPU_PARTITION, "runtime": 10}
    config = {
        "train": {"runtime": {"device": "auto", "deterministic": True}},
        "evaluation": {"autoattack": {"n_ex": 5}},
        "resources": {
            "train": heavy,
            "finetune": heavy,
            "evaluate": heavy,
            "light": {"partition": LIGHT_PARTITION, "runtime": 5},
        },
    }
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--configfile", str(DEMO_CONFIG), str(path)]


def run_snakemake_locally(workdir: Path, targets, extra_args, timeout=RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(SNAKEFILE),
           "--profile", str(LOCAL_PROFILE), "--workflow-profile", "none", *extra_args]  # fmt: skip
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


def tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-n:]}\n--- stderr ---\n{proc.stderr[-n:]}"


def since_now() -> dt.datetime:
    return dt.datetime.now() - dt.timedelta(seconds=5)


# ----------------------------------------------------------------------------- comparing two runs


def normalized(value, path=()):
    """`value` without durations and time stamps, floats compared exactly (NaN equal to NaN)."""
    if isinstance(value, dict):
        return {k: normalized(v, (*path, k)) for k, v in value.items()
                if k not in VOLATILE_KEYS and (*path[-1:], k) not in VOLATILE_PATHS}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [normalized(v, path) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def differences(a: Path, b: Path) -> list[str]:
    """Where two results folders differ in structure or in deterministic values."""
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return [f"file lists differ: only local {sorted(set(files_a) - set(files_b))}, "
                f"only SLURM {sorted(set(files_b) - set(files_a))}"]  # fmt: skip
    found = []
    for name in files_a:
        fa, fb = a / name, b / name
        if name.endswith(".log") or ".log.attempt" in name:
            continue  # durations and the device line; what they must say is checked on its own
        if name.endswith(".json"):
            same = normalized(json.loads(fa.read_text())) == normalized(json.loads(fb.read_text()))
        elif name.endswith(".jsonl"):
            same = [normalized(json.loads(x)) for x in fa.read_text().splitlines()] == [
                normalized(json.loads(x)) for x in fb.read_text().splitlines()
            ]
        elif name.endswith(".pt"):
            same = same_checkpoint(fa, fb)
        elif name.endswith(".h5"):
            same = same_hdf5(fa, fb)
        else:
            same = fa.read_bytes() == fb.read_bytes()
        if not same:
            found.append(name)
    return found


def same_checkpoint(a: Path, b: Path) -> bool:
    import torch

    def equal(x, y, path=()):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict):
            keys = {k for k in x if k not in VOLATILE_KEYS}
            return (
                isinstance(y, dict)
                and keys == {k for k in y if k not in VOLATILE_KEYS}
                and all(equal(x[k], y[k], (*path, k)) for k in keys)
            )
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(equal, x, y))
        return normalized(x) == normalized(y)

    return equal(
        torch.load(a, map_location="cpu", weights_only=False), torch.load(b, map_location="cpu", weights_only=False)
    )


def same_hdf5(a: Path, b: Path) -> bool:
    import h5py
    import numpy as np

    def items(f):
        found = {}
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()] if isinstance(obj, h5py.Dataset) else None))
        return found

    def attributes(f):  # JSON attributes (the provenance) without what differs by design (placement)
        return {k: normalized(json.loads(v)) if k == "provenance" else v for k, v in f.attrs.items()}

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = items(fa), items(fb)
        return (attributes(fa) == attributes(fb) and da.keys() == db.keys()
                and all(np.array_equal(da[k], db[k], equal_nan=True) for k in da if da[k] is not None))  # fmt: skip


# ----------------------------------------------------------------------------- the runs, side by side

# Most of a run's time is spent waiting for the plugin's next status check: its interval grows by 10 s per
# check that finds no job finished, and a failed job does not reset it, so a job failing 1 + retries times
# keeps Snakemake busy for about five minutes while using the cluster for half a minute. That run goes
# beside the other two, which follow each other (the node has 2 CPUs; a training needs one).
SCENARIOS = {
    "failing_run": "failing_scenario",
    "demo_runs": "demo_scenario",
    "cancelled_run": "cancelled_scenario",
    "fake_gpu_run": "fake_gpu_scenario",
}


@pytest.fixture(scope="module")
def scenarios(request, slurm_cluster, tmp_path_factory):  # noqa: F811
    """Start the runs the selected tests need, side by side; {fixture name: future of its result}."""
    assert {GPU_PARTITION, LIGHT_PARTITION} <= set(slurm_cluster.partitions), slurm_cluster
    tests = [item for item in request.session.items if getattr(item, "module", None) is request.module]
    needed = [name for name in SCENARIOS if any(name in item.fixturenames for item in tests)]
    with ThreadPoolExecutor(2) as pool:  # first come, first served: failing | demo, then cancelled
        yield {name: pool.submit(globals()[SCENARIOS[name]], tmp_path_factory) for name in needed}


@pytest.fixture(scope="module")
def demo_runs(scenarios):
    return scenarios["demo_runs"].result()


@pytest.fixture(scope="module")
def failing_run(scenarios):
    return scenarios["failing_run"].result()


@pytest.fixture(scope="module")
def cancelled_run(scenarios):
    return scenarios["cancelled_run"].result()


# ----------------------------------------------------------------------------- the demo, locally and on SLURM


def demo_scenario(tmp_path_factory) -> dict:
    """The reduced demo DAG run with profiles/local and with profiles/slurm, side by side."""
    local_dir, slurm_dir = tmp_path_factory.mktemp("demo-local"), tmp_path_factory.mktemp("demo-slurm")
    local_args, slurm_args = site_config(local_dir / "site.yaml"), site_config(slurm_dir / "site.yaml")
    since = since_now()
    with ThreadPoolExecutor(2) as pool:
        local = pool.submit(timed, run_snakemake_locally, local_dir, TARGETS, local_args)
        slurm = pool.submit(timed, run_snakemake_on_slurm, slurm_dir, TARGETS, slurm_args, timeout=RUN_TIMEOUT_S)
        (local_proc, local_s), (slurm_proc, slurm_s) = local.result(), slurm.result()
    print(f"\ndemo DAG: local profile {local_s:.0f} s, SLURM profile {slurm_s:.0f} s")
    assert local_proc.returncode == 0, f"local profile:\n{tail(local_proc)}"
    assert slurm_proc.returncode == 0, f"SLURM profile:\n{tail(slurm_proc)}"
    return {"local": local_dir, "slurm": slurm_dir, "proc": slurm_proc, "jobs": workflow_jobs(slurm_dir, since)}


def test_heavy_rules_are_one_gpu_job_each_light_rules_run_on_the_submitting_host(demo_runs):
    jobs = demo_runs["jobs"]
    by_rule = {}
    for row in jobs:
        by_rule.setdefault(rule_of(row), []).append(row)

    # train once, evaluate once per evaluation (aa, pgd): each its own job, none retried
    assert {rule: len(rows) for rule, rows in by_rule.items()} == {"train": 1, "evaluate": 2}, jobs
    for row in jobs:
        assert (row["Partition"], row["State"], row["ExitCode"]) == (GPU_PARTITION, "COMPLETED", "0:0"), row
        assert "gres/gpu=1" in row["AllocTRES"].split(","), row
    assert len({row["JobID"] for row in jobs}) == len(jobs)
    # light rules (light_local: true): Snakemake ran them itself, so they never reached the cluster
    log = demo_runs["proc"].stdout + demo_runs["proc"].stderr
    for rule in LIGHT_RULES:
        assert f"localrule {rule}:" in log, f"{rule} did not run on the submitting host"
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert sorted(submitted, key=int) == [row["JobID"] for row in jobs]
    assert list((demo_runs["slurm"] / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))  # kept


def test_slurm_outputs_equal_the_local_profiles(demo_runs):
    local, slurm = demo_runs["local"] / RESULTS, demo_runs["slurm"] / RESULTS

    assert differences(local, slurm) == []
    # the comparison saw the results it is about
    for run in (local, slurm):
        for evaluation in ("aa", "pgd"):
            assert json.loads((run / SETTING / METHOD / f"{evaluation}.json").read_text())["n_seeds"] == 1
    aa_local, aa_slurm = (
        json.loads((d / RUN / "aa.json").read_text()) for d in (demo_runs["local"], demo_runs["slurm"])
    )
    assert aa_local["n_examples"] == 5
    for key in ("clean_accuracy", "robust_accuracy", "n_robust", "n_clean_correct"):
        assert aa_local[key] == aa_slurm[key], key


def fake_gpu_scenario(tmp_path_factory) -> dict:
    """The demo's training asking for CUDA (as a GPU job of the paper's config does) on the cluster's
    fake GPU, without retries."""
    workdir = tmp_path_factory.mktemp("fake_gpu")
    args = site_config(workdir / "site.yaml", train={"runtime": {"device": "cuda"}})
    since = since_now()
    proc = run_snakemake_on_slurm(workdir, [f"{RUN}/summary.json"], [*args, "--retries", "0"], timeout=RUN_TIMEOUT_S)
    return {"dir": workdir, "proc": proc, "jobs": workflow_jobs(workdir, since)}


@pytest.fixture(scope="module")
def fake_gpu_run(scenarios):
    return scenarios["fake_gpu_run"].result()


def test_training_on_a_fake_gpu_fails_fast_naming_the_cause(fake_gpu_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a real GPU: the cluster's GPUs may be real ones")
    proc, workdir = fake_gpu_run["proc"], fake_gpu_run["dir"]
    assert proc.returncode != 0, tail(proc)
    trains = [row for row in fake_gpu_run["jobs"] if rule_of(row) == "train"]
    assert len(trains) == 1 and trains[0]["State"] == "FAILED" and "gres/gpu=1" in trains[0]["AllocTRES"], trains
    elapsed = sacct_jobs(job_ids=[trains[0]["JobID"]], fields=("JobID", "Elapsed"))[0]["Elapsed"]
    assert sum(int(x) * 60**i for i, x in enumerate(reversed(elapsed.split(":")))) < 60, elapsed
    log = (workdir / f"{TRAIN_LOG}.attempt1").read_text()
    failure = NO_GPU.search(log)
    assert failure, f"no device failure line in the SLURM training log:\n{log}"
    assert failure.group(1) not in ("", "NoDevFiles")  # SLURM gave the job a GPU
    assert not (workdir / RUN / "summary.json").exists() and not (workdir / RUN / "config.yaml").exists()


# ----------------------------------------------------------------------------- a failing job


def failing_scenario(tmp_path_factory) -> dict:
    """The demo DAG with a training that cannot start: it points at a fine-tuning checkpoint that does not
    exist (the workflow's schema takes any path; `iseat train` refuses it)."""
    workdir = tmp_path_factory.mktemp("failing")
    missing = workdir / "no-such-run" / "best.pt"
    args = site_config(workdir / "site.yaml", train={"training": {"finetune_from": str(missing)}})
    since = since_now()
    try:
        proc, seconds = timed(run_snakemake_on_slurm, workdir, TARGETS, args, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"snakemake hung after a failing job (killed after {RUN_TIMEOUT_S} s):\n"
                             f"{hung.stderr[-3000:]}") from None  # fmt: skip
    print(f"\nfailing DAG: {seconds:.0f} s")
    return {"dir": workdir, "proc": proc, "jobs": workflow_jobs(workdir, since), "missing": missing}


def test_failing_job_is_reported_failed_retried_per_profile_and_snakemake_exits_nonzero(failing_run):
    proc, jobs = failing_run["proc"], failing_run["jobs"]
    trains = [row for row in jobs if rule_of(row) == "train"]

    assert proc.returncode != 0, tail(proc)
    assert len(trains) == 1 + PROFILE["retries"], [(row["JobID"], row["State"]) for row in trains]
    for row in trains:
        assert (row["Partition"], row["State"]) == (GPU_PARTITION, "FAILED"), row
        assert row["ExitCode"] != "0:0", row
        assert f"SLURM-job '{row['JobID']}' failed, SLURM status is: 'FAILED'" in proc.stderr
    assert "Error in rule train" in proc.stderr
    # show-failed-logs: the reason is in Snakemake's own output
    assert f"training.finetune_from: {failing_run['missing']} does not exist" in proc.stderr
    # nothing downstream of the failed training ran
    assert {rule_of(row) for row in jobs} == {"train"}
    assert not (failing_run["dir"] / RUN / "summary.json").exists()


# ----------------------------------------------------------------------------- a cancelled training


def wait_for(condition, what: str, timeout: float, poll: float = 0.25, give_up=lambda: None):
    """Poll `condition` until it returns something true, and return that; fail after `timeout` or as soon as
    `give_up` returns a reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        reason = give_up()
        if reason:
            raise AssertionError(f"{what}: {reason}")
        time.sleep(poll)
    raise AssertionError(f"{what}: not after {timeout} s")


def train_jobs_in_queue(workdir: Path, state: str | None = None) -> list[str]:
    """IDs of the training jobs from `workdir` that squeue shows (sacct names a job's rule only once it ended)."""
    return [
        row["JobID"]
        for row in squeue_jobs()
        if row["WorkDir"] == str(workdir) and rule_of(row) == "train" and state in (None, row["State"])
    ]


# How long Snakemake gets to notice a cancelled job: two of the plugin's status checks (its interval grows
# by 10 s per check that finds nothing finished, from --slurm-init-seconds-before-status-checks).
NOTICE_S = 60


def cancelled_scenario(tmp_path_factory) -> dict:
    """Train `digits/at/seed0` on SLURM and `scancel` the job once the first epoch is saved; Snakemake should
    notice, report the job failed and submit it again (the profile's retries). Light rules as cluster jobs."""
    workdir = tmp_path_factory.mktemp("cancelled")
    args = site_config(workdir / "site.yaml", resources={"light_local": False})
    target, run = f"{RUN}/summary.json", workdir / RUN
    since, start = since_now(), time.monotonic()
    proc = start_snakemake_on_slurm(workdir, [target], args)
    try:
        ended = lambda: proc.poll() is not None and f"snakemake ended early (exit {proc.returncode})"  # noqa: E731
        # the first epoch is done and saved, the second is running: something to resume from, and work left
        wait_for(lambda: (run / "state.pt").exists() and (run / "metrics.jsonl").exists(),
                 "the training's first epoch", RUN_TIMEOUT_S, give_up=ended)  # fmt: skip
        (job,) = wait_for(
            lambda: train_jobs_in_queue(workdir, "RUNNING"), "the running training job", 60, give_up=ended
        )
        assert not (run / "summary.json").exists(), "the training finished before it could be cancelled"
        subprocess.run(["scancel", job], check=True)  # SIGTERM to the job's processes, SIGKILL after KillWait
        wait_for(
            lambda: set(train_jobs_in_queue(workdir)) - {job},
            f"Snakemake submitting the training again after job {job} was cancelled",
            NOTICE_S,
            give_up=ended,
        )
        noticed_s = time.monotonic() - start
    except BaseException:
        interrupt_snakemake(proc)
        raise
    final = finish_snakemake(proc, timeout=RUN_TIMEOUT_S)
    print(f"\ncancelled training: resubmitted after {noticed_s:.0f} s, done in {time.monotonic() - start:.0f} s")
    return {"dir": workdir, "job": job, "proc": final, "jobs": workflow_jobs(workdir, since)}


def test_cancelled_training_is_submitted_again_and_resumes_from_its_checkpoint(cancelled_run):
    workdir, run, proc = cancelled_run["dir"], cancelled_run["dir"] / RUN, cancelled_run["proc"]
    trains = [row for row in cancelled_run["jobs"] if rule_of(row) == "train"]

    assert proc.returncode == 0, tail(proc)
    assert f"SLURM-job '{cancelled_run['job']}' failed, SLURM status is: 'CANCELLED'" in proc.stderr, tail(proc)
    assert [row["JobID"] for row in trains][0] == cancelled_run["job"]
    assert [row["State"].split()[0] for row in trains] == ["CANCELLED", "COMPLETED"], trains
    assert all(row["Partition"] == GPU_PARTITION and "gres/gpu=1" in row["AllocTRES"].split(",") for row in trains)
    log = (workdir / TRAIN_LOG).read_text()  # the second job's
    resumed = RESUMED.search(log)
    assert resumed, f"the second training job did not resume:\n{log}"
    assert resumed.group(1) == f"{RUN}/state.pt"
    assert int(resumed.group(2)) >= 1, f"resumed before the saved first epoch:\n{log}"  # epochs count from 0 here
    assert not re.search(r"^epoch 1:", log, re.M), f"the second job trained the first epoch again:\n{log}"
    assert re.search(r"^epoch 2:", log, re.M), log
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    demo_epochs = yaml.safe_load(DEMO_CONFIG.read_text())["train"]["training"]["epochs"]
    assert epochs == list(range(demo_epochs))  # each epoch once: the run continued, it did not start over
    assert json.loads((run / "summary.json").read_text())["epochs"] == demo_epochs


def test_light_rules_not_kept_local_are_cpu_jobs_without_gpu(cancelled_run):
    fetches = [row for row in cancelled_run["jobs"] if rule_of(row) == "fetch"]

    assert len(fetches) == 1, cancelled_run["jobs"]
    row = fetches[0]
    assert (row["Partition"], row["State"], row["ExitCode"]) == (LIGHT_PARTITION, "COMPLETED", "0:0"), row
    assert not any(tres.startswith("gres/gpu") for tres in row["AllocTRES"].split(",")), row
