#!/usr/bin/env bash
# Distributed step side by side: muse-train's FSDP on 2 ranks under mpirun
# against PyTorch FSDP2 (fully_shard, gloo, CPU) on 2 ranks, same model,
# batch and optimizer step, in muse-train's default mode and its
# keep-gathered, no-recompute mode, interleaved run by run. Writes
# $RESULTS_DIR/fsdp.json and prints its Markdown.
#
#   RESULTS_DIR (default: a temp dir)   REPS (default 2; small runs once)
#   PRESETS (default tiny,small)        BUILD_DIR (default build)
#   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare muse-train
"$py" bench/fsdp/bench.py --muse "$build_dir/bin/muse-train" \
  --results-dir "$results" --reps "${REPS:-2}" --presets "${PRESETS:-tiny,small}"
