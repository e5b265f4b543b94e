#!/usr/bin/env bash
# Set up, start a real single-node SLURM cluster where possible (root + apt), run the whole test suite.
# With no arguments, three pytest sessions run side by side: the main one, the SLURM tests (mostly waiting
# on the cluster's job polling) and the long CPU-bound tests marked `beside_slurm` (the demo DAG), which
# use the CPU those waits leave; the other two sessions' reports follow the main one. With arguments, one
# plain pytest run.
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
beside_report=$(mktemp)
trap '[ $started_slurm = 1 ] && bash tests/slurm/stop-cluster.sh >/dev/null 2>&1; rm -f "$slurm_report" "$beside_report"' EXIT

pytest=(.venv/bin/python -m pytest -ra --durations=10)
if [ $# -gt 0 ] || [ $started_slurm = 0 ]; then
    "${pytest[@]}" "$@"
    exit
fi

echo "SLURM tests and the demo DAG: running beside the others, each in a session of its own; their reports follow"
"${pytest[@]}" -m slurm -p no:cacheprovider >"$slurm_report" 2>&1 &
slurm_pid=$!
"${pytest[@]}" -m "beside_slurm and not slurm" -p no:cacheprovider >"$beside_report" 2>&1 &
beside_pid=$!
status=0
"${pytest[@]}" -m "not slurm and not beside_slurm" || status=$?
slurm_status=0
wait $slurm_pid || slurm_status=$?
beside_status=0
wait $beside_pid || beside_status=$?
echo
echo "====================== SLURM tests ======================"
cat "$slurm_report"
echo
echo "====================== the demo DAG (beside_slurm) ======================"
cat "$beside_report"
# pytest exit 5 means no tests were collected: only a failure of a session fails the suite
for s in $status $slurm_status $beside_status; do
    if [ "$s" != 0 ] && [ "$s" != 5 ]; then
        exit "$s"
    fi
done
