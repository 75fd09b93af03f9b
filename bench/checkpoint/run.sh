#!/usr/bin/env bash
# Checkpoint save and load throughput: muse-train's save_checkpoint and resume
# of the trainer's state against dd writing and reading the same bytes in the
# same directory, interleaved. Writes $RESULTS_DIR/checkpoint.json and prints
# its Markdown.
#
#   REPS (default 5)   PRESET (default small)   LAYERS (default: the preset's)
#   CKPT_DIR (default: a temporary directory under ${TMPDIR:-/tmp})
#   RESULTS_DIR (default: a temporary directory)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare checkpoint_bench
parent="${CKPT_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "$parent"
work=$(mktemp -d -p "$parent" checkpoint-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$py" bench/checkpoint/bench.py --bench "$build_dir/bin/checkpoint_bench" \
  --dir "$work/d" --out "$results/checkpoint.json" --reps "${REPS:-5}" \
  --preset "${PRESET:-small}" ${LAYERS:+--layers "$LAYERS"}
