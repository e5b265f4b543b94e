"""Robustness curve of one model (sweep.json): PGD-k robust accuracy at each eps of a sweep, on the same test
images, with the protocol stamp of aa.json (`iseat.evaluation.protocol_stamp`) and the eps-sweep gradient-masking flags
(`iseat.evaluation.gradient_masking.sweep_flags`).

eps = 0 is clean accuracy. At eps > 0 PGD-k starts at the clean image (no random start, as `pgd.json`) with
step size 2.5 eps / k (Madry et al. 2018), so k steps can cross the ball at every budget. Budgets go up to 1
(unlike aa.json's 0.25): a very large eps (e.g. 64/255) belongs in the sweep, where every point must fall.
The sweep is one pass (no resumable chunks): few PGD steps, one job per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import torch

from iseat.common.device import resolve_device
from iseat.common.errors import ParameterError
from iseat.common.fraction import parse_fraction
from iseat.common.io import write_json_atomic
from iseat.common.provenance import device_description, provenance
from iseat.evaluation import gradient_masking as masking
from iseat.evaluation.api import check_out_path, load_evaluated, sample_count
from iseat.evaluation.attacks.base import attack_in_batches
from iseat.evaluation.chunks import load_samples
from iseat.evaluation.evaluation_report import validate
from iseat.evaluation.protocol_stamp import protocol_stamp, recorded_modes, samples_digest
from iseat.evaluation.robustness import clean_correct
from iseat.evaluation.spec import NORM, EvaluationError, EvaluationInputError
from iseat.methods.training_attack import PGD

FORMAT = "iseat-eps-sweep-v1"
STEP_FACTOR = 2.5  # step size = 2.5 eps / steps
ATTACK = "pgd"


@dataclass(frozen=True)
class SweepSpec:
    """The budgets of a sweep (sorted, in [0, 1]), PGD's steps, and the eps whose accuracy is the headline."""

    eps: tuple[float, ...]
    steps: int = 10
    headline_eps: float = 8 / 255
    batch_size: int = 256
    seed: int = 0
    n_ex: int | None = None

    def __post_init__(self):
        values = sorted(set(parse_budgets(self.eps)))
        if len(values) < 2 or not 0 <= values[0] or values[-1] > 1:
            raise EvaluationInputError(
                f"{{0}} {self.eps!r} needs at least two budgets in [0, 1] (e.g. 0 8/255 64/255)", "eps_sweep"
            )
        if not any(abs(e - self.headline_eps) < 1e-9 for e in values):
            raise EvaluationInputError(
                f"{{0}} must include the headline budget {{1}} = {self.headline_eps:.6g}", "eps_sweep", "eps"
            )
        for name, value in (("pgd_steps", self.steps), ("batch_size", self.batch_size)):
            if value < 1:
                raise EvaluationInputError(f"{{0}} {value} must be at least 1", name)
        if self.n_ex is not None and self.n_ex < 1:
            raise EvaluationInputError(f"{{0}} {self.n_ex} must be at least 1", "n_ex")
        object.__setattr__(self, "eps", tuple(values))

    def step_size(self, eps: float) -> float:
        return STEP_FACTOR * eps / self.steps

    def settings(self) -> dict:
        return {"steps": self.steps, "step_size": f"{STEP_FACTOR} eps / steps", "restarts": 1, "random_start": False}


def parse_budgets(values) -> list[float]:
    try:
        return [parse_fraction(v, "eps_sweep") for v in values]
    except ParameterError as err:
        raise EvaluationInputError(err.reason, *err.parameters) from None


def check_finite(model, x, batch_size: int, device) -> None:
    """A model whose outputs are not finite has no robustness to report (argmax of NaN is arbitrary)."""
    with torch.no_grad():
        finite = all(
            bool(torch.isfinite(model(x[i : i + batch_size].to(device))).all()) for i in range(0, len(x), batch_size)
        )
    if not finite:
        raise EvaluationError(
            "the model's outputs are not finite (NaN or inf) on the test images; evaluate a finite checkpoint"
        )


def robust_at(model, x, y, clean, eps: float, spec: SweepSpec, device) -> torch.Tensor:
    if eps == 0:
        return clean
    pgd = PGD(eps=eps, step_size=spec.step_size(eps), steps=spec.steps)
    model.eval()
    return attack_in_batches(pgd.perturb, model, x, y, clean, spec.batch_size, device)


def sweep_model(
    model, dataset, out, spec: SweepSpec, *, device="cpu", source: dict | None = None, data: dict | None = None
) -> dict:
    """The curve of `model` on the first `spec.n_ex` samples of `dataset` (x, y, index), written to `out`."""
    out = check_out_path(out)
    device = resolve_device(str(device))
    n = sample_count(spec, len(dataset))
    model = model.to(device).eval()
    source = source or {"checkpoint": None, "training_config": None}
    data = {
        "dataset": None,
        "split": "test",
        **(data or {}),
        "test_set_size": len(dataset),
        "subset": f"first {n} samples",
    }
    x, y, index = load_samples(dataset, 0, n)
    torch.manual_seed(spec.seed)
    t0 = time.perf_counter()
    check_finite(model, x, spec.batch_size, device)
    with recorded_modes(model) as modes:
        clean = clean_correct(model, x, y, spec.batch_size, device)
        robust = {eps: robust_at(model, x, y, clean, eps, spec, device) for eps in spec.eps}
    curve = [{"eps": eps, "robust_accuracy": int(r.sum()) / n, "n_robust": int(r.sum())} for eps, r in robust.items()]
    headline = next(point for point in curve if abs(point["eps"] - spec.headline_eps) < 1e-9)
    record = provenance(device, spec.seed)
    stamp = protocol_stamp(
        norm=NORM,
        eps=list(spec.eps),
        attack_settings={ATTACK: spec.settings()},
        seed=spec.seed,
        indices=index.tolist(),
        chunk_digests=[samples_digest(x, y)],
        model_mode=" and ".join(sorted(modes)),
        source=source,
        dataset=data.get("dataset"),
        versions=record["versions"],
    )
    report = {
        "format": FORMAT,
        "stamp": stamp,
        "protocol": "eps-sweep",
        "label": f"PGD-{spec.steps} eps sweep",
        "clean_accuracy": int(clean.sum()) / n,
        "robust_accuracy": headline["robust_accuracy"],
        "headline_eps": headline["eps"],
        "n_examples": n,
        "norm": NORM,
        "curve": curve,
        "masking_flags": masking.sweep_flags([(p["eps"], p["robust_accuracy"]) for p in curve]),
        "wall_time_s": time.perf_counter() - t0,
        "device": device_description(device),
        **source,
        "data": data,
        "provenance": record,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    validate(report, "sweep")
    write_json_atomic(out, report)
    return report


def sweep_checkpoint(
    checkpoint, out, spec: SweepSpec, *, data_root=None, dataset=None, expect_arch: str | None = None, device="auto"
) -> dict:
    """`sweep_model` of a checkpoint on its training data set's test split (or `dataset`'s); bad input raises
    CheckpointError or EvaluationError (one line) before anything is written."""
    check_out_path(out)
    device = resolve_device(str(device))
    model, test, _, source, data = load_evaluated(
        checkpoint, data_root=data_root, dataset=dataset, expect_arch=expect_arch, device=device
    )
    sample_count(spec, len(test))
    return sweep_model(model, test, out, spec, device=device, source=source, data=data)
