#!/usr/bin/env bash
# The muse-* executables from the outside: help, version, config errors (exit
# code 2 and exactly one `error:` line naming the key), --set precedence.
#   cli_test.sh BIN_DIR
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_config_error NAME YAML-TEXT FRAGMENT [extra muse-train args...]
expect_config_error() {
  local name=$1 yaml=$2 fragment=$3
  shift 3
  printf '%s\n' "$yaml" >"$tmp/$name.yaml"
  local out code
  out=$("$bin/muse-train" --config "$tmp/$name.yaml" "$@" 2>&1 >/dev/null)
  code=$?
  [[ $code == 2 ]] || fail "$name: exit code $code, expected 2"
  [[ $(grep -c '^error: ' <<<"$out") == 1 ]] || fail "$name: expected one error line, got: $out"
  [[ $(wc -l <<<"$out") == 1 ]] || fail "$name: expected a single line on stderr, got: $out"
  grep -qF -- "$fragment" <<<"$out" || fail "$name: '$fragment' not in: $out"
  grep -qF -- "$tmp/$name.yaml" <<<"$out" || [[ $* == *--set* ]] || fail "$name: file not named in: $out"
}

expect_config_error unknown_key 'stage: pretrain
wandb_project: x' "unknown key"
expect_config_error unknown_key_named 'wandb_project: x' "wandb_project"
expect_config_error typo_nested 'trainer:
  stpes: 5' "trainer.stpes: unknown key (did you mean 'trainer.steps'?)"
expect_config_error wrong_section 'trainer:
  lr: 0.1' "did you mean 'optim.lr'?"
expect_config_error wrong_type 'trainer:
  steps: ten' "trainer.steps: expected an integer, got 'ten'"
expect_config_error negative_lr 'optim:
  lr: -0.001' "optim.lr: -0.001 is out of range: must be > 0"
expect_config_error bad_choice 'stage: pretrian' "stage: \"pretrian\" is not allowed"
expect_config_error malformed 'trainer: [steps: 5' "malformed YAML"
expect_config_error section_scalar 'trainer: 5' "trainer: expected a mapping"
expect_config_error bad_run_name 'run:
  name: a/b' "run.name"
expect_config_error override_unknown 'stage: pretrain' \
  "--set trainer.stepz=3: trainer.stepz: unknown key (did you mean 'trainer.steps'?)" \
  --set trainer.stepz=3
expect_config_error override_type 'stage: pretrain' "trainer.steps: expected an integer" \
  --set trainer.steps=many
# A file without a key would silently mean every default.
expect_config_error empty '' "empty.yaml: the config is empty"
expect_config_error comments_only '# stage: rl
  # nothing else' "comments_only.yaml: the config is empty"
expect_config_error empty_plan '' "empty_plan.yaml: the config is empty" --plan

# A missing file.
out=$("$bin/muse-train" --config "$tmp/absent.yaml" 2>&1 >/dev/null)
code=$?
[[ $code == 2 ]] || fail "missing file: exit code $code"
grep -q "^error: $tmp/absent.yaml: cannot open config file" <<<"$out" || fail "missing file: $out"

# Bad command lines.
out=$("$bin/muse-train" --confg x.yaml 2>&1)
[[ $? == 2 ]] && grep -q "^error: unknown option '--confg' (did you mean '--config'?)" <<<"$out" ||
  fail "unknown option: $out"
out=$("$bin/muse-train" 2>&1)
[[ $? == 2 ]] && grep -q "^error: --config FILE is required" <<<"$out" || fail "no config: $out"

# Help and version of every executable.
# (Output is captured first: grep -q closing the pipe early would fail it.)
for tool in muse-train muse-data muse-export muse-generate; do
  out=$("$bin/$tool" --help)
  grep -q "^usage: $tool" <<<"$out" || fail "$tool --help"
  out=$("$bin/$tool" --version)
  grep -q "^$tool 0\." <<<"$out" || fail "$tool --version"
done
out=$("$bin/muse-train" --help)
grep -q "trainer.steps (int, steps, >= 1) = 100" <<<"$out" || fail "--help lists keys"
out=$("$bin/muse-export" --format hf --out x 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-export: --checkpoint is required" <<<"$out" ||
  fail "muse-export without checkpoint: $out"
out=$("$bin/muse-export" --checkpoint x --format onnx --out x 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-export: --format: expected hf or gguf, got 'onnx'" <<<"$out" ||
  fail "muse-export bad format: $out"
out=$("$bin/muse-export" --checkpoint x --format hf --out x --dtype fp8 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-export: --dtype: expected fp32, bf16 or fp16" <<<"$out" ||
  fail "muse-export bad dtype: $out"

# A stage missing what it needs is an error naming the key, before anything is written.
printf 'stage: aggregate\nrun:\n  dir: %s\n' "$tmp/runs" >"$tmp/aggregate.yaml"
out=$("$bin/muse-train" --config "$tmp/aggregate.yaml" 2>&1 >/dev/null)
[[ $? == 2 ]] && grep -q "^error: .*rl.prompts: the aggregate stage needs a prompt set" <<<"$out" ||
  fail "aggregate without problems: $out"
out=$("$bin/muse-train" --config "$tmp/aggregate.yaml" --set rl.prompts=p.jsonl \
  --set 'aggregate.template=no slots' 2>&1 >/dev/null)
[[ $? == 2 ]] && grep -q "^error: .*aggregate.template: must hold {problem} exactly once" <<<"$out" ||
  fail "aggregate template: $out"
[[ ! -e $tmp/runs ]] || fail "a run directory was created for a stage that cannot run"

# muse-generate: bad command lines and a missing checkpoint exit 2 with one line.
out=$("$bin/muse-generate" --prompt hi 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-generate: --checkpoint is required" <<<"$out" ||
  fail "muse-generate without checkpoint: $out"
out=$("$bin/muse-generate" --checkpoint x --prompt hi --prompts p.jsonl 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-generate: give one of --prompt and --prompts" <<<"$out" ||
  fail "muse-generate two prompt sources: $out"
out=$("$bin/muse-generate" --checkpoint x --prompt hi --contemplate 0 2>&1)
[[ $? == 2 ]] && grep -q "^error: muse-generate: --contemplate: expected an integer >= 1" <<<"$out" ||
  fail "muse-generate --contemplate 0: $out"
out=$("$bin/muse-generate" --checkpoint "$tmp/none" --prompt hi 2>&1)
[[ $? == 2 && $(wc -l <<<"$out") == 1 ]] && grep -q "^error: --checkpoint: .*none" <<<"$out" ||
  fail "muse-generate missing checkpoint: $out"

# --set wins over the file, later --set over earlier, and config.yaml records it.
printf 'trainer:\n  steps: 7\nrun:\n  name: first\n  dir: %s\n' "$tmp/runs" >"$tmp/ok.yaml"
"$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set trainer.steps=9 --set trainer.steps=11 \
  --set run.name=second >"$tmp/ok.out" 2>&1 || fail "dry run: $(cat "$tmp/ok.out")"
grep -Eq '^\| trainer.steps +\| 11 +\| --set trainer.steps=11 +\|' "$tmp/ok.out" ||
  fail "table does not show the override: $(cat "$tmp/ok.out")"
grep -q '^  steps: 11  #' "$tmp/runs/second/config.yaml" || fail "config.yaml lacks the override"
# A dry run opens the training data and checks that it fits the model.
out=$("$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set model.image_size=16 2>&1 >/dev/null)
[[ $? == 2 ]] && grep -q '^error: .*shard_.*\.h5: /images: images of 8x8x1, expected 16x16x1' <<<"$out" ||
  fail "data that does not fit the model: $out"
out=$("$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set data.shards="$tmp/none" 2>&1 >/dev/null)
[[ $? == 2 ]] && grep -q "^error: data.shards: no shard files in '$tmp/none'" <<<"$out" ||
  fail "missing shards: $out"
# MUSE_CPU_MATMUL chooses the CPU's matrix products; the startup log names
# the choice, and any value other than auto or aten is refused.
out=$(MUSE_CPU_MATMUL=aten "$bin/muse-train" --config "$tmp/ok.yaml" --dry-run 2>&1)
grep -q "CPU matrix products: MKL (MUSE_CPU_MATMUL=aten)" <<<"$out" || fail "aten products: $out"
out=$(MUSE_CPU_MATMUL=mkl "$bin/muse-train" --config "$tmp/ok.yaml" --dry-run 2>&1 >/dev/null)
[[ $? == 2 && $(grep -c '^error: ' <<<"$out") == 1 ]] &&
  grep -q "^error: MUSE_CPU_MATMUL must be auto or aten, got 'mkl'" <<<"$out" ||
  fail "a bad MUSE_CPU_MATMUL: $out"

# A run directory in use by another launch (its .lock held, as flock(1)
# holds it here) is refused with one line naming the holder; once the lock
# is released the same launch goes ahead.
mkdir -p "$tmp/runs/locked"
echo "pid 4242 on elsewhere" >"$tmp/runs/locked/.lock"
flock --no-fork -x "$tmp/runs/locked/.lock" sleep 60 &
holder=$!
sleep 0.5
out=$("$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set run.name=locked 2>&1 >/dev/null)
code=$?
[[ $code == 1 && $(grep -c '^error: ' <<<"$out") == 1 ]] &&
  grep -q "^error: $tmp/runs/locked: the run directory is in use by another launch (pid 4242 on elsewhere)" <<<"$out" ||
  fail "a locked run directory: exit $code: $out"
[[ ! -f $tmp/runs/locked/config.yaml ]] || fail "the refused launch wrote config.yaml"
kill "$holder"
wait "$holder" 2>/dev/null
"$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set run.name=locked >"$tmp/locked.out" 2>&1 ||
  fail "the released run directory: $(cat "$tmp/locked.out")"
grep -q "^pid [0-9]* on " "$tmp/runs/locked/.lock" || fail "the lock does not name its holder"

# Likely mistakes are warned about, once, with a hint.
"$bin/muse-train" --config "$tmp/ok.yaml" --dry-run --set checkpoint.every=500 --set run.name=warn \
  >/dev/null 2>"$tmp/warn.err" || fail "dry run with a warning: $(cat "$tmp/warn.err")"
[[ $(grep -c '^warning: checkpoint.every (500) > trainer.steps (7): only the final step' "$tmp/warn.err") == 1 ]] ||
  fail "no warning for checkpoint.every > trainer.steps: $(cat "$tmp/warn.err")"

# The written config is itself a valid config that resolves to the same values.
cp "$tmp/runs/second/config.yaml" "$tmp/first.yaml"
"$bin/muse-train" --config "$tmp/first.yaml" --dry-run >"$tmp/again.out" 2>&1 ||
  fail "config.yaml does not load back: $(cat "$tmp/again.out")"
diff <(grep -v '^#' "$tmp/first.yaml") <(grep -v '^#' "$tmp/runs/second/config.yaml") ||
  fail "config.yaml does not round-trip"
[[ -z $(ls "$tmp/runs/second" | grep -v '^config.yaml$') ]] || fail "stray files in the run directory"

# The start-up output fits 120 columns: long values (a template with
# multi-byte characters, a long origin) are cut with "…", and the run's
# config.yaml has them whole.
long="Proposed answers: {solutions} — $(printf 'réponse %.0s' {1..60}){problem}"
printf 'run:\n  name: wide\n  dir: %s\naggregate:\n  template: "%s"\n' "$tmp/runs" "$long" \
  >"$tmp/wide.yaml"
"$bin/muse-train" --config "$tmp/wide.yaml" --dry-run >"$tmp/wide.out" 2>&1 ||
  fail "wide dry run: $(cat "$tmp/wide.out")"
widest=$(python3 -c 'import sys; print(max(len(l.rstrip("\n")) for l in open(sys.argv[1], encoding="utf-8")))' \
  "$tmp/wide.out")
((widest <= 120)) || fail "the start-up output is $widest columns wide: $(cat "$tmp/wide.out")"
grep -q '^| aggregate.template .*…' "$tmp/wide.out" || fail "the long value is not cut with …"
[[ $(grep -c "^values cut with … are whole in $tmp/runs/wide/config.yaml" "$tmp/wide.out") == 1 ]] ||
  fail "no single note naming config.yaml: $(cat "$tmp/wide.out")"
grep -qF "$long" "$tmp/runs/wide/config.yaml" || fail "config.yaml lacks the whole template"

# The config reference in docs/ is generated from the declarations.
diff <("$bin/muse-train" --help-config markdown) docs/config.md >/dev/null ||
  fail "docs/config.md is stale: regenerate with build/bin/muse-train --help-config markdown > docs/config.md"

if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
