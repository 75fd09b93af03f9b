#!/usr/bin/env bash
# Every text family in and out: transformers makes a small random model of
# each (tests/formats/families.py) ->
#   muse-train reads it with no model.* key: logits equal transformers' and
#   every greedy token is transformers' argmax (family_probe);
#   10 SFT steps from hf:DIR on the tiny data;
#   the Hugging Face export loads in transformers as the same class with
#   logits equal muse-train's on the trained checkpoint;
#   the GGUF export gives muse-train's logits and greedy tokens in llama.cpp
#   (Llama 3.1's scaling as rope_freqs factors, linear as rope.scaling.*);
#   vLLM (CPU) serves every Hugging Face export with muse-train's greedy
#   tokens and log-probabilities (all five in one process: its start-up is
#   the slow part);
# and the bad Hugging Face directories are one error line each, exit 2.
#   families_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh" "$1"
llama_py=${MUSE_LLAMA_CPP_PYTHON:-$HOME/.cache/muse-train/llama-cpp/bin/python}
vllm_py=${MUSE_VLLM_PYTHON:-$HOME/.cache/muse-train/vllm/bin/python}

"$py" tests/formats/families.py make "$tmp/hf" >/dev/null 2>&1 || fail "transformers could not make the models"
ids=5,17,300,42,1000,7,2048,99
vllm_args=()  # HF_DIR PROBE_JSON pairs for tests/formats/vllm_check.py
for family in $("$py" tests/formats/families.py names); do
  "$bin/family_probe" "hf:$tmp/hf/$family" "$ids" 8 >"$tmp/$family.json" ||
    fail "$family: muse-train could not read it"
  "$py" tests/formats/families.py check "$tmp/hf/$family" "$tmp/$family.json" "$family" ||
    fail "$family: import differs from transformers"
  launch 1 "$family" configs/tiny/sft.yaml --set init_from="hf:$tmp/hf/$family" \
    --set trainer.steps=10 || { cat "$tmp/$family.log"; fail "$family: SFT from hf: failed"; }
  grep -q "^| model.family .*| .*$family/config.json" "$tmp/$family.log" ||
    fail "$family: the start-up table does not take model.family from config.json"
  "$bin/muse-export" --checkpoint "$runs/$family" --format hf --out "$tmp/$family-hf" >/dev/null ||
    fail "$family: export failed"
  "$bin/family_probe" "$runs/$family" "$ids" 8 >"$tmp/$family-trained.json" ||
    fail "$family: probe of the trained checkpoint failed"
  "$py" tests/formats/families.py check "$tmp/$family-hf" "$tmp/$family-trained.json" "$family" ||
    fail "$family: the export differs from muse-train's model"
  vllm_args+=("$tmp/$family-hf" "$tmp/$family-trained.json")
  "$bin/muse-export" --checkpoint "$runs/$family" --format gguf --out "$tmp/$family.gguf" >/dev/null ||
    fail "$family: GGUF export failed"
  "$llama_py" tests/formats/llama_cpp_check.py "$tmp/$family.gguf" "$tmp/$family-trained.json" ||
    fail "$family: llama.cpp's greedy tokens differ"
done
"$vllm_py" tests/formats/vllm_check.py "${vllm_args[@]}" 2>"$tmp/vllm.log" ||
  { cat "$tmp/vllm.log"; fail "vLLM's greedy tokens or log-probabilities differ (or it cannot load an export)"; }

# Bad directories: each one error line naming the file and the key or tensor.
"$py" - "$tmp/hf" <<'PY'
import json, os, shutil, sys
from safetensors.torch import load_file, save_file
root = sys.argv[1]
def variant(name, src, edit_config=None, edit_tensors=None):
    d = os.path.join(root, name)
    shutil.copytree(os.path.join(root, src), d)
    if edit_config:
        p = os.path.join(d, "config.json")
        c = json.load(open(p)); edit_config(c); json.dump(c, open(p, "w"))
    if edit_tensors:
        p = os.path.join(d, "model.safetensors")
        t = load_file(p); edit_tensors(t); save_file(t, p, metadata={"format": "pt"})
variant("bad_arch", "llama31", lambda c: c.update(architectures=["GPT2LMHeadModel"]))
variant("bad_rope", "llama31",
        lambda c: c["rope_parameters"].update(rope_type="yarn"))
variant("bad_window", "mistral", lambda c: c.update(sliding_window=128))
variant("bad_missing", "qwen2",
        edit_tensors=lambda t: t.pop("model.layers.1.self_attn.k_proj.bias"))
PY
expect_hf_error() {
  local name=$1 key=$2
  shift 2
  expect_launch_error "$name" "$key" configs/tiny/sft.yaml --set init_from="hf:$tmp/hf/$name" \
    --set trainer.steps=1 "$@"
}
expect_hf_error bad_arch "init_from: .*bad_arch/config.json: architectures names GPT2LMHeadModel; muse-train reads LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"
expect_hf_error bad_rope "init_from: .*bad_rope/config.json: rope_scaling type 'yarn' is not supported"
expect_hf_error bad_window "init_from: .*bad_window/config.json: sliding_window is 128, less than model.max_seq_len (256)"
expect_hf_error bad_missing "init_from: .*bad_missing/model.safetensors: no tensor 'model.layers.1.self_attn.k_proj.bias'"
# An explicit model.* key must agree with config.json.
mkdir -p "$tmp/hf/explicit" && cp -r "$tmp/hf/qwen3/." "$tmp/hf/explicit/"
expect_hf_error explicit "model.head_dim: 16 disagrees with .*explicit/config.json, which gives 32" \
  --set model.head_dim=16
# A window that covers the sequence is accepted.
launch 1 window_ok configs/tiny/sft.yaml --set init_from="hf:$tmp/hf/bad_window" \
  --set model.max_seq_len=128 --set data.seq_len=64 --set trainer.steps=1 ||
  { cat "$tmp/window_ok.log"; fail "a sliding window covering model.max_seq_len was refused"; }
echo "families ok"
