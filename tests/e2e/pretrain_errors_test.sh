#!/usr/bin/env bash
# What stops a run on 2 ranks, and how: a checkpoint of another model shape,
# a corrupt rank file in the checkpoint to resume, training that only
# produces non-finite steps (trainer.max_consecutive_skips) and a missing
# init_from. Each ends with a non-zero exit, an `error:` line naming the
# cause (the key, or the file at fault), no crash and nothing saved.
#   pretrain_errors_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
err='^error: '

# expect_failure NAME PATTERN [muse-train args...]: relaunches run NAME on 2
# ranks; it must fail, with exactly one error line (from whichever rank saw
# the cause) matching PATTERN (a fixed string), and without a crash.
expect_failure() {
  local name=$1 pattern=$2 code=0
  shift 2
  : >"$tmp/$name.log"
  launch 2 "$name" configs/tiny/pretrain.yaml "$@" || code=$?
  local out errors
  out=$(cat "$tmp/$name.log")
  errors=$(grep -E "$err" <<<"$out") || true
  [[ $code != 0 ]] || { echo "$out"; fail "$name: exit code 0"; }
  [[ $code != 124 ]] || { echo "$out"; fail "$name: still running after the timeout"; }
  [[ -n $errors ]] || { echo "$out"; fail "$name: no error line"; }
  [[ $(wc -l <<<"$errors") == 1 ]] || { echo "$out"; fail "$name: more than one error line"; }
  grep -qF -- "$pattern" <<<"$errors" || { echo "$out"; fail "$name: '$pattern' not in: $errors"; }
  if grep -Eqi "terminate called|core dumped|signal [0-9]|segmentation|aborted \(|backtrace" <<<"$out"; then
    echo "$out"
    fail "$name: crashed"
  fi
  echo "ok: $name: exit $code, $errors"
}

steps=(--set trainer.steps=4)
train 2 run --set trainer.steps=2
ckpt=$runs/run/checkpoints/step_00000002
snapshot() { (cd "$runs/run" && find . -type f | sort && cat LATEST && md5sum metrics.jsonl); }
before=$(snapshot)

# A checkpoint of another model: the first field that differs is named.
expect_failure run "model.dim: checkpoint has 128, config has 64" "${steps[@]}" --set model.dim=64
grep -qF "$ckpt/manifest.json" <<<"$(grep -E "$err" "$tmp/run.log")" || fail "model.dim: manifest not named"

# A flipped bit in rank 1's file: rank 1 names the file, exactly one error
# line (rank 0 only learns that a peer failed).
"$py" - "$ckpt/rank_00001.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000)
    byte = f.read(1)[0]
    f.seek(1000)
    f.write(bytes([byte ^ 0x10]))
PY
expect_failure run "$ckpt/rank_00001.bin: checksum mismatch in tensor 'embed/param'" "${steps[@]}"
[[ $(grep -Ec "$err" "$tmp/run.log") == 1 ]] || { cat "$tmp/run.log"; fail "corrupt checkpoint: not exactly one error line"; }
# The failed launches changed nothing: same files, LATEST and metrics.
[[ $(snapshot) == "$before" ]] || fail "failed resumes changed the run directory: $(snapshot)"

# Non-finite training: with lr 1e30 the first update blows the weights up,
# every later step is skipped, and the third skip in a row stops the run.
expect_failure nan "step 4: loss or gradient norm not finite for 3 steps in a row (trainer.max_consecutive_skips)" \
  --set trainer.steps=10 --set optim.lr=1e30 --set optim.warmup_steps=0 --set trainer.max_consecutive_skips=3
grep -q "warning: step 2: non-finite loss or gradient norm, update skipped" "$tmp/nan.log" ||
  fail "no warning for the skipped step 2"
"$py" - "$(metrics nan)" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
got = [(r["step"], r["skipped"], r["skipped_total"]) for r in records]
assert got == [(1, False, 0), (2, True, 1), (3, True, 2)], f"steps, skipped, skipped_total: {got}"
print("skipped steps counted in metrics:", got)
PY
[[ ! -e $runs/nan/LATEST && ! -e $runs/nan/checkpoints ]] || fail "a failed run saved a checkpoint"
# Relaunched with a sane learning rate, the run starts over (no checkpoint)
# and its metrics hold each step once: the failed launch's records are gone.
train 2 nan --set trainer.steps=3
"$py" - "$(metrics nan)" <<'PY'
import json, sys
steps = [json.loads(line)["step"] for line in open(sys.argv[1])]
assert steps == [1, 2, 3], f"steps after the relaunch: {steps}"
PY

# init_from that does not exist: named, in a fresh run.
expect_failure noinit "$tmp/nowhere" "${steps[@]}" --set init_from="$tmp/nowhere"
[[ ! -e $runs/noinit/LATEST ]] || fail "noinit: trained anyway"
echo "errors and guards passed"
