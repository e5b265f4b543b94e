"""Standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 targets, 5000
queries) through pyautoattack, recording which sub-attack broke each point."""

from __future__ import annotations

from iseat.evaluation import autoattack_adapter as adapter
from iseat.evaluation.attacks.base import Attack, AttackOutcome


class AutoAttackStandard(Attack):
    name, section, column, extra_columns = "autoattack", "autoattack", "robust_correct", ("broken_by",)
    rank, family = 3, "AutoAttack"
    description = "standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square), the headline number"
    PROTOCOL = adapter.STANDARD

    def __init__(self, aa, seed: int, batch_size: int):
        self.aa, self.seed, self.batch_size = aa, seed, batch_size

    @classmethod
    def build(cls, spec, model, *, num_classes, device):
        aa = adapter.build(model, cls.PROTOCOL, spec.eps, num_classes, device, spec.seed)
        return cls(aa, spec.seed, spec.batch_size)

    @property
    def label(self) -> str:
        return self.PROTOCOL.label

    @property
    def standard(self) -> bool:
        return self.PROTOCOL.standard

    @property
    def protocol(self) -> str:
        return self.PROTOCOL.name

    def settings(self) -> dict:
        return adapter.settings_of(self.aa)

    def preflight(self, model, x, y):
        with adapter.captured_warnings(self.aa.logger) as warnings:
            adapter.model_checks(self.aa, x, y, self.batch_size)
        return warnings

    def __call__(self, model, x, y, clean):
        """AutoAttack makes its own clean pass (as `run_standard_evaluation` does); `clean` is not needed."""
        with adapter.captured_warnings(self.aa.logger) as warnings:
            result = adapter.run(self.aa, x, y, self.batch_size)
        return AttackOutcome(result.robust, {"broken_by": result.broken_by}, warnings)

    def record(self, samples, seconds):
        n = len(samples["index"])
        settings = self.settings()
        broken = {a: samples["broken_by"].count(a) for a in settings["attacks"]}
        n_robust = sum(samples[self.column])
        remaining = n - samples["broken_by"].count(adapter.CLEAN)  # AutoAttack's own clean pass
        after = {"clean": remaining / n}
        for attack in settings["attacks"]:
            remaining -= broken[attack]
            after[attack] = remaining / n
        return {
            "protocol": self.protocol,
            "label": self.label,
            "standard": self.standard,
            "implementation": "pyautoattack",
            "version": settings["version"],
            "settings": settings,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "robust_accuracy": n_robust / n,
            "n_robust": n_robust,
            "broken_by": broken,
            "robust_accuracy_after": after,
            "wall_time_s": seconds,
        }

    def final_warnings(self, record):
        return adapter.square_warnings(record["robust_accuracy_after"])
