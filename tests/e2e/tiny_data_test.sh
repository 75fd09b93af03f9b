#!/usr/bin/env bash
# scripts/make-tiny-data.sh end to end: the tiny data set is generated from
# packaged material, its tokenizer has muse-train's special tokens where the
# tiny model expects them, and its shards have the documented layout.
#   tiny_data_test.sh BUILD_DIR
set -euo pipefail
export BUILD_DIR=$1
FORCE=1 bash scripts/make-tiny-data.sh
out=data/tiny
for f in tokenizer.json text.jsonl captions.jsonl reasoning_train.jsonl reasoning_heldout.jsonl COMPLETE; do
  [[ -s $out/$f ]] || { echo "FAIL: $out/$f missing"; exit 1; }
done
shards=("$out"/shards/pretrain/*.h5)
((${#shards[@]} >= 1)) || { echo "FAIL: no pretrain shards"; exit 1; }
header=$(h5dump -H "${shards[0]}")
for dataset in tokens doc_offsets images image_positions; do
  grep -q "DATASET \"$dataset\"" <<<"$header" || { echo "FAIL: no /$dataset in ${shards[0]}"; exit 1; }
done
# The tiny model preset reads 8x8 grayscale images and <image> as id 3.
grep -q "DATASPACE  SIMPLE { ( [0-9]*, 8, 8, 1 )" <<<"$header" ||
  { echo "FAIL: images are not 8x8x1"; echo "$header"; exit 1; }
"$MUSE_VENV_PYTHON" - "$out/tokenizer.json" <<'PY'
import json, sys
added = {t["content"]: t["id"] for t in json.load(open(sys.argv[1]))["added_tokens"]}
assert added["<image>"] == 3, added
assert len(json.load(open(sys.argv[1]))["model"]["vocab"]) == 4096
PY
# Every reasoning record carries a checkable answer and the reasoning markers.
grep -c '"answer"' "$out/reasoning_heldout.jsonl" >/dev/null
grep -q '<think>' "$out/reasoning_train.jsonl"
echo "tiny data passed"
