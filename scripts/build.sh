#!/usr/bin/env bash
# Configures and builds muse-train into build/ (Release by default).
#
#   BUILD_DIR        build directory (default: build)
#   BUILD_TYPE       CMake build type (default: Release)
#   MUSE_WITH_CUDA   AUTO (default), ON or OFF
#   Extra arguments are passed to the build tool, e.g. a target name.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
  -DMUSE_WITH_CUDA="${MUSE_WITH_CUDA:-AUTO}" >/dev/null
cmake --build "$BUILD_DIR" -- "$@"
