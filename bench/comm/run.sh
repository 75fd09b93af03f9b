#!/usr/bin/env bash
# Collectives side by side: muse-train's MPI communicator against
# torch.distributed's gloo backend from the same torch wheel, same sizes, same
# rank count, in one run. Writes docs/bench-comm.md.
#
#   RANKS (default 2)   REPS (default 20)   MAX_MIB (default 64)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/build.sh comm_bench >/dev/null
py="${MUSE_VENV:-$HOME/.cache/muse-train/venv}/bin/python"
ranks=${RANKS:-2} reps=${REPS:-20} max_mib=${MAX_MIB:-64}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np "$ranks" --oversubscribe --bind-to none build/bin/comm_bench \
  --reps "$reps" --max-mib "$max_mib" >"$out/muse.jsonl"
"$py" bench/comm/torch_gloo_bench.py --ranks "$ranks" --reps "$reps" \
  --max-mib "$max_mib" >"$out/gloo.jsonl"
"$py" bench/comm/report.py "$out/muse.jsonl" "$out/gloo.jsonl" "$ranks" \
  >docs/bench-comm.md
cat docs/bench-comm.md
