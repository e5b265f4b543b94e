"""The non-finite guard: a run stops at the first training step whose loss, gradients or updated weights
are not finite, before anything of that step is saved.

The check costs no extra host-device synchronisation: the loop already reads the loss (`loss.item()` in
the step) and the step's two correct-counts; the two finiteness flags ride on that second read
(`step_counts`), which reads the counts and the flags in one transfer. Gradients are those the optimiser
just used (kept in `.grad` until the next step); the weights are the updated parameters and the floating
buffers (BatchNorm's running statistics). A diverged run exits with `EXIT_DIVERGED` (3), not 2: it is not
bad input. Its last finite state and checkpoints stay as they were, and no `summary.json` is written.
"""

from __future__ import annotations

import math

import torch
from torch.nn.utils import get_total_norm

from iseat.common.errors import RunFailed

EXIT_DIVERGED = 3


class TrainingDiverged(RunFailed):
    """A non-finite loss, gradient or weight in a training step."""

    exit_status = EXIT_DIVERGED


def max_abs(tensors: list[torch.Tensor], device) -> torch.Tensor:
    """The largest |value| of all `tensors` (inf or NaN if any is), one fused reduction; 0 for none."""
    return get_total_norm(tensors, norm_type=math.inf) if tensors else torch.zeros((), device=device)


def finiteness(model: torch.nn.Module) -> torch.Tensor:
    """Two flags on the model's device: all gradients finite, all weights finite (1.0 = finite)."""
    params = list(model.parameters())
    device = params[0].device if params else "cpu"
    grads = [p.grad.detach() for p in params if p.grad is not None]
    weights = [p.detach() for p in params] + [b for b in model.buffers() if b.is_floating_point()]
    return torch.isfinite(torch.stack([max_abs(grads, device), max_abs(weights, device)])).float()


def step_counts(model: torch.nn.Module, result) -> tuple[int, int, bool, bool]:
    """(clean correct, adversarial correct, gradients finite, weights finite) of one step, in one read."""
    counts = torch.stack([result.clean_correct.sum().float(), result.adv_correct.sum().float()])
    clean, adv, grads_ok, weights_ok = torch.cat([counts, finiteness(model).to(counts.device)]).tolist()
    return int(clean), int(adv), bool(grads_ok), bool(weights_ok)


def check_step(loss: float, grads_ok: bool, weights_ok: bool, epoch: int, step: int, steps: int) -> None:
    """TrainingDiverged naming the epoch, the step (both 1-indexed) and the first non-finite quantity."""
    bad = next(
        (
            name
            for name, ok in (("loss", math.isfinite(loss)), ("gradient", grads_ok), ("weight", weights_ok))
            if not ok
        ),
        None,
    )
    if bad is not None:
        raise TrainingDiverged(
            f"training diverged: non-finite {bad} at epoch {epoch + 1}, step {step + 1} of "
            f"{steps} (loss {loss}); saved states and checkpoints are left as they were; lower the "
            f"lr or the method's strengths and start afresh"
        )
