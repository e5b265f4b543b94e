"""AV-log cost: what recording every sample's AV takes, as a share of an epoch's training-step time.

Per training step the loop calls `EpochBuffer.record` (scatter the step's per-sample values into
device tensors); per epoch it copies the buffer to the host and appends one row to the HDF5 log
(`AVLogWriter.write_epoch`, gzip-compressed, flushed). The benchmark times each part on its own
(median of repeats; the buffer and the log hold `samples` columns of random values, which compress
worst) and the training step of `method` on the same model, batch size and device, then reports
  overhead = (steps_per_epoch * record + per_epoch_write) / (steps_per_epoch * step).
Target: at most 1 %.

Run `iseat benchmark avlog --help`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from iseat.benchmarks import module_main, report
from iseat.benchmarks.tab4_setups import ISEAT, TAB4_METHODS, build_setups, synchronize
from iseat.common.device import resolve_device
from iseat.common.provenance import device_description, provenance
from iseat.methods.presets import StepResult
from iseat.training import acceleration
from iseat.training.avlog import AVLogWriter, EpochBuffer


def random_result(batch_size: int, device, generator: torch.Generator) -> StepResult:
    """A StepResult with random per-sample values, on `device`, shaped as `training_step` returns it."""
    clean = torch.rand(batch_size, generator=generator).to(device)
    adv = clean + torch.rand(batch_size, generator=generator).to(device)
    return StepResult(clean, adv, adv - clean, clean > 0.5, adv > 1.0, float(adv.mean()))


def timed(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def avlog_cost(
    arch: str = "small_cnn",
    batch_size: int = 128,
    samples: int = 49000,
    method: str = ISEAT,
    device: str = "auto",
    runtime: dict | None = None,
    step_repeats: int = 5,
    warmup: int = 1,
    record_repeats: int = 200,
    epochs: int = 3,
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    if threads:
        torch.set_num_threads(threads)
    device = str(resolve_device(device))
    runtime = acceleration.options(runtime)

    setup = build_setups(arch, batch_size, device, runtime, ["fast"], [method], seed)[0]
    for _ in range(warmup):
        setup.step()
    step_s = statistics.median(setup.timed_step()[0] for _ in range(step_repeats))

    generator = torch.Generator().manual_seed(seed)
    indices = np.arange(samples, dtype=np.int64)
    buffer = EpochBuffer(indices, device)
    result = random_result(batch_size, device, generator)
    batches = [torch.randperm(samples, generator=generator)[:batch_size] for _ in range(record_repeats)]
    for index in batches[:5]:  # warm-up
        buffer.record(index, result)
    record_s = statistics.median(timed(lambda i=index: buffer.record(i, result), device) for index in batches)

    buffer.reset()
    order = torch.randperm(samples, generator=generator)
    for start in range(0, samples, batch_size):  # one full epoch of random values
        index = order[start : start + batch_size]
        buffer.record(index, random_result(len(index), device, generator))
    write_times = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = AVLogWriter(Path(tmp) / "av_log.h5", indices, {"config": {}, "provenance": {}, "seed": seed})
        try:
            for epoch in range(epochs):
                write_times.append(timed(lambda e=epoch: writer.write_epoch(e, buffer.to_numpy(), True), device))
        finally:
            writer.close()
    write_s = statistics.median(write_times)

    steps_per_epoch = math.ceil(samples / batch_size)
    epoch_step_s = steps_per_epoch * step_s
    log_s = steps_per_epoch * record_s + write_s
    return {
        "benchmark": "avlog_cost",
        "model": arch,
        "method": method,
        "batch_size": batch_size,
        "samples": samples,
        "device": device,
        "device_name": device_description(device),
        "threads": torch.get_num_threads(),
        "runtime": acceleration.describe(runtime),
        "step_s": step_s,
        "record_s": record_s,
        "write_epoch_s": write_s,
        "steps_per_epoch": steps_per_epoch,
        "epoch_step_s": epoch_step_s,
        "epoch_log_s": log_s,
        "overhead_fraction": log_s / epoch_step_s,
        "target_fraction": 0.01,
        "within_target": log_s / epoch_step_s <= 0.01,
        "provenance": provenance(device, seed),
    }


def format_report(result: dict) -> str:
    return (
        f"AV log, {result['samples']} samples, {result['model']} {result['method']} batch "
        f"{result['batch_size']} on {result['device_name']}:\n"
        f"  record per step {result['record_s'] * 1e3:.3f} ms, "
        f"write per epoch {result['write_epoch_s'] * 1e3:.1f} ms, "
        f"training step {result['step_s'] * 1e3:.1f} ms x {result['steps_per_epoch']} steps\n"
        f"  AV log {result['epoch_log_s']:.3f} s of {result['epoch_step_s']:.1f} s per epoch = "
        f"{100 * result['overhead_fraction']:.3f} % (target <= 1 %: "
        f"{'met' if result['within_target'] else 'NOT met'})"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="small_cnn", choices=["small_cnn", "preact_resnet18", "wide_resnet"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=49000, help="training samples logged per epoch")
    parser.add_argument("--method", default=ISEAT, choices=list(TAB4_METHODS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3, help="epochs written to a temporary log (median)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the result as JSON here")


def run(args) -> int:
    runtime = {"precision": args.precision, "channels_last": args.channels_last, "compile": args.compile}
    result = avlog_cost(
        args.model,
        args.batch_size,
        args.samples,
        args.method,
        args.device,
        runtime,
        args.repeats,
        args.warmup,
        epochs=args.epochs,
        threads=args.threads,
        seed=args.seed,
    )
    return report(result, format_report(result), args.out)


def main(argv=None) -> int:
    return module_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
