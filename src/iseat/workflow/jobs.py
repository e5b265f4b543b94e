"""The jobs of a workflow target, from Snakemake's own DAG (snakemake.api, nothing run, no dry-run text):
each with its rule, setting and GPU request, and for a training its whole train config from the run-config
builder (iseat.workflow.run_config, the calls its rule makes), for an evaluation what it computes."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import yaml

from iseat.common.errors import UserError
from iseat.training.config import DEFAULTS, deep_merge


class WorkflowDAGError(UserError, ValueError):
    """The workflow could not build the target's DAG (a config mistake, an unknown target); one line."""


@dataclass
class Evaluation:
    """What an evaluation job computes: `attack` (autoattack, pgd, sweep) on `n_ex` test images (None: all),
    PGD with `pgd_steps`, the sweep's `budgets`, `fraction` of it (a shard), or the `gather` of its shards."""

    attack: str
    n_ex: int | None = None
    pgd_steps: int = 10
    budgets: tuple = ()
    fraction: float = 1.0
    gather: bool = False


@dataclass
class Job:
    rule: str
    setting: str | None
    gpu: bool = False
    run: str = ""  # the run folder a training writes or an evaluation reads
    train: dict | None = None  # a training's whole config
    evaluation: Evaluation | None = None
    output: str = ""  # its first output file

    @property
    def group(self) -> str:
        """Its setting; the Section 3 analysis and the light shared jobs apart."""
        return self.setting or ("analysis" if self.rule.startswith("analysis") else "(shared)")

    @property
    def kind(self) -> str:
        return "train" if self.train is not None else "evaluate" if self.evaluation is not None else "other"


def training_overrides(rule: str, w: dict, g: dict) -> tuple[dict, str] | None:
    """The train overrides and run folder of a training job (the rule's own builder call); None otherwise."""
    runs, paths, analysis = g["RUNS"], g["PATHS"], g["ANALYSIS"]
    if rule in ("train", "finetune"):
        return runs.run_overrides(w["setting"], w["method"], w["seed"]), paths.run_dir(
            w["setting"], w["method"], w["seed"]
        )
    if rule == "grid_finetune":
        return runs.grid_overrides(w["setting"], w["lam"], w["gamma"]), paths.grid_dir(
            w["setting"], w["lam"], w["gamma"]
        )
    if rule == "analysis_eta_finetune":
        seed = analysis.analysis["seed"]
        return runs.eta_sweep_overrides(analysis.eta_sweep, w["eta"], seed), analysis.eta_dir(w["eta"])
    return None


def train_config(overrides: dict, tuned: str | None) -> dict:
    """Defaults < the grid winner's tuned values (when written) < the run's overrides, as `iseat train` merges
    them. Not `config.load_config`: a plan is made before the data are fetched, and that checks data.root."""
    tuned_values = yaml.safe_load(Path(tuned).read_text()) if tuned and Path(tuned).is_file() else None
    return deep_merge(DEFAULTS, tuned_values, overrides)


def evaluation_of(rule: str, w: dict, config: dict, shards: int) -> Evaluation | None:
    """What an evaluation job computes, from the config's `evaluation` block (as its rule's options say)."""
    ev = config["evaluation"]
    if rule == "evaluate_sweep":
        sweep = ev["sweep"]
        return Evaluation("sweep", sweep.get("n_ex"), sweep.get("steps", 10), tuple(str(e) for e in sweep["eps"]))
    if rule not in ("evaluate", "evaluate_shard", "evaluate_gather", "analysis_eta_evaluate"):
        return None
    if w["evaluation"] == "aa":
        evaluation = Evaluation(ev["autoattack"].get("attacks", ["autoattack"])[0], ev["autoattack"].get("n_ex"))
    else:
        pgd = ev["pgd"]
        evaluation = Evaluation(pgd.get("attacks", ["pgd"])[0], pgd.get("n_ex"), pgd.get("steps", 50))
    evaluation.fraction = 1 / shards if rule == "evaluate_shard" else 1.0
    evaluation.gather = rule == "evaluate_gather"
    return evaluation


def job_of(dag_job, g: dict) -> Job:
    rule, w = dag_job.rule.name, dict(dag_job.wildcards_dict)
    job = Job(rule, w.get("setting"), dag_job.resources.get("gpu", 0) > 0, output=str(next(iter(dag_job.output), "")))
    training = training_overrides(rule, w, g)
    if training is not None:
        job.train, job.run = train_config(training[0], dag_job.input.get("tuned")), training[1]
    job.evaluation = evaluation_of(rule, w, g["config"], g["PATHS"].shards)
    if job.evaluation is not None:
        job.run = str(Path(dag_job.input.summary).parent)
    return job


def workflow_jobs(target: str, configfiles=(), forceall: bool = False, snakefile=None) -> list[Job]:
    """The jobs Snakemake would run for `target` (every job of it with `forceall`), in the working directory's
    workflow (workflow/Snakefile unless `snakefile`), with `configfiles` replacing its config."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stderr(chatter), SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            configs = ConfigSettings(configfiles=[Path(c).resolve() for c in configfiles])
            workflow_api = api.workflow(ResourceSettings(cores=1), configs, snakefile=snakefile and Path(snakefile))
            workflow_api.dag(DAGSettings(targets={target}, forceall=forceall))
            workflow = workflow_api._workflow  # the DAG of a target without running it: Workflow.summary's steps
            workflow._prepare_dag(forceall=forceall, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            return [job_of(dag_job, workflow.globals) for dag_job in workflow.dag.needrun_jobs(exclude_finished=False)]
    except Exception as err:  # Snakemake's errors (WorkflowError, a rule file's ValueError) carry one reason
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise WorkflowDAGError(f"the DAG of {target} could not be built: {reason}") from None
