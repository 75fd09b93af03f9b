#!/usr/bin/env bash
# ZeRO-3 memory falls as 1/N: the shard_bytes a rank logs (fp32 weights,
# gradient and both AdamW moments of its shards) on 2 and 4 ranks, times N,
# is within 1% of (and, by padding, not below) the 1-rank value, and equals
# 16 bytes per shard element worked out from the model dimensions
# (pretrain_formulas.py). model.dim 120 makes every unit need shard padding.
#   pretrain_memory_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
declare -A bytes
for np in 1 2 4; do
  train $np np$np --set trainer.steps=2 --set model.dim=120
  bytes[$np]=$("$py" - "$(metrics np$np)" <<'PY'
import json, sys
values = {json.loads(line)["shard_bytes"] for line in open(sys.argv[1])}
assert len(values) == 1, f"shard_bytes changes between steps: {values}"
print(values.pop())
PY
)
  want=$("$py" "$(dirname "$0")/pretrain_formulas.py" memory "$runs/np$np" $np)
  echo "$np rank(s): shard_bytes ${bytes[$np]} per rank, formula $want"
  [[ ${bytes[$np]} == "$want" ]] || fail "$np rank(s): shard_bytes ${bytes[$np]}, expected $want"
done
for np in 2 4; do
  total=$((bytes[$np] * np))
  ((total >= bytes[1])) || fail "$np ranks hold $total bytes in all, less than 1 rank's ${bytes[1]}"
  ((total * 100 <= bytes[1] * 101)) || fail "$np ranks hold $total bytes in all, over 1% more than 1 rank's ${bytes[1]}"
  ((total > bytes[1])) || fail "$np ranks: no padding with model.dim 120?"
done
echo "memory per rank falls as 1/N"
