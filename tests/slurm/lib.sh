# Paths and helpers shared by start-cluster.sh and stop-cluster.sh (sourced, not run).

ISEAT_SLURM_DIR=${ISEAT_SLURM_DIR:-/var/tmp/iseat-slurm}
STATE_DIR=$ISEAT_SLURM_DIR
RUN_DIR=$STATE_DIR/run          # PID files of the slurm daemons
LOG_DIR=$STATE_DIR/log          # one log per daemon
MUNGE_DIR=$STATE_DIR/munge      # owned by munge: munged's PID file and log
MYSQL_DIR=$STATE_DIR/mysql      # owned by mysql: data, socket, PID file and log
SLURM_ETC=/etc/slurm            # where Debian's slurm commands look for slurm.conf
CONF_MARKER="# Written by iseat tests/slurm/start-cluster.sh"

# Daemons in start order: name, PID file.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
declare -A PID_FILE=(
    [munged]=$MUNGE_DIR/munged.pid
    [mariadbd]=$MYSQL_DIR/mariadbd.pid
    [slurmdbd]=$RUN_DIR/slurmdbd.pid
    [slurmctld]=$RUN_DIR/slurmctld.pid
    [slurmd]=$RUN_DIR/slurmd.pid
)
declare -A LOG_FILE=(
    [munged]=$MUNGE_DIR/munged.log
    [mariadbd]=$MYSQL_DIR/mariadbd.log
    [slurmdbd]=$LOG_DIR/slurmdbd.log
    [slurmctld]=$LOG_DIR/slurmctld.log
    [slurmd]=$LOG_DIR/slurmd.log
)

# True if process $1 exists and is not a zombie (an init that does not reap leaves those behind).
pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# Print the PID recorded for daemon $1 if that process is alive and is that daemon.
daemon_pid() {
    local name=$1 file=${PID_FILE[$1]} pid comm
    [[ -r $file ]] || return 1
    read -r pid <"$file" 2>/dev/null || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] && pid_alive "$pid" || return 1
    echo "$pid"
}

# Serialise starts and stops of the cluster. The lock is held on file descriptor 9 until the script
# ends: daemons must be started with 9>&- so that they do not keep it. A start that calls stop holds it already.
lock_cluster() {
    [[ ${ISEAT_SLURM_LOCKED:-} == 1 ]] && return 0
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/start-stop.lock"
    flock 9
    export ISEAT_SLURM_LOCKED=1
}
