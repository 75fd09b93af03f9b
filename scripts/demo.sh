#!/usr/bin/env bash
# Builds muse-train and runs the tiny end-to-end job: the tiny pretraining
# config resolved, checked and launched on 2 ranks under mpirun, every
# collective verified across the ranks, and the run directory written.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== muse-train --dry-run on 2 ranks"
mpirun -np 2 --oversubscribe --bind-to none build/bin/muse-train \
  --config configs/tiny/pretrain.yaml --dry-run --set run.name=demo
echo "== resolved config: runs/demo/config.yaml"
cat runs/demo/config.yaml
