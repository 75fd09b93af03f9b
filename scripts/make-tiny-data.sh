#!/usr/bin/env bash
# Builds the tiny data set of the configs/tiny presets into data/tiny/
# (git-ignored), from material that installed packages carry: the English
# fortunes (package `fortunes`) and scikit-learn's bundled 8x8 digits.
#
#   data/tiny/text.jsonl, captions.jsonl, digits/NNNN.png     pretraining material
#   data/tiny/captions_heldout.jsonl                           held-out digits: prompts, answers
#   data/tiny/reasoning_{train,heldout}.jsonl                  RL problems with answers
#   data/tiny/tokenizer.json                                   trained on the training text
#   data/tiny/shards/pretrain/          text + captioned digits (muse-data build)
#   data/tiny/shards/pretrain_heldout/  captions of the held-out digits, for a held-out loss
#   data/tiny/shards/sft/               worked reasoning problems, loss on the solutions only
#   data/tiny/shards/sft_heldout/       the held-out problems, for a held-out SFT loss
#
# Idempotent: the outputs are a function of the inputs; when data/tiny/ is
# complete and was made by this version of the scripts, nothing is redone
# (FORCE=1 rebuilds). Runs in a few seconds.
#
#   BUILD_DIR   where muse-data was built (default: build)
#   MUSE_VENV   virtual environment with scikit-learn (default: $HOME/.cache/muse-train/venv)
#   FORCE=1     rebuild even when data/tiny/ is up to date
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build}"
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
muse_data="$BUILD_DIR/bin/muse-data"
out=data/tiny
# Matched to the tiny model preset (model.image_size 8, image_channels 1,
# vocab_size 4096): the digits' native 8x8 grayscale.
IMAGE_SIZE=8
CHANNELS=1
VOCAB_SIZE=4096
SHARD_TOKENS=262144

say() { printf '[make-tiny-data] %s\n' "$*"; }

[[ -x $muse_data ]] || { echo "error: $muse_data not found: build first (scripts/build.sh)" >&2; exit 1; }
[[ -x $MUSE_VENV/bin/python ]] ||
  { echo "error: $MUSE_VENV/bin/python not found: run scripts/install-deps.sh" >&2; exit 1; }

# What the data depends on: these scripts, the settings above (part of this
# file) and the muse-data that tokenizes.
stamp=$( (cat scripts/make-tiny-data.sh scripts/make_tiny_data.py; "$muse_data" --version) | sha256sum | cut -d' ' -f1)
if [[ ${FORCE:-0} != 1 && -f $out/COMPLETE && $(cat "$out/COMPLETE") == "$stamp" ]]; then
  say "$out is up to date (FORCE=1 rebuilds)"
  exit 0
fi

start=$(date +%s%N)
# Build in the (git-ignored) build directory, then swap, so data/tiny/ is
# never half-made.
tmp="$BUILD_DIR/make-tiny-data.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"

say "raw material: fortunes, digits, captions, reasoning problems"
"$MUSE_VENV/bin/python" scripts/make_tiny_data.py "$tmp"

say "tokenizer: vocabulary of $VOCAB_SIZE"
"$muse_data" tokenizer train --input "$tmp/text.jsonl" --input "$tmp/captions.jsonl" \
  --input "$tmp/reasoning_train.jsonl" --vocab-size "$VOCAB_SIZE" --out "$tmp/tokenizer.json"

say "shards: pretrain (text and captioned digits), pretrain_heldout (held-out digits), sft and sft_heldout (worked reasoning problems)"
build() {  # NAME MUSE-DATA-BUILD-ARGUMENTS...
  local name=$1
  shift
  "$muse_data" build --tokenizer "$tmp/tokenizer.json" --out "$tmp/shards/$name" \
    --shard-tokens "$SHARD_TOKENS" --image-size "$IMAGE_SIZE" --channels "$CHANNELS" \
    --progress off "$@"
}
build pretrain --input "$tmp/text.jsonl" --input "$tmp/captions.jsonl"
build pretrain_heldout --input "$tmp/captions_heldout.jsonl"
# The prompts' predictions do not count: the model learns the solutions.
build sft --input "$tmp/reasoning_train.jsonl" --prompt-key prompt --response-key solution
build sft_heldout --input "$tmp/reasoning_heldout.jsonl" --prompt-key prompt --response-key solution

echo "$stamp" >"$tmp/COMPLETE"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
say "done in $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s: $(du -sh "$out" | cut -f1) in $out"
