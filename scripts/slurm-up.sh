#!/usr/bin/env bash
# A one-node Slurm cluster with accounting on this machine, for the executor tests and CI.
#
# Installs Debian's Slurm, munge and MariaDB if missing, writes the configuration
# (slurm.conf and slurmdbd.conf in /etc/slurm, or next to $SLURM_CONF), starts munged,
# mariadbd, slurmdbd, slurmctld and slurmd as plain daemons with their state in
# $RPLIB_SLURM_STATE (default /tmp/rplib-slurm), waits until `sinfo` shows the node idle
# and writes the daemons' process ids to $RPLIB_SLURM_STATE/pids for scripts/slurm-down.sh.
# Does nothing when the node already answers idle. Needs root.
#
# The daemons listen on every interface (Slurm 22.05 cannot restrict that): to keep them off the
# network, start them and their clients in a loopback-only namespace, as .ci/run does:
#   scripts/slurm-up.sh --install                                  # the packages (needs the network)
#   scripts/isolated.sh bash -c 'scripts/slurm-up.sh && make test'
set -euo pipefail

STATE=${RPLIB_SLURM_STATE:-/tmp/rplib-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
ETC=$(dirname "$CONF")
HOST=$(hostname -s)

log() { echo "slurm-up: $*" >&2; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "$what did not come up within ${limit}s; logs in $STATE"
  exit 1
}

node_idle() { sinfo -h -N -n "$HOST" -o %t 2>/dev/null | grep -qx idle; }

if command -v sinfo >/dev/null && node_idle; then
  log "already up"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v slurmd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge slurmdbd mariadb-server >/dev/null
fi
if [[ ${1:-} == --install ]]; then
  exit 0
fi

if [[ -f $STATE/pids ]]; then
  log "stale state in $STATE: stopping what is left"
  "$(dirname "$0")/slurm-down.sh"
fi
rm -rf "$STATE"
mkdir -p "$STATE"/{ctld,spool,db} "$ETC"
: > "$STATE/pids"

# munge: its own user, socket directory /run/munge
mkdir -p /run/munge
chown munge:munge /run/munge
[[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
runuser -u munge -- munged
wait_for 10 munged test -S /run/munge/munge.socket.2
cat /run/munge/munged.pid >> "$STATE/pids"

# MariaDB for slurmdbd: no network, unix socket only
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$STATE/db"
mariadb-install-db --user=mysql --datadir="$STATE/db" --auth-root-authentication-method=socket >"$STATE/mariadb-install.log" 2>&1
setsid mariadbd --user=mysql --datadir="$STATE/db" --socket=/run/mysqld/mysqld.sock --skip-networking \
  --pid-file="$STATE/db/mariadbd.pid" --log-error="$STATE/db/mariadbd.log" >/dev/null 2>&1 &
wait_for 30 mariadbd mariadb --socket=/run/mysqld/mysqld.sock -u root -e "select 1"
cat "$STATE/db/mariadbd.pid" >> "$STATE/pids"
mariadb --socket=/run/mysqld/mysqld.sock -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'rplib-slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

cat > "$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=rplib-slurm
CONF
chmod 600 "$ETC/slurmdbd.conf"

# the node as slurmd sees it, a little memory held back so the node never reports less than configured
read -r -a NODE <<<"$(slurmd -C | head -n 1)"
NODE_LINE=""
for field in "${NODE[@]}"; do
  case $field in
    RealMemory=*) NODE_LINE+=" RealMemory=$(( ${field#RealMemory=} * 9 / 10 ))" ;;
    *) NODE_LINE+=" $field" ;;
  esac
done

cat > "$CONF" <<CONF
ClusterName=rplib
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# submitit jobs ignore SIGTERM: a cancelled job runs on until SIGKILL, KillWait seconds later
KillWait=2
MinJobAge=600
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmdbd
wait_for 30 slurmdbd sacctmgr -n -i show cluster
cat "$STATE/slurmdbd.pid" >> "$STATE/pids"

slurmctld -c
wait_for 30 slurmctld scontrol ping
cat "$STATE/slurmctld.pid" >> "$STATE/pids"

slurmd -c
wait_for 60 "the node $HOST (idle)" node_idle
cat "$STATE/slurmd.pid" >> "$STATE/pids"
log "up: $(sinfo -h -N -o '%N %t %c CPUs')"
