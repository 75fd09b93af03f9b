#!/usr/bin/env bash
# The RL stage end to end on 2 ranks, from a tiny model given 40 steps of
# SFT (enough to answer in varied lengths; the length term then differs
# within groups, so every step has advantages and a real update):
#   * one record per step with the documented keys, an eval record before
#     the first step and after the last, a checkpoint holding the reference;
#   * stopping after 2 steps and resuming gives the same records, bit for bit,
#     as the run in one launch (policy, optimizer, reference, prompt order
#     and sampling seeds all come back);
#   * bad reward or RL settings are one `error:` line naming the key, exit 2,
#     also those found once the prompts are loaded.
#   rl_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
launch 2 warm configs/tiny/sft.yaml --set init_from= --set trainer.steps=40 --set optim.lr=3e-3 \
  --set data.batch_size=8 || { cat "$tmp/warm.log"; fail "the SFT warm-up failed"; }
rl_args=(--set trainer.steps=4 --set rl.prompts_per_step=4 --set rl.group_size=4
  --set rl.micro_batch=6 --set rl.kl.coef=0.05
  --set rl.max_new_tokens=24 --set rewards.format.weight=1 --set rewards.length.kind=kimi
  --set rewards.length.combine=add --set rewards.length.measure=total
  --set eval.every=4 --set eval.max_new_tokens=8 --set init_from="$runs/warm" --set optim.lr=1e-3)
rl() {
  local name=$1
  shift
  launch 2 "$name" configs/tiny/rl.yaml "${rl_args[@]}" "$@" ||
    { cat "$tmp/$name.log"; fail "rl run $name failed"; }
}
rl whole
rl split --set trainer.stop_after=2
grep -q "stopping after 2 steps" "$tmp/split.log" || { cat "$tmp/split.log"; fail "no stop"; }
rl split
grep -q "resumed from .*step_00000002 at step 2$" "$tmp/split.log" ||
  { cat "$tmp/split.log"; fail "the second launch did not resume at step 2"; }

"$py" - "$(metrics whole)" "$(metrics split)" "$runs/whole" <<'PY'
import json, os, sys
whole = [json.loads(l) for l in open(sys.argv[1])]
split = [json.loads(l) for l in open(sys.argv[2])]
steps = [r for r in whole if "eval" not in r]
evals = [r for r in whole if "eval" in r]
assert [r["step"] for r in steps] == [1, 2, 3, 4], steps
assert [r["step"] for r in evals] == [0, 4], evals
for r in evals:
    for key in ("accuracy", "think_tokens_mean", "prompts"):
        assert key in r, (key, r)
    assert r["eval"] == "heldout" and r["prompts"] == 600, r
for r in steps:
    for key in ("reward_mean", "accuracy", "think_tokens_mean", "think_tokens_p50",
                "think_tokens_p90", "truncated_fraction", "reward_format_mean",
                "reward_length_mean", "kl", "entropy", "clip_fraction", "loss", "grad_norm",
                "rollout_tokens_per_s", "train_tokens_per_s"):
        assert key in r, (key, r)
    assert r["optimizer_steps"] == 1 and not r["skipped"], r
# The policy moves away from the reference: KL is 0 at step 1, then positive.
assert steps[0]["kl"] == 0 and steps[-1]["kl"] > 0, [r["kl"] for r in steps]
assert any(r["grad_norm"] > 0 for r in steps), steps
timing = ("tokens_per_s", "time_s", "rss_bytes")
def same(r):
    return {k: v for k, v in r.items() if not any(k.endswith(t) for t in timing)}
for a, b in zip(whole, split):
    assert same(a) == same(b), ("resumed run differs", a, b)
assert len(whole) == len(split), (len(whole), len(split))
ckpt = os.path.join(sys.argv[3], "checkpoints", open(os.path.join(sys.argv[3], "LATEST")).read().strip())
names = json.load(open(os.path.join(ckpt, "manifest.json")))
assert "reference" in json.dumps(names), "checkpoint holds no reference policy"
print("rl: records, resume and reference ok")
PY

# adaptive.eval: each evaluation also writes the fixed-budget and adaptive
# records, shared out over the ranks.
rl adaptive --set trainer.steps=1 --set eval.every=1 --set adaptive.eval=true \
  --set "adaptive.budgets=[2,8]" --set adaptive.answer_tokens=6
"$py" - "$(metrics adaptive)" <<'PY'
import json, sys
evals = [json.loads(l) for l in open(sys.argv[1])]
evals = [r for r in evals if "eval" in r]
names = ["heldout", "fixed_budget@2", "fixed_budget@8", "adaptive"]
assert [(r["step"], r["eval"]) for r in evals] == [(s, n) for s in (0, 1) for n in names], evals
for r in evals[1:4]:
    assert r["prompts"] == 600 and "expanded_fraction" in r and "accuracy" in r, r
    assert r["think_tokens_mean"] <= 8, r
assert evals[1]["expanded_fraction"] == 0 and evals[3]["budgets"] == "2,8", evals
print("rl: adaptive evaluation ok")
PY

# Dynamic sampling over rounds, with the format reward alone (groups are
# often all alike): a step draws more prompts until it has 4 groups whose
# rewards differ, at most 4 rounds, and trains on no more than 4; a resumed
# run draws the same extra prompts and seeds.
sparse=(--set trainer.steps=4 --set rewards.correctness.weight=0 --set rewards.length.kind=none
  --set rl.group_size=8 --set rl.dynamic_sampling=true --set rl.dynamic_sampling_rounds=4
  --set rl.kl.coef=0 --set eval.every=0)
rl rounds "${sparse[@]}"
rl rounds_split "${sparse[@]}" --set trainer.stop_after=2
rl rounds_split "${sparse[@]}"
"$py" - "$(metrics rounds)" "$(metrics rounds_split)" <<'PY'
import json, sys
whole = [json.loads(l) for l in open(sys.argv[1])]
split = [json.loads(l) for l in open(sys.argv[2])]
timing = ("tokens_per_s", "time_s", "rss_bytes")
def same(r):
    return {k: v for k, v in r.items() if not any(k.endswith(t) for t in timing)}
assert [same(r) for r in whole] == [same(r) for r in split], "resumed rounds differ"
kept = []
for r in whole:
    rounds, trained = r["rollout_rounds"], r["groups_trained"]
    assert 1 <= rounds <= 4 and 0 <= trained <= 4, r
    # A step stops early only once it has its 4 groups.
    assert rounds == 4 or trained == 4, r
    kept.append(round(r["groups_kept"] * 4 * rounds))
    assert trained <= kept[-1], r
rounds = [r["rollout_rounds"] for r in whole]
assert max(rounds) > 1, ("no step needed a second round", rounds)
assert any(k > r["groups_trained"] for k, r in zip(kept, whole)), ("no step had groups to spare", kept)
print("rl: dynamic sampling rounds ok", [(r["rollout_rounds"], r["groups_trained"]) for r in whole])
PY

# The sweep helper: two one-step runs, then the comparison table and plot.
small="trainer.steps=1 init_from=$runs/warm rl.prompts_per_step=2 rl.group_size=2 \
rl.max_new_tokens=8 eval.every=1 eval.max_new_tokens=4 telemetry.progress=off"
MUSE_BIN=$bin MUSE_PYTHON=$py launch/sweep.sh --config configs/tiny/rl.yaml --out "$tmp/sweep" \
  --ranks 1 "$small rewards.length.kind=none" "$small rewards.length.kind=cosine" \
  >"$tmp/sweep.log" 2>&1 || { cat "$tmp/sweep.log"; fail "sweep failed"; }
[[ $(grep -c "^| .*kind-none \|^| .*kind-cosine " "$tmp/sweep/summary.md") == 2 ]] ||
  { cat "$tmp/sweep/summary.md"; fail "sweep summary lacks its two runs"; }
[[ -s $tmp/sweep/accuracy_vs_think.png ]] || fail "sweep wrote no plot"
echo "sweep ok"

# expect_error NAME KEY [--set ...]: exit 2 and one error line naming KEY.
expect_error() {
  local name=$1 key=$2
  shift 2
  expect_launch_error "$name" "$key" configs/tiny/rl.yaml "${rl_args[@]}" "$@"
}
expect_error unknown_kind rewards.length.kind --set rewards.length.kind=shortest
expect_error negative_budget rewards.length.budget_min --set rewards.length.kind=l1_max \
  --set rewards.length.budget_min=-5
expect_error bad_weight rewards.length.weight --set rewards.length.weight=heavy
expect_error split_prompts rl.prompts_per_step --set rl.prompts_per_step=3
expect_error unknown_advantage rl.advantage --set rl.advantage=ppo
expect_error rounds_alone rl.dynamic_sampling_rounds --set rl.dynamic_sampling_rounds=2
expect_error overlong_window rewards.length.overlong_cache --set rewards.length.kind=overlong \
  --set rewards.length.overlong_cache=24
# Found while the run starts, on every rank: still exit 2, one line.
expect_error too_long rl.max_new_tokens --set rl.max_new_tokens=1000
expect_error adaptive_budgets adaptive.budgets --set adaptive.eval=true --set "adaptive.budgets=[8,4]"
echo "rl errors ok"
