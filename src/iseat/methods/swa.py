"""Weight averaging as in the IDBH/ISEAT code ("SWA"): an exponential moving average of the parameters,
avg = (1 - decay) * avg + decay * theta every iteration, with BatchNorm statistics re-estimated on the
training set (one pass, cumulative average) before the averaged model is evaluated."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        # torch's EMA keeps `1 - decay` of the old average, so pass the complement
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1.0 - decay))

    def update(self, model: torch.nn.Module) -> None:
        self.average.update_parameters(model)

    def averaged_model(self, bn_loader, device) -> torch.nn.Module:
        """The averaged network with re-estimated BatchNorm statistics, in eval mode."""
        module = self.average.module
        update_bn(((x.to(device),) for x, _, _ in bn_loader), module, device=device)
        return module.eval()

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
