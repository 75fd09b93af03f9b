"""Pretraining data loader against the trainer's consumption: how many
batches per second data::Loader delivers (data_bench) and how many the
trainer consumes (1 / step time of short muse-train runs on the same data and
batch shape), interleaved. Writes the result JSON and prints its Markdown.

    python bench.py --data-bench build/bin/data_bench --muse build/bin/muse-train
        --out data.json [--reps 2] [--presets tiny,small] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from machine import cpu_model  # noqa: E402
from results import median, row, table, write  # noqa: E402

SHARDS = "data/tiny/shards/pretrain"
BATCH, SEQ_LEN = 8, 256
# Per preset: muse-train overrides (as bench/train: the small preset keeps the
# tiny data's 8x8 grayscale images), the same for data_bench, steps per
# trainer run with the warm-up steps dropped, and trainer runs per preset.
PRESETS = {
    "tiny": {"set": [], "loader": [], "steps": 8, "warmup": 2, "reps": lambda reps: reps},
    "small": {"set": ["model.preset=small", "model.image_size=8", "model.patch_size=4",
                      "model.image_channels=1"],
              "loader": ["--preset", "small", "--image-size", "8", "--patch-size", "4",
                         "--image-channels", "1"],
              "steps": 4, "warmup": 2, "reps": lambda reps: 1},
}
LOADER_BATCHES, LOADER_REPS = 200, 5
PARAMS = {"tiny": "1.3M", "small": "40M"}


def env_with_threads(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_loader(args, preset):
    """Batches/s of each data_bench repetition, and its opening record."""
    cmd = [args.data_bench, "--shards", SHARDS, "--batch", str(BATCH), "--seq-len", str(SEQ_LEN),
           "--batches", str(LOADER_BATCHES), "--reps", str(LOADER_REPS)] \
        + PRESETS[preset]["loader"]
    out = subprocess.run(cmd, env=env_with_threads(args.threads), capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    opened = next(r for r in records if r["what"] == "open")
    rates = [r["batches"] / r["seconds"] for r in records if r["what"] == "batches"]
    return opened, rates


def run_trainer(args, preset, workdir):
    """Step times after warm-up of one muse-train run."""
    p = PRESETS[preset]
    run_dir = tempfile.mkdtemp(dir=workdir)
    keys = [f"run.dir={run_dir}", "run.name=bench", f"trainer.steps={p['steps']}",
            "telemetry.log_every=1", "telemetry.progress=off", "checkpoint.every=100000",
            "checkpoint.keep=1", "eval.every=0", f"data.batch_size={BATCH}",
            f"data.seq_len={SEQ_LEN}", f"data.shards={SHARDS}"] + p["set"]
    cmd = [args.muse, "--config", "configs/tiny/pretrain.yaml"]
    for k in keys:
        cmd += ["--set", k]
    out = subprocess.run(cmd, env=env_with_threads(args.threads), capture_output=True,
                         text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    with open(os.path.join(run_dir, "bench", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    subprocess.run(["rm", "-rf", run_dir], check=True)
    times = [r["step_time_s"] for r in records if "step_time_s" in r and "eval" not in r]
    return times[p["warmup"]:]


def measure(args):
    """Per preset: the loader's batches/s (every repetition, and each run's
    median), the trainer's step times after warm-up (every step, and each
    run's median), and the loader's opening record."""
    results = {p: {"loader": [], "loader_medians": [], "steps": [], "run_medians": [],
                   "opened": None} for p in args.presets}
    workdir = tempfile.mkdtemp()
    for rep in range(args.reps):
        for preset in args.presets:
            if rep >= PRESETS[preset]["reps"](args.reps):
                continue
            r = results[preset]
            # Alternate which side goes first.
            sides = ["loader", "trainer"] if rep % 2 == 0 else ["trainer", "loader"]
            for side in sides:
                if side == "loader":
                    r["opened"], rates = run_loader(args, preset)
                    r["loader"] += rates
                    r["loader_medians"].append(median(rates))
                else:
                    times = run_trainer(args, preset, workdir)
                    r["steps"] += times
                    r["run_medians"].append(median(times))
            print(f"rep {rep + 1} {preset}: loader {median(r['loader']):.0f} "
                  f"batches/s, trainer {median(r['steps']):.3f} s/step",
                  file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", workdir], check=True)
    return results


def report(args, results, seconds, load_avg):
    """The rows and the Markdown section of the measured runs."""
    rows, lines = [], []
    out = []
    w = out.append
    w("### What is measured\n")
    w(f"Both sides read `{SHARDS}` (the tiny pretraining shards) at the trainer's batch shape, "
      f"{BATCH} sequences x {SEQ_LEN} tokens on one rank, with {args.threads} intra-op "
      "thread(s) (`OMP_NUM_THREADS`), interleaved run by run:\n")
    w("* **Loader** (`bench/data/data_bench.cpp`): `data::Loader` with the options the "
      "pretraining trainer gives it (`data.*` plus the model's vocabulary, image size and "
      "placeholders per image; the small preset with the tiny data's 8x8 grayscale images, "
      "as in bench/train, so 4 placeholders per image for both), seed 1234. After opening "
      f"the shards and packing epoch 0, each of {LOADER_REPS} repetitions times "
      f"{LOADER_BATCHES} calls of `next()` on the continuing stream, so the next epoch's "
      "shuffle and packing fall inside the timing as they do in training. Each call reads "
      "the rows' tokens and images from HDF5, packs them and builds the batch tensors "
      "(tokens, targets, segment ids, images, image slots). batches/s = batches / seconds "
      "per repetition; median over repetitions and loader runs.")
    w("* **Trainer**: `muse-train --config configs/tiny/pretrain.yaml` with the same data "
      "and batch (`--set` overrides as in bench/train: steps, `eval.every=0`, "
      "`telemetry.log_every=1`), default mode; consumption = 1 / median `step_time_s` of "
      "`metrics.jsonl` over the steps after the first "
      + ", ".join(f"{PRESETS[p]['warmup']} ({p})" for p in args.presets) + ". A step "
      "consumes one batch; its time includes the `loader.next()` call, forward, backward, "
      "clipping and AdamW.")
    w("* ratio = loader batches/s / trainer batches/s: how many times faster the loader "
      "delivers than the trainer consumes. The loader runs synchronously inside the step, so "
      "1 / ratio is the share of the step spent loading.\n")
    w(f"Machine: {os.cpu_count()} cores, {cpu_model()}; load average (1 min) {load_avg[0]:.1f} "
      f"before, {load_avg[1]:.1f} after this {seconds:.0f}-second run (other processes share "
      "the cores).\n")
    w("### Results\n")
    for preset in args.presets:
        r = results[preset]
        loader = median(r["loader"])
        step = median(r["steps"])
        trainer = 1 / step
        ratio = loader / trainer
        lines.append([f"{preset} ({PARAMS[preset]})",
                      f"**{loader:,.0f}** ({', '.join(f'{x:,.0f}' for x in r['loader'])})",
                      f"{step:.3f} s ({', '.join(f'{x:.3f}' for x in r['run_medians'])})",
                      f"**{trainer:.2f}**", f"**{ratio:,.0f}x**", f"{100 / ratio:.2g}%"])
        # A loader run and a trainer run per repetition, one after the other.
        rows.append(row(f"loader batches/s vs trainer consumption, {preset} preset, "
                        f"batch {BATCH}x{SEQ_LEN}", "batches/s", loader, trainer,
                        f"muse-train step rate ({preset}, {args.threads} threads)",
                        f"data.{preset}.b{BATCH}x{SEQ_LEN}",
                        pairs=[(x, 1 / t) for x, t in zip(r["loader_medians"],
                                                          r["run_medians"])]))
    w(table(["preset", "loader batches/s (per repetition)", "trainer step time (per run)",
             "trainer batches/s", "loader / trainer", "loading's share of a step"], lines))
    opened = results[args.presets[0]]["opened"]
    w("")
    w("### Discussion\n")
    margins = ", ".join(f"{r['ratio']:,.0f}x ({p})" for r, p in zip(rows, args.presets))
    w(f"The loader is not the bottleneck: it delivers batches {margins} faster than the "
      "trainer consumes them, so loading is "
      + " and ".join(f"{100 / r['ratio']:.2g}% ({p})" for r, p in zip(rows, args.presets))
      + " of a step. It runs on the training thread, between steps, with no prefetching; "
      "a background thread would hide even that, but at this margin it would buy almost "
      "nothing. The loader's work per batch does not depend on the model (both presets see "
      "the same rows), so its rate is the same for both up to noise, while the trainer's "
      "step grows with the model. "
      f"Opening the {opened['documents']:,} documents ({opened['tokens']:,} stored tokens) "
      f"took {opened['seconds'] * 1e3:.0f} ms and packing an epoch "
      f"({opened['sequences_per_epoch']:,} sequences) {opened['plan_seconds'] * 1e3:.1f} ms, "
      "once per run and once per epoch. With N ranks, each rank's loader builds only its "
      f"{BATCH} / N rows of every batch, so the margin holds per rank.\n")
    if max(load_avg) > os.cpu_count():
        w("The load average was above the core count during this run: the trainer's steps were "
          "slower than on a quiet machine (its OpenMP threads wait for each other at every op) "
          "and the loader's less so, so on a quiet machine the margin is smaller than here; "
          "docs/performance.md has step times measured with less load.\n")
    w("Rerun: `bench/data/run.sh` (knobs `REPS`, trainer runs of the tiny preset, default 2, "
      "the small preset runs once; `PRESETS`, default `tiny,small`; `THREADS`, default one "
      "per core; `BUILD_DIR`, `NO_BUILD=1`).")
    return rows, "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-bench", required=True, help="the data_bench binary")
    ap.add_argument("--muse", required=True, help="the muse-train binary")
    ap.add_argument("--out", required=True, help="the result JSON")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="intra-op threads for both sides (default: one per core)")
    args = ap.parse_args()
    args.presets = [p for p in args.presets.split(",") if p]
    for p in args.presets:
        if p not in PRESETS:
            sys.exit(f"error: --presets: unknown preset '{p}' (tiny or small)")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    results = measure(args)
    seconds = time.perf_counter() - start
    rows, markdown = report(args, results, seconds, (load_before, os.getloadavg()[0]))
    write(args.out, "data", "Data loader vs the trainer's consumption", seconds, rows, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
