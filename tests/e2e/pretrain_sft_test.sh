#!/usr/bin/env bash
# Supervised fine-tuning smoke test: configs/tiny/sft.yaml on 2 ranks with
# init_from a short pretraining run directory starts from that run's LATEST
# weights (not its optimizer or step), trains a few steps on the SFT shards
# with a finite loss, evaluates on the held-out set and saves a checkpoint.
#   pretrain_sft_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
train 1 base --set trainer.steps=2
launch 2 sft configs/tiny/sft.yaml --set init_from="$runs/base" --set data.shards=data/tiny/shards/sft \
  --set trainer.steps=3 --set eval.every=3 --set eval.batches=1 --set eval.max_new_tokens=4 ||
  { cat "$tmp/sft.log"; fail "sft run failed"; }
grep -q "initialised from $runs/base/checkpoints/step_00000002 (step 2)" "$tmp/sft.log" ||
  { cat "$tmp/sft.log"; fail "sft did not start from the pretraining run's LATEST"; }
grep -q "resumed" "$tmp/sft.log" && fail "sft resumed instead of initialising"
grep -q '^stage: "sft"' "$runs/sft/config.yaml" || fail "config.yaml does not record stage sft"
[[ $(cat "$runs/sft/LATEST") == step_00000003 && -f $runs/sft/checkpoints/step_00000003/manifest.json ]] ||
  fail "no final checkpoint: LATEST $(cat "$runs/sft/LATEST" 2>&1)"
"$py" - "$(metrics sft)" "$runs/sft/checkpoints/step_00000003/manifest.json" <<'PY'
import json, math, sys
records = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in records if "eval" not in r]
evals = [r for r in records if r.get("eval") == "heldout"]
assert [r["step"] for r in train] == [1, 2, 3], [r["step"] for r in train]
for r in train:
    assert math.isfinite(r["loss"]) and 0 < r["loss"] < 20 and not r["skipped"], r
# a fresh optimizer and schedule: warmup starts again at step 1
assert train[0]["lr"] < train[1]["lr"] < train[2]["lr"], [r["lr"] for r in train]
assert len(evals) == 1 and evals[0]["step"] == 3, evals
assert math.isfinite(evals[0]["loss"]) and 0 <= evals[0]["accuracy"] <= 1 and evals[0]["prompts"] > 0, evals
m = json.load(open(sys.argv[2]))
assert m["step"] == 3 and m["world_size"] == 2, (m["step"], m["world_size"])
print("sft: losses", [round(r["loss"], 4) for r in train], "eval", evals[0])
PY
echo "sft smoke test passed"
