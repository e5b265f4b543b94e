"""Tab. 2's comparison methods as compositions of parts, selected by `method.name`.

Each method = its own attack (`attacks`) + its own per-sample loss (`trades`, `mart`, or the
adversarial cross-entropy) + optionally a weight perturbation (AWP on the method's loss, or `rwp`)
+ optionally instance weights (`gairat`; `gair_trades`: the weights share each sample's loss between
the attack's adversary and a second, CW-margin one). `BASELINES` holds each one's parts and its authors'
defaults (sources in each module's docstring and in config/README.md); a config's `method`
section may override any default. `BaselineSchedule.at_stage` gives one epoch's `step.BaselineStep`,
a `iseat.methods.step_parts.TrainingMethod`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch.nn.functional as F

from iseat.methods.baselines import fat, gair_trades, gairat, mart, rwp, trades
from iseat.methods.baselines.authors_attacks import (
    CWAttack,
    EarlyStoppedPGD,
    GaussianStartPGD,
    GeometryAwarePGD,
    KLAttack,
    UniformStartPGD,
)
from iseat.methods.baselines.step import BaselineStep
from iseat.methods.step_parts import stage_value


def adversarial_cross_entropy(clean_logits, adv_logits, y):
    return F.cross_entropy(adv_logits, y, reduction="none")


@dataclass(frozen=True)
class Baseline:
    attack: str  # kl | gaussian_pgd | uniform_pgd | geometry_pgd | early_stopped_pgd
    loss: str  # ce | trades | mart
    perturbation: str | None = None  # None | awp | rwp
    weighting: str | None = None  # None | gair | gair_trades
    defaults: dict = field(default_factory=dict)
    counter_attack: str | None = None  # None | cw: the second adversary, weighted 1 - w (gair_trades)


def modes(attack_mode: str = "eval", *passes: str) -> dict:
    """The model's mode while the attack runs and the train-mode passes of the loss that update the
    BatchNorm running statistics, in order: each original's (its module's docstring)."""
    return dict(attack_mode=attack_mode, statistics_passes=list(passes))


# csdongxian/AWP train_trades_cifar.py; MART-AWP's code is not released, so it takes these too.
AWP_DEFAULTS = dict(gamma=0.005, awp_warmup=10)
RWP_DEFAULTS = dict(gamma=rwp.GAMMA, awp_warmup=0, threshold=rwp.THRESHOLD, rwp_steps=rwp.STEPS)
# trades_AWP_RWP/train_trades_cifar.py and RST_AWP_RWP/robust_self_training.py: gamma 0.005, warm-up 10.
TRADES_RWP_DEFAULTS = dict(RWP_DEFAULTS, gamma=rwp.TRADES_GAMMA, awp_warmup=rwp.TRADES_WARMUP)
TRADES_PASSES = modes("eval", "clean", "adv", "clean")  # trades.py: f(x) for the CE, then f(x'), f(x)
AWP_TRADES_PASSES = modes("eval", "adv", "clean", "clean")  # TRADES-AWP's and TRADES-RWP's f(x'), f(x), f(x)
MART_PASSES = modes("eval", "clean", "adv")  # mart.py: f(x), then f(x')
BASELINES: dict[str, Baseline] = {
    "trades": Baseline("kl", "trades", defaults=dict(beta=trades.BETA, **TRADES_PASSES)),
    "mart": Baseline("gaussian_pgd", "mart", defaults=dict(beta=mart.BETA, **MART_PASSES)),
    "trades_awp": Baseline("kl", "trades", "awp", defaults=dict(beta=trades.BETA, **AWP_DEFAULTS, **AWP_TRADES_PASSES)),
    "mart_awp": Baseline("gaussian_pgd", "mart", "awp", defaults=dict(beta=mart.BETA, **AWP_DEFAULTS, **MART_PASSES)),
    "rwp": Baseline("uniform_pgd", "ce", "rwp", defaults=dict(RWP_DEFAULTS, **modes("train", "adv"))),
    "trades_rwp": Baseline(
        "kl", "trades", "rwp", defaults=dict(beta=trades.BETA, **TRADES_RWP_DEFAULTS, **AWP_TRADES_PASSES)
    ),
    "gairat": Baseline(
        "geometry_pgd",
        "ce",
        weighting="gair",
        defaults=dict(gair_lambda=gairat.LAMBDA, gair_begin=gairat.BEGIN, **modes("eval", "adv")),
    ),
    "gair_trades": Baseline(
        "kl",
        "trades",
        weighting="gair_trades",
        counter_attack="cw",
        defaults=dict(
            beta=trades.BETA,
            gair_lambda=gair_trades.LAMBDA,
            gair_begin=gair_trades.BEGIN,
            **modes("eval", "adv", "counter", "clean"),
        ),
    ),
    "fat": Baseline(
        "early_stopped_pgd",
        "ce",
        defaults=dict(
            tau=list(fat.TAUS), tau_milestones=list(fat.TAU_MILESTONES), omega=fat.OMEGA, **modes("eval", "adv")
        ),
    ),
}
BASELINE_OPTIONS = sorted({key for spec in BASELINES.values() for key in spec.defaults} - {"gamma"})
LOSSES = {
    "ce": (adversarial_cross_entropy, False),
    "trades": (trades.trades_per_sample, True),
    "mart": (mart.mart_per_sample, True),
}


@dataclass(frozen=True)
class BaselineSchedule:
    """A baseline with its options; `at_stage` gives the Method of one epoch (AWP warm-up, GAIRAT's
    and GAIR-TRADES' Lambda and FAT's tau depend on the epoch)."""

    name: str
    options: tuple  # sorted (key, value) pairs

    @staticmethod
    def defaults(name: str) -> dict:
        return dict(BASELINES[name].defaults)

    @classmethod
    def from_config(cls, cfg: dict) -> BaselineSchedule:
        name = cfg["name"]
        spec = BASELINES[name]
        unknown = sorted(set(cfg) - {"name"} - set(spec.defaults))
        if unknown:
            raise ValueError(f"method.{unknown[0]}: not an option of {name}; its options are {sorted(spec.defaults)}")
        merged = {**spec.defaults, **{k: v for k, v in cfg.items() if k != "name"}}
        inputs = (
            {"adv"} | ({"clean"} if LOSSES[spec.loss][1] else set()) | ({"counter"} if spec.counter_attack else set())
        )
        stray = [p for p in merged["statistics_passes"] if p not in inputs]
        if stray:
            raise ValueError(f"method.statistics_passes: {name} has no {stray[0]!r} pass; use some of {sorted(inputs)}")
        return cls(name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in merged.items())))

    @property
    def backpropagates_clean_graph(self) -> bool:
        """Whether the loss has a clean-input term (TRADES, MART): a step's cost, as smoothing's."""
        return LOSSES[BASELINES[self.name].loss][1]

    def cost_parts(self, stage: int, epoch: int) -> tuple[bool, float]:
        """As `MethodSchedule.cost_parts`: a clean-input loss term costs as smoothing does."""
        return self.backpropagates_clean_graph, self.gamma_at(stage, epoch)

    def gamma_at(self, stage: int, epoch: int) -> float:
        """The weight-perturbation size of one epoch: 0 without one and during the AWP warm-up."""
        o = dict(self.options)
        return stage_value(o["gamma"], stage) if "gamma" in o and epoch + 1 >= o["awp_warmup"] else 0.0

    def at_stage(self, stage: int, attack, epoch: int = 0, epochs: int = 1) -> BaselineStep:
        spec, o = BASELINES[self.name], dict(self.options)
        gamma = self.gamma_at(stage, epoch)
        weights = self._weights(spec, o, attack, epoch, epochs)
        counter = (
            CWAttack(attack.eps, attack.step_size, attack.steps)
            if spec.counter_attack == "cw" and weights is not None
            else None
        )
        return BaselineStep(
            self._attack(spec, o, attack, epoch, epochs),
            self._loss(spec, o),
            LOSSES[spec.loss][1],
            spec.perturbation,
            gamma,
            dict(threshold=o.get("threshold"), steps=o.get("rwp_steps")),
            weights,
            counter,
            o["attack_mode"],
            tuple(o["statistics_passes"]),
        )

    @staticmethod
    def _loss(spec, o):
        fn = LOSSES[spec.loss][0]
        return partial(fn, beta=float(o["beta"])) if "beta" in o else fn

    @staticmethod
    def _attack(spec, o, pgd, epoch, epochs):
        budget = dict(eps=pgd.eps, step_size=pgd.step_size, steps=pgd.steps)
        if spec.attack == "early_stopped_pgd":
            tau = fat.fat_tau(epoch, epochs, o["tau"], o["tau_milestones"])
            return EarlyStoppedPGD(**budget, tau=tau, omega=float(o["omega"]))
        return {
            "kl": KLAttack,
            "gaussian_pgd": GaussianStartPGD,
            "uniform_pgd": UniformStartPGD,
            "geometry_pgd": GeometryAwarePGD,
        }[spec.attack](**budget)

    @staticmethod
    def _weights(spec, o, pgd, epoch, epochs):
        if spec.weighting == "gair_trades":
            lam = gair_trades.gair_trades_lambda(epoch, epochs, float(o["gair_lambda"]), float(o["gair_begin"]))
            return (
                partial(gair_trades.gair_trades_weights, steps=pgd.steps, lam=lam)
                if gair_trades.reweights(lam)
                else None
            )
        if spec.weighting != "gair":
            return None
        lam = gairat.gair_lambda(epoch, epochs, float(o["gair_lambda"]), float(o["gair_begin"]))
        return None if math.isinf(lam) else partial(gairat.gair_weights, steps=pgd.steps, lam=lam)


def check_method_options(cfg: dict, attack_steps: int = 10) -> None:
    """ValueError naming the first `method` key that the chosen method does not use, or whose value
    (with the attack's `attack_steps`) leaves its instance weights undefined."""
    name = cfg.get("name", "iseat")
    if name in BASELINES:
        options = dict(BaselineSchedule.from_config(cfg).options)
        if BASELINES[name].weighting == "gair":
            gairat.check_options(float(options["gair_lambda"]), attack_steps)
        return
    stray = sorted(set(cfg) & set(BASELINE_OPTIONS))
    if stray:
        raise ValueError(f"method.{stray[0]}: an option of the Tab. 2 baselines, not of {name}")


def method_warnings(cfg: dict) -> list[str]:
    """Valid but probably unintended option values of a train config (one line each)."""
    name = cfg["method"].get("name", "iseat")
    if name in BASELINES and BASELINES[name].attack == "early_stopped_pgd":
        warning = fat.plain_pgd_warning(
            dict(BaselineSchedule.from_config(cfg["method"]).options)["tau"], cfg["attack"]["steps"]
        )
        return [warning] if warning else []
    return []
