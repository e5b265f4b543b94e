"""The Tab. 4 methods as benchmark entries: each (method, step path) with its own copy of one model and
optimiser and a fixed random batch, shared by the step-timing, memory, FLOP and AV-log benchmarks."""

from __future__ import annotations

import copy
import functools
import time

import torch

from iseat.methods import registry as method_registry
from iseat.methods.models import build_model
from iseat.methods.presets import MethodSchedule, training_step
from iseat.methods.reference_step import reference_training_step
from iseat.methods.training_attack import PGD
from iseat.training import acceleration

# Tab. 4 rows: label -> (method, overrides), from the registry. Stage 1 is the lr stage where lambda is switched on.
TAB4_METHODS = {label: (name, {}) for name, label in method_registry.tab4_labels().items()}
STAGE = 1
PATHS = {
    "fast": training_step,
    "straightforward": reference_training_step,
    "memory_lean": functools.partial(training_step, memory_lean=True),
}
# Methods whose step has a theta branch, the only ones the memory-lean path changes.
THETA_BRANCH_METHODS = method_registry.theta_branch_labels()
AT, ISEAT = method_registry.cost_row(False, False), method_registry.cost_row(True, True)


def tab4_method(label: str, attack: PGD):
    preset, overrides = TAB4_METHODS[label]
    return MethodSchedule.from_config({"name": preset, **overrides}).at_stage(STAGE, attack)


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Setup:
    """One (method, path) entry: its own copy of the model and optimiser, and a fixed batch."""

    def __init__(self, label, path, model, method, x, y, runtime, device):
        self.label, self.path, self.method, self.runtime, self.device = label, path, method, runtime, device
        self.model = acceleration.prepare_model(copy.deepcopy(model), runtime, device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.x = acceleration.to_device(x, runtime, device)
        self.y = y.to(device)
        self.step_fn = PATHS[path]

    def step(self):
        with acceleration.autocast(self.runtime, self.device):
            return self.step_fn(self.model, self.optimizer, self.x, self.y, self.method)

    def timed_step(self) -> tuple[float, float]:
        """(wall-clock seconds, CPU seconds of this process) of one step."""
        synchronize(self.device)
        start, start_cpu = time.perf_counter(), time.process_time()
        self.step()
        synchronize(self.device)
        return time.perf_counter() - start, time.process_time() - start_cpu


def build_setups(arch, batch_size, device, runtime, paths, methods, seed, steps=10):
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=10)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
    attack = PGD(8 / 255, 2 / 255, steps)
    return [
        Setup(label, path, model, tab4_method(label, attack), x, y, runtime, device)
        for path in paths
        for label in methods
        if path != "memory_lean" or label in THETA_BRANCH_METHODS
    ]
