"""Loader benchmark: training-loader throughput (img/s, with augmentation) next to what one AT step consumes.

Loading must never be the bottleneck: the ratio loader/step should stay well above 1 for every augmentation.
Run `python -m iseat.benchmarks.loader --help`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from iseat.data import load_data
from iseat.data.registry import TRAINING_SETS
from iseat.methods.models import build_model
from iseat.methods.presets import MethodSchedule, training_step
from iseat.methods.training_attack import PGD
from iseat.training.config import DEFAULTS


def loader_throughput(bundle, batch_size: int, num_workers: int, batches: int, seed: int = 0) -> dict:
    """Steady-state img/s over up to `batches` batches of epoch 0 (timed from the first batch, so worker
    start-up is reported apart), counting every sample a batch holds (labelled + extra)."""
    start = time.perf_counter()
    iterator = iter(bundle.train_loader(batch_size, epoch=0, seed=seed, num_workers=num_workers))
    next(iterator)
    first_batch_s = time.perf_counter() - start
    images, count, start = 0, 0, time.perf_counter()
    for x, _, _ in iterator:
        images += len(x)
        count += 1
        if count >= batches:
            break
    seconds = time.perf_counter() - start
    return {
        "images": images,
        "batches": count,
        "seconds": seconds,
        "first_batch_s": first_batch_s,
        "img_per_s": images / seconds if images else float("nan"),
    }


def step_consumption(
    bundle, batch_size: int, steps: int, method: str = "at", arch: str = "small_cnn", device: str = "cpu"
) -> dict:
    """img/s one training step of `method` (PGD-10, eps 8/255) consumes on `device`, on real batches of the bundle."""
    torch.manual_seed(0)
    model = build_model(arch, bundle.num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    stage = MethodSchedule.from_config({"name": method}).at_stage(0, PGD(8 / 255, 2 / 255, 10))
    batches = [b for _, b in zip(range(steps + 1), bundle.train_loader(batch_size, epoch=0, seed=0))]
    x, y, _ = batches[0]
    training_step(model, optimizer, x.to(device), y.to(device), stage)  # warm-up
    images, start = 0, time.perf_counter()
    for x, y, _ in batches[1:]:
        training_step(model, optimizer, x.to(device), y.to(device), stage)
        images += len(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "arch": arch,
        "device": device,
        "steps": len(batches) - 1,
        "seconds": seconds,
        "img_per_s": images / seconds,
    }


def loader_benchmark(
    data_cfg: dict | None = None,
    batch_size: int = 128,
    num_workers: int = 0,
    batches: int = 20,
    augmentations=("crop_flip", "idbh"),
    steps: int = 3,
    method: str = "at",
    arch: str = "small_cnn",
    device: str = "cpu",
    threads: int | None = 1,
) -> dict:
    """Loader img/s per augmentation and the training step's img/s on the same data; `ratio` = loader / step.

    `threads` limits torch's intra-op threads while measuring (restored afterwards).
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or previous_threads)
    try:
        return measure(data_cfg, batch_size, num_workers, batches, augmentations, steps, method, arch, device, threads)
    finally:
        torch.set_num_threads(previous_threads)


def measure(data_cfg, batch_size, num_workers, batches, augmentations, steps, method, arch, device, threads) -> dict:
    data_cfg = {**copy.deepcopy(DEFAULTS["data"]), **(data_cfg or {})}
    loaders = {}
    for augmentation in augmentations:
        bundle = load_data({**data_cfg, "augmentation": augmentation}, seed=0)
        loaders[augmentation] = loader_throughput(bundle, batch_size, num_workers, batches)
    step = step_consumption(
        load_data({**data_cfg, "augmentation": "none"}, seed=0), batch_size, steps, method, arch, device
    )
    return {
        "dataset": data_cfg["dataset"],
        "extra": data_cfg.get("extra"),
        "batch_size": batch_size,
        "num_workers": num_workers,
        "threads": threads,
        "loader": loaders,
        "step": step,
        "ratio": {a: r["img_per_s"] / step["img_per_s"] for a, r in loaders.items()},
    }


def format_report(result: dict) -> str:
    step = result["step"]
    lines = [
        f"data set {result['dataset']}"
        + (f" + extra {result['extra']}" if result["extra"] else "")
        + f", batch {result['batch_size']}, {result['num_workers']} loader workers, {result['threads']} torch thread(s)"
    ]
    for augmentation, r in result["loader"].items():
        lines.append(
            f"  loader {augmentation:<10} {r['img_per_s']:>9.0f} img/s   "
            f"({result['ratio'][augmentation]:.1f}x the training step; first batch after {r['first_batch_s']:.2f} s)"
        )
    lines.append(
        f"  step   {step['method']} {step['arch']} PGD-10 on {step['device']}: {step['img_per_s']:>9.0f} img/s"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iseat.benchmarks.loader", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=TRAINING_SETS)
    parser.add_argument("--root", help="data.root (folder, or the .npz file)")
    parser.add_argument("--extra", help="data.extra: a converted pseudo-labelled set (iseat fetch ti500k)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--method", default="at", help="method preset of the timed training step")
    parser.add_argument("--arch", default="small_cnn", help="model of the timed training step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    data_cfg = {"dataset": args.dataset, "root": args.root, "extra": args.extra, "validation_size": 100}
    result = loader_benchmark(
        data_cfg,
        args.batch_size,
        args.workers,
        args.batches,
        steps=args.steps,
        method=args.method,
        arch=args.arch,
        device=args.device,
        threads=args.threads,
    )
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
