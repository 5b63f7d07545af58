#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests: Debian's slurm-wlm (slurmctld +
# slurmd) with munge, configured for localhost with every CPU and most of the memory, job
# requeue allowed. Idempotent: a running cluster with this configuration is left as it is.
#   scripts/slurm-local.sh start | stop
# Needs root (it writes /etc/slurm and /etc/munge and starts the daemons).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-start}"
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-local: must run as root (it configures and starts slurmctld, slurmd and munged)" >&2
  exit 1
fi
if [ "$cmd" = stop ]; then
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: slurm-local.sh start|stop" >&2; exit 2; }

bash "$root/scripts/install-system-deps.sh" slurm-wlm munge
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge
conf=/etc/slurm/slurm.conf
want=$(cat <<CONF
# Written by scopedex scripts/slurm-local.sh: a one-node cluster for tests.
ClusterName=scopedex-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
)
running=0
if pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null && [ "$(cat "$conf" 2>/dev/null)" = "$want" ]; then
  running=1
fi
if [ $running = 0 ]; then
  pkill -x slurmd || true
  pkill -x slurmctld || true
  echo "$want" > "$conf"
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /run/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
  /usr/sbin/slurmctld -i
  /usr/sbin/slurmd
fi
# Wait until the node takes jobs.
for _ in $(seq 1 60); do
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
  case "$state" in idle|mix|alloc) echo "slurm-local: node $host $state ($cpus CPUs, $mem_mb MB)"; exit 0;; esac
  [ "$state" = "down" ] || [ "$state" = "drain" ] && scontrol update nodename="$host" state=resume 2>/dev/null || true
  sleep 1
done
echo "slurm-local: the node did not become idle; see /var/log/slurm/" >&2
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
