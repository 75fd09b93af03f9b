#!/usr/bin/env bash
# H100 throughput estimate (not a measurement: this machine has no GPU): the
# planner's FLOPs per token and memory plan from `muse-train --dry-run` for the
# 1b and 8b presets, against the H100 peak at the MFU that torchtitan and
# llm.c published. Writes $RESULTS_DIR/h100.json and prints its Markdown.
#
#   RESULTS_DIR (default: a temp dir)   BUILD_DIR (default build)
#   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare muse-train
"$py" bench/h100/estimate.py --muse "$build_dir/bin/muse-train" \
  --results-dir "$results"
