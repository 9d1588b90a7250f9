#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the workflow test that runs --profile profiles/slurm.
#
#   slurm_cluster.sh up      install Debian's slurmctld, slurmd, slurm-client and munge if missing,
#                            write /etc/slurm/slurm.conf, start munged, slurmctld and slurmd
#   slurm_cluster.sh down    cancel every job, stop the daemons this script started (by pid)
#
# Needs root and apt (Debian/Ubuntu). No systemd: the daemons are started directly. Everything
# listens on this host only. There is no accounting database, so `sacct` fails: Snakemake's SLURM
# plugin must be told `--slurm-status-command squeue`. The node advertises fake GPUs (so jobs that
# ask `gpu=1` get a CUDA_VISIBLE_DEVICES but no CUDA device) and more memory than the machine has
# (nothing enforces it), so the profile's real requests fit.
#
# Environment: SLURM_TEST_BASE (state, logs, pids; default /tmp/interpflow-slurm),
# SLURM_TEST_GPUS (default 2), SLURM_TEST_MEM_MB (advertised memory, default 65536).
set -euo pipefail

BASE=${SLURM_TEST_BASE:-/tmp/interpflow-slurm}
GPUS=${SLURM_TEST_GPUS:-2}
MEM=${SLURM_TEST_MEM_MB:-65536}
CONF=/etc/slurm/slurm.conf
MARK="# written by interpflow tests/workflow/slurm_cluster.sh"
HOST=$(hostname -s)

say() { echo "[slurm_cluster] $*" >&2; }
fail() { say "$*"; for f in "$BASE"/log/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }

# retry CMD for up to $1 seconds
poll() {
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < until)) || return 1; sleep 0.5; done
}

# true when pid file $1 names a running process called $2 (a stale pid may belong to anything)
running() { [[ -s $1 ]] && [[ $(cat "/proc/$(cat "$1")/comm" 2>/dev/null) == "$2" ]]; }

stop() {
  running "$1" "$2" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill "$pid" || true
  poll 20 bash -c "! test -d /proc/$pid" || kill -9 "$pid"
  rm -f "$1"
}

install_packages() {
  local missing=()
  for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  say "apt-get install ${missing[*]}"
  # Debian's maintainer scripts would start the daemons with the stock config; forbid that.
  local policy=0
  [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy=1; }
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    >"$BASE/log/apt.log" 2>&1 || rc=$?
  ((policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || fail "apt-get failed (see $BASE/log/apt.log)"
}

start_munge() {
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0   # one already answers: use it
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
  chown -R munge:munge /etc/munge; chmod 700 /etc/munge; chmod 600 /etc/munge/munge.key
  install -d -o munge -g munge /run/munge /var/lib/munge /var/log/munge
  runuser -u munge -- munged
  poll 15 bash -c 'munge -n | unmunge' || fail "munged does not answer"
  cp /run/munge/munged.pid "$BASE/run/munged.pid"   # ours to stop in `down`
}

write_config() {
  # the real topology (a node promising more CPUs than it has stays INVALID), our memory and GPUs
  local topology
  topology=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/ RealMemory=[0-9]+//')
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then fail "$CONF exists and is not ours; not touching it"; fi
  install -d /etc/slurm
  cat >"$CONF" <<EOF
$MARK
ClusterName=interpflow
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
# no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job that names no memory would otherwise hold the whole node
DefMemPerCPU=500
# trust this file over the hardware: the advertised memory and GPUs are not checked
SlurmdParameters=config_overrides
# finished jobs stay in squeue this long (the plugin's squeue status mode needs >= 120 s; the test reads them after the run)
MinJobAge=3600
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=$HOST $topology RealMemory=$MEM Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
# a second partition on the same node: the test installs the profile with --partition interpflow
PartitionName=interpflow Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
  # a GPU is a device file to slurmd; /dev/null stands in for each
  local i
  for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "$BASE/gpu$i"; done
  printf '%s\nNodeName=%s Name=gpu File=%s/gpu[0-%d]\n' "$MARK" "$HOST" "$BASE" $((GPUS - 1)) >/etc/slurm/gres.conf
}

node_ready() { [[ $(sinfo -h -n "$HOST" -o %t) =~ ^(idle|mix|alloc)$ ]]; }

up() {
  install -d "$BASE/state" "$BASE/spool" "$BASE/run" "$BASE/log"
  install_packages
  getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
  stop "$BASE/run/slurmd.pid" slurmd           # a restart picks up a rewritten config
  stop "$BASE/run/slurmctld.pid" slurmctld
  write_config
  start_munge
  slurmctld
  poll 30 scontrol ping || fail "slurmctld does not answer"
  slurmd
  poll 30 node_ready || { scontrol update nodename="$HOST" state=resume || true; poll 30 node_ready || fail "node $HOST not ready"; }
  srun -t 1 true || fail "srun does not run"
  say "up: node $HOST, $GPUS fake GPUs"
}

down() {
  if running "$BASE/run/slurmctld.pid" slurmctld; then
    scancel --user=root 2>/dev/null || true
    poll 20 bash -c '[[ -z $(squeue -h -t PD,R,CG -o %i) ]]' || say "jobs still listed; stopping anyway"
  fi
  stop "$BASE/run/slurmd.pid" slurmd
  stop "$BASE/run/slurmctld.pid" slurmctld
  stop "$BASE/run/munged.pid" munged
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
