"""Every column of the paper's tables, defined once: its Markdown/LaTeX title, its display text and
its CSV fields. `tables` renders Markdown, CSV and LaTeX from this one list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from iseat.evaluation import gradient_masking as masking
from iseat.results.comparisons import mark
from iseat.results.writers import csv_cell


def fmt_pm(pair, digits=2) -> str:
    if pair is None:
        return "—"
    mean, std = pair
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_diff(ours, paper) -> str:
    if ours is None or paper is None:
        return "—"
    return f"{ours[0] - paper[0]:+.2f}"


def num(value) -> str:
    return "" if value is None else f"{value:.4f}"


def mean_of(pair):
    return None if pair is None else pair[0]


def std_of(pair):
    return None if pair is None else pair[1]


def diff_of(ours, paper):
    return None if ours is None or paper is None else ours[0] - paper[0]


def fmt_ratio(value) -> str:
    return "—" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class Column:
    """`title`: the Markdown and LaTeX header (None: CSV only); `text(row)`: the displayed cell;
    `fields`: CSV (name, value(row)) pairs; `only`: the tables that have the column (None: all);
    `latex`: whether the LaTeX table shows it."""

    title: str | None
    text: Callable | None = None
    fields: tuple = ()
    only: tuple | None = None
    latex: bool = True

    def shown_in(self, table: str) -> bool:
        return self.only is None or table in self.only


def accuracy_columns(key: str, name: str, csv_name: str, delta: str) -> list[Column]:
    """Ours, the paper's and their difference for one accuracy ("clean" or "rob" cells)."""
    paper = f"{key}_paper"
    return [
        Column(
            f"{name} (ours)",
            lambda r: fmt_pm(r.cells[key]),
            (
                (f"{csv_name}_mean", lambda r: num(mean_of(r.cells[key]))),
                (f"{csv_name}_std", lambda r: num(std_of(r.cells[key]))),
            ),
        ),
        Column(
            f"{name} (paper)",
            lambda r: fmt_pm(r.cells[paper]),
            (
                (f"{csv_name}_paper_mean", lambda r: num(mean_of(r.cells[paper]))),
                (f"{csv_name}_paper_std", lambda r: num(std_of(r.cells[paper]))),
            ),
        ),
        Column(
            delta,
            lambda r: fmt_diff(r.cells[key], r.cells[paper]),
            ((f"{csv_name}_diff", lambda r: num(diff_of(r.cells[key], r.cells[paper]))),),
        ),
    ]


def comparison_field(key: str, text=num):
    return lambda r: "" if r.vs_at is None else text(r.vs_at[key])


COLUMNS = (
    Column(None, fields=(("table", lambda r: r.table),)),
    Column("Setting / method", lambda r: r.label, (("label", lambda r: r.label),)),
    Column(
        None,
        fields=(
            ("paper_setting", lambda r: r.paper_setting or ""),
            ("setting", lambda r: r.entry.setting if r.ran else ""),
            ("method", lambda r: r.entry.method if r.entry else ""),
            ("n_examples", lambda r: r.cells["n_examples"] or ""),
        ),
    ),
    *accuracy_columns("clean", "Clean", "clean", "Δ clean"),
    *accuracy_columns("rob", "AA", "aa", "Δ AA"),
    Column(
        "PGD (ours)",
        lambda r: fmt_pm(r.cells["pgd"]),
        (("pgd_mean", lambda r: num(mean_of(r.cells["pgd"]))), ("pgd_std", lambda r: num(std_of(r.cells["pgd"])))),
    ),
    Column(
        "AA − AT (paired)",
        lambda r: mark(r.vs_at),
        (
            ("aa_vs_at_diff", comparison_field("difference")),
            ("aa_vs_at_low", comparison_field("low")),
            ("aa_vs_at_high", comparison_field("high")),
            ("aa_vs_at_p_max", comparison_field("p_max", csv_cell)),
            ("aa_vs_at_significant", comparison_field("significant", lambda v: str(int(v)))),
            ("aa_vs_at_p_holm", comparison_field("p_holm", csv_cell)),
            ("aa_vs_at_significant_holm", comparison_field("significant_holm", lambda v: str(int(v)))),
        ),
    ),
    Column("masking", lambda r: masking.MARK if r.flags else "", (("masking_flags", lambda r: " ".join(r.flags)),)),
    Column("seeds", lambda r: str(r.cells["n_seeds"]), (("n_seeds", lambda r: r.cells["n_seeds"]),)),
    Column(
        "ours from", lambda r: r.source, (("result_dir", lambda r: r.entry.result_dir if r.ran else ""),), latex=False
    ),
    Column(
        "time / AT (ours)",
        lambda r: fmt_ratio(r.time_ratio),
        (("time_ratio", lambda r: num(r.time_ratio)),),
        only=("tab4",),
    ),
    Column(
        "time / AT (paper)",
        lambda r: fmt_ratio(r.paper_time and r.paper_time[1]),
        (("time_ratio_paper", lambda r: num(r.paper_time and r.paper_time[1])),),
        only=("tab4",),
    ),
    Column(
        "s/batch (paper)",
        lambda r: fmt_ratio(r.paper_time and r.paper_time[0]),
        (("seconds_per_batch_paper", lambda r: num(r.paper_time and r.paper_time[0])),),
        only=("tab4",),
    ),
)


def columns_of(table: str, shown: bool = False, latex: bool = False) -> list[Column]:
    """The columns of `table`: all (CSV), those with a title (`shown`: Markdown), or LaTeX's."""
    return [c for c in COLUMNS if c.shown_in(table) and (not shown or c.title) and (not latex or c.latex)]
