#!/usr/bin/env bash
# Runs an ablation sweep: one muse-train run per line of overrides, then a
# comparison table and plot (scripts/plot_rl.py).
#
#   launch/sweep.sh --config CONFIG --out DIR [--ranks N] "KEY=VALUE [KEY=VALUE ...]" ...
#
# Variables:
#   --config CONFIG  the base config (e.g. configs/tiny/rl.yaml)
#   --out DIR        run directory of the sweep: each run is DIR/NAME, named
#                    after its overrides; DIR/summary.md and
#                    DIR/accuracy_vs_think.png compare them
#   --ranks N        ranks per run under mpirun (default 2)
#   MUSE_BIN         directory holding muse-train (default build/bin)
#   MUSE_PYTHON      python with matplotlib (default the project's venv)
# Runs go one after another; a run that already finished is resumed (that
# is, skipped), so a sweep can be rerun after an interruption.
set -euo pipefail
config= out= ranks=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ -n $config && -n $out ]] || { echo "error: --config and --out are required" >&2; exit 2; }
[[ $# -gt 0 ]] || { echo "error: give at least one line of overrides" >&2; exit 2; }
[[ -f $config ]] || { echo "error: $config: no such config" >&2; exit 2; }
bin=${MUSE_BIN:-build/bin}
py=${MUSE_PYTHON:-$HOME/.cache/muse-train/venv/bin/python}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

runs=()
for line in "$@"; do
  read -ra overrides <<<"$line"
  name=$(printf '%s' "$line" | sed 's/ /_/g; s/=/-/g; s#/#_#g' | tr -cd 'A-Za-z0-9_.-')
  [[ -n $name ]] || name=base
  sets=()
  for kv in "${overrides[@]}"; do
    [[ $kv == *=* ]] || { echo "error: '$kv' in \"$line\" is not KEY=VALUE" >&2; exit 2; }
    sets+=(--set "$kv")
  done
  echo "== sweep run $name: ${overrides[*]}"
  mpirun -np "$ranks" --oversubscribe --bind-to none "$bin/muse-train" --config "$config" \
    --set run.dir="$out" --set run.name="$name" "${sets[@]}"
  runs+=("$out/$name")
done
"$py" "$(dirname "$0")/../scripts/plot_rl.py" --out "$out" "${runs[@]}"
