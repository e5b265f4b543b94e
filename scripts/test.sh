#!/usr/bin/env bash
# Set up, start a real single-node SLURM cluster where possible (root + apt), run the whole test suite.
# With no arguments, the SLURM tests (mostly waiting on the cluster's job polling) run in a second pytest
# session beside the others, with the long CPU-bound tests marked `beside_slurm` (the demo DAG) filling
# their waits; that session's report follows the main one. With arguments, one plain pytest run.
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
slurm_report=$(mktemp)
trap '[ $started_slurm = 1 ] && bash tests/slurm/stop-cluster.sh >/dev/null 2>&1; rm -f "$slurm_report"' EXIT

pytest=(.venv/bin/python -m pytest -ra --durations=10)
if [ $# -gt 0 ] || [ $started_slurm = 0 ]; then
    "${pytest[@]}" "$@"
    exit
fi

echo "SLURM tests and the demo DAG: running beside the others; their report follows"
"${pytest[@]}" -m "slurm or beside_slurm" -p no:cacheprovider >"$slurm_report" 2>&1 &
slurm_pid=$!
status=0
"${pytest[@]}" -m "not slurm and not beside_slurm" || status=$?
slurm_status=0
wait $slurm_pid || slurm_status=$?
echo
echo "====================== SLURM tests and the demo DAG ======================"
cat "$slurm_report"
# pytest exit 5 means no tests were collected: only a failure of either session fails the suite
for s in $status $slurm_status; do
    if [ "$s" != 0 ] && [ "$s" != 5 ]; then
        exit "$s"
    fi
done
