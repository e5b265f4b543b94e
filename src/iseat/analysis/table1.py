"""Tab. 1 of the paper: AV statistics of the training set and test robustness per method (AT, AWP,
RST, the Eq. 9 regulariser), from margin-study summaries or AV logs plus evaluation JSONs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from iseat.analysis.av_statistics import resolve_epoch
from iseat.common.io import write_text_atomic
from iseat.results import paper_numbers
from iseat.results.writers import write_csv
from iseat.training.avlog import AVLog, av_statistics

AV_COLUMNS = (
    ("av_sd", "AV SD"),
    ("av_top10_mean", "top-10 % AV"),
    ("av_bottom10_mean", "bottom-10 % AV"),
    ("share_av_ge_1", "AV ≥ 1 (%)"),
    ("share_av_le_0", "AV ≤ 0 (%)"),
)
SHARES = ("share_av_ge_1", "share_av_le_0")

# Tab. 1 of the paper (PreActResNet18, CIFAR-10), by the analysis run's name (at, awp, rst, eq9); fractions
# as ours. The numbers: iseat/results/paper_numbers.yaml.
PAPER_TABLE1 = {
    row: {k: v / 100 if k in (*SHARES, "robustness") else v for k, v in values.items()}
    for row, values in paper_numbers.rows("tab1").items()
}

# Fig. 1b's statements about AT's training-set margins: (margin-summary key, statement, paper's share)
FIG1B_STATEMENTS = {
    "share_within_budget": "change prediction within eps",
    "share_within_third_budget": "change prediction within eps/3",
    "share_beyond_double_budget": "unchanged at 2 eps",
    "share_disordered": "reach the maximal margin mu_max",
}
PAPER_FIG1B = tuple(
    (key, FIG1B_STATEMENTS[key], value / 100) for key, value in paper_numbers.rows("fig1b")["at"].items()
)


def lookup(obj: dict, dotted: str, path) -> float:
    """obj["a"]["b"] for "a.b"; ValueError naming the keys that exist."""
    node = obj
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            have = sorted(node) if isinstance(node, dict) else []
            raise ValueError(f"{path}: no key {dotted!r} (keys here: {have})")
        node = node[key]
    if not isinstance(node, (int, float)) or not 0 <= node <= 1:
        raise ValueError(f"{path}: {dotted} = {node!r} is not a fraction in [0, 1]")
    return float(node)


def read_evaluation(path, accuracy_key: str, robustness_key: str) -> dict:
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({type(err).__name__})") from None
    return {"accuracy": lookup(obj, accuracy_key, path), "robustness": lookup(obj, robustness_key, path)}


def av_statistics_of(path, epoch: int = -1) -> dict:
    """AV statistics from a margin-study summary (margin.json: Eq. 3 under PGD-50, eval mode), an AV-study
    summary (`analyse vulnerability`: Eq. 3 under the run's training PGD, eval mode) or from
    an AV log (.h5: the training-time AV of one epoch, -1 = last complete), with their source."""
    path = Path(path)
    if path.suffix == ".h5":
        with AVLog(path) as log:
            epoch = resolve_epoch(log.epochs, epoch, path)
            stats = av_statistics(log.values("av", epoch))
            perturbed = bool(log.file["weight_perturbed"][log.row(epoch)])
        return stats | {"source": f"training log epoch {epoch}, Eq. {10 if perturbed else 3}"}
    try:
        summary = json.loads(path.read_text())
        stats = summary["av_statistics"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"{path}: neither an AV log (.h5) nor a summary with av_statistics (margin.json, `analyse vulnerability`)"
        ) from None
    return stats | {"source": f"Eq. 3, PGD-{summary.get('attack', {}).get('steps', '?')}, eval mode"}


def table1_rows(entries) -> list[dict]:
    """`entries`: (method name, AV source path, evaluation dict from `read_evaluation`)."""
    rows = []
    for name, av_source, evaluation in entries:
        stats = av_statistics_of(av_source)
        rows.append(
            {
                "method": name,
                **{k: stats[k] for k, _ in AV_COLUMNS},
                **evaluation,
                "n_samples": stats["n_samples"],
                "av_source": stats["source"],
            }
        )
    return rows


def cell(key: str, value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in SHARES or key in ("accuracy", "robustness"):
        return f"{100 * value:.2f}"
    return f"{value:.4f}"


def paper_table1_key(label) -> str | None:
    """The paper's Tab. 1 row of a method label: AT, AWP, RST, or any label naming Eq. 9."""
    compact = re.sub(r"[^a-z0-9]", "", str(label).lower())
    return "eq9" if "eq9" in compact else compact if compact in PAPER_TABLE1 else None


def paper_rows(row: dict) -> list[dict]:
    """The paper's Tab. 1 row for `row`'s method and the difference ours - paper (none if the paper has no row)."""
    paper = PAPER_TABLE1.get(paper_table1_key(row["method"]))
    if paper is None:
        return []
    blank = {"accuracy": None, "av_source": ""}
    return [
        {**blank, **paper, "method": f"{row['method']} (paper)"},
        {**blank, **{k: row[k] - v for k, v in paper.items()}, "method": f"{row['method']}: Δ ours − paper"},
    ]


def table1_markdown(rows: list[dict]) -> str:
    columns = [
        ("method", "method"),
        *AV_COLUMNS,
        ("accuracy", "accuracy (%)"),
        ("robustness", "robustness (%)"),
        ("av_source", "AV from"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines += ["| " + " | ".join(cell(key, r[key]) for key, _ in columns) + " |" for r in [row, *paper_rows(row)]]
    return "\n".join(lines) + "\n"


def figure1b_markdown(margin_summary: dict) -> str:
    """Fig. 1b's statements (AT, training set) beside the shares measured on our AT model."""
    budget = margin_summary.get("eps_budget_l2_mean_delta_norm")
    lines = [
        f"eps = the mean l2 norm of the PGD perturbation ({budget:.3f})" if budget else "",
        "",
        "| statement (share of samples) | paper (%) | ours (%) |",
        "| --- | --- | --- |",
    ]
    for key, statement, paper in PAPER_FIG1B:
        lines.append(f"| {statement} | about {100 * paper:.0f} | {cell('share_av_ge_1', margin_summary.get(key))} |")
    return "\n".join(lines) + "\n"


def write_table1(rows: list[dict], out, at_margin_summary: dict | None = None) -> dict:
    """Markdown table at `out` (ours, the paper's and the difference per method; with AT's margin summary
    also Fig. 1b's statements) and our numbers in a CSV beside it; returns the columns."""
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    write_csv(Path(out).with_suffix(".csv"), columns)
    text = "# Tab. 1: adversarial vulnerability and robustness\n\n" + table1_markdown(rows)
    if at_margin_summary is not None:
        text += "\n## Fig. 1b: the paper's statements about AT's margins, and ours\n\n" + figure1b_markdown(
            at_margin_summary
        )
    write_text_atomic(out, text)
    return columns
