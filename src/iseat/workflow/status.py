"""Where a workflow stands: every training the workflow knows, its state, and the time to the end.

The trainings are the workflow's own (`iseat.workflow.jobs`: the training jobs of Snakemake's DAG of `all`
with every job forced, each with its run folder and config). Each run's state is read from its folder and
its job log only, so it works on a results folder that another machine is writing (no process table, no lock):

  finished     summary.json exists: best epoch, and AutoAttack's robust accuracy once aa.json exists
  failed       no summary, and the job log's last attempt ends in an error line (that line is shown)
  running      metrics.jsonl or state.pt exists, or a job log without an error: epoch k of n, the last
               selection PGD accuracy, seconds per epoch and the time to its end
  not started  none of these

Time to the end: per unfinished run, its remaining epochs times its seconds per epoch (a run without a
finished epoch takes the mean seconds per epoch of its setting's runs, where any has one), summed, and
divided by the number of trainings that run at once (`jobs`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from iseat.workflow.jobs import Job

STATES = ("finished", "running", "failed", "not started")
ERROR_LINE = re.compile(r"(error|Error|Traceback|Killed|CANCELLED|DUE TO TIME LIMIT|out of memory)")


@dataclass
class RunStatus:
    setting: str
    run: str  # the run folder below the setting, e.g. at/seed0 or grid/lam0.1_gamma0.007
    folder: Path
    epochs: int
    state: str = "not started"
    epoch: int = 0  # completed epochs
    selection_pgd: float | None = None
    epoch_seconds: float | None = None
    best_epoch: int | None = None
    aa: float | None = None
    evaluated: bool = False  # the workflow runs AutoAttack on it (aa.json)
    reason: str = ""

    @property
    def remaining_seconds(self) -> float | None:
        if self.state == "finished":
            return 0.0
        return None if self.epoch_seconds is None else (self.epochs - self.epoch) * self.epoch_seconds


def trainings(jobs: list[Job]) -> list[tuple[str, str, int]]:
    """(setting, run folder, epochs) of every training job (the eta sweep's setting: analysis)."""
    return sorted((job.group, job.run, int(job.train["training"]["epochs"])) for job in jobs if job.kind == "train")


def read_rows(path: Path) -> list[dict]:
    """The complete rows of a metrics.jsonl that may be being rewritten (a torn last line is skipped)."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def job_log(results: Path, folder: Path) -> Path | None:
    """The Snakemake job log of a run folder: RESULTS/logs/RULE/<folder below RESULTS>.log."""
    try:
        below = folder.relative_to(results)
    except ValueError:
        return None
    found = sorted(results.glob(f"logs/*/{below.as_posix()}.log"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def failure_line(log: Path | None) -> str:
    """The error line of the log's last attempt ('' when it has none)."""
    if log is None:
        return ""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("=== attempt ")]
    last = lines[starts[-1] + 1 :] if starts else lines
    errors = [line.strip() for line in last if ERROR_LINE.search(line)]
    if not errors:
        return ""
    one_line = [e for e in errors if e.startswith("iseat ")]  # the CLI's one-line error names the fix
    return (one_line or errors)[-1][:200]


def run_status(results: Path, setting: str, folder: Path, epochs: int) -> RunStatus:
    below = (
        folder.relative_to(results / setting).as_posix() if folder.is_relative_to(results / setting) else str(folder)
    )
    status = RunStatus(setting, below, folder, epochs)
    rows = read_rows(folder / "metrics.jsonl")
    if rows:
        status.epoch = len(rows)
        status.selection_pgd = rows[-1].get("selection_pgd_acc")
        seconds = [r["epoch_seconds"] for r in rows if isinstance(r.get("epoch_seconds"), (int, float))]
        status.epoch_seconds = sum(seconds) / len(seconds) if seconds else None
    summary = read_json(folder / "summary.json")
    if summary is not None:
        status.state, status.epoch = "finished", epochs
        status.best_epoch = summary.get("best_epoch", -1) + 1
        aa = read_json(folder / "aa.json")
        status.aa = aa.get("robust_accuracy") if aa else None
        return status
    log = job_log(results, folder)
    status.reason = failure_line(log)
    if status.reason:
        status.state = "failed"
    elif rows or (folder / "state.pt").exists() or log is not None:
        status.state = "running"
    return status


def autoattacked(jobs: list[Job]) -> set[Path]:
    """The run folders of the workflow's AutoAttack evaluations (those that write RUN/aa.json)."""
    outs = [Path(job.output) for job in jobs if job.kind == "evaluate"]
    return {out.parent for out in outs if out.name == "aa.json"}


def workflow_status(results, jobs: list[Job]) -> list[RunStatus]:
    """The status of every training of the dry run's jobs whose run folder lies in `results`."""
    results, evaluated = Path(results), autoattacked(jobs)
    runs = [run_status(results, s, Path(f), n) for s, f, n in trainings(jobs) if Path(f).is_relative_to(results)]
    for r in runs:
        r.evaluated = r.folder in evaluated
    per_setting: dict[str, list[float]] = {}
    for r in runs:
        if r.epoch_seconds is not None:
            per_setting.setdefault(r.setting, []).append(r.epoch_seconds)
    for r in runs:
        if r.epoch_seconds is None and r.state in ("running", "not started") and per_setting.get(r.setting):
            r.epoch_seconds = sum(per_setting[r.setting]) / len(per_setting[r.setting])
    return runs


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def percent(x) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def row_text(r: RunStatus) -> list[str]:
    if r.state == "finished":
        detail = f"best epoch {r.best_epoch}"
        if r.evaluated:
            detail += f", AA {percent(r.aa)} %" if r.aa is not None else ", AA pending"
    elif r.state == "failed":
        detail = r.reason
    elif r.state == "running":
        detail = f"epoch {r.epoch} of {r.epochs}"
        if r.selection_pgd is not None:
            detail += f", selection PGD {percent(r.selection_pgd)} %"
    else:
        detail = ""
    eta = duration(r.remaining_seconds) if r.state in ("running", "not started") else ""
    per_epoch = duration(r.epoch_seconds) if r.epoch and r.state == "running" else ""  # measured, not estimated
    return [r.setting, r.run, r.state, detail, per_epoch, eta]


def format_status(runs: list[RunStatus], jobs: int = 1) -> str:
    """A Markdown table of the runs, then the totals per state and the time to the end."""
    lines = [
        "| setting | run | state | progress | time per epoch | to its end |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row_text(r)) + " |" for r in runs]
    counts = {s: sum(r.state == s for r in runs) for s in STATES}
    remaining = [r.remaining_seconds for r in runs if r.state in ("running", "not started")]
    known = [s for s in remaining if s is not None]
    total = sum(known) / max(jobs, 1)
    unknown = len(remaining) - len(known)
    lines += [
        "",
        f"{len(runs)} trainings: " + ", ".join(f"{counts[s]} {s}" for s in STATES),
        f"time to the end of the trainings: {duration(total)} at {jobs} at once"
        + (f" (+ {unknown} runs without a measured epoch yet)" if unknown else ""),
    ]
    return "\n".join(lines)
