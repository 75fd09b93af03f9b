#!/usr/bin/env bash
# The loss without the (B, T, V) logits: one loss + backward of TOKENS tokens
# of width WIDTH at vocabularies of 49,152 (SmolLM2) and 151,936 (Qwen2.5),
# today's path (the whole logits and their log-softmax) against the chunked
# one (trainer.loss_chunk_tokens = CHUNK), interleaved repetition by
# repetition in one process: peak bytes (the CPU allocator meter) and step
# time. Writes docs/bench-loss.md and $RESULTS_DIR/loss.json.
#
#   REPS (default 3)   TOKENS (default 2048)   WIDTH (default 576)
#   CHUNK (default 512)   VOCABS (default "49152 151936")
#   RESULTS_DIR (default: a temporary directory)
#   BUILD_DIR (default build)   NO_BUILD=1 to use the existing binary
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
bench_prepare loss_bench
reps=${REPS:-3} tokens=${TOKENS:-2048} width=${WIDTH:-576} chunk=${CHUNK:-512}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$SECONDS
for vocab in ${VOCABS:-49152 151936}; do
  "$build_dir/bin/loss_bench" "$vocab" "$tokens" "$width" "$chunk" "$reps" >>"$out/results.jsonl"
done
"$py" bench/loss/report.py "$out/results.jsonl" --json "$results/loss.json" \
  --seconds $((SECONDS - start)) >docs/bench-loss.md
cat docs/bench-loss.md
