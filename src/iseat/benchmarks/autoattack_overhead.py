"""Wall time of our AutoAttack adapter against calling pyautoattack directly, on the same model and samples.

Both runs build pyautoattack's standard AutoAttack with the same seed; the adapter's path adds the
model checks, the settings check and the per-point bookkeeping of the breaking attack. The two must
agree point by point, and the ratio adapter / direct must stay at 1 within timing noise.

    python -m iseat.benchmarks.autoattack_overhead [--n-ex 32] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from pyautoattack import AutoAttack

from iseat.benchmarks.toy import NUM_CLASSES, train_toy_model
from iseat.evaluation import EvaluationSpec
from iseat.evaluation.attacks import AutoAttackStandard


def direct_run(model, x, y, eps: float, batch_size: int, seed: int, device) -> torch.Tensor:
    """pyautoattack as its README shows it; returns the robust flag of each point."""
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", device=device, seed=seed)
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    with torch.no_grad():
        return (model(x_adv.to(device)).argmax(1) == y.to(device)).cpu()


def adapter_run(model, x, y, eps: float, batch_size: int, seed: int, device) -> torch.Tensor:
    """The evaluation's AutoAttack unit (settings check, model checks, breaking attack per point)."""
    spec = EvaluationSpec(attacks=("autoattack",), eps=eps, batch_size=batch_size, seed=seed)
    attack = AutoAttackStandard.build(spec, model, num_classes=NUM_CLASSES, device=device)
    attack.preflight(model, x, y)
    return attack(model, x, y, clean=None).robust


def timed(fn, *args) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, CPU seconds of this process, result); CPU time is immune to other processes' load."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def measure(
    model, x, y, eps: float = 8 / 255, batch_size: int = 256, seed: int = 0, repeats: int = 1, device="cpu"
) -> dict:
    """Best-of-`repeats` times of both paths (alternating their order), their ratios and their agreement."""
    model = model.to(device).eval()
    args = (model, x, y, eps, batch_size, seed, device)
    runs = {"direct": [], "adapter": []}
    for r in range(repeats):
        order = [("direct", direct_run), ("adapter", adapter_run)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            runs[name].append(timed(fn, *args))
    best = {name: (min(t[0] for t in ts), min(t[1] for t in ts)) for name, ts in runs.items()}
    robust_direct, robust_adapter = runs["direct"][0][2], runs["adapter"][0][2]
    agree = all(torch.equal(a[2], b[2]) for a, b in zip(runs["direct"], runs["adapter"]))
    return {
        "direct_s": best["direct"][0],
        "adapter_s": best["adapter"][0],
        "ratio": best["adapter"][0] / best["direct"][0],
        "direct_cpu_s": best["direct"][1],
        "adapter_cpu_s": best["adapter"][1],
        "cpu_ratio": best["adapter"][1] / best["direct"][1],
        "agree": agree,
        "n_robust_direct": int(robust_direct.sum()),
        "n_robust_adapter": int(robust_adapter.sum()),
        "robust_direct": robust_direct.tolist(),
        "n_ex": len(y),
        "repeats": repeats,
    }


def report_line(result: dict) -> str:
    return (
        f"AutoAttack on {result['n_ex']} samples (best of {result['repeats']}): pyautoattack direct "
        f"{result['direct_s']:.2f} s, adapter {result['adapter_s']:.2f} s, wall ratio {result['ratio']:.3f} "
        f"(CPU {result['direct_cpu_s']:.2f} s vs {result['adapter_cpu_s']:.2f} s, ratio "
        f"{result['cpu_ratio']:.3f}); robust points {result['n_robust_direct']} vs {result['n_robust_adapter']} "
        f"({'identical' if result['agree'] else 'DIFFERENT'})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iseat.benchmarks.autoattack_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n-ex", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, x, y = train_toy_model(n_test=args.n_ex)
    result = measure(model, x, y, repeats=args.repeats, device=args.device)
    print(report_line(result))
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
