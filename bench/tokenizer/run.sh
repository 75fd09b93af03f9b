#!/usr/bin/env bash
# muse-train's tokenizer side by side with the `tokenizers` package, in one run:
# training time (4096 tokens, 10 MiB, one thread each) and encode throughput of
# the same tokenizer.json over the English fortunes, GPT-2 and Llama-3 style.
# Writes docs/bench-tokenizer.md and $RESULTS_DIR/tokenizer.json (encode MB/s
# at every core, a row per pre-tokenizer).
#
#   REPS (default 3)   VOCAB (default 4096)
#   RESULTS_DIR (default: a temporary directory)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare tokenizer_bench
bench="$build_dir/bin/tokenizer_bench"
reps=${REPS:-3} vocab=${VOCAB:-4096}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$SECONDS
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
"$py" bench/tokenizer/report.py "$out/results.jsonl" "$out/train.txt" \
  --json "$results/tokenizer.json" --seconds $((SECONDS - start)) >docs/bench-tokenizer.md
cat docs/bench-tokenizer.md
