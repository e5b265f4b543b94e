"""Results of many runs put together: seed statistics, the lambda/gamma grid winner with its
evidence, the paper's tables (Markdown, CSV, LaTeX) with our numbers beside the paper's, figures
and the results index page.

Evaluation files (aa.json, pgd.json of `iseat evaluate`) hold accuracies as fractions in [0, 1];
tables and figures show percentages, like the paper.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .acceleration import used_options
from .errors import UserError
from .io import atomic_path, write_json_atomic, write_text_atomic

SEEDS_FORMAT = "iseat-seeds-v1"
GRID_FORMAT = "iseat-grid-v1"
GRID_METRIC = "best_selection_pgd_acc"


class AggregateError(UserError, ValueError):
    """Missing or inconsistent input; the message is one line."""


# ----------------------------------------------------------------------------- the paper's numbers

PAPER_SETTINGS = {
    "cifar10": "CIFAR-10 WRN34-10",
    "cifar10_idbh": "CIFAR-10 WRN34-10 + IDBH",
    "cifar10_idbh_wrn28": "CIFAR-10 WRN28-10 + IDBH",
    "cifar10_ti500k": "CIFAR-10 WRN28-10 + 500K TI",
    "cifar100": "CIFAR-100 PRN18",
    "svhn": "SVHN PRN18",
}

# (paper setting, method) -> ((clean mean, std), (AutoAttack mean, std)), %, mean +- std of 3 runs.
PAPER = {
    ("cifar10", "at"): ((85.90, 0.57), (53.42, 0.59)),
    ("cifar10", "at_awp"): ((85.57, 0.40), (54.04, 0.40)),
    ("cifar10", "iseat"): ((86.02, 0.36), (56.54, 0.36)),
    ("cifar10", "iseat_swa"): ((85.95, 0.09), (57.09, 0.13)),
    # Tab. 2's published comparison rows (std None where the paper gives none)
    ("cifar10", "trades"): ((85.72, None), (53.40, None)),
    ("cifar10", "infoat"): ((85.62, None), (52.86, None)),
    ("cifar10", "gairat"): ((86.30, None), (40.30, None)),
    ("cifar10", "fat"): ((87.97, None), (47.48, None)),
    ("cifar10", "rwp"): ((86.86, 0.51), (54.61, 0.11)),
    ("cifar10", "mart"): ((84.17, 0.40), (51.10, 0.40)),
    ("cifar10", "mart_awp"): ((84.43, 0.40), (54.23, 0.40)),
    ("cifar10", "las_at"): ((86.23, None), (53.58, None)),
    ("cifar10", "las_awp"): ((87.74, None), (55.52, None)),
    ("cifar10_idbh", "at"): ((87.03, 1.58), (54.16, 0.70)),
    ("cifar10_idbh", "iseat"): ((88.50, 0.11), (59.32, 0.08)),
    ("cifar10_idbh_wrn28", "iseat"): ((87.91, 0.18), (58.55, 0.14)),
    ("cifar10_ti500k", "rst"): ((89.69, 0.40), (59.53, 0.40)),
    ("cifar10_ti500k", "rst_mart"): ((87.50, None), (56.29, None)),
    ("cifar10_ti500k", "rst_gairat"): ((89.36, None), (59.64, None)),
    ("cifar10_ti500k", "rst_awp"): ((88.25, 0.40), (60.05, 0.40)),
    ("cifar10_ti500k", "rst_rwp"): ((88.87, 0.55), (60.36, 0.06)),
    ("cifar10_ti500k", "iseat"): ((90.59, 0.19), (61.55, 0.10)),
    ("cifar100", "at"): ((56.15, 1.15), (25.12, 0.22)),
    ("cifar100", "iseat"): ((53.19, 0.23), (28.17, 0.14)),
    ("svhn", "at"): ((90.55, 0.60), (47.48, 0.59)),
    ("svhn", "iseat"): ((91.08, 0.49), (54.04, 0.68)),
    # Tab. 4-6 (fine-tuned from the base AT model, whose row is ("cifar10", "at") above)
    ("cifar10", "ft_at_lsi"): ((84.10, 0.27), (54.50, 0.17)),
    ("cifar10", "ft_at_awp"): ((86.04, 0.27), (55.26, 0.15)),
    ("cifar10", "ft_iseat"): ((85.63, 0.13), (56.46, 0.14)),
    ("cifar10", "ft_iseat_kl"): ((85.07, 0.31), (56.08, 0.32)),
    ("cifar10", "ft_iseat_uniform"): ((85.15, 0.70), (56.20, 0.19)),
    ("cifar10", "ft_iseat_top10"): ((85.53, 0.03), (56.36, 0.02)),
    ("cifar10", "ft_iseat_lsi"): ((85.49, 0.50), (55.38, 0.32)),
    ("cifar10", "ft_iseat_trade_awp"): ((85.52, 0.29), (55.82, 0.46)),
}


# Tab. 4's time column: seconds per batch on an RTX 3080Ti (WRN34-10), and the step benchmark's label
# (`iseat benchmark step`) of each row's method.
PAPER_STEP_SECONDS = {"at": 0.253, "ft_at_lsi": 0.268, "ft_at_awp": 0.277, "ft_iseat": 0.298}
STEP_TIMING_LABELS = {"at": "AT", "ft_at_lsi": "+LSI", "ft_at_awp": "+AWP", "ft_iseat": "ISEAT"}


def step_time_ratios(timing: dict | None) -> dict:
    """Our step time relative to AT per Tab. 4 row method, from `iseat benchmark step --out` (fast path)."""
    if not timing:
        return {}
    rows = {r["method"]: r for r in timing.get("rows", []) if r.get("path", "fast") == "fast"}
    return {method: rows[label]["ratio_to_at"] for method, label in STEP_TIMING_LABELS.items() if label in rows}


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    rows: tuple  # (paper setting, method, row label)


TABLES = (
    TableSpec("tab2", "Tab. 2: CIFAR-10, test accuracy and AutoAttack robustness (%)", (
        ("cifar10", "at", "AT"), ("cifar10", "trades", "TRADE"),
        ("cifar10", "infoat", "InfoAT (published, not run)"), ("cifar10", "gairat", "GAIRAT"),
        ("cifar10", "fat", "FAT"), ("cifar10", "rwp", "RWP"), ("cifar10", "mart", "MART"),
        ("cifar10", "at_awp", "AT-AWP"), ("cifar10", "mart_awp", "MART-AWP"),
        ("cifar10", "las_at", "LAS-AT (published, not run)"), ("cifar10", "las_awp", "LAS-AWP (published, not run)"),
        ("cifar10", "iseat", "ISEAT"), ("cifar10", "iseat_swa", "ISEAT + SWA"),
        ("cifar10_idbh", "at", "IDBH + AT"), ("cifar10_idbh", "iseat", "IDBH + ISEAT"),
        ("cifar10_idbh_wrn28", "iseat", "IDBH + ISEAT"),
        ("cifar10_ti500k", "rst", "RST"), ("cifar10_ti500k", "rst_mart", "RST + MART"),
        ("cifar10_ti500k", "rst_gairat", "RST + GAIRAT"),
        ("cifar10_ti500k", "rst_awp", "RST + AWP"),
        ("cifar10_ti500k", "rst_rwp", "RST + RWP"), ("cifar10_ti500k", "iseat", "ISEAT"))),
    TableSpec("tab3", "Tab. 3: CIFAR-100 and SVHN (PreActResNet18), accuracy and AutoAttack robustness (%)", (
        ("cifar100", "at", "AT"), ("cifar100", "iseat", "ISEAT"),
        ("svhn", "at", "AT"), ("svhn", "iseat", "ISEAT"))),
    TableSpec("tab4", "Tab. 4: components of ISEAT, fine-tuned from the base AT model (CIFAR-10)", (
        ("cifar10", "at", "AT (base model)"), ("cifar10", "ft_at_lsi", "+ input smoothing"),
        ("cifar10", "ft_at_awp", "+ weight smoothing"), ("cifar10", "ft_iseat", "+ both (ISEAT)"))),
    TableSpec("tab5", "Tab. 5: distance and instance weights of the regulariser, fine-tuned (CIFAR-10)", (
        ("cifar10", "at", "AT (base model)"), ("cifar10", "ft_iseat_kl", "KL, unweighted"),
        ("cifar10", "ft_iseat_uniform", "squared l2, unweighted"),
        ("cifar10", "ft_iseat_top10", "squared l2, top-10 %"), ("cifar10", "ft_iseat", "squared l2, linear (ISEAT)"))),
    TableSpec("tab6", "Tab. 6: smoothing target, fine-tuned (CIFAR-10)", (
        ("cifar10", "at", "AT (base model)"), ("cifar10", "ft_iseat_lsi", "+ LSI"),
        ("cifar10", "ft_iseat_trade_awp", "+ TRADE-AWP (squared l2)"),
        ("cifar10", "ft_iseat", "+ LSIW (ISEAT)"))),
)


# ----------------------------------------------------------------------------- small helpers


def read_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise AggregateError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AggregateError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


def mean_std(values) -> dict:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of finite values."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n if n else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values, default=math.nan), "max": max(values, default=math.nan),
            "values": values}


def seed_of(path) -> int | None:
    match = re.fullmatch(r"seed(\d+)", Path(path).parent.name)
    return int(match.group(1)) if match else None


def percent(stats: dict | None) -> tuple | None:
    if not stats:
        return None
    return 100 * stats["mean"], 100 * stats["std"]


def fmt_pm(pair, digits=2) -> str:
    if pair is None:
        return "—"
    mean, std = pair
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_diff(ours, paper) -> str:
    if ours is None or paper is None:
        return "—"
    return f"{ours[0] - paper[0]:+.2f}"


def relpath(path, start) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


# ----------------------------------------------------------------------------- seeds


def aggregate_seeds(paths) -> dict:
    """Mean, std and per-seed values of the evaluation files of one (setting, method)."""
    if not paths:
        raise AggregateError("no evaluation files given")
    per_seed = []
    for i, path in enumerate(paths):
        result = read_json(path)
        for key in ("clean_accuracy", "robust_accuracy"):
            value = result.get(key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise AggregateError(f"{path}: {key} must be a fraction in [0, 1], got {value!r}")
        seed = seed_of(path)
        per_seed.append({"seed": seed if seed is not None else i, "source": str(path),
                         "run_dir": str(Path(path).parent), "attack": attack_name(result),
                         "label": result.get("label"),
                         "clean_accuracy": float(result["clean_accuracy"]),
                         "robust_accuracy": float(result["robust_accuracy"]),
                         "n_examples": result.get("n_examples"),
                         "speed_options": run_speed_options(Path(path).parent)})
    attacks = sorted({str(s["attack"]) for s in per_seed})
    if len(attacks) > 1:
        raise AggregateError(f"the files mix attacks {attacks}; aggregate one attack at a time")
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise AggregateError(f"seed given twice among {seeds}")
    n_examples = sorted({s["n_examples"] for s in per_seed if s["n_examples"] is not None})
    return {
        "format": SEEDS_FORMAT,
        "attack": per_seed[0]["attack"],
        "label": per_seed[0]["label"],
        "n_seeds": len(per_seed),
        "seeds": seeds,
        "n_examples": n_examples[0] if len(n_examples) == 1 else n_examples,
        "speed_options": sorted({o for s in per_seed for o in s["speed_options"]}),
        "clean_accuracy": mean_std(s["clean_accuracy"] for s in per_seed),
        "robust_accuracy": mean_std(s["robust_accuracy"] for s in per_seed),
        "std": "sample standard deviation over seeds (n - 1); 0 for a single seed",
        "per_seed": per_seed,
    }


def run_speed_options(run_dir: Path) -> list[str]:
    """The opt-in speed options (bf16, TF32, compile, ...) the run in `run_dir` used, from its summary.json."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return []
    try:
        return used_options(json.loads(summary.read_text()).get("acceleration"))
    except (json.JSONDecodeError, AttributeError):
        return []


def attack_name(result: dict):
    for key in ("protocol", "attack", "name"):
        if result.get(key) is not None:
            value = result[key]
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "unknown"


# ----------------------------------------------------------------------------- grid search


def select_grid(points, metric: str = GRID_METRIC, paper_choice=None, used: str | None = None) -> dict:
    """The winner of a lambda x gamma grid, with every point's evidence.

    `paper_choice` (lam, gamma) is the paper's tuned pair (the setting's pinned values), recorded with
    its own score when it is a grid point; `used` says which pair the final runs take ("pinned" or "grid").

    `points` is a list of (lam, gamma, run_dir). Each run's summary.json gives the criterion:
    the best robust accuracy (PGD) on the selection split over the run's epochs. Ties go to the
    higher clean accuracy, then the smaller lambda, then the smaller gamma.
    """
    if not points:
        raise AggregateError("no grid points given")
    evidence = []
    for lam, gamma, run in points:
        run = Path(run)
        summary = read_json(run / "summary.json")
        if metric not in summary:
            raise AggregateError(f"{run / 'summary.json'}: no {metric!r}; keys: {sorted(summary)}")
        selection = None
        if (run / "config.yaml").is_file():
            selection = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data", {}).get("selection")
        evidence.append({"lam": float(lam), "gamma": float(gamma), "run_dir": str(run),
                         metric: float(summary[metric]),
                         "best_selection_clean_acc": summary.get("best_selection_clean_acc"),
                         "best_epoch": summary.get("best_epoch"), "selection": selection})
    keys = [(p["lam"], p["gamma"]) for p in evidence]
    if len(set(keys)) != len(keys):
        raise AggregateError("a (lambda, gamma) point is given twice")
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
        paper = {"lam": lam, "gamma": gamma, "value": point[metric] if point else None,
                 "best_selection_clean_acc": point["best_selection_clean_acc"] if point else None}
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


def tuned_values(winner: dict, keys, lam_warmup: bool) -> dict:
    """The winner as a train-config fragment (`iseat train --config`): the chosen lambda and/or gamma;
    with the warm-up, lambda is 0 in the first lr stage."""
    method = {}
    if "lam" in keys:
        method["lam"] = [0.0, float(winner["lam"])] if lam_warmup else float(winner["lam"])
    if "gamma" in keys:
        method["gamma"] = float(winner["gamma"])
    if not method:
        raise AggregateError("keys: give lam and/or gamma")
    return {"method": method}


# ----------------------------------------------------------------------------- tables


@dataclass
class Entry:
    """One aggregated result: results/<setting>/<method>/{aa,pgd}.json."""

    setting: str
    method: str
    paper: str | None
    result_dir: str

    def load(self, evaluation: str) -> dict | None:
        path = Path(self.result_dir) / f"{evaluation}.json"
        return read_json(path) if path.is_file() else None


@dataclass
class Row:
    table: str
    label: str
    paper_setting: str | None
    entry: Entry | None
    aa: dict | None
    pgd: dict | None
    time_ratio: float | None = None  # Tab. 4: our step time / AT's

    @property
    def paper_time(self):
        """Tab. 4: the paper's seconds per batch and their ratio to AT's."""
        seconds = PAPER_STEP_SECONDS.get(self.entry.method) if self.table == "tab4" and self.entry else None
        return None if seconds is None else (seconds, seconds / PAPER_STEP_SECONDS["at"])

    @property
    def paper_numbers(self):
        return PAPER.get((self.paper_setting, self.entry.method if self.entry else None)) if self.paper_setting else None

    def cells(self) -> dict:
        paper = self.paper_numbers
        clean = percent(self.aa["clean_accuracy"]) if self.aa else None
        rob = percent(self.aa["robust_accuracy"]) if self.aa else None
        pgd = percent(self.pgd["robust_accuracy"]) if self.pgd else None
        return {"clean": clean, "clean_paper": paper[0] if paper else None,
                "rob": rob, "rob_paper": paper[1] if paper else None, "pgd": pgd,
                "n_seeds": self.aa["n_seeds"] if self.aa else 0,
                "n_examples": self.aa.get("n_examples") if self.aa else None,
                "speed_options": sorted({o for r in (self.aa, self.pgd) if r for o in r.get("speed_options", [])})}


def parse_entries(entries) -> list[Entry]:
    out = []
    for setting, method, paper, result_dir in entries:
        if paper not in ("-", "", None) and paper not in PAPER_SETTINGS:
            raise AggregateError(f"entry {setting}/{method}: unknown paper setting {paper!r}; "
                                 f"known: {sorted(PAPER_SETTINGS)} or '-'")
        out.append(Entry(setting, method, None if paper in ("-", "", None) else paper, result_dir))
    return out


def build_rows(entries: list[Entry], setting_labels: dict, method_labels: dict,
               step_timing: dict | None = None) -> dict[str, list[Row]]:
    """Rows of every paper table (filled where our entries map onto the paper's rows) and of
    `all_results` (every entry); Tab. 4's rows carry our step-time ratios when `step_timing` is given."""
    ratios = step_time_ratios(step_timing)
    by_paper = {}
    for e in entries:
        if e.paper:
            by_paper.setdefault((e.paper, e.method), e)
    tables = {}
    for spec in TABLES:
        rows = []
        for paper_setting, method, label in spec.rows:
            entry = by_paper.get((paper_setting, method))
            rows.append(Row(spec.name, f"{PAPER_SETTINGS[paper_setting]} / {label}", paper_setting,
                            entry or Entry("-", method, paper_setting, ""),
                            entry.load("aa") if entry else None, entry.load("pgd") if entry else None,
                            ratios.get(method) if spec.name == "tab4" else None))
        tables[spec.name] = rows
    tables["all_results"] = [
        Row("all_results", f"{setting_labels.get(e.setting, e.setting)} / {method_labels.get(e.method, e.method)}",
            e.paper, e, e.load("aa"), e.load("pgd"))
        for e in entries]
    return tables


TITLES = {spec.name: spec.title for spec in TABLES}
TITLES["all_results"] = "All results of this configuration, beside the paper's where a row maps onto it (%)"
HEADER = ["Setting / method", "Clean (ours)", "Clean (paper)", "Δ clean", "AA (ours)", "AA (paper)", "Δ AA",
          "PGD (ours)", "seeds", "ours from"]


def row_values(row: Row) -> list[str]:
    c = row.cells()
    source = f"{row.entry.setting}/{row.entry.method}" if row.entry and row.entry.setting != "-" else "not run"
    if c["speed_options"]:
        source += f" ({', '.join(c['speed_options'])})"
    return [row.label, fmt_pm(c["clean"]), fmt_pm(c["clean_paper"]), fmt_diff(c["clean"], c["clean_paper"]),
            fmt_pm(c["rob"]), fmt_pm(c["rob_paper"]), fmt_diff(c["rob"], c["rob_paper"]), fmt_pm(c["pgd"]),
            str(c["n_seeds"]), source]


TIME_HEADER = ["time / AT (ours)", "time / AT (paper)", "s/batch (paper)"]


def time_values(row: Row) -> list[str]:
    paper = row.paper_time
    return ["—" if row.time_ratio is None else f"{row.time_ratio:.3f}", "—" if paper is None else f"{paper[1]:.3f}",
            "—" if paper is None else f"{paper[0]:.3f}"]


def table_markdown(name: str, rows: list[Row]) -> str:
    header = HEADER + (TIME_HEADER if name == "tab4" else [])
    lines = [f"### {TITLES[name]}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        values = row_values(row) + (time_values(row) if name == "tab4" else [])
        lines.append("| " + " | ".join(v.replace("|", "/") for v in values) + " |")
    lines += ["", "Ours: mean ± std over seeds (sample std); AA = AutoAttack (standard, Linf, 8/255) robust "
              "accuracy; Δ = ours − paper, percentage points; — = not available."]
    if name == "tab4":
        lines.append("Time: one training step relative to AT's; ours from the step benchmark "
                     "(results/benchmarks/step_timing.json), the paper's on an RTX 3080Ti (WRN34-10).")
    notes = sorted({f"{r.entry.setting}: {r.cells()['n_examples']} test samples" for r in rows
                    if r.aa and isinstance(r.cells()["n_examples"], int)})
    if notes:
        lines.append("Evaluated on " + "; ".join(notes) + ".")
    lines += speed_option_notes(rows)
    return "\n".join(lines) + "\n"


def speed_option_notes(rows: list[Row]) -> list[str]:
    """One line naming the rows whose runs used opt-in speed options (bf16 and TF32 change the numerics)."""
    used = [f"{r.label}: {', '.join(r.cells()['speed_options'])}" for r in rows if r.cells()["speed_options"]]
    return ["Runs with opt-in speed options (not the fp32 default): " + "; ".join(used) + "."] if used else []


def table_csv(name: str, rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "label", "paper_setting", "setting", "method", "n_seeds", "n_examples",
                     "clean_mean", "clean_std", "clean_paper_mean", "clean_paper_std", "clean_diff",
                     "aa_mean", "aa_std", "aa_paper_mean", "aa_paper_std", "aa_diff", "pgd_mean", "pgd_std",
                     "result_dir"])
    num = lambda pair, i: "" if pair is None or pair[i] is None else f"{pair[i]:.4f}"
    diff = lambda ours, paper: "" if ours is None or paper is None else f"{ours[0] - paper[0]:.4f}"
    for row in rows:
        c = row.cells()
        ran = row.entry is not None and row.entry.setting != "-"
        writer.writerow([name, row.label, row.paper_setting or "", row.entry.setting if ran else "",
                         row.entry.method if row.entry else "", c["n_seeds"], c["n_examples"] or "",
                         num(c["clean"], 0), num(c["clean"], 1), num(c["clean_paper"], 0), num(c["clean_paper"], 1),
                         diff(c["clean"], c["clean_paper"]),
                         num(c["rob"], 0), num(c["rob"], 1), num(c["rob_paper"], 0), num(c["rob_paper"], 1),
                         diff(c["rob"], c["rob_paper"]), num(c["pgd"], 0), num(c["pgd"], 1),
                         row.entry.result_dir if ran else ""])
    return buf.getvalue()


def latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("—", "--"), ("−", "-")):
        text = text.replace(a, b)
    return text


def table_latex(name: str, rows: list[Row]) -> str:
    header = ["Setting / method", "Clean (ours)", "Clean (paper)", r"$\Delta$", "AA (ours)", "AA (paper)",
              r"$\Delta$", "PGD (ours)", "seeds"]
    lines = [f"% {TITLES[name]}", r"% generated by iseat aggregate tables; needs \usepackage{booktabs}",
             r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    for row in rows:
        values = [latex_escape(v) for v in row_values(row)[:-1]]
        lines.append(" & ".join(values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"] + [f"% {line}" for line in speed_option_notes(rows)]
    return "\n".join(lines) + "\n"


def write_tables(out_dir, entries: list[Entry], setting_labels: dict, method_labels: dict,
                 step_timing: dict | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    written = []
    for name, rows in build_rows(entries, setting_labels, method_labels, step_timing).items():
        for ext, render in (("md", table_markdown), ("csv", table_csv), ("tex", table_latex)):
            path = out_dir / f"{name}.{ext}"
            write_text_atomic(path, render(name, rows))
            written.append(path)
    return written


# ----------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")


def figure_results(out, entries: list[Entry], setting_labels: dict, method_labels: dict) -> None:
    """Clean and AutoAttack accuracy per (setting, method): ours (mean ± std) beside the paper's."""
    plt = _pyplot()
    rows = [r for r in build_rows(entries, setting_labels, method_labels)["all_results"] if r.aa]
    if not rows:
        raise AggregateError("no aggregated aa.json among the entries")
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 1.2 * len(rows) + 3), 4.2), sharey=False)
    x = list(range(len(rows)))
    for ax, key, title in ((axes[0], "clean", "Clean accuracy (%)"), (axes[1], "rob", "AutoAttack accuracy (%)")):
        ours = [r.cells()[key] for r in rows]
        paper = [r.cells()[f"{key}_paper"] for r in rows]
        ax.bar([i - 0.2 for i in x], [o[0] for o in ours], 0.4, yerr=[o[1] for o in ours], capsize=3, label="ours")
        px = [i + 0.2 for i, p in zip(x, paper) if p]
        if px:
            ax.bar(px, [p[0] for p in paper if p], 0.4, yerr=[p[1] or 0 for p in paper if p], capsize=3, label="paper")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r.entry.setting}\n{method_labels.get(r.entry.method, r.entry.method)}" for r in rows],
                           rotation=45, ha="right", fontsize=7)
        ax.set_title(title)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save_figure(fig, out)
    plt.close(fig)


TRAINING_PANELS = (("selection_pgd_acc", "selection PGD accuracy"), ("selection_clean_acc", "selection clean accuracy"),
                   ("train_loss", "training loss"), ("av_sd", "AV SD (Eq. 6)"))


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise AggregateError(f"{path}: no such file")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise AggregateError(f"{path}, line {n}: not valid JSON") from None
    return rows


def figure_training(out, runs, title: str = "") -> None:
    """Per-epoch curves of every method (mean over its seeds): selection robustness and accuracy,
    training loss and the spread of adversarial vulnerability (AV SD)."""
    plt = _pyplot()
    if not runs:
        raise AggregateError("no runs given")
    curves: dict[str, dict[str, dict[int, list]]] = {}
    for label, run in runs:
        for row in read_metrics(run):
            for key, _ in TRAINING_PANELS:
                if isinstance(row.get(key), (int, float)) and "epoch" in row:
                    curves.setdefault(label, {}).setdefault(key, {}).setdefault(int(row["epoch"]), []).append(row[key])
    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(4 * len(TRAINING_PANELS), 3.4))
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
    save_figure(fig, out)
    plt.close(fig)


def figure_grid(out, winner: dict, title: str = "") -> None:
    """Heat map of the grid's selection criterion over lambda x gamma; the winner is framed."""
    plt = _pyplot()
    lams, gammas = winner["lam_values"], winner["gamma_values"]
    value = {(p["lam"], p["gamma"]): p[winner["metric"]] for p in winner["points"]}
    grid = [[100 * value.get((lam, g), math.nan) for g in gammas] for lam in lams]
    fig, ax = plt.subplots(figsize=(1.2 * len(gammas) + 2.5, 0.9 * len(lams) + 1.8))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(gammas)), [f"{g:g}" for g in gammas])
    ax.set_yticks(range(len(lams)), [f"{lam:g}" for lam in lams])
    ax.set_xlabel("gamma (weight perturbation)")
    ax.set_ylabel("lambda (smoothing)")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    wi, wj = lams.index(winner["lam"]), gammas.index(winner["gamma"])
    ax.add_patch(plt.Rectangle((wj - 0.5, wi - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label=f"{winner['metric']} (%)")
    ax.set_title((title + ": " if title else "") + f"grid winner lambda={winner['lam']:g}, gamma={winner['gamma']:g}",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# ----------------------------------------------------------------------------- index page


def write_index(out, tables=(), figures=(), results=(), winners=(), extra=(), setting_labels=None,
                method_labels=None) -> None:
    """results/README.md: the tables inline, the figures, the grid winners, and every result with
    links to its per-seed runs (checkpoints, metrics, AV logs)."""
    out = Path(out)
    base = out.parent
    setting_labels, method_labels = setting_labels or {}, method_labels or {}
    link = lambda path, text=None: f"[{text or Path(path).name}]({relpath(path, base)})"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Results", "", f"Generated by `iseat aggregate index` ({stamp}). Numbers are percentages; "
             "ours are mean ± std over seeds.", ""]

    md_tables = [Path(t) for t in tables if Path(t).suffix == ".md"]
    if md_tables:
        lines += ["## Tables", ""]
        for md in md_tables:
            others = [Path(t) for t in tables if Path(t).stem == md.stem and Path(t) != md]
            lines += [md.read_text().rstrip(), "", "Files: " + ", ".join(link(p) for p in [md, *others]), ""]

    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            lines += [f"![{Path(fig).stem}]({relpath(fig, base)})", ""]

    if winners:
        lines += ["## Lambda/gamma grid search", "",
                  "| setting | winner lambda | winner gamma | winner's score (%) | paper's choice (lambda, gamma) "
                  "| its score (%) | final runs use | points | evidence |", "|---|---|---|---|---|---|---|---|---|"]
        score = lambda v: "—" if v is None else f"{100 * v:.2f}"
        for w in winners:
            data = read_json(w)
            setting = Path(w).parent.parent.name
            paper = data.get("paper_choice") or {}
            choice = f"{paper['lam']:g}, {paper['gamma']:g}" if paper else "—"
            used = {"grid": "grid winner", "pinned": "paper's choice"}.get(data.get("used_by_final_runs"), "—")
            lines.append(f"| {setting_labels.get(setting, setting)} | {data['lam']:g} | {data['gamma']:g} | "
                         f"{score(data['value'])} | {choice} | {score(paper.get('value'))} | {used} | "
                         f"{len(data['points'])} | {link(w)} |")
        lines += ["", "Selection: " + read_json(winners[0])["criterion"] + ". Score: that criterion on the validation "
                  "split (— = the paper's pair is not a grid point). `settings.<name>.tuned.source: grid` makes the "
                  "final runs use the grid winner.", ""]

    if results:
        lines += ["## Results per setting and method", "",
                  "| setting | method | evaluation | clean | robust | seeds | runs (checkpoints, metrics.jsonl, av_log.h5) |",
                  "|---|---|---|---|---|---|---|"]
        for r in results:
            data = read_json(r)
            method_dir = Path(r).parent
            setting, method = method_dir.parent.name, method_dir.name
            runs = ", ".join(f"{link(s['run_dir'], 'seed' + str(s['seed']))} ({link(Path(s['run_dir']) / 'av_log.h5', 'AV log')})"
                             for s in data.get("per_seed", []))
            lines.append(f"| {setting_labels.get(setting, setting)} | {method_labels.get(method, method)} | "
                         f"{link(r, Path(r).stem)} ({data.get('label') or data.get('attack')}) | {fmt_pm(percent(data['clean_accuracy']))} | "
                         f"{fmt_pm(percent(data['robust_accuracy']))} | {data.get('n_seeds')} | {runs} |")
        lines.append("")

    if extra:
        lines += ["## Analysis", ""]
        for path in extra:
            lines.append(f"![{Path(path).stem}]({relpath(path, base)})" if Path(path).suffix in (".png", ".svg", ".jpg")
                         else f"- {link(path, relpath(path, base))}")
        lines.append("")
    lines += ["Job logs: `logs/` (one per rule and wildcards).", ""]
    write_text_atomic(out, "\n".join(lines))


__all__ = ["AggregateError", "aggregate_seeds", "select_grid", "tuned_values", "Entry", "parse_entries",
           "build_rows", "write_tables", "figure_results", "figure_training", "figure_grid", "write_index",
           "PAPER", "PAPER_SETTINGS", "TABLES", "write_json_atomic"]
