"""l-inf PGD (Madry et al.), as used for training and for model selection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iseat.common import distributed


@dataclass(frozen=True)
class PGD:
    """l-inf projected gradient ascent on the mean cross-entropy (or on `loss(logits, y)`, e.g. a margin loss).

    Without `random_start` (the reference's default) the first step starts at the clean input,
    so its gradient is the clean input gradient; `perturb` accepts that gradient (of `loss`) precomputed.
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    random_start: bool = False
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy

    def perturb(
        self, model, x: torch.Tensor, y: torch.Tensor, clean_input_grad: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return x' = clip_[0,1](x + delta) with ||delta||_inf <= eps. The model's mode is left as it is."""
        if self.steps == 0 or self.eps == 0:
            return x.detach().clone()
        x = x.detach()
        if self.random_start:
            delta = distributed.draw_like(x, lambda t: t.uniform_(-self.eps, self.eps))
            delta = (x + delta).clamp_(0, 1) - x
            clean_input_grad = None
        else:
            delta = torch.zeros_like(x)
        for step in range(self.steps):
            if step == 0 and clean_input_grad is not None:
                grad = clean_input_grad
            else:
                grad = input_gradient(model, x + delta, y, self.loss)
            delta = (delta + self.step_size * grad.sign()).clamp_(-self.eps, self.eps)
            delta = (x + delta).clamp_(0, 1) - x
        return (x + delta).detach()


def input_gradient(model, x_adv: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy) -> torch.Tensor:
    """Gradient of `loss_fn` (mean cross-entropy by default) with respect to the input only (no parameter gradients)."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = distributed.part_of_mean(loss_fn(model(x_adv), y), len(y))  # train-mode BatchNorm couples the ranks
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample, the Carlini-Wagner margin max_{j != y} z_j - z_y: positive exactly when misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).amax(1) - true


@torch.no_grad()
def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.argmax(1) == y


def clean_and_robust_accuracy(
    model, loader, attack: PGD, device, max_samples: int | None = None
) -> tuple[float, float]:
    """Clean and PGD accuracy in eval mode over `loader` batches of (x, y, index); the model's mode is restored."""
    was_training = model.training
    model.eval()
    clean = robust = seen = 0
    try:
        for x, y, _ in loader:
            if max_samples is not None and seen >= max_samples:
                break
            if max_samples is not None:
                x, y = x[: max_samples - seen], y[: max_samples - seen]
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                clean += accuracy(model(x), y).sum().item()
            x_adv = attack.perturb(model, x, y)
            with torch.no_grad():
                robust += accuracy(model(x_adv), y).sum().item()
            seen += len(y)
    finally:
        model.train(was_training)
    return clean / max(seen, 1), robust / max(seen, 1)
