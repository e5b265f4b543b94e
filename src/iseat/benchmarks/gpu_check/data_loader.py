"""The check's loader section: the training loader's img/s (IDBH and crop+flip) against what one ISEAT
step consumes (`iseat.benchmarks.loader`)."""

from __future__ import annotations

from iseat.benchmarks import loader
from iseat.benchmarks.gpu_check.profile import Budget, Profile
from iseat.benchmarks.gpu_check.report import Report


def loader_section(profile: Profile, data_cfg: dict, device: str, budget: Budget, report: Report) -> None:
    estimate = profile.loader_estimate_s
    if not budget.allows(estimate):
        return report.skip("loader", f"estimated {estimate:.0f} s, {max(budget.left(), 0):.0f} s left")
    result = loader.loader_benchmark(
        data_cfg,
        profile.batch_size,
        profile.loader_workers,
        profile.loader_batches,
        steps=3,
        method="iseat",
        arch=profile.train_arch,
        device=device,
        threads=profile.threads,
    )
    print(loader.format_report(result), flush=True)
    report.section("loader", result)
