# Sourced by each benchmark's run.sh from the repository root. bench_prepare
# TARGET...: builds the targets into BUILD_DIR (default build) unless
# NO_BUILD=1, and sets build_dir, MUSE_VENV (default the project's venv), py
# (its python) and results (RESULTS_DIR, or a new temporary directory;
# created).
bench_prepare() {
  build_dir="${BUILD_DIR:-build}"
  if [[ "${NO_BUILD:-0}" != 1 ]]; then
    BUILD_DIR="$build_dir" bash scripts/build.sh "$@" >/dev/null
  fi
  MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
  py="$MUSE_VENV/bin/python"
  results="${RESULTS_DIR:-$(mktemp -d)}"
  mkdir -p "$results"
}
