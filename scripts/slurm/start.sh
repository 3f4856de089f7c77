#!/usr/bin/env bash
# Start, or check, the single-node SLURM the `slurm` tests run against (munge, MariaDB, slurmdbd, slurmctld, slurmd).
#
# Needs root on Debian 12; installs the Debian packages on first use. Safe to run again: a daemon that runs is
# left alone and only checked. Every daemon is started with setsid and its output closed, so it outlives this
# shell and does not hold a CI pipe open; stop them with scripts/slurm/stop.sh. Settings and their reasons:
# slurm.conf.in here and the project's reference note on SLURM (accounting is required: without it submitit
# never learns that a job was cancelled or killed). Prints one summary line.
#
# Environment: MIRO_SLURM_CLUSTER (default miro), MIRO_SLURM_CPUS (CPUs advertised, default 8).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s.%N)
CLUSTER=${MIRO_SLURM_CLUSTER:-miro}
CPUS=${MIRO_SLURM_CPUS:-8}
HOST=$(hostname -s)
MEMORY_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
LOGS=/var/log/slurm
STARTED=()

die() {
    echo "slurm: $*" >&2
    tail -n 5 "$LOGS"/*.log "$LOGS"/*.out 2>/dev/null >&2 || true
    exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }  # is the daemon of this pid file running?
wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll every 0.1 s until COMMAND succeeds
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up within ${seconds}s (logs in $LOGS)"
}
daemon() { STARTED+=("$1"); setsid "$@" </dev/null >>"$LOGS/$1.out" 2>&1 & }  # detached from this shell
render() {  # render TEMPLATE DEST: fill @FIELDS@ and write DEST if it changes (never under running daemons)
    local text
    text=$(sed -e "s/@CLUSTER@/$CLUSTER/g" -e "s/@HOST@/$HOST/g" -e "s/@CPUS@/$CPUS/g" \
               -e "s/@MEMORY_MB@/$MEMORY_MB/g" -e "s/@DB_PASSWORD@/$DB_PASSWORD/g" "$HERE/$1")
    [ -f "$2" ] && [ "$(cat "$2")" = "$text" ] && return 0
    if alive /run/slurm/slurmctld.pid || alive /run/slurm/slurmdbd.pid; then
        die "$2 would change under running daemons: run scripts/slurm/stop.sh, then this script again"
    fi
    printf '%s\n' "$text" >"$2"
}

[ "$(id -u)" = 0 ] || die "run as root: this script installs packages and starts system daemons"

# 1. packages (only what is missing; a fresh machine needs all of them)
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
MISSING=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || MISSING+=("$p")
done
mkdir -p "$LOGS"
if ((${#MISSING[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${MISSING[@]}"; } >"$LOGS/apt.out" 2>&1 \
        || die "apt-get install ${MISSING[*]} failed: $(tail -n 3 "$LOGS/apt.out")"
fi
mkdir -p /run/slurm /var/spool/slurmctld /var/spool/slurmd /etc/slurm /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld

# 2. configuration (the database password is kept from an earlier run)
DB_PASSWORD=$(sed -n 's/^StoragePass=//p' /etc/slurm/slurmdbd.conf 2>/dev/null || true)
[ -n "$DB_PASSWORD" ] || DB_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
render slurm.conf.in /etc/slurm/slurm.conf
render slurmdbd.conf.in /etc/slurm/slurmdbd.conf
chmod 600 /etc/slurm/slurmdbd.conf
cp "$HERE/mariadb.cnf" /etc/mysql/mariadb.conf.d/99-miro-slurm.cnf

# 3. munge (authentication between the daemons and the clients)
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key --force
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    STARTED+=(munged)
    setsid runuser -u munge -- munged </dev/null >>"$LOGS/munged.out" 2>&1
    wait_for 20 munged bash -c "munge -n </dev/null | unmunge"
fi

# 4. accounting: MariaDB on its socket only, then slurmdbd
if ! mariadb-admin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >>"$LOGS/mariadb.out" 2>&1
    daemon mariadbd --user=mysql --skip-networking
    wait_for 60 MariaDB mariadb-admin ping
fi
if ! alive /run/slurm/slurmdbd.pid; then
    mariadb -e "CREATE OR REPLACE USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    daemon slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
fi
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null

# 5. controller and node daemon; wait until the node takes jobs
alive /run/slurm/slurmctld.pid || daemon slurmctld
wait_for 30 slurmctld scontrol ping
alive /run/slurm/slurmd.pid || daemon slurmd
node_ready() {
    case $(sinfo -h -n "$HOST" -o %T) in
        idle | mixed | allocated | completing) return 0 ;;
        down | drained | draining) scontrol update nodename="$HOST" state=resume ;;
    esac
    return 1
}
wait_for 60 "node $HOST" node_ready

ELAPSED=$(awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN {print t1 - t0}')
ACTION=${STARTED[*]:+started ${STARTED[*]}}
printf 'slurm: cluster %s ready on %s (%s CPUs, %s MB, node %s; %s) in %.1f s\n' "$CLUSTER" "$HOST" "$CPUS" \
    "$MEMORY_MB" "$(sinfo -h -n "$HOST" -o %T)" "${ACTION:-already running, checked}" "$ELAPSED"
