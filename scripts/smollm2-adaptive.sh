#!/usr/bin/env bash
# Adaptive re-expansion of the thought-compressed SmolLM2 (docs/results.md):
# the model answers with at most 16 response tokens, and where the answer's
# mean log-probability says it is unsure, writes on to 32 and then 128
# (docs/inference.md, "Models without reasoning markers"). The threshold is
# calibrated on training problems only; the held-out problems then compare it
# with the fixed budgets.
#
#   scripts/smollm2-adaptive.sh [RUN_DIR]   (default runs/smollm2/smollm2-rl-dler)
#
# Writes runs/smollm2/adaptive/: train.jsonl (fixed_budget@N and adaptive
# records per threshold tried on the first $MUSE_CALIBRATE training
# problems, default 100), heldout.jsonl (the chosen threshold on the first
# $MUSE_HELDOUT held-out problems, default 280) and choice.json.
#
# The chosen threshold is the one that expands least among those whose
# training accuracy is within one standard error of the largest fixed
# budget's: the cheapest policy that loses nothing measurable.
#
# Environment: MUSE_BIN (default build/bin), MUSE_CALIBRATE, MUSE_HELDOUT.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/smollm2/smollm2-rl-dler}
bin=${MUSE_BIN:-build/bin}
out=runs/smollm2/adaptive
[[ -f $run/LATEST ]] || { echo "error: $run: no checkpoint (scripts/smollm2-rl.sh makes it)" >&2; exit 2; }
mkdir -p "$out"
budgets='adaptive.budgets=[16,32,128]'
adaptive() {  # adaptive RECORDS PROMPTS LIMIT THRESHOLD
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$bin/muse-generate" --checkpoint "$run" --chat \
    --prompts "$2" --limit "$3" --adaptive --set "$budgets" \
    --set "adaptive.logprob_threshold=$4" --metrics "$1" | grep "^adaptive"
}
rm -f "$out/train.jsonl" "$out/heldout.jsonl"
echo "== calibration on the first ${MUSE_CALIBRATE:-100} training problems"
for t in -0.05 -0.3 -1.0; do
  echo -n "threshold $t: "
  adaptive "$out/train.jsonl" data/chat/train.jsonl "${MUSE_CALIBRATE:-100}" "$t"
done
threshold=$(python3 - "$out/train.jsonl" "$out/choice.json" <<'PY'
import json, math, sys
records = [json.loads(line) for line in open(sys.argv[1])]
fixed = [r for r in records if r["eval"].startswith("fixed_budget@")]
largest = max(fixed, key=lambda r: r["budget"])
n, p = largest["prompts"], largest["accuracy"]
floor = p - math.sqrt(p * (1 - p) / n)
tried = [r for r in records if r["eval"] == "adaptive"]
good = [r for r in tried if r["accuracy"] >= floor] or [max(tried, key=lambda r: r["accuracy"])]
best = min(good, key=lambda r: (r["think_tokens_mean"], -r["threshold"]))
choice = {"logprob_threshold": -best["threshold"], "train_accuracy": best["accuracy"],
          "train_tokens": best["think_tokens_mean"], "largest_budget_accuracy": p,
          "floor": floor, "problems": n}
json.dump(choice, open(sys.argv[2], "w"), indent=2)
print(choice["logprob_threshold"])
PY
)
echo "== held-out: fixed budgets and adaptive at the calibrated threshold $threshold"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$bin/muse-generate" --checkpoint "$run" --chat \
  --prompts data/chat/heldout.jsonl --limit "${MUSE_HELDOUT:-280}" --adaptive --set "$budgets" \
  --set "adaptive.logprob_threshold=$threshold" --metrics "$out/heldout.jsonl"
