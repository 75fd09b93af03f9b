#!/usr/bin/env bash
# A run continues on another world size: saved on 4 ranks (trainer.stop_after)
# it resumes on 2, and saved on 2 it resumes on 1. Each resume says it
# resharded, and the loss carries on where it was: finite, and as close to an
# uninterrupted run's loss at every step (the first resumed ones included) as
# runs on different world sizes are to each other (relative 1e-4, see
# pretrain_ranks_test.sh): the data order, weights and AdamW moments all
# carry over. A lost optimizer state or a skipped batch shows at once.
#   pretrain_reshard_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
args=(--set trainer.steps=9 --set checkpoint.keep=1)
train 2 whole "${args[@]}"
train 4 moved "${args[@]}" --set trainer.stop_after=3
train 2 moved "${args[@]}" --set trainer.stop_after=3
train 1 moved "${args[@]}"
grep -q "resumed from .*step_00000003 at step 3 (saved on 4 ranks, resharded)" "$tmp/moved.log" ||
  { cat "$tmp/moved.log"; fail "4 -> 2 ranks: no resharded resume at step 3"; }
grep -q "resumed from .*step_00000006 at step 6 (saved on 2 ranks, resharded)" "$tmp/moved.log" ||
  { cat "$tmp/moved.log"; fail "2 -> 1 rank: no resharded resume at step 6"; }
[[ $(cat "$runs/moved/LATEST") == step_00000009 ]] || fail "LATEST is $(cat "$runs/moved/LATEST")"

"$py" - "$(metrics whole)" "$(metrics moved)" <<'PY'
import json, math, sys
whole, moved = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert [r["step"] for r in moved] == list(range(1, 10)), [r["step"] for r in moved]
assert [r["step"] for r in whole] == list(range(1, 10))
for a, b in zip(whole, moved):
    assert math.isfinite(b["loss"]) and math.isfinite(b["grad_norm"]), b
    rel = abs(a["loss"] - b["loss"]) / a["loss"]
    first_resumed = b["step"] in (4, 7)
    print(f"step {a['step']}: loss {a['loss']:.6f} uninterrupted, {b['loss']:.6f} moved (rel {rel:.1e})"
          + (" <- first step after resharding" if first_resumed else ""))
    assert rel < 1e-4, f"step {a['step']}: loss jumped to {b['loss']} (uninterrupted {a['loss']})"
PY
echo "resume on another world size passed"
