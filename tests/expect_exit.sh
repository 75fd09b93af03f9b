#!/usr/bin/env bash
# Runs a command and checks how it fails:
#   expect_exit.sh CODE REGEX SECONDS -- command args...
# CODE is an exit code or "nonzero"; REGEX must match the combined output;
# the command must end within SECONDS (a hang is a failure).
set -uo pipefail
want_code=$1 regex=$2 limit=$3
shift 4
output=$(timeout "$limit" "$@" 2>&1)
code=$?
if [[ $code == 124 ]]; then
  echo "FAIL: still running after ${limit}s: $*"; echo "$output"; exit 1
fi
if [[ $want_code == nonzero && $code == 0 ]] || [[ $want_code != nonzero && $code != "$want_code" ]]; then
  echo "FAIL: exit code $code, expected $want_code: $*"; echo "$output"; exit 1
fi
if ! grep -Eq -- "$regex" <<<"$output"; then
  echo "FAIL: output does not match /$regex/: $*"; echo "$output"; exit 1
fi
echo "ok: exit $code, output matches /$regex/"
