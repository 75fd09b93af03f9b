"""Communication/compute overlap of muse-train's FSDP on the CPU: the same
2-rank training run with `trainer.prefetch=0` (every all-gather waited for
right before its unit, every reduce-scatter completed before the next unit:
nothing overlaps) and with the default `trainer.prefetch=1` (the MPI
communicator's worker thread moves the next unit's weights and the last
unit's gradients while this unit computes), interleaved run by run.

    python bench.py --muse build/bin/muse-train --results DIR [--reps 3]

Writes DIR/overlap.json (bench/README.md's result interface).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, ".."))
from results import median, row, table, write  # noqa: E402

RANKS = 2
STEPS, WARMUP = 6, 2
# The tiny preset widened so that its units (1.2M parameters per block) are
# large next to a batch of 2 x 256 tokens per rank: communication is a visible
# part of the step, and a run takes seconds.
KEYS = ["model.dim=384", "model.n_layers=6", "model.n_heads=6", "model.n_kv_heads=2",
        "model.ffn_hidden=1024", "data.batch_size=4", "data.seq_len=256",
        "data.shards=data/tiny/shards/pretrain"]
DEPTHS = [0, 1, 2]


def run(muse, prefetch, workdir):
    run_dir = tempfile.mkdtemp(dir=workdir)
    keys = KEYS + [f"run.dir={run_dir}", "run.name=bench", f"trainer.steps={STEPS}",
                   "telemetry.log_every=1", "telemetry.progress=off", "eval.every=0",
                   "checkpoint.every=100000", f"trainer.prefetch={prefetch}"]
    cmd = ["mpirun", "-np", str(RANKS), "--oversubscribe", "--bind-to", "none",
           "-x", "OMP_NUM_THREADS=1", muse, "--config", "configs/tiny/pretrain.yaml"]
    for k in keys:
        cmd += ["--set", k]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: muse-train failed (prefetch {prefetch}):\n{out.stderr[-2000:]}")
    with open(os.path.join(run_dir, "bench", "metrics.jsonl")) as f:
        steps = [json.loads(line) for line in f if '"step_time_s"' in line]
    return [r["step_time_s"] for r in steps[WARMUP:]], steps[-1]["comm_bytes"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--muse", default="build/bin/muse-train")
    ap.add_argument("--results", required=True)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    started = time.time()
    times = {d: [] for d in DEPTHS}
    run_medians = {d: [] for d in DEPTHS}
    comm = {}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.reps):
            for d in DEPTHS:
                t, comm[d] = run(os.path.abspath(args.muse), d, workdir)
                times[d] += t
                run_medians[d].append(median(t))
    med = {d: median(times[d]) for d in DEPTHS}
    # The settings of a repetition ran one after another: each run's median
    # against the same repetition's prefetch 0.
    rows = [row(f"FSDP step with prefetch {d} vs none, 2 ranks", "s/step", med[d], med[0],
                "prefetch 0 (no overlap)", f"overlap.prefetch{d}",
                pairs=list(zip(run_medians[d], run_medians[0])), lower_is_better=True)
            for d in DEPTHS if d > 0]
    results_table = table(
        ["trainer.prefetch", "step time (median)", "runs", "bytes sent per rank per step",
         "speed-up over 0"],
        [[d, f"{med[d]:.3f} s", ", ".join(f"{x:.3f}" for x in run_medians[d]),
          f"{comm[d] / 1e6:.1f} MB", f"{med[0] / med[d]:.2f}x"] for d in DEPTHS])
    markdown = f"""### Method

`mpirun -np {RANKS} --oversubscribe --bind-to none muse-train` on the tiny preset widened
to 6 layers of width 384 (6 heads, 2 kv heads, ffn 1024; 10M parameters), a global
batch of 4 x 256 tokens (2 rows per rank), 1 OpenMP thread per rank, {STEPS} steps per run
with the first {WARMUP} discarded, {args.reps} runs per setting interleaved. Only
`trainer.prefetch` changes: 0 waits for every all-gather right before its unit and
completes every reduce-scatter before the next unit, so no byte moves while a unit
computes; 1 (the default) issues the next unit's all-gather before this unit runs and
leaves up to two reduce-scatters in flight; 2 gathers two units ahead. The collectives
run on the MPI communicator's worker thread (comm/mpi_communicator.h), so they progress
while the rank's own thread computes.

### Results

{results_table}

The bytes are the same in every setting (only their timing moves). Both ranks share the
machine's 2 cores, and the worker thread that runs a collective needs a core too, so
on this machine overlap can only hide the time a rank waits for the other one (its
share of the shared-memory copy and the skew between ranks), not the copy's CPU work.
On a GPU node the copy runs on NCCL's own stream and the network; see docs/gpu.md for
the expected timeline.
"""
    write(os.path.join(args.results, "overlap.json"), "overlap",
          "Communication overlap on the CPU (FSDP prefetch)", time.time() - started, rows, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
