#!/usr/bin/env bash
# Shards that cannot lie, through the real tools. muse-train on 2 ranks reads
# a copy of the tiny pretraining shards in which one shard has a flipped byte
# (in the checksum header, in HDF5's superblock, among the tokens, the last
# byte), is cut short, or has no checksum: each launch fails with exactly one
# `error: SHARD: ...` line naming that shard, and nothing crashes. muse-data
# checksum finds the same shards; --add gives the shard without a checksum
# one, and training on it then gives the records of training on the original.
#   shard_checksum_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"

shards=$tmp/shards
victim=$shards/shard_000001.h5
fresh_copy() {
  rm -rf "$shards"
  cp -r data/tiny/shards/pretrain "$shards"
}
# flip OFFSET: changes one bit of the byte at OFFSET of the victim (negative: from the end).
flip() {
  "$py" - "$victim" "$1" <<'PY'
import os, sys
path, offset = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(offset % os.path.getsize(path))
    byte = f.read(1)[0]
    f.seek(-1, 1)
    f.write(bytes([byte ^ 0x04]))
PY
}
crashed() { grep -Eqi "terminate called|core dumped|signal [0-9]|segmentation|sanitizer|aborted \(|backtrace" "$1"; }
losses() { grep -o '"loss":[^,}]*' "$(metrics "$1")"; }
steps=(--set data.shards="$shards" --set trainer.steps=2)

# expect_shard_error NAME FRAGMENT [muse-train args...]: the launch on 2 ranks
# fails with one error line, about the victim, holding FRAGMENT; its exit
# status is left in $code.
expect_shard_error() {
  local name=$1 fragment=$2
  shift 2
  code=0
  launch 2 "$name" configs/tiny/pretrain.yaml "${steps[@]}" "$@" || code=$?
  local errors
  errors=$(grep '^error: ' "$tmp/$name.log") || true
  [[ $code != 0 && $code != 124 ]] || { cat "$tmp/$name.log"; fail "$name: exit $code"; }
  [[ $(wc -l <<<"$errors") == 1 ]] || { cat "$tmp/$name.log"; fail "$name: not one error line: $errors"; }
  [[ $errors == "error: $victim: "* ]] || fail "$name: the error does not name $victim: $errors"
  grep -qF -- "$fragment" <<<"$errors" || fail "$name: '$fragment' not in: $errors"
  ! crashed "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: crashed"; }
  echo "ok: $name: exit $code, $errors"
}

fresh_copy
train 2 original "${steps[@]}"

size=$(stat -c %s "$victim")
for place in "magic 3 not a muse shard" "size_field 17 but its checksum header records" \
  "checksum_field 25 checksum mismatch" "superblock 522 checksum mismatch" \
  "middle $((size / 2)) checksum mismatch" "last_byte -1 checksum mismatch"; do
  read -r name offset fragment <<<"$place"
  fresh_copy
  flip "$offset"
  expect_shard_error "flipped_$name" "$fragment"
done
# A dry run opens the data the same way, and bad data exits 2 there.
expect_shard_error flipped_dry_run "checksum mismatch" --dry-run
[[ $code == 2 ]] || fail "dry run on a damaged shard: exit $code, expected 2"

fresh_copy
truncate -s $((size - 4096)) "$victim"
expect_shard_error truncated "holds $((size - 4096)) bytes but its checksum header records $size: the file is truncated or damaged"

# muse-data checksum names the damaged shard, checks the others and exits 2.
fresh_copy
flip 1000
code=0
out=$("$bin/muse-data" checksum "$shards" 2>&1) || code=$?
[[ $code == 2 ]] || fail "muse-data checksum on a damaged shard: exit $code: $out"
[[ $(grep -c '^error: ' <<<"$out") == 1 ]] && grep -q "^error: $victim: checksum mismatch" <<<"$out" ||
  fail "muse-data checksum: $out"
grep -q '^muse-data checksum: 3 shards verified, 0 checksums added, 1 bad shard; ' <<<"$out" ||
  fail "muse-data checksum summary: $out"

# A shard without a checksum: the HDF5 file alone, as muse-data wrote shards before.
fresh_copy
tail -c +513 "$victim" >"$tmp/old.h5"
mv "$tmp/old.h5" "$victim"
expect_shard_error no_checksum "no checksum: the shard was written by an older muse-data or another tool; check it and add one with \`muse-data checksum --add $victim\`"
code=0
out=$("$bin/muse-data" checksum "$shards" 2>&1) || code=$?
[[ $code == 2 ]] && grep -q "^error: $victim: no checksum" <<<"$out" ||
  fail "muse-data checksum without --add: exit $code: $out"
out=$("$bin/muse-data" checksum --add "$shards" 2>&1) || fail "muse-data checksum --add: $out"
grep -q "^$victim: checksum added$" <<<"$out" && grep -q '^muse-data checksum: 3 shards verified, 1 checksum added, 0 bad shards; ' <<<"$out" ||
  fail "muse-data checksum --add: $out"
cmp -s "$victim" data/tiny/shards/pretrain/shard_000001.h5 ||
  fail "the shard with its checksum added differs from the one muse-data built"
train 2 repaired "${steps[@]}"
[[ $(losses repaired) == "$(losses original)" && -n $(losses original) ]] ||
  fail "records after adding the checksum: $(losses repaired) vs $(losses original)"
echo "shard checksum checks passed"
