#!/usr/bin/env bash
# muse-train --plan: a config checked for a launch on N ranks from one
# process. Every error is reported (one `error: FILE: key: ...` line each,
# exit 2), inputs absent here are warnings naming what was not checked
# (exit 0), the world size comes from plan.world_size or --world-size, and
# nothing is started or written.
#   plan_test.sh BIN_DIR
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# plan NAME YAML-TEXT [muse-train args...]: plans $tmp/NAME.yaml; its stdout
# in $tmp/NAME.out, stderr in $tmp/NAME.err, exit status in $status.
plan() {
  local name=$1 yaml=$2
  shift 2
  printf '%s\n' "$yaml" >"$tmp/$name.yaml"
  status=0
  "$bin/muse-train" --config "$tmp/$name.yaml" --plan "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
    status=$?
}
# expect_errors NAME COUNT FRAGMENT...: exit 2, exactly COUNT error lines,
# each naming the file, and every FRAGMENT among them.
expect_errors() {
  local name=$1 count=$2
  shift 2
  [[ $status == 2 ]] || fail "$name: exit status $status, expected 2"
  local errors
  errors=$(grep '^error: ' "$tmp/$name.err")
  [[ $(grep -c '^error: ' "$tmp/$name.err") == "$count" ]] ||
    fail "$name: expected $count error line(s), got: $(cat "$tmp/$name.err")"
  [[ -z $(grep -v "^error: $tmp/$name.yaml" <<<"$errors") ]] ||
    fail "$name: an error line does not start with the file: $errors"
  for fragment in "$@"; do
    grep -qF -- "$fragment" <<<"$errors" || fail "$name: '$fragment' not in: $errors"
  done
}

# Wrong keys: every one, with its line, and nothing planned.
plan keys 'stage: pretrain
plan:
  world_size: 2
trainer:
  stpes: 5
  grad_accum: many
optim:
  lr: -1.0'
expect_errors keys 3 "keys.yaml:5: trainer.stpes: unknown key (did you mean 'trainer.steps'?)" \
  "keys.yaml:6: trainer.grad_accum: expected an integer, got 'many'" \
  "keys.yaml:8: optim.lr: -1.0 is out of range: must be > 0"
grep -q '^memory plan' "$tmp/keys.out" && fail "keys: planned a config with wrong keys"

# What a launch on 3 ranks would refuse, all at once: the tiny model (what
# the cluster RL config inherited before it named an hf: directory) cannot
# hold 4096 new tokens, 16 prompts do not split over 3 ranks, and the eval
# prompts would not fit either.
plan rl 'stage: rl
plan:
  world_size: 3
rl:
  prompts: data/tiny/reasoning_train.jsonl
  prompts_per_step: 16
  max_new_tokens: 4096
eval:
  prompts: data/tiny/reasoning_heldout.jsonl
  max_new_tokens: 300'
expect_errors rl 3 "rl.yaml: rl.prompts_per_step: 16 prompts do not split over 3 ranks" \
  "rl.yaml: rl.max_new_tokens: the longest prompt plus the new tokens is " \
  "rl.yaml: eval.max_new_tokens: the longest prompt plus the new tokens is "
grep -q "^plan: 3 error(s): the config would not start on 3 rank(s)" "$tmp/rl.out" ||
  fail "rl: no verdict: $(cat "$tmp/rl.out")"

# The same checks pass on a world size they split over; --world-size wins
# over plan.world_size. The RL plan shows the update's memory and FLOPs.
plan rl_ok "$(cat "$tmp/rl.yaml")" --set rl.max_new_tokens=64 --set eval.max_new_tokens=64 \
  --world-size 4
[[ $status == 0 ]] || fail "rl_ok: exit $status: $(cat "$tmp/rl_ok.err")"
grep -q "^plan: 4 rank(s) (--world-size), backend " "$tmp/rl_ok.out" || fail "rl_ok: world size"
grep -q "^rl.prompts: [0-9]* prompt(s), the longest [0-9]* tokens" "$tmp/rl_ok.out" ||
  fail "rl_ok: prompts not read: $(cat "$tmp/rl_ok.out")"
grep -q "^RL plan per rank (4 rank(s), update micro-batches of" "$tmp/rl_ok.out" ||
  fail "rl_ok: no RL plan: $(cat "$tmp/rl_ok.out")"
grep -q "^  FLOPs per step: at most " "$tmp/rl_ok.out" || fail "rl_ok: no FLOPs"
grep -q "^plan: the config would start on 4 rank(s)" "$tmp/rl_ok.out" || fail "rl_ok: verdict"

# Pretraining: the batch over the ranks, the data, the memory plan.
plan pretrain "stage: pretrain
plan:
  world_size: 4
run:
  dir: $tmp/runs
data:
  batch_size: 8"
[[ $status == 0 ]] || fail "pretrain: exit $status: $(cat "$tmp/pretrain.err")"
grep -Eq "^  first batch: 2 rows per rank" "$tmp/pretrain.out" ||
  fail "pretrain: data not opened: $(cat "$tmp/pretrain.out")"
grep -q "^memory plan per rank (4 rank(s), 2 x 256 tokens per micro-batch" "$tmp/pretrain.out" ||
  fail "pretrain: no memory plan: $(cat "$tmp/pretrain.out")"
[[ ! -e $tmp/runs ]] || fail "pretrain: the plan created the run directory"
plan pretrain_split "$(cat "$tmp/pretrain.yaml")" --world-size 3
expect_errors pretrain_split 1 \
  "data.batch_size: 8 sequences do not split into 1 micro-batch(es) (trainer.grad_accum) on 3 rank(s)"

# Inputs that are not on this machine are named, not passed silently.
plan absent "stage: rl
init_from: hf:$tmp/no-model
plan:
  world_size: 2
data:
  chat: true
rl:
  prompts: /cluster/prompts.jsonl
  prompts_per_step: 4"
[[ $status == 0 ]] || fail "absent: exit $status: $(cat "$tmp/absent.err")"
grep -q "^warning: not checked: init_from hf:$tmp/no-model is not on this machine" \
  "$tmp/absent.err" || fail "absent: init_from: $(cat "$tmp/absent.err")"
grep -q "^warning: not checked: data.tokenizer: a launch takes init_from's tokenizer" \
  "$tmp/absent.err" || fail "absent: tokenizer: $(cat "$tmp/absent.err")"
grep -q "^plan: the config would start on 2 rank(s); 2 input(s) not checked here" \
  "$tmp/absent.out" || fail "absent: verdict: $(cat "$tmp/absent.out")"
# A later stage whose first stage has not run yet: its chat format comes from
# that run, so the tiny default tokenizer (no chat template) is not judged.
plan absent_run "stage: rl
init_from: $tmp/runs/first-stage
plan:
  world_size: 1
data:
  chat: true
rl:
  prompts: /cluster/prompts.jsonl
  prompts_per_step: 4"
[[ $status == 0 ]] || fail "absent_run: exit $status: $(cat "$tmp/absent_run.err")"
grep -q "^warning: not checked: data.tokenizer: a launch takes init_from's tokenizer" \
  "$tmp/absent_run.err" || fail "absent_run: tokenizer: $(cat "$tmp/absent_run.err")"
# A launch of it names the missing run, not the tokenizer.
status=0
"$bin/muse-train" --config "$tmp/absent_run.yaml" --set run.dir="$tmp/runs" >"$tmp/launch.out" \
  2>"$tmp/launch.err" || status=$?
[[ $status == 2 ]] || fail "absent_run launch: exit $status, expected 2: $(cat "$tmp/launch.err")"
[[ $(grep -c "^error: " "$tmp/launch.err") == 1 ]] &&
  grep -q "^error: $tmp/absent_run.yaml: init_from: .*first-stage" "$tmp/launch.err" ||
  fail "absent_run launch: the error does not name init_from: $(cat "$tmp/launch.err")"
plan absent_data "stage: pretrain
plan:
  world_size: 2
data:
  shards: /cluster/shards
  tokenizer: /cluster/tokenizer.json"
[[ $status == 0 ]] || fail "absent_data: exit $status: $(cat "$tmp/absent_data.err")"
for what in "data.tokenizer /cluster/tokenizer.json" "data.shards /cluster/shards"; do
  grep -q "^warning: not checked: $what is not on this machine" "$tmp/absent_data.err" ||
    fail "absent_data: $what: $(cat "$tmp/absent_data.err")"
done
# Even without the prompts, 4096 new tokens cannot follow a prompt in 256 positions.
plan absent_prompts "$(cat "$tmp/absent.yaml")" --set init_from= --set data.chat=false \
  --set rl.max_new_tokens=4096
expect_errors absent_prompts 1 "rl.max_new_tokens: 4096 new tokens after a prompt of at least one"

# The world size must be known.
plan undeclared 'stage: pretrain'
expect_errors undeclared 1 "plan.world_size: not declared"
out=$("$bin/muse-train" --config "$tmp/pretrain.yaml" --world-size 2 2>&1)
[[ $? == 2 ]] && grep -q "^error: --world-size: only with --plan" <<<"$out" ||
  fail "--world-size without --plan: $out"
out=$("$bin/muse-train" --config "$tmp/pretrain.yaml" --plan --world-size 0 2>&1)
[[ $? == 2 ]] && grep -q "^error: --world-size: expected an integer >= 1" <<<"$out" ||
  fail "--world-size 0: $out"
out=$("$bin/muse-train" --config "$tmp/pretrain.yaml" --plan --dry-run 2>&1)
[[ $? == 2 ]] && grep -q "^error: --plan and --dry-run: choose one" <<<"$out" ||
  fail "--plan --dry-run: $out"

if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all plan checks passed"
