#!/usr/bin/env bash
# muse-data end to end: a tokenizer trained on a small JSON Lines corpus with
# PNG images written here, shards built from it (checked with h5dump against
# docs/formats.md, and by muse-data checksum), the same bytes from 1 and 2
# workers, supervised examples (--prompt-key/--response-key, /loss_starts),
# and bad input: exit code 2, one `error: FILE:LINE: ...` line, no shard left
# behind.
#   muse_data_test.sh BIN_DIR
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# PNGs from the standard library: NAME WIDTH HEIGHT CHANNELS (1 or 3) VALUE
python3 - "$tmp" <<'PY'
import os, struct, sys, zlib
root = sys.argv[1]
def png(name, w, h, c, value):
    os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    raw = b"".join(b"\x00" + bytes([(value + x) % 256 for x in range(w * c)]) for _ in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(os.path.join(root, name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png("img/red.png", 8, 8, 3, 200)
png("img/gray.png", 2, 2, 1, 40)
png("img/wide.png", 12, 6, 3, 7)
with open(os.path.join(root, "img/broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\nthis is not a png")
PY

cat >"$tmp/corpus.jsonl" <<'EOF'
{"text": "A red square: <image> and nothing else.", "images": ["img/red.png"]}
{"text": "Two pictures, <image> then <image>, side by side.", "images": ["img/gray.png", "img/wide.png"]}

{"text": "Plain text without any image at all, just words and more words."}
{"text": "<image> a caption after the image", "images": ["img/red.png"], "answer": "ignored"}
{"text": "The quick brown fox jumps over the lazy dog. The lazy dog sleeps."}
{"text": "Numbers: 1 2 3 4 5 6 7 8 9 10, and a last sentence to end."}
EOF

# --- tokenizer -------------------------------------------------------------
out=$("$bin/muse-data" tokenizer train --input "$tmp/corpus.jsonl" --vocab-size 300 \
  --out "$tmp/tokenizer.json" 2>&1) || fail "tokenizer train: $out"
grep -q "^muse-data tokenizer train: 300 tokens learned from 6 texts" <<<"$out" ||
  fail "tokenizer summary: $out"

# --- build -------------------------------------------------------------------
build() {  # OUT WORKERS [extra args]
  local dir=$1 workers=$2
  shift 2
  "$bin/muse-data" build --input "$tmp/corpus.jsonl" --tokenizer "$tmp/tokenizer.json" \
    --out "$dir" --shard-tokens 40 --image-size 4 --workers "$workers" --progress lines "$@"
}
out=$(build "$tmp/shards" 2 2>&1) || fail "build: $out"
summary=$(grep '^muse-data build: ' <<<"$out")
[[ $summary =~ ^muse-data\ build:\ 6\ documents,\ ([0-9]+)\ tokens,\ 4\ images,\ ([0-9]+)\ shards,\ ([0-9]+)\ bytes\ in\ [0-9.]+\ s\ -\>\ $tmp/shards$ ]] ||
  fail "summary: $out"
n_shards=${BASH_REMATCH[2]:-0}
bytes=${BASH_REMATCH[3]:-0}
((n_shards >= 2)) || fail "expected several shards of 40 tokens, got $n_shards"
[[ $(ls "$tmp/shards" | wc -l) == "$n_shards" ]] || fail "files in the output: $(ls "$tmp/shards")"
[[ $(cat "$tmp"/shards/*.h5 | wc -c) == "$bytes" ]] || fail "bytes in the summary: $bytes"
grep -q '^muse-data build  step 7/7 | docs 6 | images 4 | shards ' <<<"$out" || fail "progress line: $out"

header=$(h5dump -H "$tmp/shards/shard_000000.h5")
for attribute in format version vocab_size image_token_id pad_token_id n_tokens n_documents n_images; do
  grep -q "ATTRIBUTE \"$attribute\"" <<<"$header" || fail "attribute $attribute missing: $header"
done
expect_dataset() {  # NAME TYPE SHAPE-REGEX
  grep -A2 "DATASET \"$1\"" <<<"$header" | grep -q "DATATYPE  $2" ||
    fail "dataset $1 is not $2: $header"
  grep -A2 "DATASET \"$1\"" <<<"$header" | grep -Eq "DATASPACE  SIMPLE \{ \( $3 \)" ||
    fail "dataset $1 shape is not ($3): $header"
}
expect_dataset tokens H5T_STD_I32LE '[0-9]+'
expect_dataset doc_offsets H5T_STD_I64LE '[0-9]+'
expect_dataset images H5T_STD_U8LE '[0-9]+, 4, 4, 3'
expect_dataset image_positions H5T_STD_I64LE '[0-9]+'
h5dump -a format "$tmp/shards/shard_000000.h5" | grep -q '"muse-shard"' || fail "format attribute"
h5dump -a version "$tmp/shards/shard_000000.h5" | grep -q '(0): 1$' || fail "version attribute"
grep -q 'DATASET "loss_starts"' <<<"$header" && fail "plain text shards hold /loss_starts: $header"

# Every shard carries its checksum, which muse-data checksum verifies.
out=$("$bin/muse-data" checksum "$tmp/shards" 2>&1) || fail "checksum: $out"
grep -q "^muse-data checksum: $n_shards shards verified, 0 checksums added, 0 bad shards; " <<<"$out" ||
  fail "checksum summary: $out"
[[ $(head -c 15 "$tmp/shards/shard_000000.h5") == "muse-shard-crc" ]] || fail "no checksum header"

# One worker makes the same shards as two, byte for byte (no timestamps).
out=$(build "$tmp/one" 1 2>&1) || fail "build with one worker: $out"
for f in "$tmp"/shards/*.h5; do
  cmp -s "$f" "$tmp/one/$(basename "$f")" || fail "$(basename "$f") differs between 1 and 2 workers"
done

# A second build into a directory that holds shards is refused.
out=$(build "$tmp/shards" 1 2>&1)
[[ $? == 2 ]] && grep -q "^error: $tmp/shards: already holds shards" <<<"$out" ||
  fail "existing shards: $out"

# --- supervised examples -----------------------------------------------------------
cat >"$tmp/sft.jsonl" <<'EOF'
{"prompt": "A red square: <image>", "response": " and nothing else.", "images": ["img/red.png"]}
{"prompt": "Plain text without", "response": " any image at all."}
EOF
out=$("$bin/muse-data" build --input "$tmp/sft.jsonl" --tokenizer "$tmp/tokenizer.json" \
  --out "$tmp/sft" --shard-tokens 1000 --image-size 4 --progress off \
  --prompt-key prompt --response-key response 2>&1) || fail "build of examples: $out"
grep -q '^muse-data build: 2 documents, [0-9]* tokens, 1 image, 1 shard, ' <<<"$out" ||
  fail "summary of examples: $out"
header=$(h5dump -H "$tmp/sft/shard_000000.h5")
expect_dataset loss_starts H5T_STD_I64LE 2
# Each loss start is 1 (BOS) + the prompt's tokens: at least 3 here, and
# short of the whole document.
values() {  # DATASET: its values, space-separated
  h5dump -d "$1" -y -w 0 "$tmp/sft/shard_000000.h5" | sed -n '/DATA {/,/}/p' | tr -cd '0-9 ,' |
    tr ',' ' '
}
read -r -a starts <<<"$(values loss_starts)"
read -r -a offsets <<<"$(values doc_offsets)"
[[ ${#starts[@]} == 2 && ${#offsets[@]} == 3 ]] || fail "loss_starts ${starts[*]}, offsets ${offsets[*]}"
for d in 0 1; do
  length=$((offsets[d + 1] - offsets[d]))
  ((starts[d] >= 3 && starts[d] < length)) || fail "loss start ${starts[d]} of document $d ($length tokens)"
done

expect_bad_build() {  # FRAGMENT ARGS...
  local fragment=$1
  shift
  local out
  out=$("$bin/muse-data" build --input "$tmp/sft.jsonl" --tokenizer "$tmp/tokenizer.json" \
    --out "$tmp/sft_bad" --shard-tokens 10 --image-size 4 --progress off "$@" 2>&1)
  [[ $? == 2 ]] && grep -qF -- "error: $fragment" <<<"$out" || fail "build $*: $out"
  [[ -z $(ls -A "$tmp/sft_bad" 2>/dev/null) ]] || fail "build $*: files left: $(ls "$tmp/sft_bad")"
}
expect_bad_build "--prompt-key and --response-key go together" --prompt-key prompt
expect_bad_build "$tmp/sft.jsonl:1: missing \"solution\"" --prompt-key prompt --response-key solution
expect_bad_build "$tmp/sft.jsonl:1: missing \"text\""  # without the keys, records need "text"

# --- bad input -------------------------------------------------------------------
# Each bad record comes after enough good ones that a shard was already
# written: it must be gone again.
expect_bad_record() {  # NAME LINE-OF-JSON FRAGMENT
  local name=$1 record=$2 fragment=$3
  { head -n 6 "$tmp/corpus.jsonl"; printf '%s\n' "$record"; } >"$tmp/$name.jsonl"
  local out code
  out=$("$bin/muse-data" build --input "$tmp/$name.jsonl" --tokenizer "$tmp/tokenizer.json" \
    --out "$tmp/$name" --shard-tokens 10 --image-size 4 --progress off 2>&1 >/dev/null)
  code=$?
  [[ $code == 2 ]] || fail "$name: exit code $code, expected 2"
  [[ $(wc -l <<<"$out") == 1 ]] || fail "$name: expected one line on stderr, got: $out"
  grep -qF -- "error: $tmp/$name.jsonl:7: $fragment" <<<"$out" || fail "$name: '$fragment' not in: $out"
  [[ -z $(ls -A "$tmp/$name" 2>/dev/null) ]] || fail "$name: files left: $(ls "$tmp/$name")"
}
expect_bad_record missing_image '{"text": "<image>", "images": ["img/absent.png"]}' \
  "image '$tmp/img/absent.png' not found"
expect_bad_record broken_image '{"text": "<image>", "images": ["img/broken.png"]}' \
  "image '$tmp/img/broken.png': cannot decode: "
expect_bad_record malformed_json '{"text": "unterminated' "malformed JSON: column"
expect_bad_record marker_mismatch '{"text": "<image> <image>", "images": ["img/red.png"]}' \
  '"text" has 2 <image> marker(s) but "images" lists 1 image(s)'
expect_bad_record no_text '{"images": []}' 'missing "text"'

out=$("$bin/muse-data" tokenizer train --input "$tmp/malformed_json.jsonl" --vocab-size 300 \
  --out "$tmp/t2.json" 2>&1)
[[ $? == 2 ]] && grep -q "^error: $tmp/malformed_json.jsonl:7: malformed JSON" <<<"$out" ||
  fail "tokenizer train on a bad record: $out"
[[ ! -e $tmp/t2.json ]] || fail "a tokenizer was written from bad input"

# --- bad command lines -----------------------------------------------------------
expect_usage() {  # FRAGMENT ARGS...
  local fragment=$1
  shift
  local out
  out=$("$bin/muse-data" "$@" 2>&1)
  [[ $? == 2 ]] && grep -qF -- "error: $fragment" <<<"$out" || fail "muse-data $*: $out"
}
expect_usage "--tokenizer is required" build --input "$tmp/corpus.jsonl" --out "$tmp/x" --shard-tokens 5
expect_usage "--shard-tokens: expected an integer >= 1, got 'many'" build --input a --tokenizer b \
  --out c --shard-tokens many
expect_usage "--channels: expected 1 or 3, got '2'" build --input a --tokenizer b --out c \
  --shard-tokens 5 --channels 2
expect_usage "unknown option '--shard-token'" build --shard-token 5
expect_usage "unknown command 'bild'" bild
expect_usage "a command is required"
expect_usage "give the shards to check: a file or a directory" checksum --add
expect_usage "unknown option '--ad' (did you mean '--add'?)" checksum --ad "$tmp/shards"
expect_usage "$tmp/corpus.jsonl: not a muse shard" checksum "$tmp/corpus.jsonl"
expect_usage "$tmp/absent.h5: no such shard file" checksum "$tmp/absent.h5"

if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all muse-data checks passed"
