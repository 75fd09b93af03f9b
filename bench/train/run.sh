#!/usr/bin/env bash
# Pretraining throughput side by side: muse-train's loop (1 rank, default
# recompute and no-recompute; 2 ranks under mpirun) against the same model and
# batch in PyTorch eager from the same torch wheel, interleaved run by run.
# Writes docs/performance.md.
#
#   REPS (default 3)   THREADS (default LibTorch's, one per physical core;
#                                comma-separated for several, e.g. 2,1)
#   RANKS (default 2)  PRESETS (default tiny,small)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${BUILD_DIR:-build}"
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  BUILD_DIR="$build_dir" bash scripts/build.sh muse-train >/dev/null
fi
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
"$MUSE_VENV/bin/python" bench/train/bench.py --muse "$build_dir/bin/muse-train" \
  --out docs/performance.md --reps "${REPS:-3}" ${THREADS:+--threads "$THREADS"} \
  --ranks "${RANKS:-2}" --presets "${PRESETS:-tiny,small}"
