"""FLOPs of one training step: the multiply-adds of convolutions and matrix products of one eager step (x2,
PyTorch's formulas), the work ratio between methods free of timing noise."""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from iseat.benchmarks.tab4_setups import build_setups
from iseat.training import acceleration


class FlopCount(TorchDispatchMode):
    """Counts the floating-point operations of matrix multiplications and convolutions (forward and
    backward, skipped weight or input gradients not counted) with PyTorch's own formulas."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def step_flops(arch, batch_size, device, label, path, seed, steps) -> int:
    """FLOPs of one eager fp32 step of `label` (the work a step does, independent of machine load)."""
    setup = build_setups(arch, batch_size, device, acceleration.options(None), [path], [label], seed, steps)[0]
    with FlopCount() as counter:
        setup.step()
    return counter.total
