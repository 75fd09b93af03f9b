#!/usr/bin/env bash
# Builds muse-train and runs the whole test suite with ctest, then checks that
# the CUDA build (NCCL backend, LibTorch's CUDA parts) still compiles and
# links. Arguments are passed to ctest, e.g. `scripts/test.sh -L unit`.
#
#   MUSE_SKIP_CUDA_BUILD=1   skip the compile-and-link check of the CUDA build
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
ctest --test-dir build --output-on-failure --timeout 600 --parallel "$(nproc)" "$@" || status=$?

if [[ "${MUSE_SKIP_CUDA_BUILD:-0}" != 1 ]]; then
  # Cannot run without a GPU; building it keeps the GPU path from rotting.
  # Only muse-train is built: it links every CUDA-dependent target.
  echo "== CUDA build (compile and link only): build-cuda/"
  if BUILD_DIR=build-cuda MUSE_WITH_CUDA=ON bash scripts/build.sh muse-train; then
    echo "CUDA build: muse-train with the NCCL backend compiled and linked"
  else
    echo "CUDA build: FAILED"
    status=1
  fi
fi
exit $status
