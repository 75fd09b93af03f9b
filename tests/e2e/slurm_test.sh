#!/usr/bin/env bash
# Slurm for real: starts a single-node cluster from Debian's slurm-wlm and
# munge (daemons run by hand, a localhost slurm.conf with 2 CPUs), then
#   * submits the tiny pretraining on 2 ranks with launch/slurm/one-node.sbatch
#     (srun --mpi=pmix), waits, and checks the job completed and the run
#     directory holds metrics and a checkpoint;
#   * preempts a longer job (SIGUSR1 to the batch script, as --signal=B:USR1
#     delivers it): muse-train checkpoints, the script requeues the job and
#     the requeued job resumes from LATEST and completes;
#   * cancels a job mid-run (scancel) and resubmits it: the new job resumes.
# Then stops the daemons. Exit 77 (skipped) naming the reason when the
# sandbox cannot run a part. KEEP=1 keeps the scratch directory (logs).
#   slurm_test.sh BIN_DIR
set -uo pipefail
bin=$(cd "$1" && pwd)
repo=$(pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*"
  exit 1
}
for cmd in munged slurmctld slurmd sbatch scontrol; do
  command -v "$cmd" >/dev/null || skip "$cmd is not installed (Debian packages slurm-wlm and munge; scripts/install-deps.sh installs them)"
done
[[ $(id -u) == 0 ]] || skip "the daemons are started by hand as root; this runs as $(id -un)"

tmp=$(mktemp -d)
cluster=$tmp/cluster
mkdir -p "$cluster"/{state,spool,log}
stop_daemons() {
  for p in slurmd slurmctld munged; do
    [[ -f $cluster/$p.pid ]] && kill "$(cat "$cluster/$p.pid")" 2>/dev/null
  done
  sleep 1
  [[ -n ${KEEP:-} ]] || rm -rf "$tmp"
}
trap stop_daemons EXIT

# Ports of this cluster only, so a cluster of another test or user is not hit.
port=$((20000 + $$ % 20000))
node=$(hostname -s)
cat >"$cluster/slurm.conf" <<EOF
ClusterName=musetest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$cluster/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$cluster/state
SlurmdSpoolDir=$cluster/spool
SlurmctldPidFile=$cluster/slurmctld.pid
SlurmdPidFile=$cluster/slurmd.pid
SlurmctldLogFile=$cluster/log/slurmctld.log
SlurmdLogFile=$cluster/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$cluster/slurm.conf
[[ -r /etc/munge/munge.key ]] || skip "no /etc/munge/munge.key (the munge package creates it)"
munged --force --socket="$cluster/munge.socket" --pid-file="$cluster/munged.pid" \
  --log-file="$cluster/log/munged.log" --seed-file="$cluster/munge.seed" ||
  skip "munged does not start here: $(tail -2 "$cluster/log/munged.log" 2>/dev/null)"
slurmctld || skip "slurmctld does not start here: $(tail -2 "$cluster/log/slurmctld.log")"
slurmd || skip "slurmd does not start here: $(tail -2 "$cluster/log/slurmd.log")"
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 0.5
done
sinfo -h -o %t | grep -q idle ||
  skip "the node never became idle: $(sinfo 2>&1 | tail -1); slurmd log: $(tail -2 "$cluster/log/slurmd.log")"
echo "cluster up: $(sinfo -h)"

job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# wait_state JOB STATE SECONDS
wait_state() {
  for _ in $(seq $(($3 * 2))); do
    [[ $(job_state "$1") == "$2" ]] && return 0
    sleep 0.5
  done
  return 1
}
runs=$tmp/runs
# submit NAME STEPS: the tiny pretraining on 2 ranks through the project's
# sbatch script; prints the job id.
submit() {
  RUN_DIR=$runs MUSE_BIN=$bin sbatch --parsable --chdir="$repo" --ntasks-per-node=2 --gpus-per-node=0 \
    --cpus-per-task=1 --time=10 --output="$tmp/$1-%j.out" launch/slurm/one-node.sbatch \
    --config configs/tiny/pretrain.yaml --set run.name="$1" --set trainer.steps="$2" \
    --set data.seq_len=64 --set data.batch_size=4 --set eval.every=0 --set checkpoint.every=20 \
    --set telemetry.progress=off
}
latest_step() { [[ -f $runs/$1/LATEST ]] && sed 's/step_0*//' "$runs/$1/LATEST" || echo 0; }
wait_checkpoint() {
  for _ in $(seq 240); do
    (($(latest_step "$1") > 0)) && return 0
    sleep 0.5
  done
  return 1
}

# 1. A job that runs to the end.
job=$(submit plain 40) || fail "sbatch refused the job"
wait_state "$job" COMPLETED 120 || fail "job $job ended $(job_state "$job"): $(cat "$tmp"/plain-*.out)"
[[ -s $runs/plain/metrics.jsonl && $(latest_step plain) == 40 ]] ||
  fail "job $job left no metrics or step-40 checkpoint: $(ls -R "$runs/plain" | head)"
grep -q "launcher srun" "$tmp"/plain-*.out || fail "the job did not run through srun"
echo "sbatch: job $job completed with metrics and a checkpoint at step 40"

# 2. Preemption notice: SIGUSR1 to the batch script, a checkpoint, a requeue,
#    and the requeued job resumes.
job=$(submit preempted 300) || fail "sbatch refused the job"
wait_checkpoint preempted || fail "no checkpoint from job $job: $(cat "$tmp"/preempted-*.out)"
scancel --batch --signal=USR1 "$job"
for _ in $(seq 240); do
  restarts=$(scontrol show job "$job" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
  ((restarts >= 1)) && break
  sleep 0.5
done
((restarts >= 1)) || fail "job $job was not requeued: $(cat "$tmp"/preempted-*.out)"
echo "requeued: $(scontrol show job "$job" | grep -o 'JobState=[A-Z]*\|BeginTime=[^ ]*' | tr '\n' ' ')"
wait_state "$job" COMPLETED 240 || fail "requeued job $job ended $(job_state "$job"): $(cat "$tmp"/preempted-*.out)"
grep -q "stopped by User defined signal 1" "$tmp"/preempted-*.out &&
  grep -q "requeueing job $job" "$tmp"/preempted-*.out &&
  grep -q "resumed from .*step_" "$tmp"/preempted-*.out ||
  fail "no checkpoint-requeue-resume in the job's output: $(cat "$tmp"/preempted-*.out)"
[[ $(latest_step preempted) == 300 ]] || fail "the requeued job did not finish"
echo "preemption: job $job checkpointed, was requeued and resumed to the end"

# 3. Cancelled mid-run, then submitted again: the new job resumes.
job=$(submit cancelled 300) || fail "sbatch refused the job"
wait_checkpoint cancelled || fail "no checkpoint from job $job"
scancel "$job"
wait_state "$job" CANCELLED 60 || fail "job $job was not cancelled"
saved=$(latest_step cancelled)
job=$(submit cancelled 300) || fail "sbatch refused the second job"
wait_state "$job" COMPLETED 240 || fail "resubmitted job $job ended $(job_state "$job")"
grep -q "resumed from .*step_0*$saved at step $saved" "$tmp"/cancelled-"$job".out ||
  fail "the resubmitted job did not resume from step $saved: $(cat "$tmp"/cancelled-"$job".out)"
echo "cancel and resubmit: resumed from step $saved"
echo "slurm ok"
