#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (Debian slurmctld + slurmd + munge) for testing
# the `slurm` profile for real. The node advertises two GPUs (gres backed by /dev/null and /dev/zero) so that
# GPU rules' `--gpus=1` requests schedule, two at a time as on a real GPU node; nothing uses them. Needs root.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "start_local_cluster.sh needs root" >&2; exit 1; fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
host=$(hostname -s)
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=dreamflow-local
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
GresTypes=gpu
# A test cluster: the node's configured memory (large, so profile requests schedule) is used as is.
SlurmdParameters=config_overrides
NodeName=$host CPUs=$(nproc) RealMemory=256000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
cat > "$conf_dir/gres.conf" <<CONF
NodeName=$host Name=gpu File=/dev/null,/dev/zero
CONF
chown -R munge:munge /run/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || (dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null && chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key)
  su -s /bin/sh munge -c "munged --force" 2>/dev/null || munged --force
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    sinfo
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "SLURM node did not become idle:" >&2
sinfo -N -l >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
