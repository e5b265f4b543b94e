"""One protocol for every method: each registered method's epoch object runs a step itself, and the
shared parts of a step sit below every method (no import cycle, no private name imported)."""

import ast
import dataclasses
from pathlib import Path

from iseat.methods import registry as method_registry
from iseat.methods.presets import Method
from iseat.methods.step_parts import TrainingMethod
from iseat.methods.training_attack import PGD

SRC = Path(__file__).resolve().parents[1] / "src" / "iseat"


def imports(path: Path):
    """(module, names) of every `from ... import ...` in a source file, relative ones resolved."""
    package = list(path.relative_to(SRC.parent).with_suffix("").parts)[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield ".".join(base + ([node.module] if node.module else [])), [a.name for a in node.names]


def test_every_method_is_one_object_that_runs_its_step():
    for name in method_registry.names():
        method = method_registry.schedule({"name": name}).at_stage(0, PGD(), epoch=150, epochs=200)
        assert isinstance(method, TrainingMethod), name
        assert isinstance(method.warm_start(), TrainingMethod) and method.warm_start().gamma == 0
    assert "baseline" not in {f.name for f in dataclasses.fields(Method)}


def test_no_cycle_between_the_presets_and_the_baselines_and_no_private_import():
    method_imports = {module for module, _ in imports(SRC / "methods" / "presets.py")}
    assert not any(m.startswith("iseat.methods.baselines") for m in method_imports)
    for path in (SRC / "methods" / "baselines").glob("*.py"):
        assert all(module != "iseat.methods.presets" for module, _ in imports(path)), path
    for path in SRC.rglob("*.py"):
        for module, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not (module.startswith("iseat") and private), (path, module, private)
    assert "isinstance(schedule" not in (SRC / "workflow" / "plan.py").read_text()
