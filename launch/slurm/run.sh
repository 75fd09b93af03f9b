#!/usr/bin/env bash
# The body of the muse-train sbatch scripts (one-node.sbatch,
# multi-node.sbatch): runs muse-train on the job's tasks, one rank per task,
# and requeues the job when it is preempted. Run inside an allocation, from
# the repository (the sbatch scripts cd to $SLURM_SUBMIT_DIR first).
#
#   launch/slurm/run.sh --config CONFIG [--set key=value ...]
#
# Variables:
#   RUN_DIR    run.dir, on storage every node shares (default: runs)
#   LAUNCHER   srun (default: srun --mpi=pmix, Slurm starts the ranks) or
#              mpirun (Open MPI's mpirun reads the allocation)
#   MUSE_BIN   the directory holding muse-train (default: build/bin)
#   NCCL_*     passed through (srun exports the environment; mpirun gets -x)
#   NSYS       a directory: run every rank under Nsight Systems, one report per
#              rank (NSYS/rankR.nsys-rep); NSYS_STEP=N records optimizer step
#              N only. The preemption signal then reaches nsys, not muse-train:
#              profile short runs (docs/gpu.md).
#
# Preemption: the sbatch scripts ask for SIGUSR1 some minutes before the time
# limit (--signal=B:USR1@...). This script forwards it to the launcher;
# muse-train finishes the step, saves a checkpoint and exits with status 3,
# and the script requeues the job, which then resumes from LATEST. SIGTERM
# (scancel, or Slurm preempting a job; with PreemptMode=REQUEUE Slurm
# requeues it itself) is forwarded the same way, for a checkpoint before the
# job ends, but does not requeue. A requeued or resubmitted job resumes by
# itself: launching the same config again is how muse-train resumes.
set -uo pipefail
bin=${MUSE_BIN:-build/bin}
launcher=${LAUNCHER:-srun}
run_dir=${RUN_DIR:-runs}

case $launcher in
  srun)
    cmd=(srun --mpi=pmix --kill-on-bad-exit=0)
    rank_var=SLURM_PROCID
    ;;
  mpirun)
    cmd=(mpirun --bind-to none)
    for var in $(compgen -e); do
      [[ $var =~ ^(NCCL_|MUSE_|WANDB_) || $var == OMP_NUM_THREADS ]] && cmd+=(-x "$var")
    done
    rank_var=OMPI_COMM_WORLD_RANK
    ;;
  *)
    echo "error: LAUNCHER must be srun or mpirun, got '$launcher'" >&2
    exit 2
    ;;
esac
if [[ -n ${NSYS:-} ]]; then
  mkdir -p "$NSYS"
  # %q{VAR} is expanded by nsys in each rank's environment.
  cmd+=(nsys profile --trace=cuda,nvtx,mpi,osrt --mpi-impl=openmpi --force-overwrite=true
    "--output=$NSYS/rank%q{$rank_var}")
  [[ -n ${NSYS_STEP:-} ]] && cmd+=(--capture-range=nvtx "--nvtx-capture=step $NSYS_STEP"
    --capture-range-end=stop --env-var=NSYS_NVTX_PROFILER_REGISTER_ONLY=0)
fi
cmd+=("$bin/muse-train")

echo "muse-train job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NUM_NODES:-1} node(s), ${SLURM_NTASKS:-?} task(s), launcher $launcher"
"${cmd[@]}" "$@" --set run.dir="$run_dir" &
child=$!
requeue=0
forward() {
  echo "$1: asking muse-train to checkpoint and stop"
  kill -USR1 "$child" 2>/dev/null
}
trap 'requeue=1; forward "time limit notice (SIGUSR1)"' USR1
trap 'forward "SIGTERM"' TERM
# `wait` returns early when a trapped signal arrives; wait again for the end.
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do
  wait "$child" || status=$?
done
if ((status == 3 && requeue)) && [[ -n ${SLURM_JOB_ID:-} ]]; then
  echo "muse-train stopped with a checkpoint (status $status): requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID" || echo "requeue refused: resubmit the same script to resume"
fi
exit "$status"
