#!/usr/bin/env bash
# Training step side by side: muse-train in one process (no recompute, its
# default recompute, and no recompute with its products on MKL) against the
# same model and batch in PyTorch eager, torch.compile and transformers'
# LlamaForCausalLM (from muse-export's HF directory, text only), interleaved
# run by run, with the fp32 matmul peak
# measured in the same run for MFU. Writes $RESULTS_DIR/train.json and prints
# its Markdown section.
#
#   REPS (default 2)   THREADS (default LibTorch's, one per physical core;
#                               comma-separated for several, e.g. 2,1)
#   PRESETS (default tiny,small,smollm2)   OVERHEADS=1 adds overheads.py's table
#   RESULTS_DIR (default a new temporary directory)
#   SAVE=FILE also keeps the raw measurements (bench.py --load FILE renders them)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binaries
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare muse-train muse-export
extra=()
[[ "${OVERHEADS:-0}" == 1 ]] && extra+=(--overheads)
[[ -n "${SAVE:-}" ]] && extra+=(--save "$SAVE")
"$py" bench/train/bench.py --muse "$build_dir/bin/muse-train" \
  --export "$build_dir/bin/muse-export" --json "$results/train.json" \
  --reps "${REPS:-2}" ${THREADS:+--threads "$THREADS"} --presets "${PRESETS:-tiny,small,smollm2}" \
  "${extra[@]}"
echo "wrote $results/train.json" >&2
