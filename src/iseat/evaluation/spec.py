"""What an evaluation runs (attacks, eps, PGD budget, batching, seed), checked before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import UserError
from .attacks import ATTACKS, Attack

NORM = "Linf"
MAX_EPS = 0.25  # larger values are taken as pixels (e.g. 8 for 8/255), a common mistake
NONE = "none"  # --attack none: clean accuracy only


class EvaluationError(UserError, ValueError):
    """Bad evaluation input (eps, attack choice, sample count, stale partial results); the message is one line."""


def parse_fraction(value, name: str, upper: float = MAX_EPS) -> float:
    """A budget in [0, 1] units from "8/255", "0.0314" or a number; pixels (e.g. "8") are refused."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/")
            number = float(num) / float(den)
        else:
            number = float(value)
    except (ValueError, ZeroDivisionError):
        raise EvaluationError(f"{name} {value!r} is not a number or a fraction such as 8/255") from None
    if not number > 0:
        raise EvaluationError(f"{name} {value!r} must be positive")
    if number > upper:
        raise EvaluationError(f"{name} {value!r} looks like pixels; give it in [0, 1] units, e.g. 8/255")
    return number


@dataclass(frozen=True)
class PGDSettings:
    """PGD-k for evaluation: a point counts as robust only if every restart leaves it correctly classified."""

    steps: int = 10
    step_size: float = 2 / 255
    restarts: int = 1
    random_start: bool = False

    def __post_init__(self):
        if self.steps < 1:
            raise EvaluationError(f"--pgd-steps {self.steps} must be at least 1")
        if self.restarts < 1:
            raise EvaluationError(f"--pgd-restarts {self.restarts} must be at least 1")
        if self.restarts > 1 and not self.random_start:
            raise EvaluationError("--pgd-restarts > 1 repeats the same attack without --pgd-random-start")
        if not 0 < self.step_size <= MAX_EPS:
            raise EvaluationError(f"--pgd-step-size {self.step_size} must be in (0, {MAX_EPS}] ([0, 1] units)")

    @property
    def label(self) -> str:
        restarts = f", {self.restarts} restarts" if self.restarts > 1 else ""
        return f"PGD-{self.steps}{restarts}"


@dataclass(frozen=True)
class EvaluationSpec:
    """Every choice that changes an evaluation's numbers; `fingerprint()` keys resumable partial results."""

    attacks: tuple[str, ...] = ("autoattack", "pgd")
    eps: float = 8 / 255
    pgd: PGDSettings = field(default_factory=PGDSettings)
    batch_size: int = 256
    chunk_size: int = 500
    seed: int = 0
    n_ex: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "attacks", normalise_attacks(self.attacks))
        if not 0 < self.eps <= MAX_EPS:
            raise EvaluationError(f"--eps {self.eps} looks like pixels; give it in [0, 1] units, e.g. 8/255")
        for name, value in (("--batch-size", self.batch_size), ("--chunk-size", self.chunk_size)):
            if value < 1:
                raise EvaluationError(f"{name} {value} must be at least 1")
        if self.n_ex is not None and self.n_ex < 1:
            raise EvaluationError(f"--n-ex {self.n_ex} must be at least 1")

    @property
    def attack_classes(self) -> list[type[Attack]]:
        """The registered attacks to run, in registry order."""
        return [ATTACKS[name] for name in self.attacks]

    def build_attacks(self, model, *, num_classes: int, device) -> list[Attack]:
        return [cls.build(self, model, num_classes=num_classes, device=device) for cls in self.attack_classes]

    def fingerprint(self) -> dict:
        """The settings a partial result must have been made with to be reused (n_ex is checked separately)."""
        out = asdict(self)
        out.pop("n_ex")
        out["attacks"] = sorted(self.attacks)
        out["norm"] = NORM
        return out


def attack_choices() -> list[str]:
    return [*ATTACKS, NONE]


def normalise_attacks(attacks) -> tuple[str, ...]:
    """Check an --attack selection; 'none' or nothing means clean accuracy only; alternatives (attacks
    sharing a report section, e.g. two AutoAttack protocols) exclude each other. Returns registry order."""
    attacks = tuple(dict.fromkeys(attacks))
    unknown = [a for a in attacks if a not in attack_choices()]
    if unknown:
        raise EvaluationError(f"--attack {unknown[0]!r} is unknown; choose from {', '.join(attack_choices())}")
    if NONE in attacks:
        if len(attacks) > 1:
            raise EvaluationError("--attack none (clean accuracy only) cannot be combined with attacks")
        return ()
    chosen = [name for name in ATTACKS if name in attacks]
    for section in dict.fromkeys(ATTACKS[name].section for name in chosen):
        rivals = [name for name in chosen if ATTACKS[name].section == section]
        if len(rivals) > 1:
            family = ATTACKS[rivals[0]].family or section
            raise EvaluationError(f"--attack: choose one {family} protocol ({' or '.join(rivals)})")
    return tuple(chosen)
