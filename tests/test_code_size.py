"""Size limits of the package's code: each module under 350 lines, each class under 200, and each command-line
module a parser plus calls into the library (no function there longer than 40 lines, no class)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iseat"
MODULE_LINES, CLASS_LINES, CLI_FUNCTION_LINES = 350, 200, 40

# Code over a limit, as (path under src/iseat, class name or None for the module itself), until it is split.
KNOWN_OVERSIZE: set[tuple[str, str | None]] = set()


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def name_of(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def oversize() -> set[tuple[str, str | None]]:
    """Every module and class over its limit in the source tree now."""
    found = set()
    for path in modules():
        text = path.read_text()
        if len(text.splitlines()) >= MODULE_LINES:
            found.add((name_of(path), None))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and length(node) >= CLASS_LINES:
                found.add((name_of(path), node.name))
    return found


def test_modules_and_classes_stay_under_their_limits():
    over = sorted(oversize() - KNOWN_OVERSIZE, key=str)
    assert not over, (
        f"over the limits (modules < {MODULE_LINES} lines, classes < {CLASS_LINES}); split by concept: {over}"
    )


def test_known_oversize_list_holds_only_code_still_over_a_limit():
    stale = sorted(KNOWN_OVERSIZE - oversize(), key=str)
    assert not stale, f"now within the limits, remove from KNOWN_OVERSIZE: {stale}"


@pytest.mark.parametrize("path", sorted((SRC / "cli").glob("*.py")), ids=name_of)
def test_command_line_modules_only_parse_and_call(path):
    tree = ast.parse(path.read_text())
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    long = [
        f"{node.name} ({length(node)} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and length(node) > CLI_FUNCTION_LINES
    ]
    assert not classes, f"{name_of(path)}: classes belong in the library layers, not the command line: {classes}"
    assert not long, f"{name_of(path)}: move the logic into the library (at most {CLI_FUNCTION_LINES} lines): {long}"


def test_oversize_modules_and_classes_are_found(tmp_path, monkeypatch):
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "big_class.py").write_text("class Big:\n" + "    x = 1\n" * (CLASS_LINES - 1))
    (tmp_path / "layer" / "long.py").write_text("x = 1\n" * MODULE_LINES)
    (tmp_path / "layer" / "fine.py").write_text("class Small:\n" + "    x = 1\n" * (CLASS_LINES - 2))
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert oversize() == {("layer/big_class.py", "Big"), ("layer/long.py", None)}
