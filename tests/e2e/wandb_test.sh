#!/usr/bin/env bash
# The W&B sink against a local server (tests/telemetry/wandb_server.py) that
# implements UpsertBucket and file_stream, checks the key, and fails on
# demand. Tiny pretraining runs on 2 ranks with wandb.mode=online:
#   * through 500s, a 429 with Retry-After, a dropped connection and a hung
#     request, every history row arrives exactly once and in order, with the
#     evaluation keys, the summary, console lines and config; the run is
#     marked finished with exit code 0; the steps did not wait for the hung
#     server; the key appears nowhere in the run directory or the output;
#   * the config arrives nested (trainer -> steps); the summary carries
#     _wandb.runtime; console entries are single lines; config.yaml and
#     wandb-metadata.json reach the Files tab through CreateRunFiles;
#   * a resumed run continues the same W&B run without duplicates: history,
#     console and system-metric lines continue at the server's counts
#     (RunResumeStatus) and no line is overwritten; no summary key vanishes;
#   * a preempted run (SIGUSR1, exit 3) is marked preempting;
#   * with the server down, rows spool and `muse-train wandb-sync` uploads
#     them later; wandb.mode=offline spools only;
#   * a wrong key is reported once and training still ends normally.
#   wandb_test.sh BIN_DIR
source "$(dirname "$0")/pretrain_lib.sh"
key=test-key-0123456789abcdef
export WANDB_API_KEY=$key
server_pid=
start_server() {  # start_server [fault flags...]: sets $url
  rm -f "$tmp/port"
  "$py" tests/telemetry/wandb_server.py "$tmp/port" "$key" "$@" &
  server_pid=$!
  for _ in $(seq 100); do
    [[ -s $tmp/port ]] && break
    sleep 0.1
  done
  url=http://127.0.0.1:$(cat "$tmp/port")
}
stop_server() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null || true  # 143: it ended by our SIGTERM
  fi
  server_pid=
}
trap 'stop_server; rm -rf "$tmp"' EXIT
wandb=(--set wandb.mode=online --set eval.every=10 --set eval.batches=1 --set trainer.steps=30
  --set wandb.tags='[tiny, test]' --set wandb.group=tests)
# check_run RUN_DIR STEPS EXITCODE [LAUNCHES]: the server holds rows 1..STEPS
# once each, and what each of LAUNCHES online launches (default 1; 0 for a
# run uploaded by wandb-sync alone) sent besides.
check_run() {
  curl -s "$url/state" >"$tmp/state.json"
  "$py" - "$tmp/state.json" "$1" "$2" "$3" "${4:-1}" <<'PY'
import json, os, re, sys
import yaml
state = json.load(open(sys.argv[1]))
run_dir, steps, exitcode, launches = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
spool = [json.loads(l) for l in open(os.path.join(run_dir, "wandb-spool.jsonl"))]
run_id = spool[0]["run"]["id"]
run = state["runs"][run_id]
rows = [json.loads(l) for l in run["history"]]
assert [r["_step"] for r in rows] == list(range(1, steps + 1)), [r["_step"] for r in rows]
assert all("loss" in r for r in rows)
evals = [r["_step"] for r in rows if "eval/heldout/loss" in r]
assert evals == list(range(10, steps + 1, 10)), evals
assert run["complete"] and run["exitcode"] == exitcode, (run["complete"], run["exitcode"])
assert run["summary"]["_step"] == steps and "loss" in run["summary"], run["summary"]
up = run["upserts"][0]
assert up["project"] == "muse-train" and up["tags"] == ["tiny", "test"] and up["groupName"] == "tests"
assert up["jobType"] == "pretrain", up
config = json.loads(up["config"])
assert config["trainer"]["value"]["steps"] == steps, config["trainer"]
assert config["model"]["value"]["preset"] == "tiny", config["model"]
summary = run["summary"]
assert isinstance(summary["_wandb"]["runtime"], int) and summary["_runtime"] > 0, summary
# Keys never vanish from the summary, across retries and resumes alike.
for before, after in zip(run["summaries"], run["summaries"][1:]):
    assert set(before) <= set(after), sorted(set(before) - set(after))
stamp = re.compile(r"(ERROR )?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6} ")
assert all(stamp.match(l) and "\n" not in l for l in run["output"]), run["output"][:5]
assert not run["overwritten"], f"lines overwritten: {run['overwritten'][:10]}"
assert len(run["events"]) >= launches, f"{len(run['events'])} system-metric rows"
files = run["files"]
assert set(run["uploaded"]) == set(files) == {"config.yaml", "wandb-metadata.json"}, \
    (run["uploaded"], sorted(files))
assert len(run["uploaded"]) >= 2 * max(launches, 1), run["uploaded"]
config_file = yaml.safe_load(files["config.yaml"])
assert config_file["wandb_version"] == 1 and config_file["trainer"]["value"]["steps"] == steps
metadata = json.loads(files["wandb-metadata.json"])
assert metadata["program"] == "muse-train" and "--config" in metadata["args"], metadata
print(f"{run_id}: {len(rows)} rows once each and in order, {len(run['output'])} console lines, "
      f"{len(run['events'])} system-metric rows, files {sorted(files)}, nothing overwritten, "
      f"finished with exit code {exitcode}; server: {state['failed']} failed, "
      f"{state['rate_limited']} rate-limited, {state['dropped']} dropped, {state['hung']} hung")
PY
}

# Through failures: 500 every 4th request, a 429 at the 3rd, a dropped
# connection at the 5th, the 6th hung for 25 s (the client gives up at 20).
start_server --fail-every 4 --rate-limit-at 3 --drop-at 5 --hang-at 6 --hang-seconds 25
start=$SECONDS
WANDB_BASE_URL=$url launch 2 faults configs/tiny/pretrain.yaml "${wandb[@]}" ||
  { cat "$tmp/faults.log"; fail "training with a failing server"; }
check_run "$runs/faults" 30 0 || { cat "$tmp/faults.log"; fail "faults"; }
"$py" - "$runs/faults/wandb-spool.jsonl" <<'PY' || fail "the steps waited for the server"
import json, sys
rows = [json.loads(l)["history"] for l in open(sys.argv[1]) if '"history"' in l]
span = rows[-1]["_runtime"] - rows[0]["_runtime"]
assert span < 20, f"30 steps took {span:.1f} s of a 25 s server hang"
print(f"30 steps took {span:.1f} s while the server hung for 25 s")
PY
! grep -rq "$key" "$runs/faults" "$tmp/faults.log" || fail "the API key was written out"
stop_server

# Resume: 15 steps, then the same command to 30 continues the same W&B run.
start_server
WANDB_BASE_URL=$url launch 2 resumed configs/tiny/pretrain.yaml "${wandb[@]}" \
  --set checkpoint.every=5 --set trainer.stop_after=15 || fail "first half"
WANDB_BASE_URL=$url launch 2 resumed configs/tiny/pretrain.yaml "${wandb[@]}" \
  --set checkpoint.every=5 || fail "second half"
check_run "$runs/resumed" 30 0 2 || fail "resumed"
stop_server

# Preemption: SIGUSR1 to mpirun ends the run with a checkpoint and exit 3,
# and W&B hears that the run is preempting rather than failed.
start_server
WANDB_BASE_URL=$url launch 2 preempted configs/tiny/pretrain.yaml "${wandb[@]}" \
  --set trainer.steps=100000 &
job=$!
for _ in $(seq 600); do
  [[ -s $runs/preempted/metrics.jsonl ]] && break
  sleep 0.2
done
# The job is a subshell running timeout, which runs mpirun.
mpirun_pid=$(pgrep -x "$(basename "$mpiexec")" -P "$(pgrep -P "$job" | head -1)" ||
  pgrep -x "$(basename "$mpiexec")" -P "$job")
kill -USR1 "$mpirun_pid"
status=0
wait "$job" || status=$?
[[ $status == 3 ]] || { cat "$tmp/preempted.log"; fail "preempted: status $status, expected 3"; }
curl -s "$url/state" >"$tmp/state.json"
"$py" - "$tmp/state.json" "$runs/preempted" <<'PY' || fail "preempted"
import json, os, sys
state = json.load(open(sys.argv[1]))
spool = [json.loads(l) for l in open(os.path.join(sys.argv[2], "wandb-spool.jsonl"))]
run = state["runs"][spool[0]["run"]["id"]]
assert run["preempting"] and run["complete"] and run["exitcode"] == 3, run
assert spool[-1] == {"exit": 3, "preempting": True}, spool[-1]
print(f"preempted after {len(run['history'])} rows: marked preempting, exit code 3")
PY
stop_server

# Server down: training is unaffected, the spool keeps every row, and
# wandb-sync uploads it when the server is back. Offline mode likewise.
WANDB_BASE_URL=http://127.0.0.1:9 launch 2 down configs/tiny/pretrain.yaml "${wandb[@]}" ||
  { cat "$tmp/down.log"; fail "training with the server down"; }
grep -q "warning: wandb: .* not sent; they are in .*wandb-spool.jsonl" "$tmp/down.log" ||
  { cat "$tmp/down.log"; fail "no warning about unsent rows"; }
launch 2 offline configs/tiny/pretrain.yaml "${wandb[@]}" --set wandb.mode=offline ||
  fail "offline training"
start_server --fail-every 3
for name in down offline; do
  WANDB_BASE_URL=$url "$bin/muse-train" wandb-sync "$runs/$name" >"$tmp/sync-$name.log" 2>&1 ||
    { cat "$tmp/sync-$name.log"; fail "wandb-sync $name"; }
  grep -q "wandb-sync: 30 row(s) uploaded" "$tmp/sync-$name.log" || fail "sync $name count"
  check_run "$runs/$name" 30 0 0 || fail "synced $name"
done
# Syncing again sends nothing twice.
WANDB_BASE_URL=$url "$bin/muse-train" wandb-sync "$runs/down" | grep -q "0 row(s) uploaded" ||
  fail "a second sync sent rows again"

# A wrong key: one warning, the run still succeeds, the rows wait in the spool.
WANDB_API_KEY=wrong WANDB_BASE_URL=$url launch 2 badkey configs/tiny/pretrain.yaml "${wandb[@]}" ||
  { cat "$tmp/badkey.log"; fail "training with a wrong key"; }
[[ $(grep -c "warning: wandb: giving up on the server (graphql RunResumeStatus: HTTP 401" "$tmp/badkey.log") == 1 ]] ||
  { cat "$tmp/badkey.log"; fail "the wrong key was not reported once"; }
# No key at all: a config error before training.
status=0
env -u WANDB_API_KEY HOME="$tmp" WANDB_BASE_URL=$url "$bin/muse-train" --config configs/tiny/pretrain.yaml \
  --set run.dir="$runs" --set run.name=nokey --set wandb.mode=online >"$tmp/nokey.log" 2>&1 || status=$?
[[ $status == 2 && ! -e $runs/nokey ]] &&
  grep -q "^error: configs/tiny/pretrain.yaml: wandb.mode: online mode needs an API key" "$tmp/nokey.log" ||
  { cat "$tmp/nokey.log"; fail "no key: status $status"; }
stop_server
echo "wandb ok"
