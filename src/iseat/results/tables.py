"""The paper's tables (Tab. 2-6) and all results of a configuration, with our numbers beside the paper's
and the paired comparison with AT, rendered as Markdown, CSV and LaTeX from one column list
(`columns.COLUMNS`); the comparisons themselves in significance.csv/.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from iseat.common.io import write_text_atomic
from iseat.evaluation import gradient_masking as masking
from iseat.methods import registry as method_registry
from iseat.results import ResultsError, comparisons, paper_numbers
from iseat.results.columns import columns_of
from iseat.results.protocols import check_side_by_side
from iseat.results.seeds import percent, read_json
from iseat.results.writers import csv_cell, csv_text, write_csv

# Tab. 4's time column: the step benchmark's label (`iseat benchmark step`) of each row's method.
STEP_TIMING_LABELS = {
    row: method_registry.tab4_labels()[method]
    for row, method in (("at", "at"), ("ft_at_lsi", "at_lsi"), ("ft_at_awp", "at_awp"), ("ft_iseat", "iseat"))
}


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
    TableSpec(
        "tab2",
        "Tab. 2: CIFAR-10, test accuracy and AutoAttack robustness (%)",
        (
            ("cifar10", "at", "AT"),
            ("cifar10", "trades", "TRADE"),
            ("cifar10", "infoat", "InfoAT (published, not run)"),
            ("cifar10", "gairat", "GAIRAT"),
            ("cifar10", "fat", "FAT"),
            ("cifar10", "rwp", "RWP"),
            ("cifar10", "mart", "MART"),
            ("cifar10", "at_awp", "AT-AWP"),
            ("cifar10", "mart_awp", "MART-AWP"),
            ("cifar10", "las_at", "LAS-AT (published, not run)"),
            ("cifar10", "las_awp", "LAS-AWP (published, not run)"),
            ("cifar10", "iseat", "ISEAT"),
            ("cifar10", "iseat_swa", "ISEAT + SWA"),
            ("cifar10_idbh", "at", "IDBH + AT"),
            ("cifar10_idbh", "iseat", "IDBH + ISEAT"),
            ("cifar10_idbh_wrn28", "iseat", "IDBH + ISEAT"),
            ("cifar10_ti500k", "rst", "RST"),
            ("cifar10_ti500k", "rst_mart", "RST + MART"),
            ("cifar10_ti500k", "rst_gairat", "RST + GAIRAT"),
            ("cifar10_ti500k", "rst_awp", "RST + AWP"),
            ("cifar10_ti500k", "rst_rwp", "RST + RWP"),
            ("cifar10_ti500k", "iseat", "ISEAT"),
        ),
    ),
    TableSpec(
        "tab3",
        "Tab. 3: CIFAR-100 and SVHN (PreActResNet18), accuracy and AutoAttack robustness (%)",
        (("cifar100", "at", "AT"), ("cifar100", "iseat", "ISEAT"), ("svhn", "at", "AT"), ("svhn", "iseat", "ISEAT")),
    ),
    TableSpec(
        "tab4",
        "Tab. 4: components of ISEAT, fine-tuned from the base AT model (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_at_lsi", "+ input smoothing"),
            ("cifar10", "ft_at_awp", "+ weight smoothing"),
            ("cifar10", "ft_iseat", "+ both (ISEAT)"),
        ),
    ),
    TableSpec(
        "tab5",
        "Tab. 5: distance and instance weights of the regulariser, fine-tuned (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_iseat_kl", "KL, unweighted"),
            ("cifar10", "ft_iseat_uniform", "squared l2, unweighted"),
            ("cifar10", "ft_iseat_top10", "squared l2, top-10 %"),
            ("cifar10", "ft_iseat", "squared l2, linear (ISEAT)"),
        ),
    ),
    TableSpec(
        "tab6",
        "Tab. 6: smoothing target, fine-tuned (CIFAR-10)",
        (
            ("cifar10", "at", "AT (base model)"),
            ("cifar10", "ft_iseat_lsi", "+ LSI"),
            ("cifar10", "ft_iseat_trade_awp", "+ TRADE-AWP (squared l2)"),
            ("cifar10", "ft_iseat", "+ LSIW (ISEAT)"),
        ),
    ),
)
TITLES = {spec.name: spec.title for spec in TABLES}
TITLES["all_results"] = "All results of this configuration, beside the paper's where a row maps onto it (%)"


@dataclass
class Entry:
    """One aggregated result: results/<setting>/<method>/{aa,pgd}.json."""

    setting: str
    method: str
    paper: str | None
    result_dir: str
    _loaded: dict = field(default_factory=dict, repr=False, compare=False)  # an entry sits in several tables

    def load(self, evaluation: str) -> dict | None:
        """The aggregated `evaluation` (aa, pgd) result, read once; None if it does not exist."""
        if evaluation not in self._loaded:
            path = Path(self.result_dir) / f"{evaluation}.json"
            self._loaded[evaluation] = read_json(path) if path.is_file() else None
        return self._loaded[evaluation]


@dataclass
class Row:
    table: str
    label: str
    paper_setting: str | None
    entry: Entry | None
    aa: dict | None
    pgd: dict | None
    time_ratio: float | None = None  # Tab. 4: our step time / AT's
    vs_at: dict | None = field(default=None)  # the paired AutoAttack comparison with AT (comparisons.compare)

    @property
    def ran(self) -> bool:
        return self.entry is not None and self.entry.setting != "-"

    @property
    def paper_time(self):
        """Tab. 4: the paper's seconds per batch and their ratio to AT's."""
        seconds = paper_numbers.step_seconds(self.entry.method) if self.table == "tab4" and self.entry else None
        return None if seconds is None else (seconds, seconds / paper_numbers.step_seconds("at"))

    def paper(self, column: str):
        if not self.paper_setting or not self.entry:
            return None
        return paper_numbers.accuracy(self.paper_setting, self.entry.method, column)

    @cached_property
    def cells(self) -> dict:
        return {
            "clean": percent(self.aa["clean_accuracy"]) if self.aa else None,
            "clean_paper": self.paper("clean"),
            "rob": percent(self.aa["robust_accuracy"]) if self.aa else None,
            "rob_paper": self.paper("aa"),
            "pgd": percent(self.pgd["robust_accuracy"]) if self.pgd else None,
            "n_seeds": self.aa["n_seeds"] if self.aa else 0,
            "n_examples": self.aa.get("n_examples") if self.aa else None,
            "speed_options": sorted({o for r in (self.aa, self.pgd) if r for o in r.get("speed_options", [])}),
        }

    @cached_property
    def flags(self) -> list[str]:
        """Gradient-masking flags of any seed's evaluations (eps sweep included), and PGD-k above AutoAttack on
        a seed (`gradient_masking`) where both attacked the same test images (their stamps' test indices)."""
        robust = lambda result: {s["seed"]: s["robust_accuracy"] for s in (result or {}).get("per_seed", [])}
        images = lambda result: ((result or {}).get("stamp") or {}).get("test_indices")
        aa, pgd = robust(self.aa), robust(self.pgd)
        same_images = images(self.aa) is not None and images(self.aa) == images(self.pgd)
        gaps = [f for seed in aa.keys() & pgd.keys() if same_images for f in masking.pgd_gap(pgd[seed], aa[seed])]
        sweep = (self.entry.load("sweep") if self.ran else None) or {}
        return masking.ordered(
            [
                *(self.aa or {}).get("masking_flags", []),
                *(self.pgd or {}).get("masking_flags", []),
                *sweep.get("masking_flags", []),
                *gaps,
            ]
        )

    @property
    def source(self) -> str:
        text = f"{self.entry.setting}/{self.entry.method}" if self.ran else "not run"
        return text + (f" ({', '.join(self.cells['speed_options'])})" if self.cells["speed_options"] else "")


def parse_entries(entries) -> list[Entry]:
    out = []
    known = paper_numbers.settings()
    for setting, method, paper, result_dir in entries:
        if paper not in ("-", "", None) and paper not in known:
            raise ResultsError(
                f"entry {setting}/{method}: unknown paper setting {paper!r}; known: {sorted(known)} or '-'"
            )
        out.append(Entry(setting, method, None if paper in ("-", "", None) else paper, result_dir))
    return out


def load_results(entries: list[Entry], evaluation: str = "aa") -> dict:
    """{(setting, method): aggregated result or None} of every entry."""
    return {(e.setting, e.method): e.load(evaluation) for e in entries}


def build_rows(
    entries: list[Entry],
    setting_labels: dict,
    method_labels: dict,
    step_timing: dict | None = None,
    compared: dict | None = None,
) -> dict[str, list[Row]]:
    """Rows of every paper table (filled where our entries map onto the paper's rows) and of
    `all_results` (every entry); Tab. 4's rows carry our step-time ratios when `step_timing` is given,
    every row its comparison with AT when `compared` (`comparisons.compare_all`) is given."""
    ratios = step_time_ratios(step_timing)
    compared = compared or {}
    vs_at = lambda e: compared.get((e.setting, e.method, "at")) if e else None
    by_paper = {}
    for e in entries:
        if e.paper:
            by_paper.setdefault((e.paper, e.method), e)
    prefixes = paper_numbers.settings()
    tables = {}
    for spec in TABLES:
        rows = []
        for paper_setting, method, label in spec.rows:
            entry = by_paper.get((paper_setting, method))
            rows.append(
                Row(
                    spec.name,
                    f"{prefixes[paper_setting]} / {label}",
                    paper_setting,
                    entry or Entry("-", method, paper_setting, ""),
                    entry.load("aa") if entry else None,
                    entry.load("pgd") if entry else None,
                    ratios.get(method) if spec.name == "tab4" else None,
                    vs_at(entry),
                )
            )
        tables[spec.name] = rows
    tables["all_results"] = result_rows(entries, setting_labels, method_labels, vs_at)
    for rows in tables.values():  # Holm's family: the comparisons one table shows
        for row, adjusted in zip(rows, comparisons.adjust([r.vs_at for r in rows])):
            row.vs_at = adjusted
    return tables


def result_rows(entries: list[Entry], setting_labels: dict, method_labels: dict, vs_at=lambda entry: None) -> list[Row]:
    """The `all_results` rows: every entry under its labels, with its comparison with AT (`vs_at(entry)`)."""
    return [
        Row(
            "all_results",
            f"{setting_labels.get(e.setting, e.setting)} / {method_labels.get(e.method, e.method)}",
            e.paper,
            e,
            e.load("aa"),
            e.load("pgd"),
            vs_at=vs_at(e),
        )
        for e in entries
    ]


# ----------------------------------------------------------------------------- renderers


STANDARD_AA = "autoattack-standard"


def aa_meaning(rows: list[Row]) -> str:
    """What the AA column holds: standard AutoAttack, or the labels of the other protocols its rows used."""
    other = sorted(
        {
            r.aa.get("label") or str(r.aa.get("attack"))
            for r in rows
            if r.aa and r.aa.get("attack") not in (None, STANDARD_AA)
        }
    )
    if not other:
        return "AA = AutoAttack (standard, Linf, 8/255) robust accuracy"
    return f"AA = robust accuracy (Linf, 8/255) under {'; '.join(other)}: not standard AutoAttack"


def footnotes(name: str, rows: list[Row]) -> list[str]:
    lines = [
        f"Ours: mean ± std over seeds (sample std); {aa_meaning(rows)}; Δ = ours − paper, percentage points; "
        "— = not available.",
        "AA − AT (paired): ours minus AT of the same setting on the same test images, percentage points; "
        + comparisons.RULE
        + "; all comparisons in significance.csv.",
    ]
    if name == "tab4":
        lines.append(
            "Time: one training step relative to AT's; ours from the step benchmark "
            "(results/benchmarks/step_timing.json), the paper's on an RTX 3080Ti (WRN34-10)."
        )
    notes = sorted(
        {
            f"{r.entry.setting}: {r.cells['n_examples']} test samples"
            for r in rows
            if r.aa and isinstance(r.cells["n_examples"], int)
        }
    )
    if notes:
        lines.append("Evaluated on " + "; ".join(notes) + ".")
    return lines + speed_option_notes(rows) + masking_notes(rows)


def masking_notes(rows: list[Row]) -> list[str]:
    """The flag's footnote and the flagged rows with their flags (nothing when no row is flagged)."""
    flagged = [f"{r.label}: {', '.join(r.flags)}" for r in rows if r.flags]
    return [masking.footnote(), "Flagged: " + "; ".join(flagged) + "."] if flagged else []


def speed_option_notes(rows: list[Row]) -> list[str]:
    """One line naming the rows whose runs used opt-in speed options (bf16 and TF32 change the numerics)."""
    used = [f"{r.label}: {', '.join(r.cells['speed_options'])}" for r in rows if r.cells["speed_options"]]
    return ["Runs with opt-in speed options (not the fp32 default): " + "; ".join(used) + "."] if used else []


def table_markdown(name: str, rows: list[Row]) -> str:
    columns = columns_of(name, shown=True)
    lines = [f"### {TITLES[name]}", "", "| " + " | ".join(c.title for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(c.text(row).replace("|", "/") for c in columns) + " |")
    return "\n".join(lines + [""] + footnotes(name, rows)) + "\n"


def table_csv(name: str, rows: list[Row]) -> str:
    return csv_text({field: [value(row) for row in rows] for c in columns_of(name) for field, value in c.fields})


def latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("†", r"$\dagger$"),
        ("‡", r"$\ddagger$"),
        ("Δ", r"$\Delta$"),
        ("—", "--"),
        ("−", "-"),
    ):
        text = text.replace(a, b)
    return text


def table_latex(name: str, rows: list[Row]) -> str:
    columns = columns_of(name, shown=True, latex=True)
    lines = [
        f"% {TITLES[name]}",
        r"% generated by iseat aggregate tables; needs \usepackage{booktabs}",
        r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(c.title) for c in columns) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        lines.append(" & ".join(latex_escape(c.text(row)) for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"] + [f"% {line}" for line in footnotes(name, rows)]
    return "\n".join(lines) + "\n"


RENDERERS = (("md", table_markdown), ("csv", table_csv), ("tex", table_latex))


# ----------------------------------------------------------------------------- significance files


def significance_columns(compared: dict) -> dict:
    """One row per comparison (method vs reference): accuracies, difference, interval, McNemar p-values, and
    the largest per-seed p Holm-adjusted over all comparisons of the file."""
    keys = list(compared)
    compared = dict(zip(keys, comparisons.adjust([compared[k] for k in keys])))
    get = lambda name: [None if compared[k] is None else compared[k][name] for k in keys]
    return {
        "setting": [s for s, _, _ in keys],
        "method": [m for _, m, _ in keys],
        "reference": [r for _, _, r in keys],
        "seeds": [None if compared[k] is None else " ".join(map(str, compared[k]["seeds"])) for k in keys],
        "n_examples": [None if compared[k] is None else " ".join(map(str, compared[k]["n_examples"])) for k in keys],
        "accuracy_method": get("accuracy_a"),
        "accuracy_reference": get("accuracy_b"),
        "difference": get("difference"),
        "ci95_low": get("low"),
        "ci95_high": get("high"),
        "n_method_only": get("n_ab"),
        "n_reference_only": get("n_ba"),
        "mcnemar_p": [None if compared[k] is None else " ".join(map(csv_cell, compared[k]["p_values"])) for k in keys],
        "significant": [None if compared[k] is None else int(compared[k]["significant"]) for k in keys],
        "p_holm": get("p_holm"),
        "significant_holm": [None if compared[k] is None else int(compared[k]["significant_holm"]) for k in keys],
    }


def significance_markdown(columns: dict, setting_labels: dict, method_labels: dict) -> str:
    lines = [
        "### Paired comparisons on the same test images (AutoAttack robust accuracy, %)",
        "",
        "| setting | method | reference | seeds | method (%) | reference (%) | difference | 95 % interval "
        "| McNemar p per seed | significant | Holm p | significant (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in range(len(columns["setting"])):
        c = {k: v[i] for k, v in columns.items()}
        c |= {
            "setting": setting_labels.get(c["setting"], c["setting"]),
            "method": method_labels.get(c["method"], c["method"]),
            "reference": method_labels.get(c["reference"], c["reference"]),
        }
        if c["seeds"] is None:
            lines.append(f"| {c['setting']} | {c['method']} | {c['reference']} |" + " — |" * 9)
            continue
        interval = "—" if c["ci95_low"] is None else f"[{c['ci95_low']:+.2f}, {c['ci95_high']:+.2f}]"
        lines.append(
            f"| {c['setting']} | {c['method']} | {c['reference']} | {c['seeds']} | "
            f"{c['accuracy_method']:.2f} | {c['accuracy_reference']:.2f} | "
            f"{c['difference']:+.2f} | {interval} | {' '.join(f'{float(p):.3g}' for p in c['mcnemar_p'].split())} | "
            f"{comparisons.MARK if c['significant'] else 'no'} | {c['p_holm']:.3g} | "
            f"{comparisons.HOLM_MARK if c['significant_holm'] else 'no'} |"
        )
    lines += [
        "",
        "Difference: method − reference, percentage points; the interval is over seeds (none with one "
        "seed); " + comparisons.RULE + " (here: all comparisons of this file); — = no shared seed with per-sample "
        "results.",
    ]
    return "\n".join(lines) + "\n"


def write_tables(
    out_dir, entries: list[Entry], setting_labels: dict, method_labels: dict, step_timing: dict | None = None
) -> list[Path]:
    """tab2..tab6 and all_results as .md/.csv/.tex, and the paired comparisons as significance.csv/.md; refused
    (ResultsError) when two results' protocol stamps disagree (`protocols`)."""
    out_dir = Path(out_dir)
    for evaluation in ("aa", "pgd"):  # one protocol per table: refused before anything is written
        check_side_by_side(
            {f"{s}/{m}": r for (s, m), r in load_results(entries, evaluation).items()}, f"{evaluation} results"
        )
    compared = comparisons.compare_all(load_results(entries, "aa"), "aa")
    written = []
    for name, rows in build_rows(entries, setting_labels, method_labels, step_timing, compared).items():
        for ext, render in RENDERERS:
            path = out_dir / f"{name}.{ext}"
            write_text_atomic(path, render(name, rows))
            written.append(path)
    columns = significance_columns(compared)
    write_csv(out_dir / "significance.csv", columns)
    write_text_atomic(out_dir / "significance.md", significance_markdown(columns, setting_labels, method_labels))
    return written + [out_dir / "significance.csv", out_dir / "significance.md"]


__all__ = ["Entry", "Row", "TABLES", "TITLES", "build_rows", "parse_entries", "write_tables"]
