#!/usr/bin/env bash
# Contemplating mode on SmolLM2-135M-Instruct (docs/results.md, "Contemplating
# mode on SmolLM2"): trains the aggregator of configs/smollm2/aggregate.yaml
# over K=4 candidates of its frozen solver (aggregate.solver, the compressed
# model scripts/smollm2-rl.sh makes), then evaluates it:
#   * heldout-k4: on every held-out problem of data/chat/heldout.jsonl
#     (PROBLEMS), one sample, the solver's greedy answer, majority@4 and the
#     trained aggregator@4 over the same candidates: the target's comparison;
#     heldout-k4-seed1 ... repeat it over other candidate sets (--seed), which
#     the paired comparisons pool (SETS);
#   * on the first SUBSET of those problems, one thread each, two at a time:
#     untrained-k4 (the aggregator's starting model, init_from, reading the
#     same candidates), trained-k4 with R = 1, 2 refinement rounds by the
#     solver, trained-k2 and trained-k8 (their own candidates: the same
#     seed, but K per problem changes how the samples fall into batches).
# Finished steps are skipped.
#
#   scripts/smollm2-contemplate.sh [OUT_DIR]    (default runs/smollm2/contemplate)
#
# OUT_DIR gets each evaluation's records (NAME.jsonl), per-problem records
# (NAME.answers.jsonl) and log; heldout/contemplate.md/.png (the heldout-k4
# table with the paired comparisons, and plot); heldout/paired.md (the
# comparisons pooled over the SETS candidate sets); metrics.jsonl
# (the subset's evaluations), contemplate.md/.png (scripts/report_contemplate.py)
# and refine.md/.png (scripts/report_inference.py).
#
# Environment:
#   PROBLEMS         held-out problems of heldout-k4 (default 0: all 2,140)
#   SETS             candidate sets per problem of the heldout-k4 evaluations, one
#                    seed each (default 2)
#   SUBSET           held-out problems of the other evaluations (default 100)
#   THREADS          threads of the training and of heldout-k4 (default 2)
#   MUSE_BIN         directory holding muse-train and muse-generate (default build/bin)
#   MUSE_PYTHON      python with matplotlib (default the project's venv)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/smollm2/contemplate}
bin=${MUSE_BIN:-build/bin}
py=${MUSE_PYTHON:-$HOME/.cache/muse-train/venv/bin/python}
problems=${PROBLEMS:-0}
subset=${SUBSET:-100}
threads=${THREADS:-2}
sets=${SETS:-2}
config=configs/smollm2/aggregate.yaml
run=runs/smollm2/smollm2-aggregate
heldout=data/chat/heldout.jsonl
for setting in "PROBLEMS=$problems" "SUBSET=$subset" "THREADS=$threads" "SETS=$sets"; do
  [[ ${setting#*=} =~ ^[0-9]+$ ]] ||
    { echo "error: $setting: not a non-negative integer" >&2; exit 2; }
done
((subset > 0 && threads > 0 && sets > 0)) ||
  { echo "error: SUBSET, THREADS and SETS must be positive" >&2; exit 2; }

# config_value SECTION KEY: KEY's value in SECTION of $config (the first line
# "  KEY: VALUE" after "SECTION:", a double-quoted value whole); SECTION "."
# for a top-level key.
config_value() {
  local range="/^$1:/,/^[a-z]/"
  [[ $1 == . ]] && range=""
  sed -n -e "${range}s/^ *$2: *\(\"[^\"]*\"\).*/\1/p" -e "t" \
    -e "${range}s/^ *$2: *\([^ #]*\).*/\1/p" "$config" | head -1
}
solver=$(config_value aggregate solver)
start=$(config_value . init_from)
[[ -f $solver/LATEST ]] ||
  { echo "error: $solver: no checkpoint (scripts/smollm2-rl.sh makes it)" >&2; exit 2; }
[[ -f $heldout ]] ||
  { echo "error: $heldout: missing (python3 scripts/make_chat_tasks.py data/chat)" >&2; exit 2; }
mkdir -p "$out/heldout"

steps=$(config_value trainer steps)
if [[ $(cat "$run/LATEST" 2>/dev/null) == step_$(printf %08d "$steps") ]]; then
  echo "aggregator: trained"
else
  echo "aggregator: training (log $out/train.log)"
  OMP_NUM_THREADS=$threads "$bin/muse-train" --config "$config" >>"$out/train.log" 2>&1 ||
    { echo "error: aggregator training failed (see $out/train.log)" >&2; exit 1; }
fi

# The trained aggregator reads its settings from its run's config; its
# untrained start gets the same ones with --set.
settings=(--chat --prompts "$heldout" --max-new-tokens "$(config_value eval max_new_tokens)")
untrained=(--checkpoint "$start" --solver "$solver"
  --set "rewards.correctness.extract=$(config_value rewards extract)" --set data.tokens.think_begin=
  --set data.tokens.think_end=)
for key in candidates candidate_max_tokens solver_max_new_tokens solver_temperature template; do
  untrained+=(--set "aggregate.$key=$(config_value aggregate "$key")")
done

evaluate() {  # evaluate NAME THREADS ARG...
  local name=$1 n=$2
  shift 2
  if [[ -f $out/$name.jsonl ]]; then
    echo "$name: evaluated"
    return
  fi
  echo "$name: evaluating (log $out/$name.log)"
  rm -f "$out/$name.jsonl.tmp"
  OMP_NUM_THREADS=$n "$bin/muse-generate" "${settings[@]}" "$@" --metrics "$out/$name.jsonl.tmp" \
    --answers "$out/$name.answers.jsonl" >"$out/$name.log" 2>&1 || { echo "error: $name: evaluation failed (see $out/$name.log)" >&2; return 1; }
  mv "$out/$name.jsonl.tmp" "$out/$name.jsonl"
}

limit=()
((problems > 0)) && limit=(--limit "$problems")
evaluate heldout-k4 "$threads" --checkpoint "$run" --contemplate 4 "${limit[@]}"
pooled=(--answers "$out/heldout-k4.answers.jsonl")
for ((seed = 1; seed < sets; ++seed)); do
  evaluate "heldout-k4-seed$seed" "$threads" --checkpoint "$run" --contemplate 4 --seed "$seed" \
    "${limit[@]}"
  pooled+=(--answers "$out/heldout-k4-seed$seed.answers.jsonl")
done

status=0
evaluate untrained-k4 1 "${untrained[@]}" --contemplate 4 --limit "$subset" &
evaluate trained-k4 1 --checkpoint "$run" --contemplate 4 --refine-rounds 2 --limit "$subset" ||
  status=1
wait $! || status=1
evaluate trained-k2 1 --checkpoint "$run" --contemplate 2 --limit "$subset" &
# Eight candidates of 64 tokens do not fit the aggregator's 512 positions;
# eight of 40 do, with the problem and 64 new tokens (the solver's answers
# take about 19).
evaluate trained-k8 1 --checkpoint "$run" --contemplate 8 --set aggregate.candidate_max_tokens=40 \
  --limit "$subset" || status=1
wait $! || status=1
((status == 0)) || exit 1

cp "$out/heldout-k4.jsonl" "$out/heldout/metrics.jsonl"
"$py" scripts/report_contemplate.py --out "$out/heldout" --answers "$out/heldout-k4.answers.jsonl" \
  "$out/heldout"
"$py" scripts/report_contemplate.py "${pooled[@]}" "$out/heldout" |
  sed -n '/^| comparison/,$p' >"$out/heldout/paired.md"
cat "$out/heldout/paired.md"
names=(untrained-k4 trained-k2 trained-k4 trained-k8)
for name in "${names[@]}"; do cat "$out/$name.jsonl"; done >"$out/metrics.jsonl"
"$py" scripts/report_contemplate.py --out "$out" "$out"
"$py" scripts/report_inference.py refine --out "$out/refine.png" "$out/trained-k4.jsonl" >"$out/refine.md"
cat "$out/refine.md"
