"""What an evaluation runs (attacks, eps, PGD budget, batching, seed), checked before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from iseat.common.errors import ParameterError, UserError, literal
from iseat.common.fraction import budget
from iseat.evaluation.attacks import ATTACKS, Attack

NORM = "Linf"
NONE = "none"  # --attack none: clean accuracy only


class EvaluationError(UserError, ValueError):
    """Bad evaluation input (eps, attack choice, sample count, stale partial results); the message is one line."""


class EvaluationInputError(EvaluationError, ParameterError):
    """A bad evaluation setting; the message names the setting (`eps`, `pgd_steps`, `attack`, `n_ex`, `out`, ...)."""


def positive_budget(value: float, parameter: str) -> None:
    """An eps or step size in (0, 0.25] ([0, 1] pixel units), as `iseat.common.fraction.budget` checks it."""
    try:
        budget(value, parameter, positive=True)
    except ParameterError as err:
        raise EvaluationInputError(err.reason, *err.parameters) from None


@dataclass(frozen=True)
class PGDSettings:
    """PGD-k for evaluation: a point counts as robust only if every restart leaves it correctly classified."""

    steps: int = 10
    step_size: float = 2 / 255
    restarts: int = 1
    random_start: bool = False

    def __post_init__(self):
        if self.steps < 1:
            raise EvaluationInputError(f"{{0}} {self.steps} must be at least 1", "pgd_steps")
        if self.restarts < 1:
            raise EvaluationInputError(f"{{0}} {self.restarts} must be at least 1", "pgd_restarts")
        if self.restarts > 1 and not self.random_start:
            raise EvaluationInputError(
                "{0} > 1 repeats the same attack without {1}", "pgd_restarts", "pgd_random_start"
            )
        positive_budget(self.step_size, "pgd_step_size")

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
        positive_budget(self.eps, "eps")
        for name, value in (("batch_size", self.batch_size), ("chunk_size", self.chunk_size)):
            if value < 1:
                raise EvaluationInputError(f"{{0}} {value} must be at least 1", name)
        if self.n_ex is not None and self.n_ex < 1:
            raise EvaluationInputError(f"{{0}} {self.n_ex} must be at least 1", "n_ex")

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
        raise EvaluationInputError(
            f"{{0}} {literal(repr(unknown[0]))} is unknown; choose from {', '.join(attack_choices())}", "attack"
        )
    if NONE in attacks:
        if len(attacks) > 1:
            raise EvaluationInputError("{0} none (clean accuracy only) cannot be combined with attacks", "attack")
        return ()
    chosen = [name for name in ATTACKS if name in attacks]
    for section in dict.fromkeys(ATTACKS[name].section for name in chosen):
        rivals = [name for name in chosen if ATTACKS[name].section == section]
        if len(rivals) > 1:
            family = ATTACKS[rivals[0]].family or section
            raise EvaluationInputError(f"{{0}}: choose one {family} protocol ({' or '.join(rivals)})", "attack")
    return tuple(chosen)
