"""The baselines' own l-inf attacks, each as its authors wrote it. The step runs them in eval mode
(BatchNorm running statistics, no update of them), as the originals do, except RWP's, which its
authors run in train mode (`BaselineStep.attack_mode`).

- `KLAttack` (TRADES, Zhang et al. 2019; yaodongyu/TRADES `trades_loss`): start x + 0.001 * N(0, I)
  (not clipped), ascend KL(f(x) || f(x')) summed over the batch, project to the eps-ball and [0, 1].
  It also counts kappa on its iterates, as GAIR-RST's `GAIR_trades_loss` does on the same walk.
- `GaussianStartPGD` (MART, Wang et al. 2020; YisenWang/MART `mart_loss`): the same start, ascend the
  mean cross-entropy.
- `CWAttack` (GAIR-RST's second adversary; GAIR_RST/losses.py `pgd_generate`, loss "cw", category
  "trades"): the same start, ascend the capped CW margin min(max_{k != y} z_k - z_y, 50) summed.
- `GeometryAwarePGD` (GAIRAT, Zhang et al. 2021; `attack_generator.GA_PGD`, category "Madry"): uniform
  start in the eps-ball (clipped to [0, 1]), ascend the mean cross-entropy, and count kappa, the
  number of the K iterates x^(0) ... x^(K-1) that the model classifies correctly (the geometry value).
- `EarlyStoppedPGD` (FAT, Zhang et al. 2020; `earlystop.earlystop`, "uniform_randominit"): the same
  start; a sample stops at the first iterate that is misclassified once its budget of tau extra
  steps is spent; every other sample takes a sign step plus omega * N(0, I) noise, is projected and
  clipped; after K steps the rest stop where they are.
- `UniformStartPGD` (RWP, Yu et al. 2022; AT_AWP_RWP/train_cifar10.py `attack_pgd`, one restart):
  GeometryAwarePGD's walk, then one more forward pass at x' that scores the restart. In train mode
  (as RWP's authors run it) each of these K + 1 passes updates the BatchNorm running statistics.
Sign steps never depend on the batch mean's scale, and in eval mode samples do not interact, so the
per-sample masks below give what the originals' shrinking sub-batches give.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iseat.common import distributed
from iseat.methods.training_attack import cw_margin, input_gradient


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """The model in eval mode (BatchNorm running statistics) while the attack runs; mode restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Back into the l-inf eps-ball around x, then into the image range [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def gaussian_start(x: torch.Tensor, sd: float = 0.001) -> torch.Tensor:
    return x + sd * distributed.draw_like(x, torch.Tensor.normal_)


def uniform_start(x: torch.Tensor, eps: float) -> torch.Tensor:
    return (x + distributed.draw_like(x, lambda t: t.uniform_(-eps, eps))).clamp(0.0, 1.0)


def capped_cw_margin(logits: torch.Tensor, y: torch.Tensor, confidence: float) -> torch.Tensor:
    """min(max_{k != y} z_k - z_y, confidence) per sample: the original's -max(z_y - max_other + c, 0),
    shifted by the constant c."""
    return cw_margin(logits, y).clamp(max=confidence)


def ce_input_gradient(model, x_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at x_adv and the gradient of the mean cross-entropy with respect to x_adv."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    loss = distributed.part_of_mean(F.cross_entropy(logits, y), len(y))  # RWP's train-mode attack couples the ranks
    (grad,) = torch.autograd.grad(loss, x_adv)
    return logits.detach(), grad


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == y).long()


@dataclass(frozen=True)
class KLAttack:
    eps: float = 8 / 255
    step_size: float = 0.007
    steps: int = 10
    start_sd: float = 0.001

    def perturb(self, model, x, y):
        """Return (x', kappa): kappa[i] = how many of the K iterates are classified as y[i]."""
        x = x.detach()
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)
        x_adv = gaussian_start(x, self.start_sd)
        kappa = torch.zeros(len(y), dtype=torch.long, device=y.device)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            kappa += correct(logits.detach(), y)
            kl = F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = project(x_adv.detach() + self.step_size * grad.sign(), x, self.eps)
        return x_adv.clamp(0.0, 1.0).detach(), kappa


@dataclass(frozen=True)
class GaussianStartPGD:
    eps: float = 8 / 255
    step_size: float = 0.007
    steps: int = 10
    start_sd: float = 0.001

    def objective(self, logits, y):
        return F.cross_entropy(logits, y)

    def perturb(self, model, x, y):
        x = x.detach()
        x_adv = gaussian_start(x, self.start_sd)
        for _ in range(self.steps):
            grad = input_gradient(model, x_adv, y, self.objective)
            x_adv = project(x_adv + self.step_size * grad.sign(), x, self.eps)
        return x_adv.clamp(0.0, 1.0).detach(), None


@dataclass(frozen=True)
class CWAttack(GaussianStartPGD):
    """MART's walk on the capped CW margin (sign steps: its sum and the original's sum of
    -max(z_y - max_other + c, 0) have the same input gradient)."""

    confidence: float = 50.0

    def objective(self, logits, y):
        return capped_cw_margin(logits, y, self.confidence).sum()


@dataclass(frozen=True)
class UniformStartPGD:
    """Madry et al.'s PGD with a uniform random start (RWP's `attack_pgd`, one restart)."""

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10

    def perturb(self, model, x, y):
        x_adv, _ = GeometryAwarePGD(self.eps, self.step_size, self.steps).perturb(model, x, y)  # the same walk
        if model.training:  # the restart's score: in train mode it counts the batch once more
            with torch.no_grad():
                model(x_adv)
        return x_adv, None


@dataclass(frozen=True)
class GeometryAwarePGD:
    eps: float = 8 / 255
    step_size: float = 0.007
    steps: int = 10
    random_start: bool = True

    def perturb(self, model, x, y):
        """Return (x', kappa): kappa[i] = how many of the K iterates are classified correctly."""
        x = x.detach()
        x_adv = uniform_start(x, self.eps) if self.random_start else x.clone()
        kappa = torch.zeros(len(y), dtype=torch.long, device=y.device)
        for _ in range(self.steps):
            logits, grad = ce_input_gradient(model, x_adv, y)
            kappa += correct(logits, y)
            x_adv = project(x_adv + self.step_size * grad.sign(), x, self.eps)
        return x_adv.detach(), kappa


@dataclass(frozen=True)
class EarlyStoppedPGD:
    eps: float = 8 / 255
    step_size: float = 0.007
    steps: int = 10
    tau: int = 0
    omega: float = 0.001
    random_start: bool = True

    def perturb(self, model, x, y):
        x = x.detach()
        x_adv = uniform_start(x, self.eps) if self.random_start else x.clone()
        budget = torch.full((len(y),), self.tau, dtype=torch.long, device=y.device)
        running = torch.ones(len(y), dtype=torch.bool, device=y.device)
        for _ in range(self.steps):
            logits, grad = ce_input_gradient(model, x_adv, y)
            wrong = running & (logits.argmax(1) != y)
            running &= ~(wrong & (budget == 0))  # misclassified with no budget left: stop here
            budget -= (wrong & (budget > 0)).long()
            if not running.any():
                break
            step = self.step_size * grad[running].sign() + self.omega * torch.randn_like(x_adv[running])
            x_adv[running] = project(x_adv[running] + step, x[running], self.eps)
        return x_adv.detach(), None
