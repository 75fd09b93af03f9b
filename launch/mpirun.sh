#!/usr/bin/env bash
# muse-train under Open MPI's mpirun, on this node or on the hosts of a
# hostfile:
#
#   launch/mpirun.sh --config configs/tiny/pretrain.yaml [--set key=value ...]
#   HOSTFILE=hosts NP=64 launch/mpirun.sh --config configs/cluster/pretrain-8n-h100.yaml
#
# Variables:
#   NP           ranks; default: the GPUs nvidia-smi lists, else 2. One rank
#                per GPU: muse-train picks the GPU of its node-local rank.
#   HOSTFILE     an Open MPI hostfile ("node1 slots=8" per line) for several
#                nodes; every node must see the repository and run.dir at the
#                same path (shared storage).
#   MUSE_BIN     the directory holding muse-train (default: build/bin)
#   MPIRUN_ARGS  extra mpirun flags, e.g. "--mca btl_tcp_if_include eth0"
#   NSYS         a directory: run every rank under Nsight Systems, one report
#                per rank (NSYS/rankR.nsys-rep); NSYS_STEP=N records optimizer
#                step N only (docs/gpu.md)
# NCCL_*, MUSE_*, WANDB_*, OMP_NUM_THREADS and CUDA_VISIBLE_DEVICES from the
# environment reach every rank. SIGUSR1 sent to this script (it becomes
# mpirun) is forwarded to the ranks: they finish the step, save a checkpoint
# and exit with status 3; the same command resumes. The exit status is
# muse-train's (docs/cluster.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MUSE_BIN:-$root/build/bin}
[[ -x $bin/muse-train ]] || { echo "error: $bin/muse-train not found (build first, or set MUSE_BIN)" >&2; exit 2; }

if [[ -z ${NP:-} ]]; then
  if [[ -n ${HOSTFILE:-} ]]; then
    NP=$(awk '/slots=/ { sub(/.*slots=/, ""); n += $1 } END { print n + 0 }' "$HOSTFILE")
  elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    NP=$(nvidia-smi -L | wc -l)
  else
    NP=2
  fi
fi
args=(-np "$NP" --bind-to none)
[[ -n ${HOSTFILE:-} ]] && args+=(--hostfile "$HOSTFILE")
# More ranks than cores is fine for CPU runs (each rank gets a share).
((NP > $(nproc))) && args+=(--oversubscribe)
for var in $(compgen -e); do
  [[ $var =~ ^(NCCL_|MUSE_|WANDB_) || $var == OMP_NUM_THREADS || $var == CUDA_VISIBLE_DEVICES ]] &&
    args+=(-x "$var")
done
read -ra extra <<<"${MPIRUN_ARGS:-}"
profile=()
if [[ -n ${NSYS:-} ]]; then
  mkdir -p "$NSYS"
  # %q{VAR} is expanded by nsys in each rank's environment.
  profile=(nsys profile --trace=cuda,nvtx,mpi,osrt --mpi-impl=openmpi --force-overwrite=true
    "--output=$NSYS/rank%q{OMPI_COMM_WORLD_RANK}")
  [[ -n ${NSYS_STEP:-} ]] && profile+=(--capture-range=nvtx "--nvtx-capture=step $NSYS_STEP"
    --capture-range-end=stop --env-var=NSYS_NVTX_PROFILER_REGISTER_ONLY=0)
fi
exec mpirun "${args[@]}" "${extra[@]}" "${profile[@]}" "$bin/muse-train" "$@"
