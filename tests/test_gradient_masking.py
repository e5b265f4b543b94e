"""Gradient-masking flags in aa.json: each on a model built to raise it (zero input gradients, randomised,
probabilities for logits), none on an honest model; and the flags reach the tables and the index."""

import json

import pytest
import torch

from iseat.evaluation import EvaluationSpec, IndexedTensors, PGDSettings, evaluate_model, validate
from iseat.evaluation import gradient_masking as masking

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 0.1
SPEC = EvaluationSpec(
    attacks=("autoattack", "pgd"), eps=EPS, pgd=PGDSettings(steps=5, step_size=EPS / 4), batch_size=8, chunk_size=8
)


class Linear(torch.nn.Module):
    """A linear classifier of 3x4x4 images, `inputs` applied before it and `outputs` after."""

    def __init__(self, linear, inputs=lambda x: x, outputs=lambda z: z):
        super().__init__()
        self.linear, self.inputs, self.outputs = linear, inputs, outputs

    def forward(self, x):
        return self.outputs(self.linear(self.inputs(x.flatten(1))))


def quantised(linear):
    """Inputs rounded to 1/8: zero input gradient everywhere, yet an eps of 0.1 moves the rounded input by a
    step, which a black-box search finds and a gradient never does."""
    return Linear(linear, inputs=lambda x: torch.round(x * 8) / 8)


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(3 * 4 * 4, 10)


def flags_of(model, tmp_path, n=8):
    """The flags of an evaluation of `model` on n random images labelled by its own (noise-free) prediction."""
    torch.manual_seed(1)
    x = torch.rand(n, 3, 4, 4)
    with torch.no_grad():
        y = model.linear(model.inputs(x.flatten(1))).argmax(1)
    report = evaluate_model(
        model.eval(), IndexedTensors(x, y), tmp_path / "aa.json", SPEC, num_classes=10, progress=False
    )
    validate(report)
    return report["masking_flags"], report


def test_an_honest_model_raises_no_flag(linear, tmp_path):
    flags, report = flags_of(Linear(linear), tmp_path)
    assert flags == [] and report["autoattack"]["robust_accuracy"] <= report["pgd"]["robust_accuracy"]


def test_zero_input_gradients_raise_the_gradient_flags(linear, tmp_path):
    flags, report = flags_of(quantised(linear), tmp_path)
    assert report["pgd"]["robust_accuracy"] == 1.0  # PGD cannot move: too optimistic
    assert report["autoattack"]["broken_by"]["square"] > 0
    assert flags == ["zero_gradients", "square_beats_white_box", "pgd_above_autoattack"], report["warnings"]


def test_a_randomised_model_is_flagged(linear, tmp_path):
    assert "randomised" in flags_of(Linear(linear, outputs=lambda z: z + torch.randn_like(z)), tmp_path, n=4)[0]


def test_probabilities_for_logits_are_flagged(linear, tmp_path):
    assert "non_logit_output" in flags_of(Linear(linear, outputs=lambda z: z.softmax(1)), tmp_path, n=4)[0]


def test_the_pgd_gap_threshold():
    assert masking.pgd_gap(0.56, 0.45) == ["pgd_above_autoattack"]
    assert masking.pgd_gap(0.54, 0.45) == [] and masking.pgd_gap(0.43, 0.45) == [] and masking.pgd_gap(None, 0.4) == []
    assert masking.pgd_gap(0.40, 0.45) == ["pgd_below_autoattack"]  # the stronger attack found less


def test_flags_reach_the_tables_and_the_index(linear, tmp_path):
    """aa.json (AutoAttack only) and pgd.json (PGD only) of a masked and an honest model, as the workflow
    writes them: the PGD gap is found across the two files, and the flags are marked and explained."""
    from iseat.results import index as result_index
    from iseat.results import seeds as seed_stats
    from iseat.results import tables as result_tables

    torch.manual_seed(1)
    x = torch.rand(8, 3, 4, 4)
    with torch.no_grad():
        data = IndexedTensors(x, quantised(linear)(x).argmax(1))  # one test set (its stamps must agree)
    entries = []
    for method, model in (("at", Linear(linear)), ("masked", quantised(linear))):
        folder = tmp_path / "results" / "toy" / method
        for name, attacks in (("aa", ("autoattack",)), ("pgd", ("pgd",))):
            spec = EvaluationSpec(attacks=attacks, eps=EPS, pgd=SPEC.pgd, batch_size=8, chunk_size=8)
            evaluate_model(model, data, folder / "seed0" / f"{name}.json", spec, num_classes=10, progress=False)
            seed_stats.write_seed_summary([folder / "seed0" / f"{name}.json"], folder / f"{name}.json")
        entries.append(("toy", method, "-", str(folder)))
    aggregated = json.loads((tmp_path / "results" / "toy" / "masked" / "aa.json").read_text())
    assert aggregated["masking_flags"] == ["zero_gradients", "square_beats_white_box"]  # AutoAttack's own
    out = tmp_path / "tables"
    result_tables.write_tables(out, result_tables.parse_entries(entries), {}, {})
    md = (out / "all_results.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| toy /")}
    assert f"| {masking.MARK} |" in rows["toy / masked"] and f"| {masking.MARK} |" not in rows["toy / at"]
    assert "Flagged: toy / masked: zero_gradients, square_beats_white_box, pgd_above_autoattack." in md
    assert masking.footnote() in md
    result_index.write_index(
        tmp_path / "results" / "README.md",
        [str(out / "all_results.md")],
        results=[str(tmp_path / "results" / "toy" / m / "aa.json") for m in ("at", "masked")],
    )
    index = (tmp_path / "results" / "README.md").read_text()
    assert f"{masking.MARK} zero_gradients, square_beats_white_box" in index and "| none |" in index


def test_pgd_on_other_images_is_not_held_against_autoattack():
    """The demo's PGD runs on 100 test images and AutoAttack on 20: their accuracies are not comparable."""
    from iseat.results.tables import Row

    result = lambda robust, count: {
        "per_seed": [{"seed": 0, "robust_accuracy": robust}],
        "masking_flags": [],
        "stamp": {"test_indices": {"count": count, "sha256": str(count)}},
    }
    assert Row("t", "x", None, None, result(0.1, 20), result(0.3, 20)).flags == ["pgd_above_autoattack"]
    assert Row("t", "x", None, None, result(0.1, 20), result(0.3, 100)).flags == []
