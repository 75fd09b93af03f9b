#!/usr/bin/env bash
# FSDP communication/compute overlap on the CPU: trainer.prefetch 0 vs 1 vs 2
# on 2 ranks, interleaved. Writes $RESULTS_DIR/overlap.json.
#
#   RESULTS_DIR (default: a temp dir)   REPS (default 2)
#   BUILD_DIR (default build)           NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${BUILD_DIR:-build}"
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  BUILD_DIR="$build_dir" bash scripts/build.sh muse-train >/dev/null
fi
results="${RESULTS_DIR:-$(mktemp -d)}"
mkdir -p "$results"
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
"$MUSE_VENV/bin/python" bench/overlap/bench.py --muse "$build_dir/bin/muse-train" \
  --results "$results" --reps "${REPS:-2}"
