#!/usr/bin/env bash
# Faults on a 4-rank tiny pretraining run (100 steps, a checkpoint every 10),
# each followed by the same command launched again; nothing may be lost:
#   * one rank killed with SIGKILL mid-run: the job ends with an error (no
#     hang) and the relaunch resumes from the last complete checkpoint;
#   * a rank killed while writing a checkpoint: the previous checkpoint stays
#     LATEST and loadable, the partial one is ignored and then cleared;
#   * the disk full during a checkpoint write (injected ENOSPC): one clear
#     error, the previous checkpoint intact;
#   * SIGUSR1 to mpirun (forwarded to the ranks, as a Slurm --signal sends
#     it) and SIGTERM to the ranks: a checkpoint at the current step and
#     exit status 3.
# After each, the resumed run's final loss equals an uninterrupted run's.
#   fault_test.sh BIN_DIR FAULT_INJECT_SO
source "$(dirname "$0")/pretrain_lib.sh"
inject=$2
steps=(--set trainer.steps=100 --set checkpoint.every=10 --set checkpoint.keep=2
  --set dist.collective_timeout_s=20)

final_loss() {
  "$py" -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if "\"loss\"" in l and "\"eval\"" not in l]; assert r[-1]["step"] == 100, r[-1]; print(repr(r[-1]["loss"]))' "$(metrics "$1")"
}
latest_step() {
  local f=$runs/$1/LATEST
  [[ -f $f ]] && sed 's/step_0*//' "$f" || echo 0
}
# finish NAME: the same command again, which must resume and end like the reference.
finish() {
  launch 4 "$1" configs/tiny/pretrain.yaml "${steps[@]}" || { cat "$tmp/$1.log"; fail "$1: relaunch failed"; }
  grep -q "resumed from" "$tmp/$1.log" || { cat "$tmp/$1.log"; fail "$1: the relaunch did not resume"; }
  [[ $(final_loss "$1") == "$reference" ]] || fail "$1: final loss $(final_loss "$1") != $reference"
  echo "$1: resumed, final loss equals the uninterrupted run's"
}
# in_background NAME: launches the run and sets $job to mpirun's pid.
in_background() {
  launch 4 "$1" configs/tiny/pretrain.yaml "${steps[@]}" &
  job=$!
  local tries=0
  until (($(latest_step "$1") >= 10)); do
    sleep 0.2
    ((++tries < 600)) || fail "$1: no checkpoint after 120 s"
  done
}
mpirun_of() {  # the mpirun started by the background launch (its child)
  pgrep -P "$(pgrep -P "$job" | head -1)" -x "$(basename "$mpiexec")" || pgrep -P "$job" -x "$(basename "$mpiexec")"
}

launch 4 reference configs/tiny/pretrain.yaml "${steps[@]}" || { cat "$tmp/reference.log"; fail "reference"; }
reference=$(final_loss reference)
echo "reference: final loss $reference"

# SIGKILL of one rank mid-run.
in_background killed
start=$SECONDS
ranks=$(pgrep -P "$(mpirun_of)" | tr '\n' ' ')
kill -KILL "$(awk '{print $2}' <<<"$ranks")"
status=0
wait "$job" || status=$?
((status != 0)) || fail "killed: the job ended with status 0"
((SECONDS - start < 60)) || fail "killed: the job took $((SECONDS - start)) s to end"
echo "killed: ended with status $status after $((SECONDS - start)) s"
finish killed

# A rank killed while writing the step-20 checkpoint.
extra_mpi_flags=(-x LD_PRELOAD="$inject" -x MUSE_FAULT_PATH=step_00000020 -x MUSE_FAULT_ACTION=kill
  -x MUSE_FAULT_RANK=1)
status=0
launch 4 crash_in_save configs/tiny/pretrain.yaml "${steps[@]}" || status=$?
extra_mpi_flags=()
((status != 0)) || fail "crash_in_save: the job ended with status 0"
[[ $(latest_step crash_in_save) == 10 ]] || fail "crash_in_save: LATEST is not step 10"
ls "$runs/crash_in_save/checkpoints" | grep -q "^step_00000020\." ||
  fail "crash_in_save: no partial checkpoint was left to test with"
"$bin/export_probe" "$runs/crash_in_save" "$runs/crash_in_save" data/tiny/tokenizer.json "a" >/dev/null ||
  fail "crash_in_save: the previous checkpoint does not load"
finish crash_in_save
! ls "$runs/crash_in_save/checkpoints" | grep -q "\." || fail "crash_in_save: the partial checkpoint was not cleared"

# The disk full while rank 0 writes the step-20 checkpoint.
extra_mpi_flags=(-x LD_PRELOAD="$inject" -x MUSE_FAULT_PATH=step_00000020 -x MUSE_FAULT_ACTION=enospc
  -x MUSE_FAULT_RANK=0)
status=0
launch 4 disk_full configs/tiny/pretrain.yaml "${steps[@]}" || status=$?
extra_mpi_flags=()
((status == 1)) || { cat "$tmp/disk_full.log"; fail "disk_full: status $status, expected 1"; }
[[ $(grep -c "^error:" "$tmp/disk_full.log") == 1 ]] && grep -q "^error: .*No space left on device" "$tmp/disk_full.log" ||
  { cat "$tmp/disk_full.log"; fail "disk_full: not one clear error"; }
[[ $(latest_step disk_full) == 10 ]] || fail "disk_full: LATEST is not step 10"
finish disk_full

# Preemption: SIGUSR1 to mpirun, then SIGTERM to every rank.
for how in usr1_mpirun term_ranks; do
  in_background "$how"
  if [[ $how == usr1_mpirun ]]; then
    kill -USR1 "$(mpirun_of)"
  else
    kill -TERM $(pgrep -P "$(mpirun_of)")
  fi
  status=0
  wait "$job" || status=$?
  ((status == 3)) || { cat "$tmp/$how.log"; fail "$how: status $status, expected 3"; }
  grep -q "stopped by .* after step $(latest_step "$how"): checkpoint saved" "$tmp/$how.log" ||
    { cat "$tmp/$how.log"; fail "$how: no checkpoint at the step it stopped"; }
  echo "$how: checkpoint at step $(latest_step "$how"), status 3"
  finish "$how"
done
echo "faults ok"
