"""Gradient-masking flags in aa.json: each on a model built to raise it (zero input gradients, randomised,
probabilities for logits), none on an honest model; and the flags reach the tables and the index."""

import json

import pytest
import torch

from iseat import gradient_masking as masking
from iseat.evaluation import EvaluationSpec, IndexedTensors, PGDSettings, evaluate_model, validate

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 0.1
SPEC = EvaluationSpec(attacks=("autoattack", "pgd"), eps=EPS, pgd=PGDSettings(steps=5, step_size=EPS / 4),
                      batch_size=8, chunk_size=8)


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
    report = evaluate_model(model.eval(), IndexedTensors(x, y), tmp_path / "aa.json", SPEC, num_classes=10,
                            progress=False)
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
    assert masking.pgd_gap(0.54, 0.45) == [] and masking.pgd_gap(0.40, 0.45) == [] and masking.pgd_gap(None, 0.4) == []
