"""The rows of the results tables: aggregated results (`Entry`), each paper table's rows filled where our
entries map onto them, every entry's row of `all_results`, with the paper's numbers and the comparison with AT."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from iseat.evaluation import gradient_masking as masking
from iseat.results import ResultsError, comparisons, paper_numbers
from iseat.results.seeds import percent, read_json
from iseat.results.table_specs import TABLES, step_time_ratios


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
