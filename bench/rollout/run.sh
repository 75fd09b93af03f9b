#!/usr/bin/env bash
# Rollout generation side by side: muse-train's batched KV-cache sampling
# (model::generate) against Hugging Face LlamaForCausalLM.generate on the same
# checkpoint exported with muse-export, the same prompt token ids, batch sizes
# and number of new tokens, interleaved call by call. Checkpoints of the tiny
# and small presets come from short pretraining runs made here (or the given
# ones). Writes $RESULTS_DIR/rollout.json and prints its Markdown.
#
#   RESULTS_DIR (default: a temporary directory)   BUILD_DIR (default build)
#   NO_BUILD=1 to use the existing binaries         REPS (default 3)
#   NEW_TOKENS (default 64, rl.max_new_tokens of configs/tiny/rl.yaml)
#   BATCHES (default 16,1)   THREADS (default 1, for each side)
#   PRESETS (default tiny,small)
#   TINY_CHECKPOINT, SMALL_CHECKPOINT: a run or checkpoint directory to use
#                                      instead of training one
#   PROFILE=1: also profile both sides (HF: torch.profiler; muse-train: perf)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS=0
source bench/common.sh
bench_prepare rollout_bench muse-train muse-export
bin="$build_dir/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# checkpoint PRESET: a checkpoint of PRESET, given or from a short pretraining
# run on the tiny shards (the small preset with the tiny data's 8x8 grayscale
# images, as bench/train runs it). Runs in the background, one thread each.
small_keys=(--set model.preset=small --set model.image_size=8 --set model.patch_size=4
  --set model.image_channels=1 --set data.batch_size=2 --set data.seq_len=64)
checkpoint() {
  local preset=$1 given=$2
  if [[ -n $given ]]; then
    echo "$given" >"$work/$preset.ckpt"
    return
  fi
  local keys
  case $preset in
    tiny) keys=(--set trainer.steps=2) ;;
    small) keys=(--set trainer.steps=1 "${small_keys[@]}") ;;
    *) echo "error: PRESETS: unknown preset '$preset' (tiny or small)" >&2 && return 2 ;;
  esac
  OMP_NUM_THREADS=1 "$bin/muse-train" --config configs/tiny/pretrain.yaml \
    --set run.dir="$work" --set run.name="$preset" --set eval.every=0 \
    --set telemetry.progress=off "${keys[@]}" >"$work/$preset.log" 2>&1 ||
    { cat "$work/$preset.log" >&2; return 1; }
  echo "$work/$preset" >"$work/$preset.ckpt"
}

IFS=, read -ra presets <<<"${PRESETS:-tiny,small}"
pids=()
for preset in "${presets[@]}"; do
  given=TINY_CHECKPOINT
  [[ $preset == small ]] && given=SMALL_CHECKPOINT
  checkpoint "$preset" "${!given:-}" &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
models=()
for preset in "${presets[@]}"; do
  ckpt=$(cat "$work/$preset.ckpt")
  "$bin/muse-export" --checkpoint "$ckpt" --format hf --out "$work/hf-$preset" >/dev/null
  models+=(--model "$ckpt" "$work/hf-$preset")
done
"$bin/rollout_bench" tokenize data/tiny/tokenizer.json data/tiny/reasoning_heldout.jsonl 16 \
  >"$work/ids.txt"

profile=()
if [[ "${PROFILE:-0}" == 1 ]]; then
  mkdir -p "$work/profile"
  profile=(--profile "$work/profile")
fi
"$py" bench/rollout/bench.py --bench "$bin/rollout_bench" --ids "$work/ids.txt" "${models[@]}" \
  --out "$work/results.jsonl" --batches "${BATCHES:-16,1}" --new-tokens "${NEW_TOKENS:-64}" \
  --reps "${REPS:-3}" --threads "${THREADS:-1}" "${profile[@]}"

"$py" bench/rollout/report.py "$work/results.jsonl" --json "$results/rollout.json" \
  --seconds "$SECONDS" "${profile[@]}"
