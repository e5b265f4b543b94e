"""What a GPU check runs (the full check or its CPU smoke version), the relative costs its time guard
scales by, and the one global time budget every section is measured against."""

from __future__ import annotations

import time
from dataclasses import dataclass

from iseat.benchmarks.tab4_setups import AT, ISEAT, TAB4_METHODS

# Speed variants of the step section: name -> runtime options (fp32 eager is the baseline).
VARIANTS = {
    "fp32": {},
    "tf32": {"tf32": True},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
}
# Relative cost of one step per model (forward FLOPs per image, PreActResNet18 = 1).
MODEL_COST = {"small_cnn": 0.03, "preact_resnet18": 1.0, "wide_resnet": 11.7}
# Budgeted compile time of the compile variant per model (several graphs: PGD, AWP, theta+v, the update).
COMPILE_SECONDS = {"small_cnn": 20.0, "preact_resnet18": 60.0, "wide_resnet": 120.0}


@dataclass(frozen=True)
class Profile:
    """What one check runs: the full GPU check, or the smoke version for the CPU test suite."""

    models: tuple = ("preact_resnet18", "wide_resnet")
    batch_size: int = 128
    variants: tuple = tuple(VARIANTS)
    methods: tuple = tuple(TAB4_METHODS)
    compile_methods: tuple = (AT, ISEAT)  # compiling every method's model copy costs minutes
    pgd_steps: int = 10
    warmup: int = 2
    repeats: int = 5
    memory_every_variant: bool = True
    loader_batches: int = 30
    loader_workers: int = 2
    train_arch: str = "preact_resnet18"
    train_epochs: int = 4
    train_batch_size: int = 128
    train_pgd_steps: int = 10
    validation_size: int = 500
    selection_samples: int = 200  # model selection: PGD on this many validation images per epoch
    aa_samples: int = 500
    check_arch: str = "preact_resnet18"  # determinism and resume
    check_epochs: int = 1  # the kill lands two batches into the last epoch
    check_estimate_s: float = 150.0  # three training processes (start-up, CUDA initialisation, epochs)
    training_estimate_s: float = 120.0
    loader_estimate_s: float = 30.0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (smoke: 1, as small models run fastest so on a shared CPU)
    train_on_given_data: bool = True  # smoke: the trainings use the shipped digits set (1,497 images), always
    budget_s: float = 570.0
    first_step_estimate_s: float = 40.0  # one (model, variant) entry before anything was measured


FULL = Profile()
SMOKE = Profile(
    models=("small_cnn",),
    batch_size=8,
    variants=("fp32", "channels_last"),
    methods=(AT, ISEAT),
    pgd_steps=2,
    warmup=1,
    repeats=2,
    memory_every_variant=False,
    loader_batches=4,
    loader_workers=0,
    train_arch="small_cnn",
    train_epochs=1,
    train_batch_size=128,
    train_pgd_steps=2,
    validation_size=100,
    selection_samples=32,
    aa_samples=16,
    check_arch="small_cnn",
    check_epochs=1,
    check_estimate_s=40.0,
    training_estimate_s=30.0,
    loader_estimate_s=10.0,
    device="cpu",
    threads=1,
    train_on_given_data=False,
    budget_s=150.0,
    first_step_estimate_s=5.0,
)


class Budget:
    """One global time budget: a section runs only if its estimate fits in what is left."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        return estimate_s <= self.left()
