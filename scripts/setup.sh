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
