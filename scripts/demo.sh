#!/usr/bin/env bash
# Builds muse-train and runs the tiny end-to-end job: the tiny data set
# (tokenizer and HDF5 shards made from packaged text and images), the tiny
# pretraining on 2 ranks under mpirun (text and captioned digits; held-out
# digits are captioned every eval.every steps), then the supervised warm-up
# on worked reasoning problems from the pretrained weights, the RL stage
# (thought compression: correctness minus a length penalty) from the
# warm-up, the loss curves as a plot, held-out accuracy and reasoning
# tokens before and after RL, then contemplating mode: an aggregator trained
# over K=4 answers of the RL model, one held-out problem answered that way,
# and the accuracy table (one sample, majority vote, the aggregator). Runs
# land in runs/; a rerun resumes or, when a run is complete, starts nothing
# new (delete runs/tiny-* to train again).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

echo "== tiny data: data/tiny/"
bash scripts/make-tiny-data.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun_2=(mpirun -np 2 --oversubscribe --bind-to none)

echo "== pretraining on 2 ranks: runs/tiny-pretrain"
"${mpirun_2[@]}" build/bin/muse-train --config configs/tiny/pretrain.yaml

echo "== supervised warm-up on 2 ranks: runs/tiny-sft"
"${mpirun_2[@]}" build/bin/muse-train --config configs/tiny/sft.yaml

echo "== RL with a length penalty on 2 ranks: runs/tiny-rl"
"${mpirun_2[@]}" build/bin/muse-train --config configs/tiny/rl.yaml

echo "== loss curves: runs/tiny-curves.png"
"$HOME/.cache/muse-train/venv/bin/python" scripts/plot_metrics.py --out runs/tiny-curves.png \
  runs/tiny-pretrain/metrics.jsonl runs/tiny-sft/metrics.jsonl
grep '"eval"' runs/tiny-pretrain/metrics.jsonl | tail -n 1
grep '"eval"' runs/tiny-sft/metrics.jsonl | tail -n 1
echo "== RL before and after (held-out, greedy): runs/tiny-rl-compare/summary.md"
"$HOME/.cache/muse-train/venv/bin/python" scripts/plot_rl.py --out runs/tiny-rl-compare runs/tiny-rl

echo "== contemplating mode: an aggregator over K=4 solver answers on 2 ranks: runs/tiny-aggregate"
"${mpirun_2[@]}" build/bin/muse-train --config configs/tiny/aggregate.yaml
echo "== a held-out problem in contemplating mode (4 solvers, then the aggregator)"
build/bin/muse-generate --checkpoint runs/tiny-aggregate --contemplate 4 \
  --prompts data/tiny/reasoning_heldout.jsonl --limit 1 --verbose
echo "== held-out accuracy by method: runs/tiny-aggregate-report/contemplate.md"
"$HOME/.cache/muse-train/venv/bin/python" scripts/report_contemplate.py \
  --out runs/tiny-aggregate-report runs/tiny-aggregate
