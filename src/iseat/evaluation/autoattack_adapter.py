"""Thin adapter over pyautoattack (the reference AutoAttack code): protocols, setting checks, breaking attack per point.

`build` makes pyautoattack's own `AutoAttack(version='standard')` object and verifies its settings, so a
dependency change cannot silently weaken the attack. `run` is the loop of pyautoattack's
`run_standard_evaluation` (same attack objects, order, batches and seeds, so the same adversarial
examples) that also records which sub-attack broke each point. The torchattacks protocol (the ISEAT
reference code's evaluation) is the same four attacks with torchattacks' smaller budget, run by the
reference attack code; it is never standard and its label says so.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from pyautoattack import AutoAttack, checks
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
CLEAN = "clean"  # breaking "attack" of a point misclassified without perturbation


@dataclass(frozen=True)
class Protocol:
    """An AutoAttack budget: iterations of APGD-CE/APGD-T/FAB-T, target classes, Square queries."""

    name: str
    label: str  # how tables must name the number
    standard: bool
    n_iter: int
    n_target_classes: int | None  # None: every other class (num_classes - 1), as torchattacks does
    square_queries: int
    square_rescale_schedule: bool
    attacks: tuple[str, ...] = ATTACKS  # the sub-attacks run, in AutoAttack's order

    def target_classes(self, num_classes: int) -> int:
        return num_classes - 1 if self.n_target_classes is None else self.n_target_classes


STANDARD = Protocol(
    "autoattack-standard",
    "AutoAttack (standard)",
    True,
    n_iter=100,
    n_target_classes=9,
    square_queries=5000,
    square_rescale_schedule=False,
)
# torchattacks 3.5.1 AutoAttack(version='standard', n_classes=C), as the ISEAT reference code calls it
# (C = the data set's classes, seed 0): APGD(steps=10), APGDT(steps=10, n_classes=C), FAB(steps=10,
# multi_targeted=True, n_classes=C), Square(n_queries=5000, resc_schedule=True), one restart each;
# targeted attacks use the C - 1 other classes. Only this budget is reproduced: the attacks are still
# pyautoattack's code, so the numbers can differ slightly from torchattacks' own implementation.
TORCHATTACKS = Protocol(
    "autoattack-torchattacks-protocol",
    "AutoAttack, torchattacks protocol (10 it., non-standard)",
    False,
    n_iter=10,
    n_target_classes=None,
    square_queries=5000,
    square_rescale_schedule=True,
)
# AutoAttack's two gradient attacks with a small budget, for CPU-scale runs (the demo): robust models keep
# most points through Square's 5000 queries, which costs seconds per point on a CPU even for a small CNN.
APGD_PAIR = Protocol(
    "autoattack-apgd-pair",
    "AutoAttack's APGD-CE + APGD-T (20 it., 3 targets; non-standard)",
    False,
    n_iter=20,
    n_target_classes=3,
    square_queries=5000,
    square_rescale_schedule=False,
    attacks=("apgd-ce", "apgd-t"),
)
PROTOCOLS = {"autoattack": STANDARD, "autoattack-paper-protocol": TORCHATTACKS, "autoattack-apgd": APGD_PAIR}


class AutoAttackSettingsError(RuntimeError):
    """pyautoattack built an attack whose settings differ from the protocol's (e.g. after an upgrade)."""


def build(model, protocol: Protocol, eps: float, num_classes: int, device, seed: int) -> AutoAttack:
    """pyautoattack's standard l-inf AutoAttack on `model` (put in eval mode), set to `protocol` and verified."""
    model.eval()
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", device=device, seed=seed)
    if not protocol.standard:
        apply_budget(aa, protocol, num_classes)
    check_settings(aa, protocol, num_classes)
    return aa


def apply_budget(aa: AutoAttack, protocol: Protocol, num_classes: int) -> None:
    """Give the APGD attacks, FAB-T and Square a non-standard protocol's budget (APGD derives its schedule at init)."""
    targets = protocol.target_classes(num_classes)
    common = dict(
        norm=aa.norm,
        eps=aa.epsilon,
        seed=aa.seed,
        device=aa.device,
        logger=aa.logger,
        n_iter=protocol.n_iter,
        n_restarts=1,
        eot_iter=1,
        rho=0.75,
        verbose=False,
    )
    aa.apgd = APGDAttack(aa.model, **common)
    aa.apgd_targeted = APGDAttack_targeted(aa.model, n_target_classes=targets, **common)
    aa.fab.n_iter, aa.fab.n_target_classes, aa.fab.n_restarts = protocol.n_iter, targets, 1
    aa.square.n_queries, aa.square.rescale_schedule = protocol.square_queries, protocol.square_rescale_schedule
    aa.attacks_to_run = list(protocol.attacks)
    aa.version = "custom"


def settings_of(aa: AutoAttack) -> dict:
    """The budget the pyautoattack objects will actually run with (read from them, not from our constants)."""
    return {
        "attacks": list(aa.attacks_to_run),
        "norm": aa.norm,
        "eps": float(aa.epsilon),
        "version": aa.version,
        "apgd-ce": {
            "n_iter": aa.apgd.n_iter,
            "n_restarts": aa.apgd.n_restarts,
            "eot_iter": aa.apgd.eot_iter,
            "rho": aa.apgd.thr_decr,
        },
        "apgd-t": {
            "n_iter": aa.apgd_targeted.n_iter,
            "n_restarts": aa.apgd_targeted.n_restarts,
            "n_target_classes": aa.apgd_targeted.n_target_classes,
        },
        "fab-t": {
            "n_iter": aa.fab.n_iter,
            "n_restarts": aa.fab.n_restarts,
            "n_target_classes": aa.fab.n_target_classes,
        },
        "square": {
            "n_queries": aa.square.n_queries,
            "n_restarts": aa.square.n_restarts,
            "p_init": aa.square.p_init,
            "rescale_schedule": aa.square.rescale_schedule,
        },
    }


def expected_settings(protocol: Protocol, num_classes: int) -> dict:
    targets = protocol.target_classes(num_classes)
    budgets = {
        "apgd-ce": {"n_iter": protocol.n_iter, "n_restarts": 1, "eot_iter": 1, "rho": 0.75},
        "apgd-t": {"n_iter": protocol.n_iter, "n_restarts": 1, "n_target_classes": targets},
        "fab-t": {"n_iter": protocol.n_iter, "n_restarts": 1, "n_target_classes": targets},
        "square": {
            "n_queries": protocol.square_queries,
            "n_restarts": 1,
            "p_init": 0.8,
            "rescale_schedule": protocol.square_rescale_schedule,
        },
    }
    return {"attacks": list(protocol.attacks), "norm": "Linf", **{a: budgets[a] for a in protocol.attacks}}


def check_settings(aa: AutoAttack, protocol: Protocol, num_classes: int) -> None:
    """Raise AutoAttackSettingsError naming the first setting that differs from the protocol."""
    actual = settings_of(aa)
    for key, want in expected_settings(protocol, num_classes).items():
        got = actual[key]
        for sub, value in want.items() if isinstance(want, dict) else [(None, want)]:
            have = got if sub is None else got.get(sub)
            if have != value:
                name = key if sub is None else f"{key}.{sub}"
                raise AutoAttackSettingsError(
                    f"pyautoattack's AutoAttack has {name} = {have!r}; the {protocol.name} protocol needs {value!r}"
                )


@dataclass
class AutoAttackResult:
    robust: torch.Tensor  # bool per point: correct on the clean point and after every sub-attack
    broken_by: list[str]  # per point: "clean", the sub-attack that broke it, or "" when robust


def run(aa: AutoAttack, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> AutoAttackResult:
    """AutoAttack on (x, y) as `run_standard_evaluation` runs it, recording the breaking sub-attack of each point."""
    with torch.no_grad():
        robust = clean_correct(aa, x, y, batch_size)
        broken_by = ["" if r else CLEAN for r in robust.tolist()]
        for attack in aa.attacks_to_run:
            remaining = robust.nonzero().flatten()
            for start in range(0, len(remaining), batch_size):
                points = remaining[start : start + batch_size]
                fooled = attack_batch(aa, attack, x[points], y[points])
                robust[points[fooled]] = False
                for i in points[fooled].tolist():
                    broken_by[i] = attack
    return AutoAttackResult(robust, broken_by)


def clean_correct(aa: AutoAttack, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    correct = torch.zeros(len(x), dtype=torch.bool)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(aa.device), y[start : start + batch_size].to(aa.device)
        correct[start : start + batch_size] = (aa.get_logits(xb).argmax(1) == yb).cpu()
    return correct


def attack_batch(aa: AutoAttack, attack: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Run one sub-attack on a batch exactly as pyautoattack does; returns a CPU bool mask of fooled points.

    The batch is made contiguous: pyautoattack `.view`s input gradients, which fails on permuted inputs.
    """
    x, y = x.to(aa.device).contiguous(), y.to(aa.device)
    if attack == "apgd-ce":
        aa.apgd.loss, aa.apgd.seed = "ce", aa.get_seed()
        adv = aa.apgd.perturb(x, y)
    elif attack == "apgd-t":
        aa.apgd_targeted.seed = aa.get_seed()
        adv = aa.apgd_targeted.perturb(x, y)
    elif attack == "fab-t":
        aa.fab.targeted, aa.fab.n_restarts, aa.fab.seed = True, 1, aa.get_seed()
        adv = aa.fab.perturb(x, y)
    elif attack == "square":
        aa.square.seed = aa.get_seed()
        adv = aa.square.perturb(x, y)
    else:
        raise ValueError(f"unsupported AutoAttack sub-attack {attack!r}")
    return (aa.get_logits(adv).argmax(1) != y).cpu()


def model_checks(aa: AutoAttack, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """pyautoattack's sanity checks on the first batch (randomised or dynamic defence, logits, class count).

    They report through pyautoattack's logger; collect them with `captured_warnings`.
    """
    xb, yb = x[:batch_size].to(aa.device), y[:batch_size].to(aa.device)
    checks.check_randomized(aa.get_logits, xb, yb, bs=batch_size, logger=aa.logger)
    n_classes = checks.check_range_output(aa.get_logits, xb, logger=aa.logger)
    checks.check_dynamic(aa.model, xb, False, logger=aa.logger)
    checks.check_n_classes(
        n_classes, aa.attacks_to_run, aa.apgd_targeted.n_target_classes, aa.fab.n_target_classes, logger=aa.logger
    )


def square_warnings(accuracy_after: dict) -> list[str]:
    """pyautoattack's end-of-run warning when Square broke points the gradient attacks missed (masking)."""
    logger = logging.getLogger("auto-attack")
    with captured_warnings(logger) as messages:
        checks.check_square_sr(accuracy_after, logger=logger)
    return messages


class _ListHandler(logging.Handler):
    def __init__(self, messages: list):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_warnings(logger: logging.Logger):
    """Collect the warnings pyautoattack logs to `logger` while the block runs (they go into the report)."""
    messages: list[str] = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
