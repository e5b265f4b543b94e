"""The paper's published numbers, read from paper_numbers.yaml (one entry per table cell: table, row,
column, value and the paper's std where it gives one). Every table, figure and analysis that puts our
numbers beside the paper's takes them from here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

COLUMNS = ("clean", "aa")  # Tab. 2-6: clean accuracy and AutoAttack robustness, %


@dataclass(frozen=True)
class Number:
    table: str
    row: str
    column: str
    value: float
    std: float | None = None


@cache
def load() -> tuple[dict, tuple[Number, ...]]:
    """(paper settings {name: row-label prefix}, every number) from the packaged YAML file."""
    data = yaml.safe_load(resources.files(__package__).joinpath("paper_numbers.yaml").read_text())
    numbers = tuple(Number(**entry) for entry in data["numbers"])
    keys = [(n.table, n.row, n.column) for n in numbers]
    if len(set(keys)) != len(keys):
        raise ValueError("paper_numbers.yaml: a (table, row, column) is given twice")
    return dict(data["settings"]), numbers


def settings() -> dict:
    """The paper's settings of Tab. 2 and 3 and their row-label prefix."""
    return load()[0]


def numbers(table: str | None = None) -> tuple[Number, ...]:
    return tuple(n for n in load()[1] if table is None or n.table == table)


@cache
def _by_row_column() -> dict:
    return {(n.row, n.column): n for n in load()[1] if n.table not in ("tab1", "fig1b")}


def accuracy(setting: str, method: str, column: str) -> tuple | None:
    """The paper's (mean, std) in % of a Tab. 2-6 row ("clean" or "aa"), None where it has no row."""
    number = _by_row_column().get((f"{setting}/{method}", column))
    return None if number is None else (number.value, number.std)


def step_seconds(method: str) -> float | None:
    """Tab. 4: the paper's seconds per batch of a row's method."""
    number = _by_row_column().get((f"cifar10/{method}", "seconds_per_batch"))
    return None if number is None else number.value


def rows(table: str) -> dict:
    """{row: {column: value}} of one table (Tab. 1, Fig. 1b), values as printed."""
    out: dict = {}
    for n in numbers(table):
        out.setdefault(n.row, {})[n.column] = n.value
    return out
