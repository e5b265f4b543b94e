"""Figures of the results: ours beside the paper's numbers, per-epoch training curves, the grid's heat map."""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from iseat.results import ResultsError
from iseat.results.table_rows import Entry, result_rows
from iseat.results.writers import save_figure


def figure_results(out, entries: list[Entry], setting_labels: dict, method_labels: dict) -> None:
    """Clean and AutoAttack accuracy per (setting, method): ours (mean ± std) beside the paper's."""
    rows = [r for r in result_rows(entries, setting_labels, method_labels) if r.aa]
    if not rows:
        raise ResultsError("no aggregated aa.json among the entries")
    fig = Figure(figsize=(max(7, 1.2 * len(rows) + 3), 4.2))
    axes = fig.subplots(1, 2)
    x = list(range(len(rows)))
    for ax, key, title in ((axes[0], "clean", "Clean accuracy (%)"), (axes[1], "rob", "AutoAttack accuracy (%)")):
        ours = [r.cells[key] for r in rows]
        paper = [r.cells[f"{key}_paper"] for r in rows]
        ax.bar([i - 0.2 for i in x], [o[0] for o in ours], 0.4, yerr=[o[1] for o in ours], capsize=3, label="ours")
        px = [i + 0.2 for i, p in zip(x, paper) if p]
        if px:
            ax.bar(px, [p[0] for p in paper if p], 0.4, yerr=[p[1] or 0 for p in paper if p], capsize=3, label="paper")
        ax.set_xticks(x)
        ax.set_xticklabels(
            [f"{r.entry.setting}\n{method_labels.get(r.entry.method, r.entry.method)}" for r in rows],
            rotation=45,
            ha="right",
            fontsize=7,
        )
        ax.set_title(title)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save_figure(fig, out, dpi=120)


TRAINING_PANELS = (
    ("selection_pgd_acc", "selection PGD accuracy"),
    ("selection_clean_acc", "selection clean accuracy"),
    ("train_loss", "training loss"),
    ("av_sd", "AV SD (Eq. 6)"),
)


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ResultsError(f"{path}: no such file")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ResultsError(f"{path}, line {n}: not valid JSON") from None
    return rows


def figure_training(out, runs, title: str = "") -> None:
    """Per-epoch curves of every method (mean over its seeds): selection robustness and accuracy,
    training loss and the spread of adversarial vulnerability (AV SD)."""
    if not runs:
        raise ResultsError("no runs given")
    curves: dict[str, dict[str, dict[int, list]]] = {}
    for label, run in runs:
        for row in read_metrics(run):
            for key, _ in TRAINING_PANELS:
                if isinstance(row.get(key), (int, float)) and "epoch" in row:
                    curves.setdefault(label, {}).setdefault(key, {}).setdefault(int(row["epoch"]), []).append(row[key])
    fig = Figure(figsize=(4 * len(TRAINING_PANELS), 3.4))
    axes = fig.subplots(1, len(TRAINING_PANELS))
    for ax, (key, name) in zip(axes, TRAINING_PANELS):
        for label, by_key in curves.items():
            points = sorted(by_key.get(key, {}).items())
            if points:
                ax.plot([e for e, _ in points], [sum(v) / len(v) for _, v in points], marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out, dpi=120)


def figure_grid(out, winner: dict, title: str = "") -> None:
    """Heat map of the grid's selection criterion over lambda x gamma; the winner is framed."""
    lams, gammas = winner["lam_values"], winner["gamma_values"]
    value = {(p["lam"], p["gamma"]): p[winner["metric"]] for p in winner["points"]}
    grid = [[100 * value.get((lam, g), math.nan) for g in gammas] for lam in lams]
    fig = Figure(figsize=(1.2 * len(gammas) + 2.5, 0.9 * len(lams) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(gammas)), [f"{g:g}" for g in gammas])
    ax.set_yticks(range(len(lams)), [f"{lam:g}" for lam in lams])
    ax.set_xlabel("gamma (weight perturbation)")
    ax.set_ylabel("lambda (smoothing)")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    wi, wj = lams.index(winner["lam"]), gammas.index(winner["gamma"])
    ax.add_patch(Rectangle((wj - 0.5, wi - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label=f"{winner['metric']} (%)")
    ax.set_title(
        (title + ": " if title else "") + f"grid winner lambda={winner['lam']:g}, gamma={winner['gamma']:g}", fontsize=9
    )
    fig.tight_layout()
    save_figure(fig, out, dpi=120)


def figure_curves(out, entries: list[Entry], method_labels: dict, title: str = "") -> None:
    """Robustness curves of one setting: each method's PGD-k robust accuracy against eps (its aggregated
    sweep.json, mean ± std over seeds) and AutoAttack's point (aggregated aa.json) at its eps."""
    curves = [(e, e.load("sweep"), e.load("aa")) for e in entries]
    if not any(sweep and sweep.get("curve") for _, sweep, _ in curves):
        raise ResultsError("no aggregated sweep.json with a curve among the entries")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for entry, sweep, aa in curves:
        if not (sweep and sweep.get("curve")):
            continue
        label = method_labels.get(entry.method, entry.method)
        eps = [255 * p["eps"] for p in sweep["curve"]]
        line = ax.errorbar(
            eps,
            [100 * p["robust_accuracy"]["mean"] for p in sweep["curve"]],
            yerr=[100 * p["robust_accuracy"]["std"] for p in sweep["curve"]],
            marker="o",
            capsize=3,
            label=f"{label} ({sweep.get('label')})",
        )
        threat = ((aa or {}).get("stamp") or {}).get("threat_model") or {}
        if aa and threat.get("eps") is not None:
            ax.plot(
                [255 * threat["eps"]],
                [100 * aa["robust_accuracy"]["mean"]],
                marker="*",
                markersize=12,
                linestyle="none",
                color=line[0].get_color(),
                label=f"{label} ({aa.get('label') or 'AutoAttack'})",
            )
    ax.set_xscale("symlog", linthresh=16)  # 0..16/255 linear, the very large budgets compressed
    budgets = sorted({round(255 * p["eps"], 6) for _, sweep, _ in curves if sweep for p in sweep.get("curve", [])})
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.set_xlabel("eps (/255, l-inf)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "robustness curves")
    fig.tight_layout()
    save_figure(fig, out, dpi=120)
