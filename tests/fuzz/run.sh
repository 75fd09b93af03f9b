#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (build-fuzz/) and runs
# each for SECONDS from its seed corpus (tests/fuzz/corpus/TARGET), after
# replaying every input of tests/fuzz/regressions/TARGET (inputs that once
# crashed). A crash fails with the input saved under build-fuzz/crashes/;
# copy it to tests/fuzz/regressions/TARGET/ once fixed. Exit 77 (skipped)
# when clang's libFuzzer is not installed.
#   tests/fuzz/run.sh SECONDS [TARGET ...]
# Without TARGETs, every target runs (README.md lists what each reads).
set -euo pipefail
seconds=${1:-15}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_config fuzz_tokenizer fuzz_tokenizer_config fuzz_chat_template
  fuzz_hf_config fuzz_safetensors fuzz_shard fuzz_shard_content)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/build-fuzz
command -v clang++ >/dev/null || { echo "SKIP: clang++ is not installed (Debian: clang)"; exit 77; }
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
  { echo "SKIP: libFuzzer is not installed (Debian: libclang-rt-14-dev)"; exit 77; }
CC=clang CXX=clang++ cmake -S "$here" -B "$out" -G Ninja >/dev/null
cmake --build "$out" >/dev/null
mkdir -p "$out/crashes"
for target in "${targets[@]}"; do
  regressions=$here/regressions/$target
  if [[ -d $regressions ]] && compgen -G "$regressions/*" >/dev/null; then
    "$out/$target" "$regressions"/* >/dev/null 2>&1 || { echo "FAIL: $target crashes on a regression input"; exit 1; }
  fi
  work=$(mktemp -d)
  if ! "$out/$target" "$work" "$here/corpus/$target" -max_total_time="$seconds" -rss_limit_mb=4096 \
      -artifact_prefix="$out/crashes/$target-" -print_final_stats=1 >"$out/$target.log" 2>&1; then
    tail -30 "$out/$target.log"
    echo "FAIL: $target found a crash; the input is in $out/crashes/"
    exit 1
  fi
  echo "$target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$out/$target.log"), no crash"
  rm -rf "$work"
done
