#!/usr/bin/env bash
# Results that must not move: short tiny-model runs of every stage, compared
# number for number (bitwise: metrics.jsonl prints the shortest form that
# reads back to the same double) with the records in tests/e2e/golden/:
#   * 20 pretraining steps on 1, 2 and 4 ranks, with a held-out loss and
#     caption evaluation at steps 10 and 20;
#   * 10 SFT steps on 2 ranks from the 1-rank run, with a reasoning evaluation;
#   * 10 RL steps on 2 ranks from the SFT run (rewards, reasoning tokens,
#     losses, KL), with a held-out and an adaptive evaluation;
#   * 2 aggregate steps on 2 ranks with the RL run as solver, and its
#     evaluation records (single, majority@K, aggregator@K, refinement).
# Timings, throughput and memory are left out of the comparison.
#   golden_test.sh BIN_DIR            compare with tests/e2e/golden/records.jsonl
#   golden_test.sh BIN_DIR --record   write that file anew (only from a commit
#                                     whose results are the reference)
source "$(dirname "$0")/pretrain_lib.sh"
# Floating-point results depend on the kernels the CPU selects: AVX-512 and
# AVX2 machines sum in different orders, as do different thread counts. The
# figures are recorded with every library held to its AVX2 code path (the widest
# every x86-64 CI machine has) and one thread per rank, so they do not depend
# on the machine the test runs on. MKL_CBWR is MKL's conditional numerical
# reproducibility setting; ONEDNN_MAX_CPU_ISA caps oneDNN's kernels.
# MUSE_CPU_MATMUL=aten keeps every matrix product on MKL: muse-train's oneDNN
# products need AVX-512, so a machine without it would take MKL anyway.
export OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
  MUSE_CPU_MATMUL=aten
golden=tests/e2e/golden/records.jsonl
mode=${2:-compare}

# Small held-out sets (image paths made absolute, as the sets move).
"$py" - "$PWD/data/tiny" "$tmp" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
for name, n in (("captions_heldout", 16), ("reasoning_heldout", 16), ("reasoning_train", 24)):
    with open(os.path.join(src, name + ".jsonl")) as f, open(os.path.join(out, name + ".jsonl"), "w") as o:
        for line in list(f)[:n]:
            r = json.loads(line)
            r["images"] = [os.path.join(src, p) for p in r.get("images", [])]
            o.write(json.dumps(r) + "\n")
PY

must() {
  local name=$1
  shift
  launch "$@" || { cat "$tmp/$name.log"; fail "run $name failed"; }
}
pre_args=(--set trainer.steps=20 --set eval.every=10 --set eval.batches=1
  --set eval.prompts="$tmp/captions_heldout.jsonl")
for np in 1 2 4; do
  must pretrain_np$np "$np" pretrain_np$np configs/tiny/pretrain.yaml "${pre_args[@]}"
done
must sft 2 sft configs/tiny/sft.yaml --set init_from="$runs/pretrain_np1" --set trainer.steps=10 \
  --set optim.lr=3e-3 --set eval.every=10 --set eval.batches=1 \
  --set eval.prompts="$tmp/reasoning_heldout.jsonl" --set eval.max_new_tokens=16
must rl 2 rl configs/tiny/rl.yaml --set init_from="$runs/sft" --set trainer.steps=10 \
  --set rl.prompts="$tmp/reasoning_train.jsonl" --set rl.prompts_per_step=4 --set rl.group_size=4 \
  --set rl.micro_batch=6 --set rl.kl.coef=0.05 --set rl.max_new_tokens=24 \
  --set rewards.format.weight=1 --set rewards.length.kind=kimi --set rewards.length.combine=add \
  --set optim.lr=1e-3 --set eval.every=10 --set eval.max_new_tokens=16 \
  --set eval.prompts="$tmp/reasoning_heldout.jsonl" --set adaptive.eval=true \
  --set 'adaptive.budgets=[4, 8]'
must aggregate 2 aggregate configs/tiny/aggregate.yaml --set init_from="$runs/rl" \
  --set aggregate.solver="$runs/rl" --set trainer.steps=2 \
  --set rl.prompts="$tmp/reasoning_train.jsonl" --set rl.prompts_per_step=4 --set rl.group_size=4 \
  --set rl.max_new_tokens=16 --set rl.micro_batch=8 --set optim.lr=1e-3 \
  --set rewards.format.weight=0.5 --set rewards.length.kind=kimi --set rewards.length.combine=add \
  --set aggregate.k=2 --set aggregate.sets_per_problem=2 --set aggregate.solver_max_new_tokens=16 \
  --set 'aggregate.eval_k=[2]' --set aggregate.eval_problems=8 --set 'aggregate.eval_refine_rounds=[1]' \
  --set eval.every=2 --set eval.max_new_tokens=16 --set eval.prompts="$tmp/reasoning_heldout.jsonl"

"$py" - "$runs" "$golden" "$mode" <<'PY'
import json, os, sys
runs, golden, mode = sys.argv[1:4]
names = ["pretrain_np1", "pretrain_np2", "pretrain_np4", "sft", "rl", "aggregate"]
# Measured, not computed: they differ from run to run.
timing = ("_time_s", "tokens_per_s", "peak_", "_seconds", "seconds_per_problem", "rss_bytes", "mfu",
          "flops_per_s", "elapsed_s", "eta_s")
def figures(record):
    return {k: v for k, v in record.items() if not any(t in k for t in timing)}
got = []
for name in names:
    with open(os.path.join(runs, name, "metrics.jsonl")) as f:
        got += [dict(run=name, **figures(json.loads(line))) for line in f]
if mode == "--record":
    os.makedirs(os.path.dirname(golden), exist_ok=True)
    with open(golden, "w") as f:
        for r in got:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    print(f"recorded {len(got)} records in {golden}")
    sys.exit(0)
want = [json.loads(line) for line in open(golden)]
if len(got) != len(want):
    sys.exit(f"FAIL: {len(got)} records, the reference has {len(want)}")
bad = 0
for g, w in zip(got, want):
    for key in sorted(set(g) | set(w)):
        if g.get(key, "<absent>") != w.get(key, "<absent>"):
            bad += 1
            if bad <= 20:
                print(f"FAIL: {w['run']} step {w.get('step')} {w.get('eval', '')} {key}: "
                      f"{g.get(key, '<absent>')!r} != reference {w.get(key, '<absent>')!r}")
if bad:
    sys.exit(f"FAIL: {bad} figures differ from {golden}")
print(f"{len(got)} records equal to the reference, bit for bit")
PY
echo "golden passed"
