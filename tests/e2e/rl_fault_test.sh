#!/usr/bin/env bash
# Faults in the RL-trained stages, rl and aggregate, on 2 ranks (4 steps, a
# checkpoint every 2, an evaluation every 2): one rank is killed with SIGKILL
#   * during the rollout of step 3 (the relaunch resumes from step 2),
#   * during the policy update of step 2, before the first checkpoint (the
#     relaunch starts over, after the first launch has logged step 0's
#     evaluations and step 1),
#   * while writing the step-4 checkpoint (LATEST stays step 2 and loads; the
#     partial step_00000004.tmp is cleared by the relaunch's save),
# and the same command is launched again; the aggregate stage also once with
# one model solving and aggregating, killed during the rollout of step 3.
# Each relaunch must end with the records of an uninterrupted run (every
# record, every key but the measured ones named in `measured` below), the
# same candidate sets (aggregation_sets.jsonl) and its final checkpoint
# (every tensor: policy, AdamW moments, the KL reference; the counters) bit
# for bit.
#
# Hitting a phase: the ranks run with tests/faults/fault_inject.c preloaded.
# For the rollout and the update it defines muse_fault_point, which the RL
# step calls as it enters each phase (rl/fault_point.h; absent from any other
# process, where a point is one branch) and which kills the chosen rank at the
# chosen step. For the checkpoint it kills the rank after 1 MB of its writes
# into step_00000004, in the middle of its rank file. Sleeps and log watching
# would land anywhere in a step that takes a fraction of a second. The steps
# each launch logged before it died show where the kill landed.
#   rl_fault_test.sh BIN_DIR FAULT_INJECT_SO
source "$(dirname "$0")/pretrain_lib.sh"
inject=$2
launch 2 warm configs/tiny/sft.yaml --set init_from= --set trainer.steps=40 --set optim.lr=3e-3 \
  --set data.batch_size=8 || { cat "$tmp/warm.log"; fail "the SFT warm-up failed"; }

# 40 training problems for the aggregator's candidate sets and 64 held-out
# prompts for the evaluations (image paths made absolute, as the sets move).
"$py" - "$PWD/data/tiny" "$tmp" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
for name, n in (("reasoning_train", 40), ("reasoning_heldout", 64)):
    with open(os.path.join(src, name + ".jsonl")) as f, open(os.path.join(out, name + ".jsonl"), "w") as o:
        for line in list(f)[:n]:
            r = json.loads(line)
            r["images"] = [os.path.join(src, p) for p in r["images"]]
            o.write(json.dumps(r) + "\n")
PY

common=(--set trainer.steps=4 --set checkpoint.every=2 --set checkpoint.keep=1 --set eval.every=2
  --set eval.prompts="$tmp/reasoning_heldout.jsonl" --set eval.max_new_tokens=8
  --set init_from="$runs/warm" --set optim.lr=1e-3 --set rl.prompts_per_step=4 --set rl.group_size=4
  --set rewards.format.weight=1 --set rewards.length.kind=kimi --set rewards.length.combine=add
  --set dist.collective_timeout_s=20)
rl_args=(configs/tiny/rl.yaml "${common[@]}" --set rl.micro_batch=6 --set rl.kl.coef=0.05
  --set rl.max_new_tokens=24 --set rewards.length.measure=total)
aggregate_args=(configs/tiny/aggregate.yaml "${common[@]}" --set aggregate.solver="$runs/warm"
  --set rl.prompts="$tmp/reasoning_train.jsonl" --set rl.max_new_tokens=16 --set rl.micro_batch=8
  --set rl.kl.coef=0.05 --set aggregate.k=2 --set aggregate.sets_per_problem=2
  --set aggregate.solver_max_new_tokens=16 --set 'aggregate.eval_k=[2]' --set aggregate.eval_problems=8)

latest_of() {
  cat "$runs/$1/LATEST" 2>/dev/null || echo none
}
# logged NAME: the steps of NAME's training records, e.g. "1 2".
logged() {
  "$py" -c 'import json,sys; print(*[r["step"] for r in map(json.loads, open(sys.argv[1])) if "eval" not in r])' \
    "$(metrics "$1")"
}

# same_as_reference NAME STAGE: NAME's records, candidate sets (aggregate)
# and final checkpoint are the uninterrupted STAGE run's.
same_as_reference() {
  "$py" - "$runs/$2" "$runs/$1" <<'PY'
import json, os, sys
reference, resumed = sys.argv[1:3]
# Measured, not computed: they differ from launch to launch.
measured = {"rollout_tokens_per_s", "train_tokens_per_s", "step_time_s", "rollout_time_s",
            "peak_rss_bytes", "seconds_per_problem"}
def records(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in measured} for line in f]
want, got = records(reference), records(resumed)
for i, (a, b) in enumerate(zip(want, got)):
    assert a == b, f"record {i} differs:\n  uninterrupted {a}\n  relaunched    {b}"
assert len(want) == len(got), f"{len(got)} records, the uninterrupted run has {len(want)}"
# The aggregator's candidate sets, built again by every launch.
sets = os.path.join(reference, "aggregation_sets.jsonl")
if os.path.exists(sets):
    assert open(sets).read() == open(os.path.join(resumed, "aggregation_sets.jsonl")).read(), \
        "the candidate sets differ from the uninterrupted run's"

def checkpoint(run):
    path = os.path.join(run, "checkpoints", open(os.path.join(run, "LATEST")).read().strip())
    manifest = json.load(open(os.path.join(path, "manifest.json")))
    files = {r["rank"]: open(os.path.join(path, r["file"]), "rb").read() for r in manifest["ranks"]}
    tensors = {}
    for t in manifest["tensors"]:
        shards = sorted(t["shards"], key=lambda s: s["begin"])
        tensors[t["name"]] = b"".join(files[s["rank"]][s["offset"]:s["offset"] + 4 * s["numel"]]
                                      for s in shards)
    # Not the ranks' state blobs: they hold LibTorch's default CPU generator,
    # which each process seeds at random and nothing in these stages draws
    # from (sampling and initialisation use generators of their own seeds).
    return manifest["step"], manifest["train_state"], tensors
step, state, tensors = checkpoint(reference)
step_got, state_got, tensors_got = checkpoint(resumed)
assert (step_got, state_got) == (step, state), (step_got, state_got, step, state)
assert list(tensors_got) == list(tensors), (list(tensors_got), list(tensors))
assert any(name.endswith("/reference") for name in tensors), "the checkpoint holds no reference policy"
for name in tensors:
    assert tensors_got[name] == tensors[name], f"tensor {name} differs from the uninterrupted run's"
print(f"{len(got)} records and {len(tensors)} tensors of step {step} as uninterrupted")
PY
}

# killed NAME STAGE PHASE RANK LOGGED LATEST [mpirun -x ...]: the launch of STAGE
# with the fault the -x flags set up must die of SIGKILL on RANK, having
# logged the training steps LOGGED, with LATEST naming LATEST; then the same
# command again must end as the uninterrupted run did.
killed() {
  local name=$1 stage=$2 phase=$3 rank=$4 want_logged=$5 want_latest=$6
  shift 6
  local -n args=${stage}_args
  extra_mpi_flags=(-x LD_PRELOAD="$inject" -x MUSE_FAULT_RANK="$rank" "$@")
  local status=0
  launch 2 "$name" "${args[@]}" || status=$?
  extra_mpi_flags=()
  [[ $status == 137 ]] && grep -q "rank $rank .*exited on signal 9" "$tmp/$name.log" ||
    { cat "$tmp/$name.log"; fail "$name: status $status, expected rank $rank killed by SIGKILL"; }
  [[ $(logged "$name") == "$want_logged" ]] ||
    fail "$name: logged steps '$(logged "$name")' when killed, expected '$want_logged'"
  [[ $(latest_of "$name") == "$want_latest" ]] || fail "$name: LATEST is $(latest_of "$name"), expected $want_latest"
  echo "$name: rank $rank killed during the $phase, steps '$want_logged' logged, LATEST $want_latest"
  if [[ $phase == "checkpoint write" ]]; then
    [[ -d $runs/$name/checkpoints/step_00000004.tmp ]] || fail "$name: no partial checkpoint was left"
    "$bin/export_probe" "$runs/$name" "$runs/$name" data/tiny/tokenizer.json "a" >/dev/null ||
      fail "$name: the previous checkpoint does not load"
  fi

  launch 2 "$name" "${args[@]}" || { cat "$tmp/$name.log"; fail "$name: the relaunch failed"; }
  if [[ $want_latest == none ]]; then
    ! grep -q "resumed from" "$tmp/$name.log" || fail "$name: resumed without a checkpoint"
  else
    grep -q "resumed from .*$want_latest at step" "$tmp/$name.log" ||
      { cat "$tmp/$name.log"; fail "$name: the relaunch did not resume from $want_latest"; }
  fi
  ! ls "$runs/$name/checkpoints" | grep -q "\." || fail "$name: a partial checkpoint was left"
  same_as_reference "$name" "$stage" || fail "$name: the relaunch differs from the uninterrupted run"
}

# uninterrupted STAGE: the run every relaunch of STAGE is compared with.
uninterrupted() {
  local -n args=${1}_args
  launch 2 "$1" "${args[@]}" || { cat "$tmp/$1.log"; fail "the uninterrupted $1 run failed"; }
  [[ $(logged "$1") == "1 2 3 4" ]] || fail "$1: logged steps $(logged "$1")"
}

for stage in rl aggregate; do
  uninterrupted "$stage"
  killed "${stage}_rollout" "$stage" rollout 1 "1 2" step_00000002 \
    -x MUSE_FAULT_PHASE=rollout -x MUSE_FAULT_STEP=3
  killed "${stage}_update" "$stage" update 0 "1" none -x MUSE_FAULT_PHASE=update -x MUSE_FAULT_STEP=2
  killed "${stage}_checkpoint" "$stage" "checkpoint write" 1 "1 2 3 4" step_00000002 \
    -x MUSE_FAULT_PATH=step_00000004 -x MUSE_FAULT_ACTION=kill -x MUSE_FAULT_AFTER=1000000
done
# One model solving and aggregating (aggregate.solver empty): a launch that
# resumes builds the candidate sets from init_from's weights, where the first
# one used the policy at step 0.
aggregate_shared_args=("${aggregate_args[@]}" --set aggregate.solver=)
uninterrupted aggregate_shared
killed aggregate_shared_rollout aggregate_shared rollout 1 "1 2" step_00000002 \
  -x MUSE_FAULT_PHASE=rollout -x MUSE_FAULT_STEP=3
echo "rl faults ok"
