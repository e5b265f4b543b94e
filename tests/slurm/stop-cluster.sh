#!/usr/bin/env bash
# Stop the test cluster of start-cluster.sh: cancel its jobs, then end each daemon by its PID file, in reverse order.
#
# Usage: tests/slurm/stop-cluster.sh    (safe to call when nothing runs; ISEAT_SLURM_DIR as for start-cluster.sh)
# Packages, configuration, daemon state and the accounting database stay, so the next start is quick
# and job IDs keep counting up (sacct never sees two jobs with one ID).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

PROG=stop-cluster.sh
STOP_WAIT_S=${ISEAT_SLURM_STOP_TIMEOUT:-60}
say() { echo "$PROG: $*" >&2; }

if [[ ! -d $STATE_DIR ]]; then
    say "nothing was running (no $STATE_DIR)"
    exit 0
fi
[[ $(id -u) == 0 ]] || { say "must run as root to stop the daemons; uid is $(id -u)"; exit 77; }
lock_cluster

# Jobs first, so that no slurmstepd outlives slurmd and their end reaches the accounting database.
if daemon_pid slurmctld >/dev/null && daemon_pid slurmd >/dev/null; then
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null || true)
    if ((${#jobs[@]})); then
        say "cancelling ${#jobs[@]} job(s)"
        scancel "${jobs[@]}" 2>/dev/null || true
        deadline=$((SECONDS + STOP_WAIT_S))
        while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && ((SECONDS < deadline)); do sleep 0.2; done
    fi
fi

stopped=0
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[i]}
    if pid=$(daemon_pid "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_WAIT_S))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if pid_alive "$pid"; then
            say "$name (pid $pid) ignored SIGTERM for ${STOP_WAIT_S}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "${PID_FILE[$name]}"
done
((stopped)) || say "nothing was running (state in $STATE_DIR)"
