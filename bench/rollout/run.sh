#!/usr/bin/env bash
# Rollouts side by side: muse-train's engine (model::generate through
# `rollout_bench serve`) against vLLM's CPU build (vllm_generate.py, in the
# vLLM venv of DEVELOPERS.md) on SmolLM2-135M-Instruct (scripts/smollm2.py),
# the same prompt token ids (bench/rollout/prompts.jsonl in the chat format)
# and sampling, interleaved call by call:
#   * a GRPO batch: P prompts x G samples at temperature 1, ending at the
#     model's end token or MAX_NEW tokens (ragged lengths);
#   * exact length: BATCH sequences of exactly NEW_TOKENS tokens;
#   * one sequence, greedy, NEW_TOKENS tokens.
# The machine's roofline (fp32 matmul GFLOP/s, memory GB/s) is measured in
# the same run; with PROFILE=1 (the default) a last GRPO batch runs under
# perf to show where muse-train's time goes. Writes $RESULTS_DIR/rollout.json.
#
#   RESULTS_DIR (default: a temporary directory)   BUILD_DIR (default build)
#   NO_BUILD=1 to use the existing binaries         REPS (default 3)
#   THREADS (default 2, for each side)              PROFILE (default 1)
#   PROMPTS=16 SAMPLES=8 MAX_NEW=256                BATCH=128 NEW_TOKENS=64
#   MUSE_VLLM_PYTHON (default ~/.cache/muse-train/vllm/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS=0
source bench/common.sh
bench_prepare rollout_bench
bin="$build_dir/bin"
vllm_py="${MUSE_VLLM_PYTHON:-$HOME/.cache/muse-train/vllm/bin/python}"
[[ -x $vllm_py ]] || { echo "error: no vLLM python at $vllm_py (scripts/install-deps.sh)" >&2; exit 1; }
model=$("$py" scripts/smollm2.py)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=${THREADS:-2}

"$bin/rollout_bench" tokenize "$model/tokenizer.json" bench/rollout/prompts.jsonl 16 --chat \
  >"$work/ids.txt"
profile=()
[[ "${PROFILE:-1}" == 1 ]] && profile=(--profile "$work/profile.txt")
"$py" bench/rollout/bench.py --bench "$bin/rollout_bench" --vllm-python "$vllm_py" \
  --model "$model" --ids "$work/ids.txt" --out "$work/results.jsonl" --reps "${REPS:-3}" \
  --threads "$threads" --group "${PROMPTS:-16}x${SAMPLES:-8}x${MAX_NEW:-256}" \
  --exact "${BATCH:-128}x${NEW_TOKENS:-64}" --single "${NEW_TOKENS:-64}" "${profile[@]}"
"$py" bench/rollout/report.py "$work/results.jsonl" --json "$results/rollout.json" \
  --seconds "$SECONDS" "${profile[@]}"
