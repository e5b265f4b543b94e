"""A run's resumable state: its progress besides tensors, and state.pt saved from and restored into a run's
model, optimiser, lr schedule, SWA average, epoch buffer and RNGs (the file format is resume_state's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from iseat.common import distributed
from iseat.common.errors import ResumeStateError, first_line
from iseat.training.resume_state import RunShape, check_fits, restore_rng_states, rng_states, save_state
from iseat.training.run_folder import STATE


@dataclass
class Progress:
    """Everything besides tensors that a resumed run needs."""

    epoch: int = 0  # current epoch
    batch: int = 0  # batches of `epoch` already done
    best_pgd: float = -1.0
    best_epoch: int = -1
    swa_best_pgd: float = -1.0
    swa_best_epoch: int = -1
    av_log_epochs: int = 0
    sums: dict = field(default_factory=dict)  # running sums of the current epoch


def run_shape(run) -> RunShape:
    """What a saved state must fit: epochs, batches per epoch, tensors' shapes, AV-log samples, progress fields."""
    t = run.cfg["training"]
    return RunShape(
        t["epochs"],
        len(run.data.train_batches(t["batch_size"], 0, run.cfg["seed"])),
        run.model.state_dict(),
        [p.shape for p in run.model.parameters()],
        run.swa.state_dict() if run.swa else None,
        len(run.data.log_indices),
        tuple(Progress.__dataclass_fields__),
    )


def resume(run, state: dict) -> None:
    """Load a saved state into the freshly set-up run; a state that does not fit is refused in one line."""
    check_fits(state, run.out / STATE, run_shape(run))
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        if run.swa is not None and state.get("swa") is not None:
            run.swa.load_state_dict(state["swa"])
        run.progress = Progress(**state["progress"])
        restore_rng_states(state["rng"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ResumeStateError(
            f"{run.out / STATE} does not fit this run ({type(err).__name__}: "
            f"{first_line(err)}); delete it to restart the run from its first epoch"
        ) from None
    run.say(f"resuming from {run.out / STATE}: epoch {run.progress.epoch}, batch {run.progress.batch}")


def save_run_state(run) -> None:
    """state.pt of the run now (rank 0's; mid-epoch with the epoch buffer so far)."""
    if not distributed.is_writer():
        return
    parts = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "swa": run.swa.state_dict() if run.swa else None,
        "progress": vars(run.progress),
        "rng": rng_states(),
        "config": run.cfg,
    }
    if run.progress.batch:
        parts["buffer"] = {k: v.cpu() for k, v in run.buffer.values.items()}
    save_state(run.out / STATE, **parts)
