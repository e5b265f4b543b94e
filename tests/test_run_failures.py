"""Failures that would burn GPU-hours, through the real command line and real processes: a diverging run
stops at once (exit 3) and keeps its last finite state and checkpoints; a finished run is never retrained
by a second process; a resume state that does not fit its run is refused. Refusals that happen before any
work (option values with undefined instance weights; the fields of a resume state) run the command line's
entry point in this process, to spare a torch import per case."""

import math
import multiprocessing
import random
import shutil
import time
from pathlib import Path

import h5py
import pytest
import torch
from run_race import serve
from test_hostile_inputs import (
    TINY,
    assert_one_line_error,
    iseat,
    snapshot,
    stop_after_first_epoch,
    train_args,
    write_npz,
)

from iseat.methods.presets import StepResult
from iseat.training.divergence import TrainingDiverged, check_step, step_counts

EXIT_DIVERGED = 3  # iseat.training.divergence.EXIT_DIVERGED, written out: the documented status


def small_data(folder: Path, batches: int = 2) -> list[str]:
    """Overrides for a 40-image data set: 8 for selection, 32 to train on in `batches` batches per epoch."""
    return [
        "data.dataset=npz",
        f"data.root={write_npz(folder / 'data.npz')}",
        "data.validation_size=8",
        f"training.batch_size={32 // batches}",
    ]


# ----------------------------------------------------------------------------- the non-finite guard


def assert_diverged(proc, epoch, step):
    assert proc.returncode == EXIT_DIVERGED, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "non-finite" in line and f"epoch {epoch}, step {step} of" in line, line


def tensors_of(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def all_finite(tree) -> bool:
    if isinstance(tree, torch.Tensor):
        return bool(torch.isfinite(tree).all()) if tree.is_floating_point() else True
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return True


@pytest.mark.slow
def test_iseat_diverging_in_its_second_epoch_stops_and_keeps_the_first(tmp_path):
    """lambda = [0, 1e30]: the first lr stage (epoch 1) is plain AT, the second's regulariser overflows."""
    out = tmp_path / "run"
    args = train_args(
        out, *small_data(tmp_path), "training.epochs=2", "training.lr_milestones=[0.5]", "method.lam=[0,1.0e+30]"
    )
    assert_diverged(iseat(*args), epoch=2, step=2)
    assert not (out / "summary.json").exists()
    assert tensors_of(out / "state.pt")["progress"]["epoch"] == 1
    for name in ("state.pt", "last.pt", "best.pt"):
        assert all_finite(tensors_of(out / name)), name
    assert tensors_of(out / "last.pt")["epoch"] == 0
    before = snapshot(out)
    assert_diverged(iseat(*args), epoch=2, step=2)  # resumed from epoch 1's state: diverges again, writes nothing
    after = snapshot(out)
    assert after.pop("av_log.h5") and before.pop("av_log.h5")  # reopened for appending, so its bytes change
    assert after == before
    with h5py.File(out / "av_log.h5", "r") as log:
        assert len(log["epoch"]) == 1


@pytest.mark.slow
def test_baseline_diverging_in_its_first_epoch_leaves_no_run(tmp_path):
    """MART with beta = 1e30: its first step's loss is finite (huge), its second's is not; nothing was saved."""
    out = tmp_path / "run"
    assert_diverged(
        iseat(*train_args(out, *small_data(tmp_path), "training.epochs=1", "method.name=mart", "method.beta=1.0e+30")),
        epoch=1,
        step=2,
    )
    assert not out.exists()


def test_the_guard_names_the_first_non_finite_quantity():
    """In-process, on a linear model: gradients and weights (parameters and floating buffers) are checked
    after the update, the loss first."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    result = StepResult(*(torch.zeros(4),) * 3, torch.tensor([True, False, True, True]), torch.ones(4, dtype=bool), 0.5)
    assert step_counts(model, result) == (3, 4, True, True)
    model[0].weight.grad = torch.full((2, 3), math.inf)
    assert step_counts(model, result)[2:] == (False, True)
    model[1].running_var[0] = math.nan
    assert step_counts(model, result)[2:] == (False, False)
    for loss, grads_ok, weights_ok, quantity in [
        (math.nan, True, True, "loss"),
        (1.0, False, False, "gradient"),
        (1.0, True, False, "weight"),
    ]:
        with pytest.raises(TrainingDiverged, match=f"non-finite {quantity} at epoch 3, step 5 of 9"):
            check_step(loss, grads_ok, weights_ok, epoch=2, step=4, steps=9)
    check_step(1.0, True, True, epoch=2, step=4, steps=9)


DEGENERATE = {
    "GAIRAT Lambda far below its range": (
        ["method.name=gairat", "method.gair_lambda=-1000"],
        ["method.gair_lambda", "-10"],
    ),
    "GAIRAT Lambda NaN": (["method.name=gairat", "method.gair_lambda=.nan"], ["method.gair_lambda", "finite"]),
    "GAIRAT with one PGD step": (["method.name=gairat", "attack.steps=1"], ["attack.steps", ">= 2"]),
    "GAIR-TRADES Lambda NaN": (["method.name=gair_trades", "method.gair_lambda=.nan"], ["method.gair_lambda"]),
    "NaN lambda of one stage": (["method.lam=[0,.nan]"], ["method.lam[1]", "finite"]),
    "infinite TRADES beta": (["method.name=trades", "method.beta=.inf"], ["method.beta", "finite"]),
    "an lr that overflows the weights": (["training.lr=1.0e+300"], ["training.lr", "100"]),
}


@pytest.mark.parametrize("overrides,needles", DEGENERATE.values(), ids=DEGENERATE.keys())
def test_options_with_undefined_weights_are_refused(tmp_path, in_process, overrides, needles):
    out = tmp_path / "run"
    assert_one_line_error(in_process(*train_args(out, *overrides)), *needles)
    assert not out.exists()


def test_fat_with_tau_not_below_the_steps_is_warned(tmp_path):
    proc = iseat(
        *train_args(
            tmp_path / "run",
            *small_data(tmp_path, batches=1),
            "method.name=fat",
            "method.tau=[0,1]",
            "training.epochs=1",
        )
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "method.tau" in warnings[0] and "[1]" in warnings[0], proc.stdout


# ----------------------------------------------------------------------------- the finished-run race

RACE_TRIALS = 16  # each about 0.4 s once both processes are up (about 8 s on an idle machine)


@pytest.fixture(scope="module")
def racers():
    """Two training processes, each up for every trial."""
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(2):
        mine, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs,), daemon=True)
        process.start()
        pipes.append(mine)
        processes.append(process)
    yield pipes
    for pipe in pipes:
        pipe.send(None)
    for process in processes:
        process.join(timeout=2)
        process.terminate()


@pytest.mark.slow
def test_two_processes_finishing_one_run_train_it_once(racers, tmp_path):
    """Each trial starts both processes at the same moment on a fresh one-batch run (the second through a
    symlink in half of them), the second a little later at random, or held in its check-to-lock window
    until the first has finished: the run is trained once, the other process finds it finished or locked."""
    data = write_npz(tmp_path / "data.npz")
    overrides = [
        *TINY,
        "data.dataset=npz",
        f"data.root={data}",
        "data.validation_size=8",
        "training.epochs=1",
        "runtime.av_log=false",
    ]
    rng = random.Random(0)
    for trial in range(RACE_TRIALS):
        run = tmp_path / f"run{trial}"
        run.mkdir()  # an empty folder, so that the symlink to it is not dangling
        link = tmp_path / f"link{trial}"
        link.symlink_to(run.name, target_is_directory=True)
        second = link if trial % 2 else run
        hold = trial % 3 == 0
        start = time.time() + 0.1
        racers[0].send((overrides, run, start, None))
        racers[1].send((overrides, second, start + rng.uniform(0, 0.3), run if hold else None))
        outcomes = sorted(pipe.recv() for pipe in racers)
        assert outcomes in (["finished", "trained"], ["locked", "trained"]), (trial, hold, outcomes)
        if hold:
            assert outcomes == ["finished", "trained"], trial


# ----------------------------------------------------------------------------- a resume state is checked


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A real run of 50 short epochs stopped (SIGTERM) after its first: state.pt and the run's files."""
    folder = tmp_path_factory.mktemp("stopped")
    out = folder / "run"
    args = train_args(out, *small_data(folder), "training.epochs=50")
    stop_after_first_epoch(out, args)
    return out, args


def edit_state(change):
    def plant(path: Path):
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return plant


def with_buffer(state, size):
    state["progress"]["batch"] = 1
    state["buffer"] = {
        name: torch.zeros(size) for name in ("av", "clean_loss", "adv_loss", "clean_correct", "adv_correct")
    }


def first_momentum(state):
    return next(iter(state["optimizer"]["state"].values()))


RESUME_CASES = {
    "epoch beyond the run": (lambda s: s["progress"].update(epoch=99), ["progress.epoch", "99", "0..50"]),
    "negative batch": (lambda s: s["progress"].update(batch=-3), ["progress.batch", "-3"]),
    "best epoch not yet trained": (
        lambda s: s["progress"].update(best_epoch=s["progress"]["epoch"] + 5),
        ["progress.best_epoch"],
    ),
    "accuracy above one": (lambda s: s["progress"].update(best_pgd=7.0), ["progress.best_pgd"]),
    "unknown progress field": (lambda s: s["progress"].update(bonus=1), ["progress", "fields"]),
    "AV buffer of another size": (lambda s: with_buffer(s, 5), ["buffer.av", "(32,)"]),
    "momentum of another shape": (
        lambda s: first_momentum(s).update(momentum_buffer=torch.zeros(3, 3)),
        ["optimizer.state", "momentum_buffer", "3, 3"],
    ),
    "momentum not finite": (
        lambda s: first_momentum(s)["momentum_buffer"].fill_(math.nan),
        ["momentum_buffer", "non-finite"],
    ),
    "weights not finite": (lambda s: next(iter(s["model"].values())).fill_(math.inf), ["model.", "non-finite"]),
    "short NumPy RNG key": (
        lambda s: s["rng"]["numpy"].update(key=s["rng"]["numpy"]["key"][:10]),
        ["rng.numpy.key", "(624,)"],
    ),
    "short Python RNG state": (lambda s: s["rng"]["python"].__setitem__(1, s["rng"]["python"][1][:5]), ["rng.python"]),
    "scheduler of another epoch": (lambda s: s["scheduler"].update(last_epoch=40), ["scheduler.last_epoch"]),
}


def resumed_in(stopped_run, tmp_path, change):
    """A copy of the stopped run with its state.pt changed by `change`, and the command that resumes it."""
    src, args = stopped_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    edit_state(change)(out / "state.pt")
    return out, [out if a == src else a for a in args]


@pytest.mark.slow
def test_a_state_beyond_the_run_is_refused_by_the_command(stopped_run, tmp_path):
    """The issue's case through a real process: progress.epoch 99 of a 50-epoch run."""
    change, needles = RESUME_CASES["epoch beyond the run"]
    out, args = resumed_in(stopped_run, tmp_path, change)
    before = snapshot(out)
    assert_one_line_error(iseat(*args), "state.pt", *needles)
    assert snapshot(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("change,needles", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_a_state_that_does_not_fit_the_run_is_refused(stopped_run, tmp_path, in_process, change, needles):
    out, args = resumed_in(stopped_run, tmp_path, change)
    before = snapshot(out)
    assert_one_line_error(in_process(*args), "state.pt", *needles)
    assert snapshot(out) == before
