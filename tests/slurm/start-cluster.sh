#!/usr/bin/env bash
# Stand up a single-node SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) from Debian's packages.
#
# Usage: tests/slurm/start-cluster.sh [--check]
#   (no option)  install what is missing, write the configuration, start what is not running,
#                wait until the node is idle; returns at once if the cluster already runs.
#   --check      exit 0 if the cluster runs with the current configuration, 1 otherwise; changes nothing.
#
# The node has partitions `cpu` (default) and `gpu`, and ISEAT_SLURM_GPUS (default 2) fake GPUs:
# jobs get CUDA_VISIBLE_DEVICES but there is no GPU behind it. Accounting goes through slurmdbd
# and MariaDB, so `sacct` works as on a real cluster. PID files, logs, daemon state and the database
# live under ISEAT_SLURM_DIR (default /var/tmp/iseat-slurm); the configuration goes to /etc/slurm,
# where the slurm commands look for it. Stop with tests/slurm/stop-cluster.sh.
#
# Exit status: 0 ready; 1 failed (one line saying why, then the daemons' log tails);
# 77 this machine cannot run it (not root, no apt-get).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

PROG=start-cluster.sh
CLUSTER=iseat
ACCOUNT=iseat
N_GPUS=${ISEAT_SLURM_GPUS:-2}
DB_PORT=${ISEAT_SLURM_DB_PORT:-13306}
DB_PASS=iseat-slurm-test
WAIT_S=${ISEAT_SLURM_START_TIMEOUT:-180}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
COMMANDS=(munged munge unmunge mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sbatch sinfo sacct sacctmgr scontrol)

CHECK_ONLY=0
case ${1:-} in
    --check) CHECK_ONLY=1 ;;
    "") ;;
    *) echo "$PROG: unknown option '$1' (usage: $PROG [--check])" >&2; exit 2 ;;
esac

say() { echo "$PROG: $*" >&2; }

# One clear line, the daemons' log tails, and the line again so it survives truncated output.
fail() {
    local msg=$1 name f
    say "ERROR: $msg"
    for name in "${DAEMONS[@]}"; do
        f=${LOG_FILE[$name]}
        [[ -s $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 25 "$f" >&2
    done
    if command -v sinfo >/dev/null && [[ -n ${NODE:-} ]]; then
        echo "----- sinfo -R -----" >&2
        sinfo -R 2>&1 | tail -n 5 >&2 || true
    fi
    say "ERROR: $msg"
    exit 1
}

cannot_run() { say "$1"; exit 77; }

[[ $(uname -s) == Linux ]] || cannot_run "needs Linux (Debian's slurm packages)"

# --- configuration (computed first: --check and the fast path compare it with what is installed) ---

NODE=$(hostname -s)
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # the machine's CPUs: nproc obeys OMP_NUM_THREADS, which the tests set to 1
MEM_TOTAL_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEMORY=$((MEM_TOTAL_MB * 90 / 100))   # a little under the total, else slurmd drains the node

# Fake GPUs need distinct character devices (regular files are rejected, Count= alone is ignored).
GPU_DEVICES=()
for dev in /dev/null /dev/zero /dev/full /dev/random /dev/urandom; do
    [[ -c $dev ]] && GPU_DEVICES+=("$dev")
done
[[ $N_GPUS =~ ^[1-9][0-9]*$ ]] || { say "ERROR: ISEAT_SLURM_GPUS must be a positive integer, got '$N_GPUS'"; exit 1; }
((N_GPUS <= ${#GPU_DEVICES[@]})) || { say "ERROR: at most ${#GPU_DEVICES[@]} fake GPUs (one per character device in /dev), asked for $N_GPUS"; exit 1; }

slurm_conf() {
    cat <<EOF
$CONF_MARKER
# state: $STATE_DIR
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=${PID_FILE[slurmctld]}
SlurmdPidFile=${PID_FILE[slurmd]}
SlurmctldLogFile=${LOG_FILE[slurmctld]}
SlurmdLogFile=${LOG_FILE[slurmd]}
# No cgroups on a plain container or VM.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# cons_tres is needed for --gpus; without DefMemPerCPU a job without --mem takes the whole node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
GresTypes=gpu
# Accounting as on real clusters: sacct, AllocTRES with gres/gpu, job comments.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEMORY Gres=gpu:$N_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
}

gres_conf() {
    echo "$CONF_MARKER"
    echo "AutoDetect=off"
    local i
    for ((i = 0; i < N_GPUS; i++)); do
        echo "NodeName=$NODE Name=gpu File=${GPU_DEVICES[i]}"
    done
}

slurmdbd_conf() {
    cat <<EOF
$CONF_MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=${PID_FILE[slurmdbd]}
LogFile=${LOG_FILE[slurmdbd]}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

declare -A WANT=(
    [slurm.conf]=$(slurm_conf)
    [gres.conf]=$(gres_conf)
    [slurmdbd.conf]=$(slurmdbd_conf)
)

config_current() {
    local f
    for f in "${!WANT[@]}"; do
        [[ -r $SLURM_ETC/$f && "$(cat "$SLURM_ETC/$f")" == "${WANT[$f]}" ]] || return 1
    done
}

all_daemons_alive() {
    local name
    for name in "${DAEMONS[@]}"; do daemon_pid "$name" >/dev/null || return 1; done
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n 1; }

node_usable() {
    case $(node_state) in idle | mix | alloc | comp) return 0 ;; *) return 1 ;; esac
}

cluster_running() { config_current && all_daemons_alive && node_usable; }

if ((CHECK_ONLY)); then
    cluster_running && exit 0 || exit 1
fi

[[ $(id -u) == 0 ]] || cannot_run "must run as root (it installs packages and starts daemons); uid is $(id -u)"

already_running() {
    cluster_running || return 1
    say "already running: node $NODE $(node_state), partitions cpu (default) and gpu, state in $STATE_DIR"
}
already_running && exit 0
lock_cluster
already_running && exit 0   # started by another caller while this one waited for the lock

T0=$SECONDS
rm -f "$STATE_DIR/stop-when-unused"   # the test fixture's note that it started the cluster: stale now
mkdir -p "$RUN_DIR" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"

# --- packages ---

missing=()
for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || cannot_run "apt-get not found: installing SLURM needs a Debian-like system (missing: ${missing[*]})"
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    apt_log=$LOG_DIR/apt.log
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show "${PACKAGES[@]}" >/dev/null 2>&1; then
        apt-get update >>"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; fail "apt-get update failed (log: $apt_log)"; }
    fi
    apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"$apt_log" 2>&1 ||
        { tail -n 20 "$apt_log" >&2; fail "apt-get install ${PACKAGES[*]} failed (log: $apt_log)"; }
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || fail "'$c' still missing after installing ${PACKAGES[*]}"; done
fi

# --- configuration files ---

if [[ -e $SLURM_ETC/slurm.conf ]] && [[ $(head -n 1 "$SLURM_ETC/slurm.conf") != "$CONF_MARKER" ]]; then
    fail "$SLURM_ETC/slurm.conf was not written by this script; refusing to overwrite it"
fi
if ! config_current; then
    # Daemons still running on an older configuration (maybe another state directory) are stopped first.
    old_state=$(sed -n 's/^# state: //p' "$SLURM_ETC/slurm.conf" 2>/dev/null || true)
    if [[ -n $old_state ]]; then
        ISEAT_SLURM_DIR=$old_state "$HERE/stop-cluster.sh" >&2
    fi
    mkdir -p "$SLURM_ETC"
    for f in "${!WANT[@]}"; do
        printf '%s\n' "${WANT[$f]}" >"$SLURM_ETC/$f.new"
        # slurmdbd refuses a configuration that others can read (it holds the database password).
        if [[ $f == slurmdbd.conf ]]; then chmod 600 "$SLURM_ETC/$f.new"; else chmod 644 "$SLURM_ETC/$f.new"; fi
        mv -f "$SLURM_ETC/$f.new" "$SLURM_ETC/$f"
    done
    say "wrote $SLURM_ETC/{slurm,gres,slurmdbd}.conf (node $NODE: $CPUS CPUs, ${REAL_MEMORY} MB, $N_GPUS fake GPUs)"
fi

# --- daemons ---

# Daemons are started in their own session (so a Ctrl-C in the caller's terminal leaves them alone),
# with their output appended to their log. MariaDB stays in the foreground: its PID is the launcher's.
declare -A LAUNCHED=()

# start_daemon NAME COMMAND...: start a daemon that forks into the background, and wait for its PID file.
start_daemon() {
    local name=$1 launcher status deadline=$((SECONDS + WAIT_S))
    shift
    say "starting $name"
    setsid "$@" </dev/null >>"${LOG_FILE[$name]}" 2>&1 9>&- &
    launcher=$!
    status=0
    wait "$launcher" || status=$?
    ((status == 0)) || fail "$name failed to start (exit $status; see ${LOG_FILE[$name]})"
    until daemon_pid "$name" >/dev/null; do
        ((SECONDS < deadline)) || fail "$name wrote no PID file to ${PID_FILE[$name]} within ${WAIT_S}s (see ${LOG_FILE[$name]})"
        sleep 0.1
    done
}

# start_foreground NAME COMMAND...: start a daemon that stays in the foreground.
start_foreground() {
    local name=$1
    shift
    say "starting $name"
    setsid "$@" </dev/null >>"${LOG_FILE[$name]}" 2>&1 9>&- &
    LAUNCHED[$name]=$!
}

daemon_alive() { daemon_pid "$1" >/dev/null || { [[ -n ${LAUNCHED[$1]:-} ]] && pid_alive "${LAUNCHED[$1]}"; }; }

# wait_for NAME WHAT COMMAND...: poll COMMAND until it succeeds; fail if NAME dies or it takes too long.
wait_for() {
    local name=$1 what=$2 deadline=$((SECONDS + WAIT_S))
    shift 2
    until "$@" >/dev/null 2>&1; do
        daemon_alive "$name" || fail "$name exited while starting (see ${LOG_FILE[$name]})"
        ((SECONDS < deadline)) || fail "timed out after ${WAIT_S}s waiting for $what"
        sleep 0.2
    done
}

munge_works() { munge -n </dev/null | unmunge; }

if ! daemon_pid munged >/dev/null; then
    [[ -s /etc/munge/munge.key ]] || {
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 600 /etc/munge/munge.key
    }
    install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
    install -d -o munge -g munge -m 0755 /run/munge
    [[ -e ${LOG_FILE[munged]} ]] || install -o munge -g munge -m 0640 /dev/null "${LOG_FILE[munged]}"
    start_daemon munged runuser -u munge -- munged --pid-file="${PID_FILE[munged]}" --log-file="${LOG_FILE[munged]}"
fi
wait_for munged "munged to answer" munge_works

mysql_cmd() { mariadb --no-defaults --socket="$MYSQL_DIR/mysqld.sock" -uroot "$@"; }

if ! daemon_pid mariadbd >/dev/null; then
    install -d -o mysql -g mysql -m 0750 "$MYSQL_DIR"
    [[ -e ${LOG_FILE[mariadbd]} ]] || install -o mysql -g mysql -m 0640 /dev/null "${LOG_FILE[mariadbd]}"
    if [[ ! -d $MYSQL_DIR/data/mysql ]]; then
        say "initialising the accounting database in $MYSQL_DIR/data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db >>"${LOG_FILE[mariadbd]}" 2>&1 ||
            fail "mariadb-install-db failed (see ${LOG_FILE[mariadbd]})"
    fi
    # Own data directory and an unusual port, so that a MariaDB of the machine's own is left alone.
    start_foreground mariadbd mariadbd --no-defaults --user=mysql --datadir="$MYSQL_DIR/data" \
        --socket="$MYSQL_DIR/mysqld.sock" --pid-file="${PID_FILE[mariadbd]}" \
        --log-error="${LOG_FILE[mariadbd]}" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --skip-name-resolve --innodb-lock-wait-timeout=900
fi
wait_for mariadbd "MariaDB to accept connections" mysql_cmd -e "SELECT 1"
mysql_cmd -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
    fail "could not create the database user for slurmdbd"

if ! daemon_pid slurmdbd >/dev/null; then
    start_daemon slurmdbd slurmdbd
fi
wait_for slurmdbd "slurmdbd to answer sacctmgr" sacctmgr -n list cluster

# Register the cluster, an account and root's association, as a site's administrators would.
if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr could not add cluster $CLUSTER"
fi
if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="iseat tests" organization=iseat >/dev/null ||
        fail "sacctmgr could not add account $ACCOUNT"
fi
if [[ $(sacctmgr -n -P list user root format=defaultaccount) != "$ACCOUNT" ]]; then
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null || true
    sacctmgr -i modify user root set defaultaccount="$ACCOUNT" >/dev/null ||
        fail "sacctmgr could not make $ACCOUNT the default account of root"
fi

ctld_up() { scontrol ping | grep -q 'is UP'; }
if ! daemon_pid slurmctld >/dev/null; then
    start_daemon slurmctld slurmctld
fi
wait_for slurmctld "slurmctld to answer scontrol ping" ctld_up

if ! daemon_pid slurmd >/dev/null; then
    start_daemon slurmd slurmd
fi

# Wait for the node; a drain left over from an earlier configuration is lifted once.
resumed=0
deadline=$((SECONDS + WAIT_S))
until node_usable; do
    state=$(node_state)
    daemon_pid slurmd >/dev/null || fail "slurmd exited while starting (see ${LOG_FILE[slurmd]})"
    if [[ $state == drain* || $state == drng ]] && ((!resumed)); then
        say "node $NODE is drained ($(sinfo -h -n "$NODE" -o %E | head -n 1)); resuming it once"
        scontrol update nodename="$NODE" state=resume || true
        resumed=1
    fi
    ((SECONDS < deadline)) || fail "timed out after ${WAIT_S}s waiting for node $NODE to be idle (state: ${state:-none})"
    sleep 0.2
done

say "ready in $((SECONDS - T0))s: node $NODE $(node_state), partitions cpu (default) and gpu, state in $STATE_DIR"
