#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for running the workflow through Snakemake's SLURM
# executor as on a real cluster: munge, MariaDB + slurmdbd (so that sacct answers), slurmctld
# and slurmd, with two partitions, `cpu` (default) and `gpu` (no GPU on a machine without one:
# it exists so that profiles naming it resolve). Process tracking by /proc and no task
# plugin, so it needs no cgroup delegation (it runs inside containers and sandboxes).
#   scripts/slurm-local.sh start    configure (first time) and start the daemons; idempotent
#   scripts/slurm-local.sh stop     stop them (the configuration and accounting stay)
#   scripts/slurm-local.sh status   sinfo
# Needs root and Debian's slurm-wlm, slurmdbd, munge and mariadb-server:
#   apt-get install -y slurm-wlm slurmdbd munge mariadb-server
set -euo pipefail
CLUSTER=urbanmoe
ETC=/etc/slurm
LOGS=/var/log/slurm
USER_NAME=${SLURM_LOCAL_USER:-$(id -un)}

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || {
      echo "slurm-local: $c not found (apt-get install -y slurm-wlm slurmdbd munge mariadb-server)" >&2
      exit 1
    }
  done
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "slurm-local: $what did not come up in ${limit} s (logs: $LOGS)" >&2
  exit 1
}

running() { pgrep -x "$1" >/dev/null; }

configure() {
  mkdir -p "$ETC" "$LOGS" /var/spool/slurmctld /var/spool/slurmd /run/munge /run/mysqld
  chown munge:munge /run/munge; chown mysql:mysql /run/mysqld
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
                                   chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  local node hw
  node=$(hostname -s)
  # the node's real shape, as slurmd sees it (CPUs, sockets, cores, threads, memory)
  hw=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/ UpTime=.*//')
  cat > "$ETC/slurm.conf.tmp" <<CONF
# Written by scripts/slurm-local.sh: a one-node cluster on $node.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
KillWait=10
InactiveLimit=0
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP
CONF
  mv "$ETC/slurm.conf.tmp" "$ETC/slurm.conf"
  cat > "$ETC/slurmdbd.conf" <<CONF
# Written by scripts/slurm-local.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
CONF
  chmod 600 "$ETC/slurmdbd.conf"
}

start() {
  need munged slurmctld slurmd slurmdbd mariadbd mysql sacctmgr
  configure
  running munged || runuser -u munge -- munged
  wait_for 20 munge munge -n
  if ! running mariadbd; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    (mariadbd --user=mysql >"$LOGS/mariadb.log" 2>&1 &)
  fi
  wait_for 60 MariaDB mysql -e 'SELECT 1'
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  running slurmdbd || slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -i add account "$CLUSTER" Description="urbanmoe workflow" >/dev/null 2>&1 || true
  sacctmgr -i add user "$USER_NAME" Account="$CLUSTER" DefaultAccount="$CLUSTER" >/dev/null 2>&1 || true
  if running slurmctld; then scontrol reconfigure; else slurmctld; fi
  wait_for 60 slurmctld scontrol ping
  running slurmd || slurmd
  wait_for 60 "the node" sh -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
  scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
  sinfo
}

stop() {
  local d
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    pkill -x "$d" 2>/dev/null || true
  done
  echo "slurm-local: stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: scripts/slurm-local.sh start|stop|status" >&2; exit 2 ;;
esac
