"""Peak memory of one training step. On CUDA the peak allocated by one step above what was allocated before
it (`torch.cuda.max_memory_allocated`); on a CPU the peak resident set size during one step minus the
resident set before it (Linux VmHWM, reset just before the step, freed heap returned to the OS first;
`ru_maxrss` elsewhere), in a fresh process per method after one warm-up step. `graph_bytes`: what keeping
the clean forward pass's graph costs (the bytes autograd saves for its backward pass, parameters not counted).
"""

from __future__ import annotations

import ctypes
import json
import resource
import subprocess
import sys

import torch
import torch.nn.functional as F

from iseat.benchmarks.tab4_setups import Setup, build_setups, synchronize
from iseat.training import acceleration


def graph_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, runtime=None, device="cpu") -> int:
    """Bytes autograd keeps for the backward pass of one clean forward (parameters excluded): the memory
    the fast path holds from the clean pass until the update."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), acceleration.autocast(runtime, device):
        logits = model(x.detach().requires_grad_(True))
        F.cross_entropy(logits.float(), y, reduction="none")
    return sum(seen.values())


def cuda_peak_bytes(setup: Setup) -> dict:
    synchronize(setup.device)
    before = torch.cuda.memory_allocated(setup.device)
    torch.cuda.reset_peak_memory_stats(setup.device)
    setup.step()
    synchronize(setup.device)
    return {
        "peak_step_bytes": torch.cuda.max_memory_allocated(setup.device) - before,
        "memory_measure": "torch.cuda.max_memory_allocated during one step minus memory allocated before it",
    }


def cpu_peak_bytes(arch, batch_size, label, path, runtime, seed, steps, threads) -> dict:
    """Peak resident-set growth over the first step of `label`, measured in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "iseat.benchmarks.step_timing",
        "--memory-probe",
        "--model",
        arch,
        "--batch-size",
        str(batch_size),
        "--methods",
        label,
        "--seed",
        str(seed),
        "--steps",
        str(steps),
        "--runtime",
        json.dumps(runtime),
        "--probe-path",
        path,
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to /proc/self/clear_refs resets the peak resident set size (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so the resident set before a step is what is live."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_probe(arch, batch_size, label, path, runtime, seed, steps) -> dict:
    """Peak resident-set growth of one step after a warm-up step (optimiser state allocated)."""
    setup = build_setups(arch, batch_size, "cpu", runtime, [path], [label], seed, steps)[0]
    setup.step()
    _release_free_heap()
    if _reset_peak_rss() and _proc_status_kib("VmHWM") is not None:
        before = _proc_status_kib("VmRSS")
        setup.step()
        peak = _proc_status_kib("VmHWM")
        how = (
            "peak resident set during the second step (VmHWM, reset before it) minus the resident set before it, "
            "fresh process per method"
        )
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        setup.step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "growth of ru_maxrss over the second step, fresh process per method (a lower bound)"
    return {"peak_step_bytes": (peak - before) * 1024, "memory_measure": how}
