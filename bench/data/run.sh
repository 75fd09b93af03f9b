#!/usr/bin/env bash
# The pretraining data loader's batches/s against the trainer's consumption
# (1 / step time of short muse-train runs on the same data and batch shape),
# interleaved. Writes $RESULTS_DIR/data.json and prints its Markdown.
#
#   REPS (default 2; the small preset's trainer runs once)
#   PRESETS (default tiny,small)   THREADS (default one per core)
#   RESULTS_DIR (default: a temporary directory)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binaries
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare data_bench muse-train
"$py" bench/data/bench.py --data-bench "$build_dir/bin/data_bench" \
  --muse "$build_dir/bin/muse-train" --out "$results/data.json" --reps "${REPS:-2}" \
  --presets "${PRESETS:-tiny,small}" ${THREADS:+--threads "$THREADS"}
