#!/usr/bin/env bash
# Thought compression of SmolLM2-135M-Instruct (docs/results.md): makes the
# model directory and the chat tasks, trains every setting, evaluates the
# starting model and each final model on all held-out problems, and writes
# the report. 10 to 70 minutes per run, two runs at a time on 2 cores (one
# compute thread each); a rerun skips what is complete and resumes a run
# that was stopped.
#
#   scripts/smollm2-rl.sh [SETTING ...]
#
# A SETTING is a config name under configs/smollm2/ without "rl-" and
# ".yaml" (control, kimi, linear, dler, dler-staged, kimi-staged),
# optionally with "-seedN" for another seed of it (dler-seed2 runs
# rl-dler.yaml with seed 2); control is always among them. A config whose
# init_from is another setting's run (dler-staged starts from dler,
# kimi-staged from dler-staged) trains after that one, from the run of the
# same seed (dler-staged-seed2 from dler-seed2), and the settings it starts
# from join the list. Default: control kimi-staged kimi-staged-seed2
# kimi-staged-seed3, so control and three seeds of DLER at 48 tokens, DLER
# at 32 and Kimi's stage.
#
# Writes runs/smollm2/smollm2-rl-SETTING (the runs), runs/smollm2/export
# (the headline model as HF and GGUF, checked to answer 20 held-out problems
# with muse-generate's greedy tokens in transformers and llama.cpp), runs/smollm2/eval
# (SETTING.jsonl, the "greedy" record on the 2,140 held-out problems, and
# SETTING.answers.jsonl, one line per problem; "start" is the starting
# model) and runs/smollm2/report (results.md, results.json and the plots).
#
# Environment:
#   MUSE_BIN       directory holding muse-train and muse-generate (default build/bin)
#   MUSE_PYTHON    python with transformers and matplotlib (default the project's venv)
#   MUSE_PARALLEL  runs and evaluations at a time (default 2)
#   MUSE_HEADLINE  the setting reported as the headline and exported (default kimi-staged)
#   MUSE_LLAMA_CPP_PYTHON  python with llama-cpp-python (default its venv in ~/.cache)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MUSE_BIN:-build/bin}
py=${MUSE_PYTHON:-$HOME/.cache/muse-train/venv/bin/python}
parallel=${MUSE_PARALLEL:-2}
headline=${MUSE_HEADLINE:-kimi-staged}
llama_py=${MUSE_LLAMA_CPP_PYTHON:-$HOME/.cache/muse-train/llama-cpp/bin/python}
settings=("$@")
[[ ${#settings[@]} -gt 0 ]] || settings=(control kimi-staged kimi-staged-seed2 kimi-staged-seed3)
runs=runs/smollm2
model=models/SmolLM2-135M-Instruct
[[ " ${settings[*]} " == *" control "* ]] ||
  { echo "error: the settings must include control (the report compares every setting with it)" >&2; exit 2; }
# first_stage SETTING: the run SETTING's config starts from, when that is
# another setting's run (init_from under runs/smollm2), with SETTING's seed.
first_stage() {
  local s=$1 from
  from=$(sed -n "s|^init_from: *\($runs/smollm2-rl-[^ #]*\).*|\1|p" "configs/smollm2/rl-${s%-seed*}.yaml")
  [[ -n $from && $s == *-seed* ]] && from=$from-seed${s##*-seed}
  echo "$from"
}

# The runs a setting starts from are settings too (kimi-staged brings
# dler-staged and dler), so that one name reproduces a whole chain.
for ((i = 0; i < ${#settings[@]}; i++)); do
  s=${settings[i]}
  [[ -f configs/smollm2/rl-${s%-seed*}.yaml ]] ||
    { echo "error: $s: no configs/smollm2/rl-${s%-seed*}.yaml" >&2; exit 2; }
  from=$(first_stage "$s")
  from=${from#"$runs"/smollm2-rl-}
  [[ -z $from || " ${settings[*]} " == *" $from "* ]] || settings+=("$from")
done
mkdir -p "$runs/eval"
# The model directory: a link to the one scripts/smollm2.py keeps in ~/.cache.
if [[ ! -e $model/config.json ]]; then
  cached=$("$py" scripts/smollm2.py)
  mkdir -p "$(dirname "$model")"
  ln -sfn "$cached" "$model"
fi
[[ -f data/chat/heldout-eval.jsonl ]] || "$py" scripts/make_chat_tasks.py data/chat

# run_parallel FUNCTION ARG...: FUNCTION ARG for each ARG, $parallel at a
# time; fails when any of them failed.
run_parallel() {
  local fn=$1 pids=() status=0
  shift
  for arg in "$@"; do
    while [[ $(jobs -rp | wc -l) -ge $parallel ]]; do sleep 1; done
    "$fn" "$arg" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return $status
}

train() {  # train SETTING
  local s=$1 config=configs/smollm2/rl-${1%-seed*}.yaml sets=() from
  [[ $s == *-seed* ]] && sets=(--set "seed=${s##*-seed}")
  local steps
  steps=$(sed -n 's/^  steps: \([0-9]*\).*/\1/p' "$config")
  if [[ $(cat "$runs/smollm2-rl-$s/LATEST" 2>/dev/null) == step_$(printf %08d "$steps") ]]; then
    echo "$s: trained"
    return
  fi
  from=$(first_stage "$s")
  if [[ -n $from ]]; then
    # (A run stopped part way resumes from its own checkpoint instead.)
    [[ -f $from/LATEST || -f $runs/smollm2-rl-$s/LATEST ]] ||
      { echo "error: $s: no run $from to start from" >&2; return 1; }
    sets+=(--set "init_from=$from")
  fi
  echo "$s: training (log $runs/$s.log)"
  OMP_NUM_THREADS=1 "$bin/muse-train" --config "$config" "${sets[@]}" --set run.dir="$runs" \
    --set run.name="smollm2-rl-$s" >>"$runs/$s.log" 2>&1 ||
    { echo "error: $s: training failed (see $runs/$s.log)" >&2; return 1; }
}

evaluate() {  # evaluate SETTING (start: the starting model)
  local out=$runs/eval/$1 checkpoint=$runs/smollm2-rl-$1
  [[ $1 == start ]] && checkpoint=hf:$model
  if [[ -f $out.jsonl ]]; then
    echo "$1: evaluated"
    return
  fi
  rm -f "$out.jsonl.tmp"
  OMP_NUM_THREADS=1 "$bin/muse-generate" --checkpoint "$checkpoint" --chat \
    --prompts data/chat/heldout.jsonl --max-new-tokens 128 --set 'rewards.correctness.extract=[last_number]' \
    --metrics "$out.jsonl.tmp" --answers "$out.answers.jsonl" >"$out.log" 2>&1 ||
    { echo "error: $1: evaluation failed (see $out.log)" >&2; return 1; }
  mv "$out.jsonl.tmp" "$out.jsonl"
  tail -1 "$out.log"
}

# stage SETTING: 1 for a run from SmolLM2, 2 for one from a first stage's
# run, and so on (kimi-staged: 3, from dler-staged, from dler).
stage() {
  local from
  from=$(first_stage "$1")
  if [[ -z $from ]]; then echo 1; else echo $(($(stage "${from#"$runs"/smollm2-rl-}") + 1)); fi
}

# Each stage after the one it starts from, the settings of a stage side by side.
declare -A by_stage=()
for s in "${settings[@]}"; do
  n=$(stage "$s")
  by_stage[$n]+=" $s"
done
for n in $(printf '%s\n' "${!by_stage[@]}" | sort -n); do
  read -ra stage_settings <<<"${by_stage[$n]}"
  run_parallel train "${stage_settings[@]}"
done
run_parallel evaluate start "${settings[@]}"
"$py" scripts/report_smollm2.py "$runs/eval" --tasks data/chat/heldout.jsonl --out "$runs/report" \
  --json "$runs/report/results.json" --headline "$headline"

echo "== the $headline model exported, answering in transformers and llama.cpp"
out=$runs/export
mkdir -p "$out"
"$bin/muse-export" --checkpoint "$runs/smollm2-rl-$headline" --format hf --out "$out/hf" >/dev/null
"$bin/muse-export" --checkpoint "$runs/smollm2-rl-$headline" --format gguf --out "$out/model.gguf" \
  >/dev/null
"$bin/muse-generate" --checkpoint "$runs/smollm2-rl-$headline" --prompts data/chat/heldout.jsonl \
  --limit 20 --max-new-tokens 128 --json >"$out/answers.jsonl"
"$py" scripts/check_export_answers.py --hf "$out/hf" "$out/answers.jsonl" 2>/dev/null | tail -1
"$llama_py" scripts/check_export_answers.py --gguf "$out/model.gguf" "$out/answers.jsonl" | tail -1
