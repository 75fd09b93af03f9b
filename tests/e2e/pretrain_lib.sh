# Sourced by the tests/e2e/pretrain_*_test.sh scripts (not a test itself):
# short tiny-model runs of muse-train under mpirun in a scratch directory.
#   source tests/e2e/pretrain_lib.sh BIN_DIR
# Environment (set by tests/e2e/CMakeLists.txt; defaults for a manual run):
#   MUSE_VENV_PYTHON   python for the JSON checks (python3)
#   MUSE_MPIEXEC       mpirun
#   MUSE_MPIRUN_FLAGS  "--oversubscribe --bind-to none"
set -euo pipefail
bin=$1
py=${MUSE_VENV_PYTHON:-python3}
mpiexec=${MUSE_MPIEXEC:-mpirun}
read -ra mpi_flags <<<"${MUSE_MPIRUN_FLAGS:---oversubscribe --bind-to none}"
extra_mpi_flags=()  # a test may add mpirun flags (-x VAR=value ...) for its launches
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap '[[ -n ${KEEP_TMP:-} ]] || rm -rf "$tmp"' EXIT
runs=$tmp/runs

fail() {
  echo "FAIL: $*"
  exit 1
}

# The settings every run shares: 4 sequences of 64 tokens per step, a record
# per step, no evaluation, a checkpoint only at the end.
short_run=(--set data.batch_size=4 --set data.seq_len=64 --set telemetry.log_every=1
  --set telemetry.progress=off --set eval.every=0 --set checkpoint.every=1000)

# launch NP NAME CONFIG [muse-train args...]: runs muse-train on NP ranks with
# the run directory $runs/NAME, appending its output to $tmp/NAME.log; returns
# muse-train's exit status (mpirun's).
launch() {
  local np=$1 name=$2 config=$3
  shift 3
  echo "+ muse-train -np $np run $name $*" >>"$tmp/$name.log"
  timeout 240 "$mpiexec" -np "$np" "${mpi_flags[@]}" "${extra_mpi_flags[@]}" "$bin/muse-train" \
    --config "$config" --set run.dir="$runs" --set run.name="$name" "${short_run[@]}" "$@" \
    >>"$tmp/$name.log" 2>&1
}

# train NP NAME [--set ...]: a tiny pretraining run that must succeed.
train() {
  local np=$1 name=$2
  shift 2
  launch "$np" "$name" configs/tiny/pretrain.yaml "$@" ||
    { cat "$tmp/$name.log"; fail "run $name on $np rank(s) failed"; }
}

# metrics NAME: the run's metrics.jsonl.
metrics() {
  echo "$runs/$1/metrics.jsonl"
}

# expect_launch_error NAME KEY CONFIG [muse-train args...]: the launch on 2
# ranks must exit 2 with exactly one `error:` line, and that line names KEY.
expect_launch_error() {
  local name=$1 key=$2 config=$3
  shift 3
  local status=0
  launch 2 "$name" "$config" "$@" || status=$?
  [[ $status == 2 ]] || { cat "$tmp/$name.log"; fail "$name: exit $status, expected 2"; }
  grep -q "^error: .*$key" "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: no error naming $key"; }
  [[ $(grep -c "^error:" "$tmp/$name.log") == 1 ]] || { cat "$tmp/$name.log"; fail "$name: more than one error line"; }
}
