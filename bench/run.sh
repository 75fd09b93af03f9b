#!/usr/bin/env bash
# Every benchmark of bench/, each side by side with its baseline in the same
# run, then docs/performance.md (and docs/performance.json) from their results.
# The whole run takes about 25 minutes on a 2-core machine at REPS=3.
#
#   ONLY=train,fsdp,...   some benchmarks (default: all of bench/report.py's ORDER)
#   NO_BUILD=1            use the binaries in $BUILD_DIR/bin (default build)
#   RESULTS_DIR=DIR       keep the JSON results there (default: a temp dir)
# Each benchmark's own knobs (REPS, THREADS, ...) are in its run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR="${BUILD_DIR:-build}"
benches="${ONLY:-train,fsdp,overlap,rollout,checkpoint,data,tokenizer,loss,h100}"
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  bash scripts/build.sh muse-train muse-export muse-data rollout_bench checkpoint_bench \
    data_bench tokenizer_bench loss_bench >/dev/null
fi
results="${RESULTS_DIR:-$(mktemp -d)}"
mkdir -p "$results"
start=$(date +%s)
failed=()
for b in ${benches//,/ }; do
  echo "== bench/$b ($(date +%T))" >&2
  if ! RESULTS_DIR="$results" NO_BUILD=1 bash "bench/$b/run.sh" >"$results/$b.log" 2>&1; then
    echo "error: bench/$b/run.sh failed; its output is in $results/$b.log" >&2
    tail -5 "$results/$b.log" >&2
    failed+=("$b")
  fi
done
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
"$MUSE_VENV/bin/python" bench/report.py --results "$results" --out docs/performance.md \
  --invocation "${ONLY:+ONLY=$ONLY }${PRESETS:+PRESETS=$PRESETS }${REPS:+REPS=$REPS }bench/run.sh" \
  --seconds $(($(date +%s) - start))
echo "docs/performance.md written; results in $results" >&2
((${#failed[@]} == 0)) || { echo "error: failed: ${failed[*]}" >&2; exit 1; }
