#!/usr/bin/env bash
# Every config under configs/ (found anew each run) planned for the world
# size it declares (plan.world_size) with muse-train --plan: each must exit 0
# with no error line. A config that starts from a Hugging Face directory
# absent here (init_from: hf:.../NAME) is planned from a stand-in of that
# model: tests/e2e/plan_models/NAME holds its published config.json and the
# special tokens of its tokenizer_config.json; the test adds a small tokenizer.json
# with the same special tokens and the model's chat template from
# tests/data/chat_templates/*-NAME.jinja. Inputs on cluster paths (data,
# prompts) are warnings of the plan, not errors.
#   configs_plan_test.sh BIN_DIR
set -euo pipefail
bin=$1
py=${MUSE_VENV_PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# standin NAME: a directory holding NAME's stand-in (built once).
standin() {
  local name=$1 dir=$tmp/models/$1
  if [[ ! -d $dir ]]; then
    [[ -f tests/e2e/plan_models/$name/config.json ]] || return 1
    local templates=(tests/data/chat_templates/*-"$name".jinja)
    [[ -f ${templates[0]} ]] || return 1
    mkdir -p "$dir"
    cp tests/e2e/plan_models/"$name"/*.json "$dir/"
    cp "${templates[0]}" "$dir/chat_template.jinja"
    "$py" - "$dir" >/dev/null <<'PY'
import json, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
out = sys.argv[1]
config = json.load(open(f"{out}/tokenizer_config.json"))
specials = [config["pad_token"]] + config["additional_special_tokens"]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
text = ["You are a helpful assistant.", "What is 6 + 4? Put the answer in \\boxed{}.",
        "The answer is \\boxed{10}.", "system user assistant"]
tokenizer.train_from_iterator(text, trainers.BpeTrainer(
    vocab_size=400, special_tokens=specials,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tokenizer.save(f"{out}/tokenizer.json")
PY
    [[ -f $dir/tokenizer.json ]] || return 1
  fi
  echo "$dir"
}

configs=$(find configs -name '*.yaml' | sort)
[[ -n $configs ]] || fail "no config under configs/"
for config in $configs; do
  args=()
  init_from=$("$py" -c 'import sys, yaml; print((yaml.safe_load(open(sys.argv[1])) or {}).get("init_from") or "")' "$config")
  if [[ $init_from == hf:* && ! -e ${init_from#hf:}/config.json ]]; then
    name=$(basename "${init_from#hf:}")
    dir=$(standin "$name") || {
      fail "$config: no stand-in for $init_from (tests/e2e/plan_models/$name, tests/data/chat_templates/*-$name.jinja and the tokenizers package are needed)"
      continue
    }
    args=(--set init_from="hf:$dir")
  fi
  status=0
  "$bin/muse-train" --config "$config" --plan "${args[@]}" >"$tmp/out" 2>"$tmp/err" || status=$?
  if [[ $status != 0 ]] || grep -q '^error: ' "$tmp/err"; then
    fail "$config: plan exited $status: $(cat "$tmp/err")"
    continue
  fi
  grep -q "^plan: the config would start on [0-9]* rank(s)" "$tmp/out" ||
    fail "$config: no verdict in: $(cat "$tmp/out")"
  echo "$config: $(grep '^plan: the config' "$tmp/out")"
done

# The cluster RL config takes its architecture from the model's config.json.
out=$("$bin/muse-train" --config configs/cluster/rl-1n-h100.yaml --plan \
  --set init_from="hf:$(standin Qwen2.5-7B-Instruct)" 2>&1)
grep -Eq '^\| model.dim +\| 3584 +\| .*config.json +\|' <<<"$out" ||
  fail "rl-1n-h100: model.dim does not come from config.json: $out"
grep -q '^RL plan per rank (8 rank(s)' <<<"$out" || fail "rl-1n-h100: no RL plan: $out"

if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "every config under configs/ plans without an error"
