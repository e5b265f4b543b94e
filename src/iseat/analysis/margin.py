"""Margin along the adversarial direction (ISEAT Eq. 7), searched for whole batches at once.

    mu_i = min { mu >= 0 : F(clip_[0,1](x_i + mu d_i)) != F(x_i) },   d_i = delta_i / ||delta_i||_2,

delta_i from PGD-50 (l-inf, eps 8/255, step 2/255, no random start, against the true label, model in
eval mode), searched up to mu_max = 50. Samples whose prediction never changes up to mu_max show
"disordered robustness" and get mu = mu_max.

Search and its tolerance. Clipping to [0, 1] makes the path non-linear, so the prediction may change
more than once along it. A scan over an increasing grid (step `step` up to mu = step / growth, then
relative steps of `growth`; each grid point evaluates only the samples that have not changed yet)
finds, per sample, the first grid interval whose right end changes the prediction; bisection on all
those brackets at once then narrows each to `tol`. The returned mu changes the prediction and lies
within `tol` above a point that does not, inside that first bracket. A change that reverts within
one grid interval (narrower than max(step, growth * mu)) is not seen by the scan.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from iseat.methods.training_attack import PGD

MU_MAX = 50.0
ANALYSIS_ATTACK = PGD(eps=8 / 255, step_size=2 / 255, steps=50, random_start=False)


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module):
    """Run the analysis with the model in eval mode; its mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def first_samples(loader, max_samples: int | None = None):
    """The (x, y, index) batches of `loader`, cut after its first `max_samples` samples (None = all)."""
    seen = 0
    for x, y, index in loader:
        if max_samples is not None:
            if seen >= max_samples:
                return
            x, y, index = x[: max_samples - seen], y[: max_samples - seen], index[: max_samples - seen]
        seen += len(y)
        yield x, y, index


@dataclass(frozen=True)
class MarginSearch:
    """Scan grid and bisection tolerance of the Eq. 7 search (see the module docstring)."""

    mu_max: float = MU_MAX
    step: float = 0.1
    growth: float = 0.05
    tol: float = 1e-3

    def __post_init__(self):
        if not (self.mu_max > 0 and self.step > 0 and self.growth >= 0 and self.tol > 0):
            raise ValueError("margin search: mu_max, step and tol must be > 0 and growth >= 0")

    def grid(self) -> list[float]:
        """Increasing scan points in (0, mu_max], ending exactly at mu_max."""
        points, mu = [], 0.0
        while mu < self.mu_max:
            mu = min(self.mu_max, mu + max(self.step, self.growth * mu))
            points.append(mu)
        return points


def perturbed_input(x: torch.Tensor, direction: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """clip_[0,1](x + mu d) with one mu per sample."""
    return (x + mu.to(x.dtype).view(-1, *[1] * (x.dim() - 1)) * direction).clamp(0, 1)


@torch.no_grad()
def predict_along(model, x: torch.Tensor, direction: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    return model(perturbed_input(x, direction, mu)).argmax(1)


@torch.no_grad()
def first_crossing(
    model,
    x: torch.Tensor,
    direction: torch.Tensor,
    search: MarginSearch = MarginSearch(),
    reference: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7 for a batch: (mu, crossed). `reference` is F(x) (computed when not given); samples that
    never change up to mu_max get mu = mu_max and crossed = False."""
    if reference is None:
        reference = model(x).argmax(1)
    lo, hi, crossed = scan_brackets(model, x, direction, reference, search)
    mu = torch.full((len(x),), search.mu_max, dtype=torch.float64, device=x.device)
    idx = crossed.nonzero().flatten()
    if idx.numel():
        mu[idx] = bisect_brackets(model, x[idx], direction[idx], reference[idx], lo[idx], hi[idx], search.tol)
    return mu, crossed


def scan_brackets(model, x, direction, reference, search: MarginSearch):
    """First grid interval (lo, hi] per sample whose right end changes the prediction."""
    n = len(x)
    lo = torch.zeros(n, dtype=torch.float64, device=x.device)
    hi = torch.full((n,), search.mu_max, dtype=torch.float64, device=x.device)
    crossed = torch.zeros(n, dtype=torch.bool, device=x.device)
    active = torch.arange(n, device=x.device)
    previous = 0.0
    for mu in search.grid():
        if active.numel() == 0:
            break
        mus = torch.full((active.numel(),), mu, dtype=torch.float64, device=x.device)
        changed = predict_along(model, x[active], direction[active], mus) != reference[active]
        done = active[changed]
        lo[done], hi[done], crossed[done] = previous, mu, True
        active = active[~changed]
        previous = mu
    return lo, hi, crossed


def bisect_brackets(model, x, direction, reference, lo, hi, tol: float) -> torch.Tensor:
    """Vectorised bisection: every bracket keeps `hi` changed and `lo` unchanged; returns hi."""
    lo, hi = lo.clone(), hi.clone()
    while (hi - lo).max().item() > tol:
        mid = (lo + hi) / 2
        changed = predict_along(model, x, direction, mid) != reference
        hi = torch.where(changed, mid, hi)
        lo = torch.where(changed, lo, mid)
    return hi


def adversarial_direction(model, x: torch.Tensor, y: torch.Tensor, attack: PGD = ANALYSIS_ATTACK):
    """(d, ||delta||_2, x') with delta = x' - x from `attack`; d = 0 where delta = 0 (never crosses)."""
    x_adv = attack.perturb(model, x, y)
    delta = x_adv - x
    norm = delta.flatten(1).norm(dim=1)
    scale = torch.where(norm > 0, 1 / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.zeros_like(norm))
    return delta * scale.view(-1, *[1] * (x.dim() - 1)), norm, x_adv


@dataclass
class MarginResult:
    """Per-sample outcomes of the margin study, in loader order, plus timings."""

    index: np.ndarray
    label: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    mu: np.ndarray
    crossed: np.ndarray
    delta_norm: np.ndarray
    clean_loss: np.ndarray
    adv_loss: np.ndarray
    mu_max: float = MU_MAX
    input_dim: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def av(self) -> np.ndarray:
        """Eq. 3 adversarial vulnerability under the analysis attack."""
        return self.adv_loss - self.clean_loss

    @property
    def disordered(self) -> np.ndarray:
        return ~self.crossed

    def arrays(self) -> dict:
        names = ("index", "label", "clean_pred", "adv_pred", "mu", "crossed", "delta_norm", "clean_loss", "adv_loss")
        return {name: getattr(self, name) for name in names} | {"av": self.av, "mu_max": np.float64(self.mu_max)}

    def throughput(self) -> dict:
        n = len(self.mu)
        return {f"{part}_samples_per_s": n / s if s > 0 else math.inf for part, s in self.seconds.items()}


def margin_study(
    model,
    loader,
    device,
    attack: PGD = ANALYSIS_ATTACK,
    search: MarginSearch = MarginSearch(),
    max_samples: int | None = None,
) -> MarginResult:
    """Eq. 7 margin (and Eq. 3 AV under `attack`) of every sample `loader` yields as (x, y, index)."""
    parts, seconds = [], {"attack": 0.0, "search": 0.0}
    with evaluation_mode(model):
        for x, y, index in first_samples(loader, max_samples):
            parts.append(margin_batch(model, x.to(device), y.to(device), index, attack, search, seconds))
    if not parts:
        raise ValueError("margin study: the data set is empty")
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    seconds["total"] = seconds["attack"] + seconds["search"]
    return MarginResult(**merged, mu_max=search.mu_max, input_dim=int(x[0].numel()), seconds=seconds)


def margin_batch(model, x, y, index, attack: PGD, search: MarginSearch, seconds: dict) -> dict:
    start = time.perf_counter()
    with torch.no_grad():
        clean_logits = model(x)
    direction, norm, x_adv = adversarial_direction(model, x, y, attack)
    with torch.no_grad():
        adv_logits = model(x_adv)
    synchronize(x.device)
    seconds["attack"] += time.perf_counter() - start
    start = time.perf_counter()
    reference = clean_logits.argmax(1)
    mu, crossed = first_crossing(model, x, direction, search, reference)
    synchronize(x.device)
    seconds["search"] += time.perf_counter() - start
    as_np = lambda t: t.detach().cpu().numpy()
    return {
        "index": np.asarray(index, dtype=np.int64),
        "label": as_np(y),
        "clean_pred": as_np(reference),
        "adv_pred": as_np(adv_logits.argmax(1)),
        "mu": as_np(mu),
        "crossed": as_np(crossed),
        "delta_norm": as_np(norm).astype(np.float64),
        "clean_loss": as_np(F.cross_entropy(clean_logits, y, reduction="none")).astype(np.float64),
        "adv_loss": as_np(F.cross_entropy(adv_logits, y, reduction="none")).astype(np.float64),
    }


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def margin_summary(result: MarginResult, eps: float) -> dict:
    """Distribution facts of Fig. 1b: share at mu_max ("disordered"), quantiles, the eps budget."""
    mu, n = result.mu, len(result.mu)
    budget = float(result.delta_norm.mean())
    quantiles = {f"q{int(q * 100):02d}": float(np.quantile(mu, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
    return {
        "n_samples": n,
        "mu_max": result.mu_max,
        "share_disordered": float(result.disordered.mean()),
        "eps_budget_l2_mean_delta_norm": budget,
        "share_within_budget": float((mu <= budget).mean()),
        "share_within_third_budget": float((mu <= budget / 3).mean()),
        "share_beyond_double_budget": float((mu > 2 * budget).mean()),
        "clean_accuracy": float((result.clean_pred == result.label).mean()),
        "adversarial_accuracy": float((result.adv_pred == result.label).mean()),
        "mu_mean_crossed": float(mu[result.crossed].mean()) if result.crossed.any() else math.nan,
        "mu_quantiles": quantiles,
        "eps": eps,
        "eps_linf_corner_l2": eps * math.sqrt(result.input_dim),
    }


@torch.no_grad()
def perturbation_grid(model, x: torch.Tensor, direction: torch.Tensor, mus, y: torch.Tensor | None = None) -> dict:
    """Fig. 2 data: clip(x + mu d) for every sample and mu, with the predicted class and its confidence,
    and (given the labels `y`) the confidence of the ground-truth class, which the paper's captions show."""
    mus = torch.as_tensor(list(mus), dtype=torch.float64, device=x.device)
    s, m = len(x), len(mus)
    with evaluation_mode(model):
        images = perturbed_input(x.repeat_interleave(m, 0), direction.repeat_interleave(m, 0), mus.repeat(s))
        probs = F.softmax(model(images), 1)
    conf, pred = probs.max(1)
    grid = {
        "mu": mus.cpu().numpy(),
        "images": images.view(s, m, *x.shape[1:]).cpu().numpy(),
        "pred": pred.view(s, m).cpu().numpy(),
        "confidence": conf.view(s, m).cpu().numpy().astype(np.float64),
    }
    if y is not None:
        truth = probs.gather(1, y.to(probs.device).repeat_interleave(m)[:, None]).view(s, m)
        grid["true_confidence"] = truth.cpu().numpy().astype(np.float64)
    return grid


def figure2_positions(result: MarginResult, per_group: int = 2) -> np.ndarray:
    """Positions (loader order) of samples to show in Fig. 2: small, median and large crossed margins,
    then disordered samples."""
    crossed = np.flatnonzero(result.crossed & (result.clean_pred == result.label))
    picks = []
    if crossed.size:
        order = crossed[np.argsort(result.mu[crossed], kind="stable")]
        for q in (0.1, 0.5, 0.9):
            picks.append(order[min(len(order) - 1, int(q * len(order)))])
    picks += list(np.flatnonzero(result.disordered)[:per_group])
    return np.array(list(dict.fromkeys(int(p) for p in picks)), dtype=np.int64)


def figure3_picks(margins: dict, disordered: int = 2) -> tuple[list[int], list[str]]:
    """Fig. 3's samples chosen by margin, as the paper: `disordered` correctly classified samples whose
    prediction never changes up to the search maximum, the most robust (largest crossed margin) and the
    most vulnerable (smallest crossed margin). `margins` holds `MarginResult.arrays()`; returns dataset
    indices and panel titles."""
    correct = margins["clean_pred"] == margins["label"]
    crossed = np.flatnonzero(correct & margins["crossed"])
    never = np.flatnonzero(correct & ~margins["crossed"])[:disordered]
    if crossed.size == 0:
        raise ValueError(
            "no correctly classified sample changes its prediction within the search: no robust or "
            "vulnerable sample to show"
        )
    order = crossed[np.argsort(margins["mu"][crossed], kind="stable")]
    picks = [(p, f"mu >= {float(margins['mu_max']):g} (disordered)") for p in never]
    picks += [
        (order[-1], f"mu = {margins['mu'][order[-1]]:.2f} (robust)"),
        (order[0], f"mu = {margins['mu'][order[0]]:.2f} (vulnerable)"),
    ]
    return [int(margins["index"][p]) for p, _ in picks], [f"#{int(margins['index'][p])} {t}" for p, t in picks]
