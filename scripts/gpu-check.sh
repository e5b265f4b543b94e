#!/usr/bin/env bash
# The GPU check: step timing per speed option, loader, a short training with AutoAttack, determinism and
# kill-and-resume, in at most 10 minutes on one GPU; report in results/gpu-check/gpu_check.{json,md}.
#   bash scripts/gpu-check.sh --data ../shared/data/cifar10_sample.npz [--out DIR] [--budget-s 570]
#   bash scripts/gpu-check.sh --smoke     # the reduced version, on the CPU
# Uses the active environment's `iseat` if there is one, else sets up .venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v iseat >/dev/null 2>&1; then
    bash scripts/setup.sh
    source .venv/bin/activate
fi
exec iseat benchmark gpu-check "$@"
