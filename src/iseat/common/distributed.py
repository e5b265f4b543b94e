"""Data-parallel training with the numbers of one process: every collective in one place.

The single-process step is the definition. A global batch of N samples is cut into contiguous
rank slices (`rank_slice`); each process computes its slice, and the few quantities that couple
samples are made global here:
  - a batch-mean loss stays a mean over the process's slice in the method's code; `share()`
    (n_local / N) turns it into that slice's part of the global mean, so the sum over processes
    of the parameter gradients (`all_reduce_gradients`) is the global batch's gradient;
  - per-sample values that rank the batch or normalise over it (ISEAT's AV ranks, Eq. 15; Eq. 9's
    top 10 %; GAIRAT's weights) are computed on the gathered global batch (`gather`) and sliced;
  - random draws (random starts) are drawn at the global batch's shape with the same generator
    state on every process and sliced, so each process gets its part of the one draw;
  - BatchNorm in train mode uses the global batch's mean and variance (`GlobalBatchNorm`): the
    per-process sums are all-reduced with the differentiable `torch.distributed.nn` all-reduce,
    which runs on gloo as on NCCL (torch's SyncBatchNorm refuses CPU tensors).
In one process (no process group, or a group of one) every helper is the identity and the step's
cost is unchanged.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist

# torch 2.x marks it deprecated in favour of a private module; it is the differentiable all-reduce gloo runs.
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_reduce is deprecated")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def active() -> bool:
    return world_size() > 1


def launched() -> bool:
    """Started by torchrun (or srun with torchrun's environment) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: torch.device) -> None:
    """The process group of a torchrun launch: NCCL on GPUs, gloo on the CPU; nothing in one process."""
    if not launched() or dist.is_initialized():
        return
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")


def local_device(device: torch.device) -> torch.device:
    """Each process's own GPU (LOCAL_RANK) when launched on GPUs."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def bounds(n: int, size: int | None = None) -> list[int]:
    """Start of each rank's contiguous slice of n samples (and n): sizes differ by at most one."""
    size = world_size() if size is None else size
    return [i * n // size for i in range(size + 1)]


def rank_slice(n: int) -> slice:
    """This process's part of a global batch of n samples."""
    edges = bounds(n)
    return slice(edges[rank()], edges[rank() + 1])


def _sizes(n_local: int, device) -> list[int]:
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([n_local], dtype=torch.long, device=device))
    return [int(s) for s in sizes]


def share(n_local: int, device=None) -> float:
    """n_local / N: the factor that makes a mean over the slice its part of the global mean."""
    if not active():
        return 1.0
    return n_local / sum(_sizes(n_local, device or "cpu"))


def gather(values: torch.Tensor) -> torch.Tensor:
    """The per-sample `values` of the global batch, in rank order (detached)."""
    if not active():
        return values
    values = values.detach()
    sizes = _sizes(len(values), values.device)
    padded = values.new_zeros((max(sizes), *values.shape[1:]))
    padded[: len(values)] = values
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def local_part(global_values: torch.Tensor, n_local: int) -> torch.Tensor:
    """This process's slice of per-sample values computed on the gathered global batch."""
    if not active():
        return global_values
    edges = [0, *torch.tensor(_sizes(n_local, global_values.device)).cumsum(0).tolist()]
    return global_values[edges[rank()] : edges[rank() + 1]]


def on_global_batch(fn, values: torch.Tensor) -> torch.Tensor:
    """fn (per-sample values -> per-sample values, coupling the batch) applied to the global batch."""
    return local_part(fn(gather(values)), len(values)) if active() else fn(values)


def draw_like(x: torch.Tensor, fill) -> torch.Tensor:
    """`fill(tensor)` draws into a tensor shaped as x's global batch; this process gets its slice."""
    if not active():
        return fill(torch.empty_like(x))
    sizes = _sizes(len(x), x.device)
    full = fill(x.new_empty((sum(sizes), *x.shape[1:])))
    start = sum(sizes[: rank()])
    return full[start : start + len(x)].contiguous()


def sum_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The sum over processes (a copy; not differentiable)."""
    if not active():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value


def all_reduce_gradients(tensors) -> list:
    """Sums in place the gradients (tensors, or parameters' .grad) over processes; returns them."""
    tensors = list(tensors)
    if active():
        for t in tensors:
            if t is not None:
                dist.all_reduce(t)
    return tensors


def reduce_parameter_gradients(model: torch.nn.Module) -> None:
    if active():
        all_reduce_gradients(p.grad for p in model.parameters() if p.grad is not None)


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose train-mode statistics are those of the global batch: the per-process sums of
    x and of (x - mean)^2 are all-reduced (differentiably), the running statistics updated as one
    process would (unbiased variance over N). Eval mode and one process: torch's BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        count = sum_over_processes(torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype, device=x.device))
        mean = all_reduce(x.sum(dims)) / count
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.reshape(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / count
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach() * count / (count - 1))
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        return out * self.weight.reshape(shape) + self.bias.reshape(shape) if self.affine else out

    @torch.no_grad()
    def _update_running(self, mean, unbiased_var):
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)


def global_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The model with each BatchNorm layer computing global-batch statistics (same parameters and
    buffers, in place: the optimiser and checkpoints see the same tensors)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
            module.__class__ = _global_class(type(module))
    return model


_GLOBAL_CLASSES: dict = {}


def _global_class(cls):
    if cls not in _GLOBAL_CLASSES:
        _GLOBAL_CLASSES[cls] = type("Global" + cls.__name__, (GlobalBatchNorm, cls), {"__module__": __name__})
    return _GLOBAL_CLASSES[cls]


def part_of_mean(loss: torch.Tensor, n_local: int) -> torch.Tensor:
    """A mean over this process's n_local samples as its part of the global batch's mean (itself in one process)."""
    return loss * share(n_local, loss.device) if active() else loss


def global_value(loss_part: torch.Tensor) -> float:
    """The global batch's loss from each process's part (`part_of_mean`)."""
    return float(sum_over_processes(loss_part.detach())) if active() else loss_part.item()


# ----------------------------------------------------------------------------- the training loop's collectives


def is_writer() -> bool:
    """Rank 0 writes the run folder (AV log, metrics, checkpoints, state, lock); the others only compute."""
    return rank() == 0


def from_writer(obj):
    """Rank 0's `obj` on every process (e.g. the resume state it read)."""
    if not active():
        return obj
    holder = [obj if is_writer() else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def largest(value: int) -> int:
    """The largest of the processes' values (a stop request seen by any process stops all at this step)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.long, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def barrier() -> None:
    if active():
        dist.barrier()


def _collective_device():
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_result(result):
    """A step's per-sample outcomes over the global batch, in its order (the AV log's rows)."""
    if not active():
        return result
    from dataclasses import replace

    return replace(
        result,
        clean_loss=gather(result.clean_loss),
        adv_loss=gather(result.adv_loss),
        av=gather(result.av),
        clean_correct=gather(result.clean_correct),
        adv_correct=gather(result.adv_correct),
    )


def sharded_accuracy(accuracy, model, loader, attack, device, max_samples=None) -> tuple[float, float]:
    """`accuracy(model, loader, attack, device)` (clean and robust fractions, eval mode) with each
    global batch split over the processes and the counts summed: the numbers of one process."""
    if not active():
        return accuracy(model, loader, attack, device, max_samples)
    seen = [0]

    def local_batches():
        total = 0
        for x, y, index in loader:
            if max_samples is not None:
                x, y, index = x[: max_samples - total], y[: max_samples - total], index[: max_samples - total]
            if len(y) == 0:
                break
            total += len(y)
            part = rank_slice(len(y))
            seen[0] += len(y[part])
            yield x[part], y[part], index[part]

    clean, robust = accuracy(model, local_batches(), attack, device, None)
    counts = torch.tensor([clean * seen[0], robust * seen[0], seen[0]], dtype=torch.float64)
    counts = sum_over_processes(counts.to(_collective_device())).cpu()
    return float(counts[0] / counts[2]), float(counts[1] / counts[2])
