"""Each evaluation attack on a linear model whose worst case under an l-inf budget is analytic, the registry,
and the README's example attack end to end.

Model: 10 logits, only classes 0 and 1 in play (z_0 - z_1 = 2 u.x + c; the other classes sit at -1000).
For label y the worst perturbation in the eps-ball lowers the margin |z_0 - z_1| by exactly
2 eps ||u||_1 (delta = -eps sign(u) or +eps sign(u)); the images lie in [0.1, 0.9] and eps = 0.02, so that
corner is inside [0, 1] and a point is robust iff it is right and its margin exceeds 2 eps ||u||_1.
"""

import csv
import json
import re
from pathlib import Path

import jsonschema
import pytest
import torch

from iseat.evaluation import (
    ATTACKS,
    EvaluationError,
    EvaluationSpec,
    IndexedTensors,
    PGDSettings,
    evaluate_model,
    per_sample_path,
)
from iseat.evaluation import attacks as attacks_module
from iseat.evaluation.attacks import cw_margin_loss

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "src/iseat/schemas/aa.schema.json").read_text())
EPS, SHAPE, N = 0.02, (3, 4, 4), 40

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def linear():
    """(model, x, y, analytic robust flags): about half the points robust, none within 0.02 of the boundary,
    three mislabelled (wrong even unperturbed)."""
    generator = torch.Generator().manual_seed(0)
    d = SHAPE[0] * SHAPE[1] * SHAPE[2]
    u = 0.1 * (2 * torch.randint(0, 2, (d,), generator=generator).double() - 1)
    x = 0.1 + 0.8 * torch.rand(4 * N, d, generator=generator, dtype=torch.float64)
    c = -(2 * x @ u).median()
    margin = 2 * x @ u + c  # z_0 - z_1
    threshold = 2 * EPS * u.abs().sum()
    keep = ((margin.abs() - threshold).abs() > 0.02) & (margin.abs() > 0.02)
    x, margin = x[keep][:N], margin[keep][:N]
    y = (margin < 0).long()
    y[:3] = 1 - y[:3]
    robust = (margin.abs() > threshold) & (torch.arange(N) >= 3)
    layer = torch.nn.Linear(d, 10)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0], layer.weight[1] = u, -u
        layer.bias.fill_(-1000.0)
        layer.bias[0], layer.bias[1] = c / 2, -c / 2
    model = torch.nn.Sequential(torch.nn.Flatten(), layer).float().eval()
    assert 0.3 < robust.float().mean() < 0.7
    return model, x.float().reshape(-1, *SHAPE), y, robust


def verdicts(linear, attack_name, tmp_path, **spec_args):
    model, x, y, _ = linear
    out = tmp_path / f"{attack_name}.json"
    spec = EvaluationSpec(attacks=(attack_name,), eps=EPS, batch_size=16, chunk_size=25, **spec_args)
    report = evaluate_model(model, IndexedTensors(x, y), out, spec, num_classes=10, progress=False)
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    with open(per_sample_path(out)) as f:
        rows = list(csv.DictReader(f))
    return report, rows


@pytest.mark.parametrize(
    "name, pgd",
    [
        ("pgd", PGDSettings(steps=4, step_size=EPS / 2)),
        ("pgd", PGDSettings(steps=4, step_size=EPS / 2, restarts=2, random_start=True)),
        ("cw", PGDSettings(steps=4, step_size=EPS / 2)),
    ],
)
def test_pgd_and_cw_find_the_analytic_worst_case(linear, tmp_path, name, pgd):
    """The loss gradient's sign is constant on this model, so k steps of size 2 eps / k reach the worst corner
    from any start in the ball."""
    report, rows = verdicts(linear, name, tmp_path, pgd=pgd)
    column = ATTACKS[name].column
    assert [r[column] == "1" for r in rows] == linear[3].tolist()
    record = report[ATTACKS[name].section]
    assert record["n_robust"] == int(linear[3].sum()) == report["n_robust"]
    assert report["protocol"] == name and report["label"] == record["label"] and report["standard"] is False


def test_cw_sees_through_a_saturated_cross_entropy(linear, tmp_path):
    """Logits x 1000 (same decisions, same analytic answer): where the softmax saturates, the cross-entropy's
    gradient is exactly 0 in float32 and PGD stalls; the margin loss still points to the worst corner."""
    model, x, y, robust = linear
    steep = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 10)).eval()
    with torch.no_grad():
        steep[1].weight.copy_(1000 * model[1].weight)
        steep[1].bias.copy_(1000 * model[1].bias)
    steep_problem = (steep, x, y, robust)
    pgd = PGDSettings(steps=4, step_size=EPS / 2)
    _, cw_rows = verdicts(steep_problem, "cw", tmp_path, pgd=pgd)
    _, pgd_rows = verdicts(steep_problem, "pgd", tmp_path, pgd=pgd)
    assert [r["cw_correct"] == "1" for r in cw_rows] == robust.tolist()
    assert sum(r["pgd_correct"] == "1" for r in pgd_rows) > int(robust.sum()), "PGD-CE should be masked here"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["autoattack", "autoattack-paper-protocol", "autoattack-apgd"])
def test_autoattack_finds_the_analytic_worst_case(linear, tmp_path, name):
    report, rows = verdicts(linear, name, tmp_path)
    assert [r["robust_correct"] == "1" for r in rows] == linear[3].tolist()
    assert [r["broken_by"] for r in rows][:3] == ["clean"] * 3
    assert {r["broken_by"] for r, robust in zip(rows, linear[3]) if robust} == {""}
    assert report["autoattack"]["n_robust"] == int(linear[3].sum())
    assert report["standard"] is (name == "autoattack")


def test_cw_margin_loss_is_the_largest_wrong_logit_minus_the_true_one():
    logits = torch.tensor([[2.0, 5.0, -1.0], [0.5, 0.1, 0.3], [1.0, 1.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 0])
    expected = [2.0 - 5.0, 0.3 - 0.5, 4.0 - 1.0]
    assert cw_margin_loss(logits, y).item() == pytest.approx(sum(expected) / 3)


def test_labels_and_settings_name_the_budget():
    spec = EvaluationSpec(attacks=("pgd", "cw"), pgd=PGDSettings(steps=20))
    pgd, cw = spec.build_attacks(None, num_classes=10, device="cpu")
    assert (pgd.label, cw.label) == ("PGD-20", "CW-inf-20")
    assert cw.settings() == {
        "loss": "cw_margin",
        "steps": 20,
        "step_size": 2 / 255,
        "restarts": 1,
        "random_start": False,
    }


def test_registry_orders_attacks_and_refuses_alternatives_together():
    assert EvaluationSpec(attacks=("cw", "autoattack", "pgd")).attacks == ("pgd", "autoattack", "cw")
    with pytest.raises(EvaluationError, match="choose one AutoAttack protocol"):
        EvaluationSpec(attacks=("autoattack", "autoattack-paper-protocol"))
    with pytest.raises(EvaluationError, match="'fgsm' is unknown; choose from pgd, autoattack"):
        EvaluationSpec(attacks=("fgsm",))
    with pytest.raises(ValueError, match="already registered"):
        attacks_module.register(type("Other", (ATTACKS["pgd"],), {"name": "pgd"}))


@pytest.fixture
def restored_registry():
    saved = dict(ATTACKS)
    yield
    ATTACKS.clear()
    ATTACKS.update(saved)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if "class FGSMAttack" in b]
    return block


def test_readme_example_attack_is_one_short_module(linear, tmp_path, restored_registry):
    """The README's FGSM module registers itself and runs through the runner, CSV and aa.json unchanged;
    one step of size eps reaches the analytic worst case of the linear model."""
    source = readme_example()
    assert len(source.strip().splitlines()) <= 30
    exec(compile(source, "fgsm.py", "exec"), {"__name__": "fgsm"})
    report, rows = verdicts(linear, "fgsm", tmp_path)
    assert [r["fgsm_correct"] == "1" for r in rows] == linear[3].tolist()
    assert report["fgsm"]["label"] == "FGSM" and report["pgd"] is None and report["autoattack"] is None
    assert report["per_sample"]["columns"][:6] == [
        "index",
        "label",
        "clean_correct",
        "pgd_correct",
        "robust_correct",
        "broken_by",
    ]
