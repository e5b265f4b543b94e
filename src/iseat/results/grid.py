"""The lambda x gamma grid: its winner on the selection split, with every point's evidence, and the winner
as a train-config fragment."""

from __future__ import annotations

from pathlib import Path

import yaml

from iseat.common.io import write_json_atomic, write_text_atomic
from iseat.results import ResultsError
from iseat.results.seeds import read_json
from iseat.workflow.run_config import tuned_method

GRID_FORMAT = "iseat-grid-v1"
GRID_METRIC = "best_selection_pgd_acc"


def select_grid(points, metric: str = GRID_METRIC, paper_choice=None, used: str | None = None) -> dict:
    """The winner of a lambda x gamma grid, with every point's evidence.

    `paper_choice` (lam, gamma) is the paper's tuned pair (the setting's pinned values), recorded with
    its own score when it is a grid point; `used` says which pair the final runs take ("pinned" or "grid").

    `points` is a list of (lam, gamma, run_dir). Each run's summary.json gives the criterion:
    the best robust accuracy (PGD) on the selection split over the run's epochs. Ties go to the
    higher clean accuracy, then the smaller lambda, then the smaller gamma.
    """
    if not points:
        raise ResultsError("no grid points given")
    evidence = []
    for lam, gamma, run in points:
        run = Path(run)
        summary = read_json(run / "summary.json")
        if metric not in summary:
            raise ResultsError(f"{run / 'summary.json'}: no {metric!r}; keys: {sorted(summary)}")
        for key in (metric, "best_selection_clean_acc"):
            if not (is_accuracy(summary.get(key)) or (key != metric and summary.get(key) is None)):
                raise ResultsError(
                    f"{run / 'summary.json'}: {key} is {summary.get(key)!r}, not an accuracy in "
                    f"[0, 1]; train the run again or restore its summary.json"
                )
        selection = None
        if (run / "config.yaml").is_file():
            selection = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data", {}).get("selection")
        evidence.append(
            {
                "lam": float(lam),
                "gamma": float(gamma),
                "run_dir": str(run),
                metric: float(summary[metric]),
                "best_selection_clean_acc": summary.get("best_selection_clean_acc"),
                "best_epoch": summary.get("best_epoch"),
                "selection": selection,
            }
        )
    keys = [(p["lam"], p["gamma"]) for p in evidence]
    if len(set(keys)) != len(keys):
        raise ResultsError("a (lambda, gamma) point is given twice")
    ranked = sorted(evidence, key=lambda p: (-p[metric], -(p["best_selection_clean_acc"] or 0.0), p["lam"], p["gamma"]))
    for rank, p in enumerate(ranked, 1):
        p["rank"] = rank
    winner = ranked[0]
    notes = []
    if any(p["selection"] == "test" for p in evidence):
        notes.append("some grid runs selected on the TEST split (data.selection=test): the choice saw test data")
    paper = None
    if paper_choice is not None:
        lam, gamma = map(float, paper_choice)
        point = next((p for p in evidence if (p["lam"], p["gamma"]) == (lam, gamma)), None)
        paper = {
            "lam": lam,
            "gamma": gamma,
            "value": point[metric] if point else None,
            "best_selection_clean_acc": point["best_selection_clean_acc"] if point else None,
        }
    return {
        "format": GRID_FORMAT,
        "paper_choice": paper,
        "used_by_final_runs": used,
        "lam": winner["lam"],
        "gamma": winner["gamma"],
        "run_dir": winner["run_dir"],
        "criterion": f"highest {metric} (robust accuracy under the training's PGD on the selection split, "
        "best epoch); ties: higher best_selection_clean_acc, then smaller lambda, then smaller gamma",
        "metric": metric,
        "value": winner[metric],
        "lam_values": sorted({p["lam"] for p in evidence}),
        "gamma_values": sorted({p["gamma"] for p in evidence}),
        "points": ranked,
        "notes": notes,
    }


def is_accuracy(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def check_winner(winner, path) -> dict:
    """A winner.json of `select_grid`: its format, and lambda and gamma as finite non-negative numbers."""
    if not isinstance(winner, dict) or winner.get("format") != GRID_FORMAT:
        raise ResultsError(f"{path}: not a grid winner (format {GRID_FORMAT}); write it with iseat aggregate grid")
    for key in ("lam", "gamma"):
        value = winner.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
            raise ResultsError(
                f"{path}: {key} is {value!r}, not a finite number >= 0; write it with iseat aggregate grid"
            )
    return winner


def tuned_values(winner: dict, keys, lam_warmup: bool) -> dict:
    """The winner as a train-config fragment (`iseat train --config`): the chosen lambda and/or gamma;
    with the warm-up, lambda is 0 in the first lr stage."""
    method = tuned_method(keys, float(winner["lam"]), winner["gamma"], lam_warmup)
    if not method:
        raise ResultsError("keys: give lam and/or gamma")
    return {"method": method}


def write_winner(points, out, metric: str = GRID_METRIC, paper_choice=None, used: str | None = None) -> dict:
    """`select_grid`, written (atomically) as winner.json at `out`."""
    winner = select_grid(points, metric, paper_choice, used)
    write_json_atomic(out, winner)
    return winner


def write_tuned(winner_path, keys, lam_warmup: bool, out) -> dict:
    """The winner at `winner_path` as a train-config fragment (`tuned_values`), written as YAML at `out`."""
    fragment = tuned_values(check_winner(read_json(winner_path), winner_path), keys, lam_warmup)
    write_text_atomic(
        out, f"# from {winner_path}\n" + yaml.safe_dump(fragment, sort_keys=False, default_flow_style=None)
    )
    return fragment
