"""The run folder's life: its file names and lock, whether it holds a finished run of this config, whether its
saved state may be resumed, and the cleaning of what a killed or failed start left behind."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from iseat.common.errors import RunFolderError
from iseat.common.io import write_text_atomic
from iseat.training.avlog import check_resumable
from iseat.training.resume_state import check_belongs_to, read_state

STATE = "state.pt"
SUMMARY = "summary.json"
LOCK = ".iseat.lock"


class RunConflict(RunFolderError):
    """The output folder holds a finished run made with another config."""


def finished_summary(out: Path, cfg: dict, say) -> dict | None:
    """The summary of a finished run of this config in the folder; None if it holds none."""
    if not (out / SUMMARY).exists():
        return None
    same_config(out, cfg, finished=True)
    say(f"{out} already holds a finished run ({SUMMARY}); nothing to do")
    return json.loads((out / SUMMARY).read_text())


def same_config(out: Path, cfg: dict, finished: bool) -> bool:
    """Whether the folder's config.yaml (if any) is `cfg`; a finished run of another config is refused."""
    path = out / "config.yaml"
    if not path.exists():
        return True
    same = yaml.safe_load(path.read_text()) == cfg
    if not same and finished:
        raise RunConflict(f"{out} holds a finished run made with another config; choose another --out")
    return same


def read_resume_state(out: Path, cfg: dict, say) -> dict | None:
    """The folder's saved state if it belongs to this run; refuses a state without its run's files."""
    path = out / STATE
    if not path.exists():
        return None
    if not (out / "config.yaml").exists():
        raise RunFolderError(
            f"{path} exists without {out / 'config.yaml'}: not an intact iseat run; "
            f"restore config.yaml, or delete {path} to start afresh, or choose another --out"
        )
    if not same_config(out, cfg, finished=False):
        say(f"config differs from the unfinished run in {out}: discarding its state and starting afresh")
        path.unlink()
        return None
    state = read_state(path)
    check_belongs_to(state, path, cfg)
    progress = state["progress"] if isinstance(state["progress"], dict) else {}
    needed = {
        "metrics.jsonl": progress.get("epoch", 0),
        "av_log.h5": progress.get("av_log_epochs", 0) if cfg["runtime"]["av_log"] else 0,
    }
    for name, epochs in needed.items():
        if epochs and not (out / name).exists():
            raise RunFolderError(
                f"{out / name} is missing but {path} has {epochs} completed epochs; "
                f"restore it, or delete {path} to restart the run from its first epoch"
            )
    if needed["av_log.h5"]:
        check_resumable(out / "av_log.h5")
    return state


def write_if_changed(path: Path, text: str) -> None:
    """A resumed run leaves its files untouched when they already say the same."""
    if not path.is_file() or path.read_text() != text:
        write_text_atomic(path, text)


def remove_leftovers(folder: Path) -> None:
    """Temporaries of an earlier process that was killed while writing (only called under the run's lock)."""
    for pattern in (".*.tmp", ".*.rebuild"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def remove_new_files(folder: Path, before: set) -> None:
    """Remove what a failed first start wrote, so a failed command leaves the folder as it found it."""
    for path in folder.iterdir():
        if path.name not in before and path.name != LOCK and path.is_file():
            path.unlink(missing_ok=True)
