"""GPU check: the evidence a reviewer asks for before the paper's runs are launched, from one GPU in minutes.

`iseat benchmark gpu-check --data cifar10_sample.npz --out DIR` (`scripts/gpu-check.sh`) runs, within one
global time budget (a section that would overrun it is skipped, and the report says so):
  step         per-step time, img/s and peak memory of AT, +LSI, +AWP and ISEAT per model at batch 128 in
               fp32 eager, TF32, bf16 autocast, channels_last and torch.compile; each as the speed-up over
               fp32 eager and the ISEAT/AT ratio; memory-lean ISEAT's memory and time (`step_timing`)
  loader       training-loader img/s with IDBH and crop+flip against an ISEAT step's consumption (`loader`)
  training     a short real training (`iseat.training.loop`) with AutoAttack on N test images (`iseat.evaluation`)
  determinism  two identical deterministic training runs end with identical weights
  resume       a deterministic run killed (SIGKILL) mid-epoch and started again ends with the same weights
Every section reuses the library's own code. The report (DIR/gpu_check.json and .md) is rewritten after
each section, so a check cut short still leaves what it measured. `--smoke` runs a reduced version on the
CPU (small CNN, tiny batches, two methods and two speed variants, the digits set unless --data is given).

Budget of the full check (570 s of a 10-minute slot on one H200), estimated from FLOPs: a PGD-10 step at
batch 128 is about 12 forward-backward passes, 2.6 TFLOP for PreActResNet18 (0.56 GFLOP per image
forward) and 11.7x that for WRN-34-10 (`MODEL_COST`). At a third of the H200's fp32 peak that is about
0.1 s (PreActResNet18) and 1.2 s (WRN-34-10) per fp32 step, less with TF32/bf16. One (model, variant)
entry runs about 55 steps (4 methods x (2 warm-up + 5 timed), 2 memory-lean x 7, one memory step each,
FLOP counting in fp32): about 10 s for PreActResNet18 and 70 s for WRN-34-10 in fp32, plus compile
time (`COMPILE_SECONDS`). With the loader (30 s), the training and AutoAttack (120 s) and the three
deterministic training processes (150 s), the whole is about 10-12 minutes, so the entries are ordered
by value: PreActResNet18 first, the WRN-34-10 entries last, each estimated from the times measured so far
and skipped (and listed as skipped) when it would not fit what is left.
"""

from iseat.benchmarks.gpu_check.check import add_arguments, gpu_check, main, run
from iseat.benchmarks.gpu_check.profile import FULL, SMOKE, Profile
from iseat.benchmarks.gpu_check.report import format_report, problems
from iseat.benchmarks.gpu_check.step_section import step_estimate

__all__ = [
    "FULL",
    "SMOKE",
    "Profile",
    "add_arguments",
    "format_report",
    "gpu_check",
    "main",
    "problems",
    "run",
    "step_estimate",
]
