#!/usr/bin/env bash
# Set up, start a real single-node SLURM cluster where possible (root + apt), run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
started_slurm=0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${ISEAT_SKIP_SLURM:-0}" != 1 ]; then
    if bash tests/slurm/start-cluster.sh; then
        started_slurm=1
    else
        echo "WARNING: the SLURM test cluster did not start (see above): the SLURM tests will be skipped" >&2
        export ISEAT_SKIP_SLURM=1
    fi
fi
trap '[ $started_slurm = 1 ] && bash tests/slurm/stop-cluster.sh >/dev/null 2>&1 || true' EXIT
.venv/bin/python -m pytest -ra "$@"
