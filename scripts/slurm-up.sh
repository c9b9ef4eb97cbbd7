#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the cluster tests (scripts/test-cluster.sh) and for trying
# Scipion's queue by hand: installs Debian's slurm-wlm and munge if missing, writes a slurm.conf with two
# partitions ("cpu", the default, and "gpu": on a machine without GPUs it is a CPU partition with the same
# node, so that a hosts.conf with both can be tested), starts munged, slurmctld and slurmd, and waits until
# the node is idle. Needs root. Idempotent: run it again at any time (e.g. after a restart of the machine);
# it rewrites the configuration only when it changed and restarts only what is not running.
#
# Per-job limits: every job gets the CPUs it asks for (task/affinity binds it to them: the engine's threads
# follow its CPU affinity) and is killed when it uses more memory than it asked for (OverMemoryKill),
# without cgroups (proctrack/linuxproc), which containers often lack. No accounting database: a job's fate
# is in its own log and in the job completion log (/var/log/slurm/jobcomp.log); `scontrol show job ID`
# tells it for MinJobAge seconds after the end.
set -euo pipefail

say() { echo "slurm-up: $*"; }
fail() { echo "slurm-up: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts system daemons): sudo bash $0"

missing=()
for program in munged slurmctld slurmd sbatch; do command -v "$program" >/dev/null || missing+=("$program"); done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || fail "${missing[*]} missing and no apt-get: install SLURM (slurm-wlm) and munge"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

node=$(hostname -s)
cpus=$(nproc)
# slurmd's own view of the machine's memory (MB), minus room for the system and the controller.
memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
memory=$(( memory > 2048 ? memory - 1024 : memory ))

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
config=$(cat <<EOF
# Written by deepict_scipion's scripts/slurm-up.sh: a single-node cluster for Scipion's queue tests.
ClusterName=deepict
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
# No cgroups: processes are tracked through /proc, CPUs bound by affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Memory limits enforced by sampling the job's processes every second.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# Keep finished jobs visible to scontrol for 10 min; check time limits often; kill quickly.
MinJobAge=600
InactiveLimit=0
KillWait=5
OverTimeLimit=0
SchedulerParameters=sched_interval=2
DefMemPerCPU=1024
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node Default=NO MaxTime=INFINITE State=UP
EOF
)
changed=no
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$config" ]; then
    echo "$config" > /etc/slurm/slurm.conf
    changed=yes
    say "wrote /etc/slurm/slurm.conf (node $node: $cpus CPUs, $memory MB; partitions cpu (default) and gpu)"
fi

if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key"
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
chmod 700 /etc/munge

running() { pgrep -x "$1" >/dev/null; }
if ! munge -n >/dev/null 2>&1; then
    say "starting munged"
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged --force
    else
        /usr/sbin/munged --force
    fi
fi
if [ "$changed" = yes ]; then
    # A new configuration needs fresh daemons (the node's CPUs and memory may have changed).
    for daemon in slurmd slurmctld; do
        pidfile=/run/$daemon.pid  # the daemons this script started (SlurmdPidFile, SlurmctldPidFile)
        if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            say "restarting $daemon for the new configuration"
            kill "$(cat "$pidfile")"
        fi
    done
    for _ in $(seq 20); do running slurmd || running slurmctld || break; sleep 0.5; done
fi
if ! running slurmctld; then say "starting slurmctld"; /usr/sbin/slurmctld; fi
if ! running slurmd; then say "starting slurmd"; /usr/sbin/slurmd; fi

# Wait for the node to register and be idle (or busy with jobs: mixed/allocated).
for _ in $(seq 60); do
    state=$(sinfo -h -n "$node" -p cpu -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) fail "the node $node is '${state:-not registered}' after 60 s: see /var/log/slurm/slurmctld.log and slurmd.log" ;;
esac
sinfo
say "SLURM is up (node $node $state)"
