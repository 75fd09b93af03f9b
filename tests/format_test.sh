#!/usr/bin/env bash
# Every C++ file of the project is clang-format clean (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cpp' 2>/dev/null || find . -name '*.h' -o -name '*.cpp')
clang-format --dry-run --Werror "${files[@]}"
echo "${#files[@]} files clang-format clean"
