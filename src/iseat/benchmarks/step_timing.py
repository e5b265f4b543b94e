"""Tab. 4 timing benchmark: the time of one training step of AT, +LSI, +AWP and ISEAT, and its ratio to AT.

Every method is timed in the same process on the same model, batch size and device: `warmup` steps
each, then `repeats` rounds in which every method runs one step, in an order rotated every round
(so slow phases of a shared machine fall on every method alike); the median per method is reported,
with its interquartile range. `straightforward=True` adds the same methods computed by
`iseat.methods.reference_step` (the reference implementation's organisation) as a comparison column.
Inputs are random images and labels (the time of a step does not depend on their values).

Beside the times, each row's peak memory (`step_memory`) and FLOPs (`step_flops`): the work ratio, free of
timing noise. The entries themselves (one model and optimiser copy per method and path) are `tab4_setups`.

Run `python -m iseat.benchmarks.step_timing --help` or `iseat benchmark step --help`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from iseat.benchmarks import module_main, report
from iseat.benchmarks.step_flops import step_flops
from iseat.benchmarks.step_memory import cpu_peak_bytes, cuda_peak_bytes, graph_bytes, memory_probe
from iseat.benchmarks.tab4_setups import AT, ISEAT, TAB4_METHODS, build_setups
from iseat.common.device import resolve_device
from iseat.common.provenance import device_description, provenance
from iseat.training import acceleration


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[0], q[1], q[2]


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
    if threads:
        torch.set_num_threads(threads)
    device = str(resolve_device(device))
    runtime = acceleration.options(runtime)
    methods = list(methods)
    if AT not in methods:
        methods.insert(0, AT)
    paths = ["fast"] + ["straightforward"] * straightforward + ["memory_lean"] * memory_lean
    setups = build_setups(arch, batch_size, device, runtime, paths, methods, seed, steps)
    wall, cpu = time_rounds(setups, warmup, repeats)
    rows = []
    for setup in setups:
        row = timing_row(setup, wall, cpu, batch_size)
        if flops:
            row["flops_per_step"] = step_flops(arch, batch_size, device, setup.label, setup.path, seed, steps)
        if memory:
            if device.startswith("cuda"):
                row.update(cuda_peak_bytes(setup))
            else:
                row.update(cpu_peak_bytes(arch, batch_size, setup.label, setup.path, runtime, seed, steps, threads))
        rows.append(row)
    if flops:
        at_flops = next(r["flops_per_step"] for r in rows if (r["method"], r["path"]) == (AT, "fast"))
        for row in rows:
            row["flop_ratio_to_at"] = row["flops_per_step"] / at_flops
    # measured on an eager copy: saved-tensor hooks are not for compiled graphs
    probe = build_setups(arch, batch_size, device, {**runtime, "compile": False}, ["fast"], [AT], seed, steps)[0]
    return {
        "benchmark": "step_timing",
        "model": arch,
        "batch_size": batch_size,
        "device": device,
        "device_name": device_description(device),
        "threads": torch.get_num_threads(),
        "pgd_steps": steps,
        "repeats": repeats,
        "warmup": warmup,
        "order": "interleaved, rotated every round",
        "ratio_note": "ratio_to_at: median over rounds of (step time / AT step time in the same round); "
        "ratio_of_minima: fastest step over AT's fastest (least disturbed by other load); "
        "cpu_*: process CPU time (CPU devices), less sensitive to other processes sharing the cores",
        "runtime": acceleration.describe(runtime),
        "graph_bytes": graph_bytes(probe.model, probe.x, probe.y, runtime, device),
        "graph_bytes_note": "autograd-saved bytes of one clean forward (parameters excluded), held by the fast "
        "path from the clean pass to the update",
        "rows": rows,
        "provenance": provenance(device, seed),
    }


def time_rounds(setups, warmup: int, repeats: int) -> tuple[dict, dict]:
    """`warmup` steps of every entry, then `repeats` rounds of one step each in an order rotated every round;
    wall-clock and process CPU seconds per (method, path)."""
    for setup in setups:
        for _ in range(warmup):
            setup.step()
    wall = {(s.label, s.path): [] for s in setups}
    cpu = {(s.label, s.path): [] for s in setups}
    for r in range(repeats):
        for setup in setups[r % len(setups) :] + setups[: r % len(setups)]:
            w, c = setup.timed_step()
            wall[(setup.label, setup.path)].append(w)
            cpu[(setup.label, setup.path)].append(c)
    return wall, cpu


def timing_row(setup, wall: dict, cpu: dict, batch_size: int) -> dict:
    """One entry's times: median and quartiles, img/s and its ratios to AT (per round, of medians, of minima)."""
    key, at = (setup.label, setup.path), (AT, "fast")
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
    if not setup.device.startswith("cuda"):
        row["cpu_median_s"] = statistics.median(cpu[key])
        row["cpu_ratio_to_at"] = statistics.median(a / b for a, b in zip(cpu[key], cpu[at]))
        row["cpu_ratio_of_minima"] = min(cpu[key]) / min(cpu[at])
        row["cpu_times_s"] = cpu[key]
    return row


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
