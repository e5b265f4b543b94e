"""A real single-node SLURM cluster for the tests: the `slurm_cluster` fixture, helpers to submit jobs and read sacct.

Use in a test module::

    import pytest
    from slurm_cluster import slurm_cluster, sacct_jobs, run_snakemake_on_slurm  # noqa: F401  (fixture)

    pytestmark = pytest.mark.slurm

The fixture starts the cluster with tests/slurm/start-cluster.sh (Debian's slurm packages, slurmdbd with
MariaDB, partitions `cpu` (default) and `gpu` with fake GPUs) unless it runs, and stops a cluster a test
session started when the last session using it ends. It skips where that cannot run: not root, no apt-get,
or ISEAT_SKIP_SLURM=1. ISEAT_KEEP_SLURM=1 leaves the cluster running, so the next session needs no start.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START_SCRIPT = REPO / "tests" / "slurm" / "start-cluster.sh"
STOP_SCRIPT = REPO / "tests" / "slurm" / "stop-cluster.sh"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# A cold start installs packages and initialises MariaDB: about a minute on a busy 2-core machine.
START_TIMEOUT_S = 900
SACCT_FIELDS = ("JobID", "JobName", "Partition", "Account", "State", "ExitCode", "AllocTRES", "WorkDir", "Comment")
# States after which a job does not change any more (sacct writes "CANCELLED by <uid>": compare the first word).
FINAL_STATES = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
)
# Overrides that make the SLURM executor plugin notice finished jobs quickly (defaults: 40 s, then 10 s).
FAST_POLLING_ARGS = ("--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1")


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    """What a test needs to know about the running cluster (read back from sinfo, not assumed)."""

    node: str
    partitions: tuple[str, ...]
    default_partition: str
    gpus: int
    state_dir: Path
    started_here: bool


def skip_reason() -> str | None:
    """Why the cluster cannot be started on this machine, or None if it can."""
    if os.environ.get("ISEAT_SKIP_SLURM") == "1":
        return "ISEAT_SKIP_SLURM=1 is set"
    if not sys.platform.startswith("linux"):
        return f"needs Linux with Debian's slurm packages, this is {sys.platform}"
    if os.geteuid() != 0:
        return "needs root: tests/slurm/start-cluster.sh installs Debian's slurm packages and starts the daemons"
    if shutil.which("apt-get") is None and shutil.which("slurmctld", path=_SYSTEM_PATH) is None:
        return "needs apt-get to install SLURM from Debian's packages (not found, and slurmctld is not installed)"
    return None


def _run(cmd: Sequence[str | os.PathLike], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


def _read_cluster(started_here: bool) -> SlurmCluster:
    out = _run(["sinfo", "-h", "-o", "%P|%N|%G"], check=True).stdout
    partitions, nodes, gpus, default = [], set(), 0, None
    for line in out.splitlines():
        name, node, gres = line.split("|")
        if name.endswith("*"):
            name = default = name[:-1]
        partitions.append(name)
        nodes.add(node)
        for item in gres.split(","):
            if item.startswith("gpu:"):
                gpus = max(gpus, int(item.rsplit(":", 1)[1].split("(")[0]))
    assert len(nodes) == 1, f"expected a single-node cluster, sinfo shows nodes {sorted(nodes)}"
    return SlurmCluster(nodes.pop(), tuple(partitions), default or partitions[0], gpus, _state_dir(), started_here)


def _state_dir() -> Path:
    return Path(os.environ.get("ISEAT_SLURM_DIR", "/var/tmp/iseat-slurm"))


@pytest.fixture(scope="session")
def slurm_cluster():
    """The running test cluster; started here if needed, and stopped at the end if a session started it.

    Sessions running side by side (two pytest runs, xdist workers) share the cluster: each holds a shared
    lock on STATE_DIR/users.lock while it uses it, and the last one out stops a cluster that a session
    started (one started by hand or by scripts/test.sh is left running).
    """
    reason = skip_reason()
    if reason:
        pytest.skip(f"SLURM test cluster: {reason}")
    _state_dir().mkdir(parents=True, exist_ok=True)
    stop_marker = _state_dir() / "stop-when-unused"
    with open(_state_dir() / "users.lock", "w") as users:
        fcntl.flock(users, fcntl.LOCK_SH)
        started_here = _run([START_SCRIPT, "--check"]).returncode != 0
        if started_here:
            proc = _run([START_SCRIPT], timeout=START_TIMEOUT_S)
            if proc.returncode == 77:
                pytest.skip(f"SLURM test cluster: {proc.stderr.strip().splitlines()[-1]}")
            if proc.returncode != 0:
                _run([STOP_SCRIPT], timeout=300)  # what did start; the logs stay in STATE_DIR
                pytest.fail(
                    f"tests/slurm/start-cluster.sh failed (exit {proc.returncode}):\n{proc.stderr}", pytrace=False
                )
            stop_marker.touch()
        try:
            yield _read_cluster(started_here)
        finally:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another session still uses it: the last one out stops it
            else:
                if stop_marker.exists() and os.environ.get("ISEAT_KEEP_SLURM") != "1":
                    _run([STOP_SCRIPT], timeout=300)
                    stop_marker.unlink(missing_ok=True)


def sbatch(*args: str, cwd: str | os.PathLike | None = None) -> str:
    """Submit with `sbatch --parsable ARGS` and return the job ID."""
    proc = _run(["sbatch", "--parsable", *args], cwd=cwd)
    assert proc.returncode == 0, f"sbatch {' '.join(args)} failed: {proc.stderr.strip()}"
    return proc.stdout.strip().split(";")[0]


def _sacct_time(when: dt.datetime | str) -> str:
    if isinstance(when, str):
        return when
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)  # sacct reads local time
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def sacct_jobs(
    since: dt.datetime | str | None = None,
    job_ids: Iterable[str] | None = None,
    *,
    steps: bool = False,
    fields: Sequence[str] = SACCT_FIELDS,
) -> list[dict[str, str]]:
    """Jobs of all users known to accounting, one dict per row keyed by sacct field name.

    since: a datetime (naive means local time) or a sacct time string such as "now-10minutes";
    default: today's midnight, as sacct's own. job_ids: only these jobs. steps: include job steps
    (`123.batch`, ...), not only allocations. State is sacct's text ("CANCELLED by 0" for a cancelled job);
    ExitCode is "code:signal"; AllocTRES lists e.g. "gres/gpu=1"; Comment holds the snakemake rule.
    """
    cmd = ["sacct", "--allusers", "--parsable2", "--format", ",".join(fields)]
    if since is not None:
        cmd += ["--starttime", _sacct_time(since), "--endtime", "now"]
    if job_ids is not None:
        cmd += ["--jobs", ",".join(job_ids)]
    if not steps:
        cmd.append("--allocations")
    proc = _run(cmd)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr.strip()}"
    lines = proc.stdout.splitlines()
    header = lines[0].split("|")
    return [dict(zip(header, line.split("|", len(header) - 1), strict=True)) for line in lines[1:] if line]


def wait_for_job(job_id: str, *, timeout: float = 180, poll: float = 0.5) -> dict[str, str]:
    """Poll sacct until job `job_id` has reached a final state and its record is complete; return its row.

    slurmdbd can record a short job's final state a few seconds before its partition: the row counts as
    complete once Partition is filled in too.
    """
    deadline = time.monotonic() + timeout
    row: dict[str, str] = {}
    while time.monotonic() < deadline:
        rows = sacct_jobs(job_ids=[job_id])
        if rows:
            row = rows[0]
            if row["State"].split()[0] in FINAL_STATES and row["Partition"]:
                return row
        time.sleep(poll)
    raise AssertionError(f"job {job_id} not finished after {timeout}s; last sacct row: {row or 'none'}")


def wait_for_state(job_id: str, state: str, *, timeout: float = 180, poll: float = 0.5) -> None:
    """Poll squeue until job `job_id` is in `state` (e.g. RUNNING)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = _run(["squeue", "-h", "-j", job_id, "-o", "%T"]).stdout.strip()
        if seen == state:
            return
        time.sleep(poll)
    raise AssertionError(f"job {job_id} not {state} after {timeout}s (squeue says {seen or 'nothing'})")


def squeue_jobs() -> list[dict[str, str]]:
    """Jobs the controller holds now (pending, running, just finished), as dicts with JobID, State, Comment
    and WorkDir. Use it for running jobs: sacct fills in Comment and WorkDir only when a job ends."""
    proc = _run(["squeue", "--all", "-h", "-o", "%i|%T|%k|%Z"])
    assert proc.returncode == 0, f"squeue failed: {proc.stderr.strip()}"
    keys = ("JobID", "State", "Comment", "WorkDir")
    return [dict(zip(keys, line.split("|", 3), strict=True)) for line in proc.stdout.splitlines() if line]


def rule_of(row: dict[str, str]) -> str:
    """The Snakemake rule of a job the SLURM executor plugin submitted, from the comment it sets on it:
    `rule_<name>` for a rule without wildcards, `rule_<name>_wildcards_<values>` otherwise."""
    comment = row["Comment"]
    assert comment.startswith("rule_"), f"job {row['JobID']} was not submitted by Snakemake (comment {comment!r})"
    return comment[len("rule_") :].split("_wildcards_", 1)[0]


def workflow_jobs(workdir: str | os.PathLike, since: dt.datetime | str) -> list[dict[str, str]]:
    """The SLURM jobs that Snakemake submitted from `workdir` since `since`, oldest first, each row complete.

    Call it once Snakemake has returned: every job is then final, and each row is read again until
    slurmdbd has recorded all of it (see wait_for_job). A row's rule is `rule_of(row)`.
    """
    workdir = str(Path(workdir).resolve())
    ids = [row["JobID"] for row in sacct_jobs(since=since) if row["WorkDir"] == workdir]
    return [wait_for_job(job_id, timeout=60) for job_id in sorted(ids, key=int)]


def run_snakemake_on_slurm(
    workdir: str | os.PathLike,
    targets: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    *,
    timeout: float = 1800,
    **start_options,
) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir` with the SLURM profile, polling job status fast; return the finished process.

    Runs `python -m snakemake TARGETS --snakefile SNAKEFILE --profile PROFILE --workflow-profile none`
    plus FAST_POLLING_ARGS and `extra_args` (later options win over the profile's). The caller asserts on
    returncode/stdout/stderr, and on `sacct_jobs(since=...)` for what ran where. Should snakemake outlive
    `timeout` (it hangs, for instance, when sacct fails), it and its SLURM jobs are ended and
    subprocess.TimeoutExpired is raised. `start_options` (profile, snakefile) go to start_snakemake_on_slurm.
    """
    proc = start_snakemake_on_slurm(workdir, targets, extra_args, **start_options)
    return finish_snakemake(proc, timeout=timeout)


def start_snakemake_on_slurm(
    workdir: str | os.PathLike,
    targets: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    *,
    profile: str | os.PathLike = REPO / "profiles" / "slurm",
    snakefile: str | os.PathLike = REPO / "workflow" / "Snakefile",
) -> subprocess.Popen:
    """Start what run_snakemake_on_slurm runs and return at once, for a test that acts on the cluster while
    Snakemake runs (scancel a job, ...). Collect it with finish_snakemake or interrupt_snakemake."""
    workdir = Path(workdir)
    cmd = [
        sys.executable, "-m", "snakemake", *targets,
        "--snakefile", str(snakefile),
        "--profile", str(profile),
        "--workflow-profile", "none",
        *FAST_POLLING_ARGS,
        *extra_args,
    ]  # fmt: skip
    env = dict(os.environ)
    # Jobs run `snakemake` from this environment; slurm's commands live in the system directories.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), _SYSTEM_PATH])
    started = dt.datetime.now() - dt.timedelta(seconds=5)
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    proc.workdir, proc.started = workdir, started  # for finish_snakemake's clean-up
    return proc


def finish_snakemake(proc: subprocess.Popen, *, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Wait for a snakemake started by start_snakemake_on_slurm and return the finished process. Should it
    outlive `timeout`, it and its SLURM jobs are ended and subprocess.TimeoutExpired is raised."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM does not end a snakemake stuck polling
        stdout, stderr = proc.communicate()
        _cancel_jobs_in(proc.workdir, since=proc.started)
        raise subprocess.TimeoutExpired(proc.args, timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def interrupt_snakemake(proc: subprocess.Popen, *, timeout: float = 120) -> subprocess.CompletedProcess:
    """Stop a snakemake started by start_snakemake_on_slurm as Ctrl-C does (SIGINT: it cancels its SLURM jobs
    and exits), and return the finished process; past `timeout` it is killed as in finish_snakemake."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return finish_snakemake(proc, timeout=timeout)


def _cancel_jobs_in(workdir: Path, since: dt.datetime) -> None:
    unfinished = [
        row["JobID"]
        for row in sacct_jobs(since=since)
        if Path(row["WorkDir"]) == workdir.resolve() and row["State"].split()[0] not in FINAL_STATES
    ]
    if unfinished:
        _run(["scancel", *unfinished])
