#!/usr/bin/env bash
# muse-train's tokenizer side by side with the `tokenizers` package, in one run:
# training time (4096 tokens, 10 MiB, one thread each) and encode throughput of
# the same tokenizer.json over the English fortunes, GPT-2 and Llama-3 style.
# Writes docs/bench-tokenizer.md.
#
#   REPS (default 5)   VOCAB (default 4096)   BUILD_DIR (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/build.sh tokenizer_bench >/dev/null
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
py="$MUSE_VENV/bin/python"
bench="${BUILD_DIR:-build}/bin/tokenizer_bench"
reps=${REPS:-5} vocab=${VOCAB:-4096}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$py" bench/tokenizer/hf_bench.py prepare "$out"
for style in llama3 gpt2; do
  "$bench" train "$out/$style.json" "$style" "$vocab" "$out/train.txt" >>"$out/results.jsonl"
  # tokenizers trains on one thread too (rayon's pool), like the C++ trainer.
  RAYON_NUM_THREADS=1 "$py" bench/tokenizer/hf_bench.py train "$out/hf_$style.json" "$style" \
    "$vocab" "$out/train.txt" >>"$out/results.jsonl"
  # Both encode the tokenizer.json muse-train wrote.
  for threads in 1 "$(nproc)"; do
    "$bench" encode "$out/$style.json" "$out/docs.jsonl" "$threads" "$reps" |
      sed "s/^{/{\"pretokenizer\":\"$style\",/" >>"$out/results.jsonl"
  done
  "$py" bench/tokenizer/hf_bench.py encode "$out/$style.json" "$out/docs.jsonl" "$reps" |
    sed "s/^{/{\"pretokenizer\": \"$style\", /" >>"$out/results.jsonl"
done
"$py" bench/tokenizer/report.py "$out/results.jsonl" "$out/train.txt" >docs/bench-tokenizer.md
cat docs/bench-tokenizer.md
