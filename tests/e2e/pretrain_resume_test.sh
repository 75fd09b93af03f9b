#!/usr/bin/env bash
# Stopping and resuming is invisible: on 2 ranks, 8 steps in one launch, and
# the same command split over launches (trainer.stop_after 3, then a crash
# simulated after step 5, then the rest) log bit-identical losses and
# gradient norms, one record per step: the resumed launches drop nothing and
# repeat nothing. LATEST names the last checkpoint and checkpoint.keep holds.
#   pretrain_resume_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
args=(--set trainer.steps=8 --set checkpoint.every=2 --set checkpoint.keep=2)
train 2 whole "${args[@]}"
# Launch 1: steps 1-3, saved at 2 and 3 (stop_after always saves).
train 2 split "${args[@]}" --set trainer.stop_after=3
grep -q "stopping after 3 steps (trainer.stop_after); the next launch resumes at step 3" \
  "$tmp/split.log" || { cat "$tmp/split.log"; fail "no stop_after message"; }
ckpts=$runs/split/checkpoints
[[ $(cat "$runs/split/LATEST") == step_00000003 ]] || fail "LATEST after stop: $(cat "$runs/split/LATEST")"
# Launch 2: steps 4-5 (saved at 4); then a crash while saving step 5 leaves a
# partial step_00000005.tmp, LATEST at step 4 and metrics up to step 5.
train 2 split "${args[@]}" --set trainer.stop_after=2
grep -q "resumed from .*step_00000003 at step 3$" "$tmp/split.log" || { cat "$tmp/split.log"; fail "launch 2 did not resume at step 3"; }
[[ $(cat "$runs/split/LATEST") == step_00000005 ]] || fail "LATEST after launch 2: $(cat "$runs/split/LATEST")"
mv "$ckpts/step_00000005" "$ckpts/step_00000005.tmp"
rm "$ckpts/step_00000005.tmp/manifest.json"
printf 'step_00000004\n' >"$runs/split/LATEST"
[[ $(grep -c '"step": 5,' "$(metrics split)") == 1 ]] || fail "launch 2 did not log step 5"
# Launch 3: steps 5-8, resumed from step 4.
train 2 split "${args[@]}"
grep -q "resumed from .*step_00000004 at step 4$" "$tmp/split.log" || { cat "$tmp/split.log"; fail "launch 3 did not resume at step 4"; }

# LATEST and checkpoint.keep: both runs end with exactly steps 6 and 8.
for run in whole split; do
  [[ $(cat "$runs/$run/LATEST") == step_00000008 ]] || fail "$run: LATEST is $(cat "$runs/$run/LATEST")"
  listing=$(cd "$runs/$run/checkpoints" && echo *)
  [[ $listing == "step_00000006 step_00000008" ]] || fail "$run: checkpoints/ holds: $listing (keep 2)"
done

"$py" - "$(metrics whole)" "$(metrics split)" <<'PY'
import json, re, sys
def records(path):
    lines = open(path).read().splitlines()
    # the raw JSON text of each value, so that equality is bit-exact
    out = []
    for line in lines:
        rec = json.loads(line)
        raw = {k: re.search(rf'"{k}": ([^,}}]+)', line).group(1) for k in ("loss", "grad_norm", "lr")}
        out.append((rec, raw))
    return out
whole, split = records(sys.argv[1]), records(sys.argv[2])
steps = lambda rs: [r["step"] for r, _ in rs]
assert steps(whole) == list(range(1, 9)), steps(whole)
assert steps(split) == list(range(1, 9)), f"resumed run logged steps {steps(split)}, expected 1..8 once each"
for (a, ra), (b, rb) in zip(whole, split):
    assert ra == rb, f"step {a['step']}: uninterrupted {ra}, resumed {rb}"
    assert a["skipped_total"] == b["skipped_total"] == 0
    assert float(ra["loss"]) == a["loss"]
print("8 steps bit-identical across stop_after, a simulated crash and two resumes")
PY

# A run that resumes from its own checkpoint no longer reads its init_from:
# the run it started from may be gone. A new run from it is refused, naming
# init_from.
train 1 first --set trainer.steps=1
launch 1 second configs/tiny/sft.yaml --set init_from="$runs/first" --set trainer.steps=1 ||
  { cat "$tmp/second.log"; fail "SFT from the first run failed"; }
rm -rf "$runs/first"
launch 1 second configs/tiny/sft.yaml --set init_from="$runs/first" --set trainer.steps=2 ||
  { cat "$tmp/second.log"; fail "the SFT run did not resume without its init_from"; }
grep -q "resumed from .*second/checkpoints/step_00000001 at step 1" "$tmp/second.log" ||
  { cat "$tmp/second.log"; fail "the SFT run did not resume"; }
status=0
launch 1 third configs/tiny/sft.yaml --set init_from="$runs/first" || status=$?
[[ $status == 2 ]] && grep -q "^error: .*init_from: .*first" "$tmp/third.log" ||
  { cat "$tmp/third.log"; fail "a new run from a missing init_from: exit $status"; }
echo "resume passed"
