#!/usr/bin/env bash
# The tiny job end to end on several ranks: muse-train --dry-run resolves the
# tiny config, starts the MPI communicator, passes the self-check of every
# collective and writes the run directory.
#   dry_run_test.sh BIN_DIR RANKS
set -euo pipefail
bin=$1 ranks=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np "$ranks" --oversubscribe --bind-to none "$bin/muse-train" \
  --config configs/tiny/pretrain.yaml --dry-run --set run.dir="$tmp/runs" --set run.name=e2e \
  >"$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
cat "$tmp/out"
backend=mpi
[[ $ranks == 1 ]] && backend=solo  # one rank: identity collectives, no MPI calls
grep -q "world: $ranks rank(s) on 1 node(s), launcher mpirun, backend $backend" "$tmp/out"
grep -q "communicator self-check passed (23 collectives)" "$tmp/out"
grep -Eq "^data: [0-9]+ shard\(s\), [0-9.]+k documents, .* per epoch$" "$tmp/out"
grep -Eq "^  first batch: $((8 / ranks)) rows per rank" "$tmp/out"
grep -q "dry run complete" "$tmp/out"
# Only rank 0 prints the table and the report.
[[ $(grep -c "^| stage " "$tmp/out") == 1 ]]
[[ -f $tmp/runs/e2e/config.yaml ]]
[[ -z $(find "$tmp/runs" -name '*.tmp.*') ]]
echo "dry run on $ranks ranks passed"
