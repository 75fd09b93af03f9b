#!/usr/bin/env bash
# Export end to end, from a tiny checkpoint saved by 2 ranks:
#   * muse-export --format hf: transformers loads the directory
#     (AutoModelForCausalLM, AutoTokenizer) and its logits equal muse-train's
#     own forward to 1e-4, greedy generation identical (hf_check.py); also
#     sharded with an index;
#   * --format gguf in fp32, fp16 and bf16: every key, type, shape and tensor
#     checked with the gguf package (gguf_check.py); llama.cpp runs the fp32
#     file to muse-train's logits (1e-3) and greedy tokens (llama_cpp_check.py);
#   * vLLM (CPU) serves the HF export, one file and sharded, with muse-train's
#     greedy tokens and log-probabilities (vllm_check.py; the image projector
#     under muse/ is invisible to it);
#   * the round trip: init_from hf:OUT gives the same logits and the same
#     first training step as init_from the checkpoint;
#   * bad input is one `error:` line naming the file (and tensor), exit 2,
#     with nothing left under the output's name.
#   export_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
train 2 base --set trainer.steps=6
ckpt=$runs/base
tokenizer=data/tiny/tokenizer.json
text="The digit seven is odd"
"$bin/export_probe" "$ckpt" "$ckpt" "$tokenizer" "$text" >"$tmp/probe.json"

# HF, one file and sharded.
"$bin/muse-export" --checkpoint "$ckpt" --format hf --out "$tmp/hf" >"$tmp/export.log" ||
  { cat "$tmp/export.log"; fail "hf export failed"; }
grep -q "^exported .*step 6.*: 41 tensors" "$tmp/export.log" || { cat "$tmp/export.log"; fail "summary"; }
"$py" tests/formats/hf_check.py "$tmp/hf" "$tmp/probe.json" "$text" || fail "transformers check"
"$bin/muse-export" --checkpoint "$ckpt" --format hf --out "$tmp/hf_sharded" --max-shard-bytes 1000000 \
  >/dev/null || fail "sharded export failed"
[[ -f $tmp/hf_sharded/model.safetensors.index.json && -f $tmp/hf_sharded/model-00002-of-00005.safetensors ]] ||
  { ls "$tmp/hf_sharded"; fail "no shards and index"; }
"$py" tests/formats/hf_check.py "$tmp/hf_sharded" "$tmp/probe.json" "$text" || fail "sharded check"
# Exporting again replaces an earlier export.
"$bin/muse-export" --checkpoint "$ckpt" --format hf --out "$tmp/hf" >/dev/null || fail "re-export"

# GGUF in every dtype.
for dtype in fp32 fp16 bf16; do
  "$bin/muse-export" --checkpoint "$ckpt" --format gguf --out "$tmp/m-$dtype.gguf" --dtype "$dtype" \
    >/dev/null || fail "gguf $dtype export failed"
  "$py" tests/formats/gguf_check.py "$tmp/m-$dtype.gguf" "$tmp/hf" "$dtype" || fail "gguf $dtype check"
done
# llama.cpp runs the fp32 file: logits and greedy tokens as muse-train's.
"${MUSE_LLAMA_CPP_PYTHON:-$HOME/.cache/muse-train/llama-cpp/bin/python}" \
  tests/formats/llama_cpp_check.py "$tmp/m-fp32.gguf" "$tmp/probe.json" || fail "llama.cpp check"
# vLLM serves the HF export (the text backbone): muse-train's greedy tokens.
"${MUSE_VLLM_PYTHON:-$HOME/.cache/muse-train/vllm/bin/python}" tests/formats/vllm_check.py \
  "$tmp/hf" "$tmp/probe.json" "$tmp/hf_sharded" "$tmp/probe.json" 2>"$tmp/vllm.log" ||
  { cat "$tmp/vllm.log"; fail "vLLM check"; }

# Round trip: the exported directory as init_from gives the same model.
"$bin/export_probe" "hf:$tmp/hf" "$ckpt" "$tokenizer" "$text" >"$tmp/probe_hf.json"
cmp -s "$tmp/probe.json" "$tmp/probe_hf.json" || fail "hf: weights give different logits"
for from in "$ckpt" "hf:$tmp/hf"; do
  name=from_$([[ $from == hf:* ]] && echo hf || echo ckpt)
  launch 2 "$name" configs/tiny/sft.yaml --set init_from="$from" --set trainer.steps=1 ||
    { cat "$tmp/$name.log"; fail "training from $from failed"; }
done
"$py" - "$(metrics from_ckpt)" "$(metrics from_hf)" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"loss"' in l and '"eval"' not in l] for p in sys.argv[1:])
assert a[0]["step"] == b[0]["step"] == 1 and a[0]["loss"] == b[0]["loss"], (a[0], b[0])
print("round trip: step 1 loss", a[0]["loss"], "from both")
PY

# expect_export_error NAME PATTERN muse-export args...: exit 2, one error line.
expect_export_error() {
  local name=$1 pattern=$2
  shift 2
  local status=0
  "$bin/muse-export" "$@" >"$tmp/$name.log" 2>&1 || status=$?
  [[ $status == 2 && $(grep -c "^error:" "$tmp/$name.log") == 1 ]] &&
    grep -q "^error: .*$pattern" "$tmp/$name.log" ||
    { cat "$tmp/$name.log"; fail "$name: exit $status, expected 2 and one error matching $pattern"; }
}
mkdir -p "$tmp/nomanifest"
expect_export_error no_manifest "nomanifest" --checkpoint "$tmp/nomanifest" --format hf --out "$tmp/o1"
cp -r "$ckpt/checkpoints/$(cat "$ckpt/LATEST")" "$tmp/truncated"
truncate -s 100 "$tmp/truncated/rank_00001.bin"
expect_export_error truncated "rank_00001.bin" --checkpoint "$tmp/truncated" --format hf --out "$tmp/o2"
expect_export_error truncated_gguf "rank_00001.bin" --checkpoint "$tmp/truncated" --format gguf \
  --out "$tmp/o2.gguf"
[[ ! -e $tmp/o2 && ! -e $tmp/o2.tmp && ! -e $tmp/o2.gguf && ! -e $tmp/o2.gguf.tmp ]] ||
  fail "a failed export left files behind"
mkdir -p "$tmp/notmine" && touch "$tmp/notmine/data.txt"
expect_export_error not_an_export "notmine: exists and is not a muse-train export" \
  --checkpoint "$ckpt" --format hf --out "$tmp/notmine"
[[ -f $tmp/notmine/data.txt ]] || fail "an unrelated directory was touched"
# A pre-tokenizer llama.cpp has no name for would split text differently there.
"$py" - "$tokenizer" "$tmp/odd_tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s+|\S+"
json.dump(t, open(sys.argv[2], "w"))
PY
expect_export_error odd_pre "odd_tokenizer.json: pre_tokenizer has no llama.cpp name" \
  --checkpoint "$ckpt" --format gguf --out "$tmp/odd.gguf" --tokenizer "$tmp/odd_tokenizer.json"
[[ ! -e $tmp/odd.gguf ]] || fail "a refused GGUF export left a file"

# Bad Hugging Face directories for init_from: hf:.
"$py" - "$tmp/hf" "$tmp" <<'PY'
import json, os, shutil, struct, sys
src, tmp = sys.argv[1:3]
def variant(name, edit):
    d = os.path.join(tmp, name)
    shutil.copytree(src, d)
    edit(d)
def rewrite_header(d, change):
    p = os.path.join(d, "model.safetensors")
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    header, data, declared = change(header, data)
    text = json.dumps(header).encode()
    open(p, "wb").write(struct.pack("<Q", declared if declared else len(text)) + text + data)
def overlap(h, d):
    h["model.norm.weight"]["data_offsets"][0] -= 4
    return h, d, None
def huge(h, d):
    return h, d, 200_000_000
def reshape(h, d):
    h["model.norm.weight"]["shape"] = [h["model.norm.weight"]["shape"][0] // 2, 2]
    return h, d, None
variant("hf_overlap", lambda d: rewrite_header(d, overlap))
variant("hf_huge", lambda d: rewrite_header(d, huge))
variant("hf_shape", lambda d: rewrite_header(d, reshape))
def config(d):
    p = os.path.join(d, "config.json")
    c = json.load(open(p)); c["intermediate_size"] += 1; json.dump(c, open(p, "w"))
variant("hf_config", config)
PY
expect_init_error() {
  local name=$1 pattern=$2
  local status=0
  launch 2 "$name" configs/tiny/sft.yaml --set init_from="hf:$tmp/$name" --set trainer.steps=1 ||
    status=$?
  [[ $status == 2 && $(grep -c "^error:" "$tmp/$name.log") == 1 ]] &&
    grep -q "^error: init_from: .*$pattern" "$tmp/$name.log" ||
    { cat "$tmp/$name.log"; fail "$name: exit $status, expected 2 and one error matching $pattern"; }
}
expect_init_error hf_overlap "model.safetensors: tensor 'model.norm.weight': data_offsets .* overlap"
expect_init_error hf_huge "model.safetensors: header of 200000000 bytes is over the limit"
expect_init_error hf_shape "model.safetensors: tensor 'model.norm.weight' has shape \[64, 2\], config.json gives \[128\]"
# config.json decides the shape (hf: needs no model.* key), so its weights
# no longer fit.
expect_init_error hf_config "model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape \[384, 128\], config.json gives \[385, 128\]"
echo "export ok"
