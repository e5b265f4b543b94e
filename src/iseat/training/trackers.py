"""Experiment trackers of a training (`runtime.loggers`): TensorBoard, Weights & Biases, MLflow.

One tracker run per training, named by the run folder's place in the results tree
(RESULTS/SETTING/METHOD/seedK -> name `SETTING/METHOD/seedK`, group `SETTING/METHOD`), so the paper's runs
line up in one project. Per epoch: the row of metrics.jsonl and a histogram of the logged samples' AV
(MLflow keeps scalars only); the config and provenance as the run's parameters; at the end the summary,
and later the evaluation's accuracies (`log_evaluation`, called by `iseat evaluate`).

Where they write: TensorBoard event files in RUN/tensorboard; W&B in $WANDB_DIR (default RUN), offline
unless $WANDB_MODE says otherwise (`wandb sync` uploads later), project $WANDB_PROJECT (default iseat);
MLflow in $MLFLOW_TRACKING_URI (default the file store RUN/mlruns; a file store on a shared file system
also lines the runs up, where SQLite's locking would not), experiment $MLFLOW_EXPERIMENT_NAME (default iseat).
Each tracker's run id is kept in RUN/trackers.json, so a resumed training and its
evaluation continue the same tracker run. A tracker that fails (missing package, full disk, bad
credentials) warns once and is dropped: training never stops for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iseat.common.errors import first_line
from iseat.common.io import write_json_atomic

IDS_FILE = "trackers.json"
INSTALL_HINT = "pip install 'iseat[trackers]'"


@dataclass(frozen=True)
class RunIdentity:
    """A tracker run's name and group, from the run folder's last three path parts."""

    name: str
    group: str
    project: str = "iseat"

    @classmethod
    def of_folder(cls, folder: Path) -> RunIdentity:
        parts = Path(folder).resolve().parts[-3:]
        return cls("/".join(parts), "/".join(parts[:-1]) or parts[-1])


class Tracker:
    """One tracker's run: opened once per process, fed per epoch, closed at the end."""

    name = ""

    def __init__(self, folder: Path, identity: RunIdentity, run_id: str | None, step: int):
        self.folder, self.identity, self.run_id, self.step = folder, identity, run_id, step

    def start(self, params: dict) -> str | None:
        """Open (or continue, with `self.run_id`) the run; returns its id to keep, or None."""
        raise NotImplementedError

    def log(self, metrics: dict, step: int, histograms: dict | None = None) -> None:
        """Scalars and histograms (name -> values) of one step."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def start(self, params):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events of epochs redone after a kill are dropped, so a resumed run reads as one
        self.writer = SummaryWriter(str(self.folder / "tensorboard"), purge_step=self.step or None)
        if not self.step:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)
        return None

    def log(self, metrics, step, histograms=None):
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        for key, values in (histograms or {}).items():
            self.writer.add_histogram(key, values, step)
        self.writer.flush()

    def close(self):
        self.writer.close()


class WandbTracker(Tracker):
    name = "wandb"

    def start(self, params):
        import wandb

        ident = self.identity
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", ident.project),
            group=ident.group,
            name=ident.name,
            id=self.run_id,
            resume="allow" if self.run_id else None,
            dir=os.environ.get("WANDB_DIR", str(self.folder)),
            mode=os.environ.get("WANDB_MODE", "offline"),
            config=params,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        return self.run.id

    def log(self, metrics, step, histograms=None):
        import wandb

        self.run.log({**metrics, **{k: wandb.Histogram(v) for k, v in (histograms or {}).items()}}, step=step)

    def close(self):
        self.run.finish()


class MLflowTracker(Tracker):
    name = "mlflow"

    def start(self, params):
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (self.folder / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow 3 asks for this opt-in; a file store suits a shared file system
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(uri)
        if self.run_id:
            self.client.update_run(self.run_id, status="RUNNING")
            return self.run_id
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", self.identity.project)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=self.identity.name, tags={"group": self.identity.group})
        self.run_id = run.info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:6000])  # MLflow's limit on a value
        return self.run_id

    def log(self, metrics, step, histograms=None):
        """MLflow keeps scalars only: no histograms."""
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def close(self):
        self.client.set_terminated(self.run_id)


TRACKERS: dict[str, type[Tracker]] = {cls.name: cls for cls in (TensorBoardTracker, WandbTracker, MLflowTracker)}


def schema_definitions() -> dict:
    """The tracker names for the train schema's `runtime.loggers`."""
    return {"tracker": {"enum": list(TRACKERS)}}


def scalars(row: dict) -> dict:
    """The numeric values of a metrics row (flags and counts as numbers)."""
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"}


class Trackers:
    """The run's trackers; each failure warns once and drops that tracker."""

    def __init__(self, trackers: list[Tracker], folder: Path, say=print):
        self.trackers, self.folder, self.say = trackers, folder, say

    def _each(self, action: str, call) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as err:  # noqa: BLE001 - a tracker must never stop the training
                hint = f"; {INSTALL_HINT}" if isinstance(err, ImportError) else ""
                self.say(
                    f"warning: tracker {tracker.name} failed to {action} ({type(err).__name__}: "
                    f"{first_line(err)}){hint}; continuing without it"
                )
                self.trackers.remove(tracker)

    def start(self, params: dict) -> None:
        ids = {}

        def start(tracker):
            run_id = tracker.start(params)
            if run_id is not None:
                ids[tracker.name] = run_id

        self._each("start", start)
        known = read_ids(self.folder)
        if ids and ids != {k: known.get(k) for k in ids}:
            try:
                write_json_atomic(self.folder / IDS_FILE, {**known, **ids})
            except OSError as err:  # the trackers go on; a resumed training would open new tracker runs
                self.say(
                    f"warning: cannot record the tracker run ids in {self.folder / IDS_FILE} "
                    f"({first_line(err)}); a resumed training will start new tracker runs"
                )

    def log_epoch(self, row: dict, av: np.ndarray | None = None) -> None:
        histograms = {"av": np.asarray(av, dtype=np.float64)} if av is not None and len(av) else {}
        self._each("log", lambda t: t.log(scalars(row), int(row["epoch"]), histograms))

    def finish(self, values: dict, step: int) -> None:
        """Log the final values and close every tracker run."""
        if values:
            self._each("log", lambda t: t.log(values, step))
        self.close()

    def close(self) -> None:
        self._each("close", lambda t: t.close())
        self.trackers = []


def read_ids(folder: Path) -> dict:
    path = Path(folder) / IDS_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def open_trackers(names, folder, params: dict, step: int = 0, say=print) -> Trackers:
    """Start the named trackers for the run in `folder` (continuing its recorded runs); `step` is the
    first epoch this process logs."""
    folder, ids = Path(folder), read_ids(folder)
    identity = RunIdentity.of_folder(folder)
    group = Trackers([TRACKERS[n](folder, identity, ids.get(n), step) for n in names], folder, say)
    if group.trackers:
        group.start(params)
    return group


def for_training(cfg: dict, folder, device, step: int, say=print) -> Trackers:
    """The trackers of `runtime.loggers` for a training in `folder`, with the config and provenance as
    flat `section.key` parameters; `step` is the epoch it starts (or resumes) at."""
    names = cfg["runtime"]["loggers"]
    if not names:
        return Trackers([], Path(folder), say)
    from iseat.common.provenance import provenance
    from iseat.workflow.run_config import flatten  # run_config imports config, whose schema imports this module

    params = {**flatten(cfg), **flatten({"provenance": provenance(device, cfg["seed"])})}
    return open_trackers(names, folder, params, step, say)


def summary_values(summary: dict) -> dict:
    """A training summary's headline numbers, under `summary/`."""
    keys = (
        "best_epoch",
        "best_selection_pgd_acc",
        "best_selection_clean_acc",
        "swa_best_epoch",
        "swa_best_selection_pgd_acc",
    )
    return {f"summary/{k}": float(summary[k]) for k in keys if isinstance(summary.get(k), (int, float))}


def log_evaluation(run_folder, report: dict, name: str, say=print) -> None:
    """An evaluation's accuracies (`EVAL/clean_accuracy`, `EVAL/robust_accuracy`, each attack's) into the
    tracker runs of the training in `run_folder`, at the step after its last epoch; nothing when the
    training used no trackers."""
    folder = Path(run_folder)
    config = folder / "config.yaml"
    if not config.is_file():
        return
    import yaml

    cfg = yaml.safe_load(config.read_text()) or {}
    names = (cfg.get("runtime") or {}).get("loggers") or []
    if not names:
        return
    step = int((cfg.get("training") or {}).get("epochs", 0))
    values = {
        f"{name}/{k}": float(v) for k, v in report.items() if k.endswith("accuracy") and isinstance(v, (int, float))
    }
    for attack, section in report.items():  # each attack's section (pgd, autoattack, cw)
        if isinstance(section, dict) and isinstance(section.get("robust_accuracy"), (int, float)):
            values[f"{name}/{attack}_robust_accuracy"] = float(section["robust_accuracy"])
    open_trackers(names, folder, {}, step, say).finish(values, step)
