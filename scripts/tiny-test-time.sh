#!/usr/bin/env bash
# The tiny test-time compute results of docs/results.md: adaptive
# re-expansion of the thought-compressed model (runs/tiny-rl) and refinement
# rounds before the trained aggregator (runs/tiny-aggregate), both made by
# scripts/demo.sh. About 5 minutes on 2 idle cores.
#
#   scripts/tiny-test-time.sh [OUT_DIR]     (default runs/tiny-test-time)
#
# OUT_DIR gets the records (*.jsonl), the tables (*.md) and the plots
# adaptive.png and refine.png.
#
# Adaptive thresholds are calibrated on the first 600 training problems
# (adaptive-train.jsonl) and evaluated on the 600 held-out ones
# (adaptive.jsonl); disagreement samples 4 answers per pass, so it has its
# own fixed-budget curve (adaptive-disagreement.jsonl). Refinement is
# evaluated with K = 4 and R = 0, 1, 2, revised by the aggregator in its own
# training template (refine-aggregator.jsonl, RSA's step) and by the solver
# in the default template (refine-solver.jsonl).
#
# Environment:
#   MUSE_BIN         directory holding muse-generate (default build/bin)
#   MUSE_PYTHON      python with matplotlib (default the project's venv)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/tiny-test-time}
bin=${MUSE_BIN:-build/bin}
py=${MUSE_PYTHON:-$HOME/.cache/muse-train/venv/bin/python}
for run in runs/tiny-rl runs/tiny-aggregate; do
  [[ -f $run/LATEST ]] || { echo "error: $run: no checkpoint (scripts/demo.sh makes it)" >&2; exit 2; }
done
mkdir -p "$out"
rm -f "$out"/*.jsonl
train=(--prompts data/tiny/reasoning_train.jsonl --limit 600)
heldout=(--prompts data/tiny/reasoning_heldout.jsonl)
budgets=(--set "adaptive.budgets=[4,8,16,64]")

adaptive() {  # adaptive FILE PROMPTS... SETTINGS...
  local file=$1
  shift
  "$bin/muse-generate" --checkpoint runs/tiny-rl --adaptive "${budgets[@]}" --metrics "$out/$file" "$@" |
    grep "^adaptive"
}
echo "== adaptive re-expansion: thresholds on training problems"
for t in -0.1 -0.2 -0.3 -0.5 -1.0; do
  adaptive adaptive-train.jsonl "${train[@]}" --set adaptive.logprob_threshold=$t
done
for t in 0.3 0.5 1.0; do
  adaptive adaptive-train.jsonl "${train[@]}" --set adaptive.signal=entropy --set adaptive.entropy_threshold=$t
done
echo "== adaptive re-expansion: held-out problems"
for t in -0.1 -0.2 -0.3 -0.5 -1.0; do
  adaptive adaptive.jsonl "${heldout[@]}" --set adaptive.logprob_threshold=$t
done
for t in 0.3 0.5 1.0; do
  adaptive adaptive.jsonl "${heldout[@]}" --set adaptive.signal=entropy --set adaptive.entropy_threshold=$t
done
adaptive adaptive.jsonl "${heldout[@]}" --set adaptive.logprob_threshold=-0.1 --set adaptive.expand=rerun
adaptive adaptive-disagreement.jsonl "${heldout[@]}" --set adaptive.signal=disagreement \
  --set adaptive.samples=4 --set adaptive.temperature=0.7 --set adaptive.disagreement_threshold=0.3

echo "== refinement rounds: K = 4, R = 0, 1, 2"
"$bin/muse-generate" --checkpoint runs/tiny-aggregate --contemplate 4 --refine-rounds 2 "${heldout[@]}" \
  --metrics "$out/refine-aggregator.jsonl" --set aggregate.refine_by=aggregator \
  --set 'aggregate.refine_template="Proposed answers:{solutions}\n{problem}"' >/dev/null
"$bin/muse-generate" --checkpoint runs/tiny-aggregate --contemplate 4 --refine-rounds 2 "${heldout[@]}" \
  --metrics "$out/refine-solver.jsonl" >/dev/null

report="$py scripts/report_inference.py"
$report adaptive "$out/adaptive.jsonl" --out "$out/adaptive.png" | tee "$out/adaptive.md"
$report adaptive "$out/adaptive-train.jsonl" | tee "$out/adaptive-train.md"
$report adaptive "$out/adaptive-disagreement.jsonl" | tee "$out/adaptive-disagreement.md"
$report refine "$out/refine-aggregator.jsonl" --out "$out/refine.png" | tee "$out/refine-aggregator.md"
$report refine "$out/refine-solver.jsonl" | tee "$out/refine-solver.md"
