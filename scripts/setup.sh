#!/usr/bin/env bash
# Create .venv with the pinned dependencies and the iseat package (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import iseat, snakemake, pytest" 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test]'
    touch .venv/.installed
fi
# Optional test dependency: RobustBench's architecture files for the export round trip. Installed without its
# dependencies (timm, pandas, gdown, ...), which the test does not need; the test skips if it is absent.
ROBUSTBENCH=robustbench==1.1.1
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('robustbench') is None)"; then
    .venv/bin/pip install --quiet --no-deps "$ROBUSTBENCH" || echo "setup: $ROBUSTBENCH not installed; its test will skip" >&2
fi
