"""Tab. 4 timing benchmark: the time of one training step of AT, +LSI, +AWP and ISEAT, and its ratio to AT.

Every method is timed in the same process on the same model, batch size and device: `warmup` steps
each, then `repeats` rounds in which every method runs one step, in an order rotated every round
(so slow phases of a shared machine fall on every method alike); the median per method is reported,
with its interquartile range. `straightforward=True` adds the same methods computed by
`iseat.methods.reference_step` (the reference implementation's organisation) as a comparison column.
Inputs are random images and labels (the time of a step does not depend on their values).

Memory: on CUDA the peak allocated by one step above what was allocated before it
(`torch.cuda.max_memory_allocated`); on a CPU the peak resident set size during one step minus the
resident set before it (Linux VmHWM, reset just before the step, freed heap returned to the OS
first; `ru_maxrss` elsewhere), in a fresh process per method after one warm-up step. `graph_bytes` is what
keeping the clean forward pass's graph costs: the bytes autograd saves for its backward pass,
parameters not counted. `flops_per_step` counts the multiply-adds of convolutions and matrix
products of one eager step (x2, PyTorch's formulas): the work ratio, free of timing noise.

Run `python -m iseat.benchmarks.step_timing --help` or `iseat benchmark step --help`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from iseat.benchmarks import module_main, report
from iseat.common.device import resolve_device
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


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[0], q[1], q[2]


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
        import ctypes

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


def step_timing(
    arch: str = "small_cnn",
    batch_size: int = 128,
    repeats: int = 10,
    warmup: int = 2,
    device: str = "auto",
    runtime: dict | None = None,
    straightforward: bool = False,
    methods=tuple(TAB4_METHODS),
    seed: int = 0,
    steps: int = 10,
    threads: int | None = None,
    memory: bool = True,
    flops: bool = True,
    memory_lean: bool = False,
) -> dict:
    """Median time of one training step per method (and path), its ratio to AT, img/s, peak memory and
    the step's FLOPs (matrix multiplications and convolutions)."""
    from iseat.common.provenance import provenance

    if threads:
        torch.set_num_threads(threads)
    device = str(resolve_device(device))
    runtime = acceleration.options(runtime)
    methods = list(methods)
    if AT not in methods:
        methods.insert(0, AT)
    paths = ["fast"] + ["straightforward"] * straightforward + ["memory_lean"] * memory_lean
    setups = build_setups(arch, batch_size, device, runtime, paths, methods, seed, steps)

    for setup in setups:
        for _ in range(warmup):
            setup.step()
    keys = [(s.label, s.path) for s in setups]
    wall = {key: [] for key in keys}
    cpu = {key: [] for key in keys}
    for r in range(repeats):
        for setup in setups[r % len(setups) :] + setups[: r % len(setups)]:
            w, c = setup.timed_step()
            wall[(setup.label, setup.path)].append(w)
            cpu[(setup.label, setup.path)].append(c)

    at = (AT, "fast")
    rows = []
    for setup in setups:
        key = (setup.label, setup.path)
        q1, median, q3 = quartiles(wall[key])
        row = {
            "method": setup.label,
            "path": setup.path,
            "median_s": median,
            "q1_s": q1,
            "q3_s": q3,
            "img_per_s": batch_size / median,
            # per round, the step's time over AT's in the same round; median over the rounds
            "ratio_to_at": statistics.median(a / b for a, b in zip(wall[key], wall[at])),
            "ratio_of_medians": median / statistics.median(wall[at]),
            "ratio_of_minima": min(wall[key]) / min(wall[at]),
            "times_s": wall[key],
        }
        if not device.startswith("cuda"):
            row["cpu_median_s"] = statistics.median(cpu[key])
            row["cpu_ratio_to_at"] = statistics.median(a / b for a, b in zip(cpu[key], cpu[at]))
            row["cpu_ratio_of_minima"] = min(cpu[key]) / min(cpu[at])
            row["cpu_times_s"] = cpu[key]
        if flops:
            row["flops_per_step"] = step_flops(arch, batch_size, device, setup.label, setup.path, seed, steps)
        if memory:
            if device.startswith("cuda"):
                row.update(cuda_peak_bytes(setup))
            else:
                row.update(cpu_peak_bytes(arch, batch_size, setup.label, setup.path, runtime, seed, steps, threads))
        rows.append(row)
    if flops:
        at_flops = next(r["flops_per_step"] for r in rows if (r["method"], r["path"]) == at)
        for row in rows:
            row["flop_ratio_to_at"] = row["flops_per_step"] / at_flops

    # measured on an eager copy: saved-tensor hooks are not for compiled graphs
    probe = build_setups(arch, batch_size, device, {**runtime, "compile": False}, ["fast"], [AT], seed, steps)[0]
    kept = graph_bytes(probe.model, probe.x, probe.y, runtime, device)
    return {
        "benchmark": "step_timing",
        "model": arch,
        "batch_size": batch_size,
        "device": device,
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "pgd_steps": steps,
        "repeats": repeats,
        "warmup": warmup,
        "order": "interleaved, rotated every round",
        "ratio_note": "ratio_to_at: median over rounds of (step time / AT step time in the same round); "
        "ratio_of_minima: fastest step over AT's fastest (least disturbed by other load); "
        "cpu_*: process CPU time (CPU devices), less sensitive to other processes sharing the cores",
        "runtime": acceleration.describe(runtime),
        "graph_bytes": kept,
        "graph_bytes_note": "autograd-saved bytes of one clean forward (parameters excluded), held by the fast "
        "path from the clean pass to the update",
        "rows": rows,
        "provenance": provenance(device, seed),
    }


def _device_name(device: str) -> str:
    from iseat.common.provenance import device_description

    return device_description(device)


def format_table(result: dict) -> str:
    """A Markdown table (one row per method, columns per path) with the setting above it."""
    paths = list(dict.fromkeys(r["path"] for r in result["rows"]))
    by = {(r["method"], r["path"]): r for r in result["rows"]}
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    columns = [
        ("s/step", lambda r: f"{r['median_s']:.4f}"),
        ("ratio to AT", lambda r: f"{r['ratio_to_at']:.3f}"),
        ("img/s", lambda r: f"{r['img_per_s']:.1f}"),
    ]
    if all("cpu_ratio_to_at" in r for r in result["rows"]):
        columns.append(("CPU-time ratio", lambda r: f"{r['cpu_ratio_to_at']:.3f}"))
    if all("flop_ratio_to_at" in r for r in result["rows"]):
        columns.append(("FLOP ratio", lambda r: f"{r['flop_ratio_to_at']:.3f}"))
    if all("peak_step_bytes" in r for r in result["rows"]):
        columns.append(("peak MiB", lambda r: f"{r['peak_step_bytes'] / 2**20:.1f}"))
    names = [f"{name}" if len(paths) == 1 else f"{path} {name}" for path in paths for name, _ in columns]
    rt = result["runtime"]
    lines = [
        f"{result['model']}, batch {result['batch_size']}, PGD-{result['pgd_steps']}, {result['device_name']}, "
        f"precision {rt['precision']}, channels_last {rt['channels_last']}, compile {rt['compile']}; "
        f"median of {result['repeats']} interleaved repeats after {result['warmup']} warm-up steps",
        "",
        "| method | " + " | ".join(names) + " |",
        "|" + " --- |" * (1 + len(names)),
    ]
    for method in methods:
        cells = [fmt(by[(method, path)]) if (method, path) in by else "—" for path in paths for _, fmt in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"Clean-pass graph kept by the fast path: {result['graph_bytes'] / 2**20:.1f} MiB."]
    lines += memory_lean_lines(result["rows"])
    return "\n".join(lines)


def memory_lean_lines(rows) -> list[str]:
    """`memory-lean ISEAT peak memory: N.NNx AT` and its time ratio, beside the default (fast) path's."""
    by = {(r["method"], r["path"]): r for r in rows}
    at, fast, lean = by.get((AT, "fast")), by.get((ISEAT, "fast")), by.get((ISEAT, "memory_lean"))
    if at is None or lean is None:
        return []
    lines = []
    if "peak_step_bytes" in lean and at.get("peak_step_bytes"):
        fast_part = (
            f" (default ISEAT: {fast['peak_step_bytes'] / at['peak_step_bytes']:.2f}x AT)"
            if fast and "peak_step_bytes" in fast
            else ""
        )
        lines.append(
            f"memory-lean ISEAT peak memory: {lean['peak_step_bytes'] / at['peak_step_bytes']:.2f}x AT" + fast_part
        )
    fast_part = f" (default ISEAT: {fast['ratio_to_at']:.2f}x AT)" if fast else ""
    lines.append(f"memory-lean ISEAT step time: {lean['ratio_to_at']:.2f}x AT{fast_part}")
    if "flop_ratio_to_at" in lean:
        lines.append(f"memory-lean ISEAT FLOPs: {lean['flop_ratio_to_at']:.3f}x AT")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="small_cnn",
        choices=["small_cnn", "preact_resnet18", "wide_resnet"],
        help="architecture (wide_resnet is WRN-34-10)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per method (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per method first")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (training uses 10)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--methods", nargs="+", default=list(TAB4_METHODS), choices=list(TAB4_METHODS))
    parser.add_argument(
        "--straightforward",
        action="store_true",
        help="also time the straightforward step (iseat.methods.reference_step) as a comparison column",
    )
    parser.add_argument(
        "--memory-lean",
        action="store_true",
        help="also time the memory-lean step (runtime.memory_lean) of +LSI and ISEAT",
    )
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 = autocast (opt-in)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in place")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-flops", action="store_true", help="skip counting each step's FLOPs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the result as JSON here (and a Markdown table beside it, .md)")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-path", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", help=argparse.SUPPRESS)


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        runtime = json.loads(args.runtime) if args.runtime else None
        print(
            json.dumps(
                memory_probe(
                    args.model, args.batch_size, args.methods[0], args.probe_path, runtime, args.seed, args.steps
                )
            )
        )
        return 0
    runtime = {"precision": args.precision, "channels_last": args.channels_last, "compile": args.compile}
    result = step_timing(
        args.model,
        args.batch_size,
        args.repeats,
        args.warmup,
        args.device,
        runtime,
        args.straightforward,
        args.methods,
        args.seed,
        args.steps,
        args.threads,
        not args.no_memory,
        not args.no_flops,
        args.memory_lean,
    )
    return report(result, format_table(result), args.out, markdown=True)


def main(argv=None) -> int:
    return module_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
