#!/usr/bin/env bash
# Create .venv with the locked dependencies (requirements.lock: exact versions and hashes) and the iseat
# package (idempotent: nothing is installed when nothing changed since the last run).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
installed='import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, ("iseat", "snakemake", "pytest"))))'
if ! .venv/bin/python -c "$installed" 2>/dev/null \
        || [ requirements.lock -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    .venv/bin/pip install --quiet --require-hashes -r requirements.lock
    .venv/bin/pip install --quiet --no-deps --no-build-isolation -e .
    touch .venv/.installed
fi
# Optional test dependency: RobustBench's architecture files for the export round trip. Installed without its
# dependencies (timm, pandas, gdown, ...), which the test does not need; the test skips if it is absent.
ROBUSTBENCH=robustbench==1.1.1
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('robustbench') is None)"; then
    .venv/bin/pip install --quiet --no-deps "$ROBUSTBENCH" || echo "setup: $ROBUSTBENCH not installed; its test will skip" >&2
fi
