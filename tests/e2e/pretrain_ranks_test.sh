#!/usr/bin/env bash
# Data parallelism does not change the training: the same 20 steps on 1, 2
# and 4 ranks, and on 2 ranks with two micro-batches per step
# (trainer.grad_accum 2), log the same loss at every step (relative
# difference < 1e-4) and the same number of tokens.
#   pretrain_ranks_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
steps=20
train 1 np1 --set trainer.steps=$steps
train 2 np2 --set trainer.steps=$steps
train 4 np4 --set trainer.steps=$steps
train 2 np2_accum2 --set trainer.steps=$steps --set trainer.grad_accum=2
grep -q "resumed" "$tmp/np2.log" && fail "a fresh run resumed"

"$py" - "$steps" "$(metrics np1)" "$(metrics np2)" "$(metrics np4)" "$(metrics np2_accum2)" <<'PY'
import json, math, sys
steps = int(sys.argv[1])
runs = {}
for path in sys.argv[2:]:
    records = [json.loads(line) for line in open(path)]
    train = [r for r in records if "eval" not in r]
    assert [r["step"] for r in train] == list(range(1, steps + 1)), (path, [r["step"] for r in train])
    for r in train:
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]), (path, r)
        assert r["tokens"] == 4 * 64 and not r["skipped"], (path, r)
    runs[path] = train
ref_path, ref = sys.argv[2], runs[sys.argv[2]]
assert ref[-1]["loss"] < ref[0]["loss"] - 0.3, f"1 rank did not learn: {ref[0]['loss']} -> {ref[-1]['loss']}"
worst = 0.0
for path, train in runs.items():
    for a, b in zip(ref, train):
        rel = abs(a["loss"] - b["loss"]) / abs(a["loss"])
        worst = max(worst, rel)
        assert rel < 1e-4, f"step {a['step']}: loss {a['loss']} on 1 rank, {b['loss']} in {path} (rel {rel:.2e})"
        assert a["lr"] == b["lr"], (path, a["step"], a["lr"], b["lr"])
print(f"losses agree over {steps} steps on 1, 2, 4 ranks and 2 ranks x grad_accum 2 (worst rel diff {worst:.2e})")
PY
echo "rank agreement passed"
