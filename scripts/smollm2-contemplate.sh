#!/usr/bin/env bash
# Contemplating mode on SmolLM2-135M-Instruct (docs/results.md, "Contemplating
# mode on SmolLM2"): trains the aggregator of configs/smollm2/aggregate.yaml
# over K=4 candidates of the thought-compressed solver
# (runs/smollm2/smollm2-rl-dler, made by scripts/smollm2-rl.sh), then
# evaluates on the first PROBLEMS held-out problems of data/chat/heldout-eval.jsonl:
#   * untrained-k4: SmolLM2 itself as the aggregator over K=4, with R = 1, 2
#     refinement rounds by the solver (single, greedy, majority@4,
#     majority@4+refine@R, aggregator_untrained@4 and its +refine@R);
#   * trained-k2, trained-k4, trained-k8: the trained aggregator over K
#     candidates (trained-k4 samples the same candidates as untrained-k4:
#     same seed and K).
# Two evaluations run at a time, one thread each. Finished steps are skipped.
#
#   scripts/smollm2-contemplate.sh [OUT_DIR]    (default runs/smollm2/contemplate)
#
# OUT_DIR gets each evaluation's records (NAME.jsonl) and log, metrics.jsonl
# (all of them, in the order above), contemplate.md/.png
# (scripts/report_contemplate.py) and refine.md/.png (report_inference.py).
#
# Environment:
#   PROBLEMS         held-out problems evaluated (default 200)
#   MUSE_BIN         directory holding muse-train and muse-generate (default build/bin)
#   MUSE_PYTHON      python with matplotlib (default the project's venv)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/smollm2/contemplate}
bin=${MUSE_BIN:-build/bin}
py=${MUSE_PYTHON:-$HOME/.cache/muse-train/venv/bin/python}
problems=${PROBLEMS:-200}
solver=runs/smollm2/smollm2-rl-dler
run=runs/smollm2/smollm2-aggregate
config=configs/smollm2/aggregate.yaml
[[ -f $solver/LATEST ]] ||
  { echo "error: $solver: no checkpoint (scripts/smollm2-rl.sh makes it)" >&2; exit 2; }
[[ $problems =~ ^[1-9][0-9]*$ ]] || { echo "error: PROBLEMS=$problems: not a positive integer" >&2; exit 2; }
mkdir -p "$out"

# config_value KEY: KEY's value in $config (the first line "  ...KEY: VALUE").
config_value() {
  sed -n "s/^ *$1: *\([^ #]*\).*/\1/p" "$config" | head -1
}
steps=$(config_value steps)
if [[ $(cat "$run/LATEST" 2>/dev/null) == step_$(printf %08d "$steps") ]]; then
  echo "aggregator: trained"
else
  echo "aggregator: training (log $out/train.log)"
  OMP_NUM_THREADS=1 "$bin/muse-train" --config "$config" >>"$out/train.log" 2>&1 ||
    { echo "error: aggregator training failed (see $out/train.log)" >&2; exit 1; }
fi

# The trained aggregator reads its settings from its run's config; the
# untrained one (SmolLM2 itself) gets the same ones with --set.
settings=(--chat --prompts data/chat/heldout-eval.jsonl --limit "$problems" --max-new-tokens 128)
untrained=(--checkpoint hf:models/SmolLM2-135M-Instruct --solver "$solver"
  --set "rewards.correctness.extract=$(config_value extract)" --set data.tokens.think_begin=
  --set data.tokens.think_end=)
for key in candidates candidate_max_tokens solver_max_new_tokens solver_temperature; do
  untrained+=(--set "aggregate.$key=$(config_value "$key")")
done

evaluate() {  # evaluate NAME ARG...
  local name=$1
  shift
  if [[ -f $out/$name.jsonl ]]; then
    echo "$name: evaluated"
    return
  fi
  echo "$name: evaluating (log $out/$name.log)"
  rm -f "$out/$name.jsonl.tmp"
  OMP_NUM_THREADS=1 "$bin/muse-generate" "${settings[@]}" "$@" --metrics "$out/$name.jsonl.tmp" \
    >"$out/$name.log" 2>&1 || { echo "error: $name: evaluation failed (see $out/$name.log)" >&2; return 1; }
  mv "$out/$name.jsonl.tmp" "$out/$name.jsonl"
}

status=0
evaluate untrained-k4 "${untrained[@]}" --contemplate 4 --refine-rounds 2 &
evaluate trained-k4 --checkpoint "$run" --contemplate 4 || status=1
wait $! || status=1
evaluate trained-k2 --checkpoint "$run" --contemplate 2 &
evaluate trained-k8 --checkpoint "$run" --contemplate 8 || status=1
wait $! || status=1
((status == 0)) || exit 1

names=(untrained-k4 trained-k2 trained-k4 trained-k8)
for name in "${names[@]}"; do cat "$out/$name.jsonl"; done >"$out/metrics.jsonl"
"$py" scripts/report_contemplate.py --out "$out" "$out"
"$py" scripts/report_inference.py refine --out "$out/refine.png" "$out/untrained-k4.jsonl" >"$out/refine.md"
cat "$out/refine.md"
