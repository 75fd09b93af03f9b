#!/usr/bin/env bash
# Builds muse-train and runs the tiny end-to-end job as far as this version
# goes: the tiny data set (tokenizer and HDF5 shards made from packaged text
# and images), then the tiny pretraining config resolved, checked and launched
# on 2 ranks under mpirun with every collective verified across the ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

echo "== tiny data: data/tiny/"
bash scripts/make-tiny-data.sh
h5dump -H data/tiny/shards/pretrain/shard_000000.h5 | grep -E 'DATASET|DATASPACE' | paste - - |
  sed -E 's/ +/ /g; s/^/  /'

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== muse-train --dry-run on 2 ranks"
mpirun -np 2 --oversubscribe --bind-to none build/bin/muse-train \
  --config configs/tiny/pretrain.yaml --dry-run --set run.name=demo
echo "== resolved config: runs/demo/config.yaml"
head -n 12 runs/demo/config.yaml
