"""Clean correctness per sample, model in eval mode (the attacks in `attacks/` start from it)."""

from __future__ import annotations

import torch


@torch.no_grad()
def predictions(model, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    out = [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def clean_correct(model, x: torch.Tensor, y: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    model.eval()
    return predictions(model, x, batch_size, device) == y
