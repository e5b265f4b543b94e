"""The paper's tables (Tab. 2-6) and all results of a configuration, with our numbers beside the paper's
and the paired comparison with AT, rendered as Markdown, CSV and LaTeX from one column list
(`columns.COLUMNS`); the comparisons themselves in significance.csv/.md. The parts: `table_specs` (what each
table holds), `table_rows` (the rows filled from our results), `table_rendering`, `significance_files`."""

from __future__ import annotations

from pathlib import Path

from iseat.common.io import write_text_atomic
from iseat.results import comparisons
from iseat.results.protocols import check_side_by_side
from iseat.results.significance_files import significance_columns, significance_markdown
from iseat.results.table_rendering import RENDERERS, aa_meaning
from iseat.results.table_rows import Entry, Row, build_rows, load_results, parse_entries, result_rows
from iseat.results.table_specs import STEP_TIMING_LABELS, TABLES, TITLES
from iseat.results.writers import write_csv


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


__all__ = [
    "STEP_TIMING_LABELS",
    "TABLES",
    "TITLES",
    "Entry",
    "Row",
    "aa_meaning",
    "build_rows",
    "parse_entries",
    "result_rows",
    "write_tables",
]
