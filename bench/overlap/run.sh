#!/usr/bin/env bash
# FSDP communication/compute overlap on the CPU: trainer.prefetch 0 vs 1 vs 2
# on 2 ranks, interleaved. Writes $RESULTS_DIR/overlap.json.
#
#   RESULTS_DIR (default: a temp dir)   REPS (default 2)
#   BUILD_DIR (default build)           NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare muse-train
"$py" bench/overlap/bench.py --muse "$build_dir/bin/muse-train" \
  --results "$results" --reps "${REPS:-2}"
