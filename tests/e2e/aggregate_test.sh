#!/usr/bin/env bash
# The aggregate stage (contemplating mode) end to end on 2 ranks, from a tiny
# model given 40 steps of SFT as both the frozen solver and the aggregator's
# start:
#   * the candidate sets (aggregation_sets.jsonl and the aggregation_pool
#     record) hold every hard set and the configured share of easy ones;
#   * eval records single, greedy, majority@K and aggregator_untrained@K at step 0,
#     aggregator@K after the last step, over the same frozen candidates;
#   * a few aggregation RL steps (correctness, format and a length term)
#     update the policy, and stopping and resuming gives the same records
#     bit for bit;
#   * one model can solve and aggregate (aggregate.solver empty);
#   * the report command tabulates and plots them;
#   * muse-generate --contemplate and --adaptive answer from the trained
#     checkpoint, --adaptive also with the checkpoint read as a model without
#     reasoning markers; a checkpoint of another stage evaluates as an
#     untrained aggregator;
#   * bad aggregate settings are one `error:` line naming the key, exit 2.
#   aggregate_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
launch 2 warm configs/tiny/sft.yaml --set init_from= --set trainer.steps=40 --set optim.lr=3e-3 \
  --set data.batch_size=8 || { cat "$tmp/warm.log"; fail "the SFT warm-up failed"; }

# 40 training problems (image paths made absolute, as the set moves).
"$py" - "$PWD/data/tiny" "$tmp/problems.jsonl" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "reasoning_train.jsonl")) as f, open(out, "w") as o:
    for line in list(f)[:40]:
        r = json.loads(line)
        r["images"] = [os.path.join(src, p) for p in r["images"]]
        o.write(json.dumps(r) + "\n")
PY

agg_args=(--set trainer.steps=3 --set init_from="$runs/warm" --set aggregate.solver="$runs/warm"
  --set rl.prompts="$tmp/problems.jsonl" --set rl.prompts_per_step=4 --set rl.group_size=4
  --set rl.max_new_tokens=16 --set rl.micro_batch=8 --set optim.lr=1e-3
  --set rewards.format.weight=0.5 --set rewards.length.kind=kimi --set rewards.length.combine=add
  --set aggregate.k=4 --set aggregate.sets_per_problem=2 --set aggregate.solver_max_new_tokens=16
  --set 'aggregate.eval_k=[2, 4]' --set aggregate.eval_problems=16
  --set eval.every=3 --set eval.max_new_tokens=16)
agg() {
  local name=$1
  shift
  launch 2 "$name" configs/tiny/aggregate.yaml "${agg_args[@]}" "$@" ||
    { cat "$tmp/$name.log"; fail "aggregate run $name failed"; }
}
agg whole
agg split --set trainer.stop_after=2
agg split
grep -q "resumed from .*step_00000002 at step 2$" "$tmp/split.log" ||
  { cat "$tmp/split.log"; fail "the second launch did not resume at step 2"; }

"$py" - "$(metrics whole)" "$(metrics split)" "$runs/whole/aggregation_sets.jsonl" <<'PY'
import json, sys
whole = [json.loads(l) for l in open(sys.argv[1])]
split = [json.loads(l) for l in open(sys.argv[2])]
sets = [json.loads(l) for l in open(sys.argv[3])]

# The candidate sets: 40 problems x 2 sets, all hard ones kept, plus
# round(0.5 * hard) easy ones (as many as there are).
assert len(sets) == 80, len(sets)
assert sorted((s["problem"], s["set"]) for s in sets) == [(p, s) for p in range(40) for s in range(2)]
hard = [s for s in sets if s["hard"]]
easy = [s for s in sets if not s["hard"]]
assert all(s["selected"] for s in hard)
assert sum(s["selected"] for s in easy) == min(len(easy), round(0.5 * len(hard)))
for s in sets:
    assert s["prompt"].count("\nSolution ") == 4, s["prompt"]
    assert s["votes"] <= 4 and 0 <= s["correct_candidates"] <= 4, s
    # A set is hard exactly when its majority answer is not the reference.
    assert s["hard"] == (s["majority"] is None or s["majority"] != s["answer"]), s
pool = [r for r in whole if r.get("eval") == "aggregation_pool"]
assert len(pool) == 1 and pool[0]["sets"] == 80 and pool[0]["hard_sets"] == len(hard), pool
assert pool[0]["selected_sets"] == sum(s["selected"] for s in sets), pool

steps = [r for r in whole if "eval" not in r]
assert [r["step"] for r in steps] == [1, 2, 3], steps
for r in steps:
    for key in ("reward_mean", "accuracy", "think_tokens_mean", "loss", "grad_norm", "kl"):
        assert key in r, (key, r)
assert any(r["grad_norm"] > 0 for r in steps), "no update had a gradient"

evals = {(r["step"], r["eval"]): r for r in whole if "eval" in r and r["eval"] != "aggregation_pool"}
names = ["single", "greedy", "majority@2", "majority@4"]
assert set(evals) == {(s, n) for s in (0, 3) for n in names} | {
    (0, "aggregator_untrained@2"), (0, "aggregator_untrained@4"),
    (3, "aggregator@2"), (3, "aggregator@4")}, sorted(evals)
for r in evals.values():
    assert r["prompts"] == 16 and 0 <= r["accuracy"] <= 1, r
    assert "think_tokens_mean" in r and "tokens_per_answer" in r, r
for s in (0, 3):
    single, maj4 = evals[(s, "single")], evals[(s, "majority@4")]
    # single averages the same 4 candidates majority@4 spends all of.
    assert abs(maj4["think_tokens_mean"] - 4 * single["think_tokens_mean"]) < 1e-6, (single, maj4)
    assert maj4["pass_at_k"] >= maj4["accuracy"], maj4
    agg = evals[(s, "aggregator@4" if s else "aggregator_untrained@4")]
    assert agg["think_tokens_mean"] >= maj4["think_tokens_mean"], (agg, maj4)
# The frozen solver gives the same candidates at every evaluation.
for n in names:
    a, b = dict(evals[(0, n)]), dict(evals[(3, n)])
    for r in (a, b):
        r.pop("step"), r.pop("seconds_per_problem", None)
    assert a == b, (n, a, b)

timing = ("tokens_per_s", "time_s", "rss_bytes", "seconds_per_problem")
def same(r):
    return {k: v for k, v in r.items() if not any(k.endswith(t) for t in timing)}
assert len(whole) == len(split), (len(whole), len(split))
for a, b in zip(whole, split):
    assert same(a) == same(b), ("resumed run differs", a, b)
print("aggregate: sets, records and resume ok")
PY

# The report command: a table row per method and K, and a plot.
"$py" scripts/report_contemplate.py --out "$tmp/report" "$runs/whole" >"$tmp/report.out" ||
  { cat "$tmp/report.out"; fail "report_contemplate failed"; }
[[ $(grep -c "^| majority vote \|^| aggregator, untrained \|^| aggregator, trained " "$tmp/report.out") == 6 &&
  -s $tmp/report/contemplate.png ]] || { cat "$tmp/report.out"; fail "report lacks its rows or plot"; }
echo "report ok"

# One model solves and aggregates: the sets come from the starting weights,
# here for the first 25 of the 40 problems (2 sets each).
agg shared --set aggregate.solver= --set trainer.steps=1 --set eval.every=0 \
  --set aggregate.train_problems=25
grep -q "aggregation sets: 50, hard" "$tmp/shared.log" || { cat "$tmp/shared.log"; fail "shared solver"; }
echo "shared solver ok"

# muse-generate in contemplating mode on the trained aggregator.
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 3 \
  --contemplate 2 --verbose 2>&1) || { echo "$out"; fail "muse-generate --contemplate failed"; }
[[ $(grep -c "^  answer: " <<<"$out") == 3 && $(grep -c "^  candidate [12]: " <<<"$out") == 6 ]] ||
  { echo "$out"; fail "muse-generate did not answer 3 prompts from 2 candidates each"; }
grep -q "^3 prompt(s): single .*, majority@2 .*, aggregator@2 " <<<"$out" || { echo "$out"; fail "summary"; }
image=$PWD/data/tiny/digits/0000.png
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --contemplate 2 \
  --prompt "What is 1 plus the digit in this image? <image>" --image "$image" 2>&1) ||
  { echo "$out"; fail "muse-generate one prompt failed"; }
grep -q "^answer: " <<<"$out" || { echo "$out"; fail "muse-generate printed no answer"; }
status=0
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompt "Two <image> <image>" --image "$image" \
  2>&1) || status=$?
[[ $status == 2 ]] && grep -q "^error: .*1 image token\|^error: .*2 image token" <<<"$out" ||
  { echo "$out"; fail "muse-generate with too few images"; }
echo "muse-generate ok"

# Refinement rounds: --verbose shows each round's candidates; --metrics
# writes the aggregation evaluation's records for R = 0 and 1.
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 2 \
  --contemplate 2 --refine-rounds 1 --verbose 2>&1) || { echo "$out"; fail "--refine-rounds failed"; }
[[ $(grep -c "^  candidate [12]: " <<<"$out") == 4 && $(grep -c "^  round 1 candidate [12]: " <<<"$out") == 4 ]] ||
  { echo "$out"; fail "--verbose did not show both rounds of candidates"; }
"$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 4 \
  --contemplate 2 --refine-rounds 1 --metrics "$tmp/refine.jsonl" --set aggregate.refine_by=aggregator \
  >"$tmp/refine.out" 2>&1 || { cat "$tmp/refine.out"; fail "--refine-rounds --metrics failed"; }
"$py" - "$tmp/refine.jsonl" <<'PY'
import json, sys
records = {r["eval"]: r for r in map(json.loads, open(sys.argv[1]))}
want = {"single", "greedy", "majority@2", "aggregator@2", "majority@2+refine@1", "aggregator@2+refine@1"}
assert set(records) == want, sorted(records)
for name in ("majority@2", "aggregator@2"):
    plain, refined = records[name], records[name + "+refine@1"]
    assert refined["refine_rounds"] == 1 and plain["refine_rounds"] == 0, (plain, refined)
    # A round spends K more responses per problem, and time: the majority's
    # seconds are the same sampling share plus the round's, so they only grow.
    assert refined["tokens_per_answer"] > plain["tokens_per_answer"], (plain, refined)
    assert refined["seconds_per_problem"] > 0 and plain["seconds_per_problem"] > 0, (plain, refined)
    if name.startswith("majority"):
        assert refined["seconds_per_problem"] > plain["seconds_per_problem"], (plain, refined)
    assert refined["prompts"] == 4, refined
PY
"$py" scripts/report_inference.py refine "$tmp/refine.jsonl" --out "$tmp/refine.png" >"$tmp/refine.md" &&
  [[ -s $tmp/refine.png && $(grep -c "^| aggregator | 2 | [01] |" "$tmp/refine.md") == 2 ]] ||
  { cat "$tmp/refine.md"; fail "report_inference.py refine"; }
echo "refinement ok"

# --max-new-tokens limits the aggregator's answer only; the solvers keep
# aggregate.solver_max_new_tokens (16 here).
"$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 4 \
  --contemplate 2 --max-new-tokens 1 --metrics "$tmp/short.jsonl" >"$tmp/short.out" 2>&1 ||
  { cat "$tmp/short.out"; fail "--contemplate --max-new-tokens failed"; }
"$py" - "$tmp/short.jsonl" <<'PY'
import json, sys
records = {r["eval"]: r for r in map(json.loads, open(sys.argv[1]))}
assert records["aggregator@2"]["aggregator_tokens_mean"] <= 1, records["aggregator@2"]
assert records["single"]["tokens_per_answer"] > 1, records["single"]
PY
echo "aggregator limit ok"

# A checkpoint of another stage (here the SFT solver) is an untrained
# aggregator: its records read aggregator_untrained@K at step 0. --answers
# gets each problem's correctness per method, which the records average.
"$bin/muse-generate" --checkpoint "$runs/warm" --prompts "$tmp/problems.jsonl" --limit 6 \
  --contemplate 2 --metrics "$tmp/untrained.jsonl" --answers "$tmp/untrained-answers.jsonl" \
  >"$tmp/untrained.out" 2>&1 || { cat "$tmp/untrained.out"; fail "--contemplate --answers failed"; }
"$py" - "$tmp/untrained.jsonl" "$tmp/untrained-answers.jsonl" "$tmp/problems.jsonl" <<'PY'
import json, sys
records = {r["eval"]: r for r in map(json.loads, open(sys.argv[1]))}
assert "aggregator_untrained@2" in records and "aggregator@2" not in records, sorted(records)
assert {r["step"] for r in records.values()} == {0}, records
answers = [json.loads(l) for l in open(sys.argv[2])]
problems = [json.loads(l) for l in open(sys.argv[3])][:6]
assert [a["index"] for a in answers] == list(range(6)), answers
assert [a["reference"] for a in answers] == [p["answer"] for p in problems], answers
for method in ("single", "greedy", "majority@2", "aggregator_untrained@2"):
    mean = sum(float(a[method]) for a in answers) / 6
    assert abs(records[method]["accuracy"] - mean) < 1e-9, (method, records[method], mean)
for a in answers:
    assert a["single"] in (0, 0.5, 1), a
    for method in ("greedy", "majority@2", "aggregator_untrained@2"):
        assert isinstance(a[method], bool) and isinstance(a[method + "_answer"], str), a
        if a[method]:
            assert a[method + "_answer"] == a["reference"], a
PY
mkdir -p "$tmp/untrained-report"
cp "$tmp/untrained.jsonl" "$tmp/untrained-report/metrics.jsonl"
"$py" scripts/report_contemplate.py --answers "$tmp/untrained-answers.jsonl" \
  "$tmp/untrained-report" >"$tmp/paired.md" &&
  [[ $(grep -c "^| majority@2 − single \|^| aggregator_untrained@2 − " "$tmp/paired.md") == 3 ]] ||
  { cat "$tmp/paired.md"; fail "report_contemplate.py --answers lacks the paired comparisons"; }
# Pooled over candidate sets: a set given twice changes no difference, and a
# second set (another seed) moves each problem's value to the sets' mean.
"$bin/muse-generate" --checkpoint "$runs/warm" --prompts "$tmp/problems.jsonl" --limit 6 \
  --contemplate 2 --seed 1 --metrics "$tmp/untrained-seed1.jsonl" \
  --answers "$tmp/untrained-seed1-answers.jsonl" >"$tmp/untrained-seed1.out" 2>&1 ||
  { cat "$tmp/untrained-seed1.out"; fail "--contemplate --seed 1 --answers failed"; }
"$py" scripts/report_contemplate.py --answers "$tmp/untrained-answers.jsonl" \
  --answers "$tmp/untrained-answers.jsonl" "$tmp/untrained-report" >"$tmp/paired-twice.md" ||
  fail "report_contemplate.py with one --answers file twice failed"
diff <(grep "^| " "$tmp/paired.md") <(grep "^| " "$tmp/paired-twice.md") ||
  fail "one --answers file given twice changed the paired comparisons"
"$py" scripts/report_contemplate.py --answers "$tmp/untrained-answers.jsonl" \
  --answers "$tmp/untrained-seed1-answers.jsonl" "$tmp/untrained-report" >"$tmp/pooled.md" ||
  fail "report_contemplate.py over two seeds' --answers failed"
"$py" - "$tmp/untrained-answers.jsonl" "$tmp/untrained-seed1-answers.jsonl" "$tmp/pooled.md" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
pooled = [(float(x["majority@2"]) + float(y["majority@2"]) - x["single"] - y["single"]) / 2
          for x, y in zip(a, b)]
want = f"| majority@2 − single | {100 * sum(pooled) / len(pooled):+.1f} points |"
text = open(sys.argv[3]).read()
assert want in text and "averaged over 2 candidate sets" in text, (want, text)
PY
"$bin/muse-generate" --checkpoint "$runs/warm" --prompts "$tmp/problems.jsonl" --limit 3 \
  --contemplate 2 --metrics "$tmp/three.jsonl" --answers "$tmp/three-answers.jsonl" \
  >"$tmp/three.out" 2>&1 || { cat "$tmp/three.out"; fail "--contemplate on three problems failed"; }
status=0
out=$("$py" scripts/report_contemplate.py --answers "$tmp/untrained-answers.jsonl" \
  --answers "$tmp/three-answers.jsonl" "$tmp/untrained-report" 2>&1) || status=$?
[[ $status == 1 && $(wc -l <<<"$out") == 1 ]] &&
  grep -q "^error: .*three-answers.jsonl: not the problems of" <<<"$out" ||
  { echo "$out"; fail "pooled --answers of other problems"; }
echo "untrained aggregator and per-problem answers ok"

# Adaptive re-expansion: the fixed-budget and adaptive records and the plot.
"$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 6 --adaptive \
  --set "adaptive.budgets=[4,8,32]" --metrics "$tmp/adaptive.jsonl" >"$tmp/adaptive.out" 2>&1 ||
  { cat "$tmp/adaptive.out"; fail "--adaptive --metrics failed"; }
"$py" - "$tmp/adaptive.jsonl" <<'PY'
import json, sys
records = {r["eval"]: r for r in map(json.loads, open(sys.argv[1]))}
assert set(records) == {"fixed_budget@4", "fixed_budget@8", "fixed_budget@32", "adaptive"}, sorted(records)
for r in records.values():
    assert r["prompts"] == 6 and 0 <= r["accuracy"] <= 1 and 0 <= r["expanded_fraction"] <= 1, r
for n in (4, 8, 32):
    r = records[f"fixed_budget@{n}"]
    assert r["expanded_fraction"] == 0 and r["think_tokens_mean"] <= n, r
a = records["adaptive"]
assert a["budgets"] == "4,8,32" and a["signal"] == "logprob", a
# Continuing never pays more reasoning than the largest budget.
assert a["think_tokens_mean"] <= 32 and 1 <= a["passes_mean"] <= 3, a
PY
"$py" scripts/report_inference.py adaptive "$tmp/adaptive.jsonl" --out "$tmp/adaptive.png" >"$tmp/adaptive.md" &&
  [[ -s $tmp/adaptive.png && $(grep -c "^| fixed_budget@\|^| adaptive " "$tmp/adaptive.md") == 4 ]] ||
  { cat "$tmp/adaptive.md"; fail "report_inference.py adaptive"; }
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 2 --adaptive \
  --set "adaptive.budgets=[4,32]" --verbose 2>&1) || { echo "$out"; fail "--adaptive --verbose failed"; }
grep -q "^  budget 4: answer .*, uncertainty .* -> " <<<"$out" && grep -q "^2 prompt(s): adaptive accuracy" <<<"$out" ||
  { echo "$out"; fail "--adaptive did not report its passes"; }
# The same checkpoint read as a chat model without reasoning or answer
# markers: a budget caps the whole response, the answer is its last number,
# and a response cut by the budget has none yet (uncertainty inf: expanded).
plain=(--set data.tokens.think_begin= --set data.tokens.think_end= --set data.tokens.answer_begin=
  --set data.tokens.answer_end= --set "rewards.correctness.extract=[last_number]")
"$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 6 --adaptive \
  "${plain[@]}" --set "adaptive.budgets=[4,8,48]" --metrics "$tmp/plain.jsonl" >"$tmp/plain.out" 2>&1 ||
  { cat "$tmp/plain.out"; fail "--adaptive --metrics without markers failed"; }
"$py" - "$tmp/plain.jsonl" <<'PY'
import json, sys
records = {r["eval"]: r for r in map(json.loads, open(sys.argv[1]))}
assert set(records) == {"fixed_budget@4", "fixed_budget@8", "fixed_budget@48", "adaptive"}, sorted(records)
for n in (4, 8, 48):
    r = records[f"fixed_budget@{n}"]
    # Every generated token counts: the response, its stop token at most beside it.
    assert r["prompts"] == 6 and r["tokens_mean"] <= n and r["think_tokens_mean"] <= r["tokens_mean"], r
a = records["adaptive"]
assert a["expanded_fraction"] == 1 and a["passes_mean"] >= 2, a
# Continuing writes each token once: no more than the largest budget.
assert a["tokens_mean"] <= 48 and a["tokens_mean"] == records["fixed_budget@48"]["tokens_mean"], a
PY
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 4 --adaptive \
  "${plain[@]}" --set "adaptive.budgets=[4,48]" --verbose 2>&1) ||
  { echo "$out"; fail "--adaptive --verbose without markers failed"; }
grep -q "^  budget 4: answer .*, uncertainty inf -> continue" <<<"$out" &&
  grep -q "^  budget 48: answer -*[0-9][0-9.,]*, uncertainty [0-9][0-9.]* -> keep" <<<"$out" ||
  { echo "$out"; fail "--adaptive without markers: a cut response should expand, a finished one read its number"; }
for bad in "--adaptive --contemplate 2" "--refine-rounds 1" "--adaptive --set model.dim=8" \
  "--adaptive --set adaptive.budgets=[8,4]"; do
  status=0
  # shellcheck disable=SC2086
  out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 1 $bad 2>&1) ||
    status=$?
  [[ $status == 2 && $(grep -c "^error: " <<<"$out") == 1 ]] || { echo "$out"; fail "$bad: want one error line, exit 2"; }
done
echo "adaptive ok"

# Plain answers with --metrics: an evaluation in batches (--batch 3 leaves a
# short last batch) whose per-prompt answers are the one-at-a-time answers
# (the script stops at a failed assertion).
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 8 2>&1) ||
  { echo "$out"; fail "plain answers failed"; }
"$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" --limit 8 --batch 3 \
  --metrics "$tmp/greedy.jsonl" --answers "$tmp/answers.jsonl" >"$tmp/greedy.out" 2>&1 ||
  { cat "$tmp/greedy.out"; fail "plain --metrics failed"; }
grep -q "^answered 8/8 prompts" "$tmp/greedy.out" || { cat "$tmp/greedy.out"; fail "no progress lines"; }
printf '%s\n' "$out" >"$tmp/plain.out"
"$py" - "$tmp/greedy.jsonl" "$tmp/answers.jsonl" "$tmp/plain.out" <<'PY'
import json, re, sys
record = [json.loads(l) for l in open(sys.argv[1])][-1]
answers = [json.loads(l) for l in open(sys.argv[2])]
sequential = re.findall(r"^  answer: (.*?)  \(reference .*, (correct|wrong)\)$", open(sys.argv[3]).read(), re.M)
assert record["eval"] == "greedy" and record["prompts"] == 8, record
assert [a["index"] for a in answers] == list(range(8)), answers
assert len(sequential) == 8, sequential
for a, (shown, verdict) in zip(answers, sequential):
    assert a["answer"] == shown or (not a["answer"] and shown.startswith("(no answer)")), (a, shown)
    assert a["correct"] == (verdict == "correct"), (a, verdict)
accuracy = sum(a["correct"] for a in answers) / 8
assert abs(record["accuracy"] - accuracy) < 1e-12, (record, accuracy)
assert abs(record["accuracy_stderr"] - (accuracy * (1 - accuracy) / 8) ** 0.5) < 1e-12, record
assert abs(record["response_tokens_mean"] - sum(a["response_tokens"] for a in answers) / 8) < 1e-9
PY
status=0
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" \
  --answers "$tmp/a.jsonl" 2>&1) || status=$?
[[ $status == 2 ]] && grep -q "^error: muse-generate: --answers goes with --metrics" <<<"$out" ||
  { echo "$out"; fail "--answers without --metrics"; }
status=0
out=$("$bin/muse-generate" --checkpoint "$runs/whole" --prompts "$tmp/problems.jsonl" \
  --batch 4 2>&1) || status=$?
[[ $status == 2 ]] && grep -q "^error: muse-generate: --batch goes with --metrics" <<<"$out" ||
  { echo "$out"; fail "--batch without --metrics"; }
echo "plain evaluation ok"

# expect_error NAME KEY [--set ...]: exit 2 and one error line naming KEY.
expect_error() {
  local name=$1 key=$2
  shift 2
  expect_launch_error "$name" "$key" configs/tiny/aggregate.yaml "${agg_args[@]}" "$@"
}
expect_error no_solver aggregate.solver --set aggregate.solver="$tmp/nowhere"
expect_error bad_view aggregate.candidates --set aggregate.candidates=summary
# Found once the candidates exist: 16 whole candidates cannot fit 256 positions.
expect_error too_long aggregate.candidate_max_tokens --set aggregate.k=16 \
  --set aggregate.candidates=full
echo "aggregate errors ok"
