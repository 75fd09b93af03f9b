"""Runs the training-throughput benchmark and writes docs/performance.md:
muse-train's pretraining loop (1 rank: default recompute and no-recompute;
2 ranks under mpirun) against the same model and batch in PyTorch eager
(torch_train.py), interleaved run by run so that load from other processes
hits every side alike.

    python bench.py --muse build/bin/muse-train --out docs/performance.md
        [--reps 3] [--threads N[,N...]] [--ranks 2] [--presets tiny,small]
        [--save RESULTS.json | --load RESULTS.json]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from machine import cpu_model  # noqa: E402

# Per preset: extra muse-train keys, torch_train.py arguments, steps per run
# (the first `warmup` of each run are discarded) and runs per row. The small preset keeps
# the tiny data's 8x8 grayscale images (4 patches each) so that both presets
# train on data/tiny/shards/pretrain; its ViT-sized image settings would only
# change the patch projector, a negligible part of the step.
PRESETS = {
    "tiny": {"set": [], "args": [], "steps": 10, "warmup": 2, "reps": lambda reps: reps},
    "small": {"set": ["model.preset=small", "model.image_size=8", "model.patch_size=4",
                      "model.image_channels=1"],
              "args": ["--image-size", "8", "--patch-size", "4", "--image-channels", "1"],
              "steps": 5, "warmup": 2, "reps": lambda reps: min(reps, 2)},
}
BATCH, SEQ_LEN = 8, 256

# The sides, in the order of the table.
SIDES = [
    ("torch", "PyTorch eager"),
    ("muse_keep", "muse-train, no recompute"),
    ("muse_recompute", "muse-train, default (recompute)"),
    ("muse_2ranks", "muse-train, {ranks} ranks, default mode"),
]


def env_with_threads(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def cpu_seconds(root_pid):
    """CPU time (user + system) so far of `root_pid` and its descendants
    (mpirun's ranks), from /proc."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command: state, ppid, ..., utime (14th field), stime (15th).
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, ticks = {root_pid}, 0
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    for pid in tree:
        ticks += stats.get(pid, (0, 0))[1]
    return ticks / os.sysconf("SC_CLK_TCK")


def run_muse(args, preset, side, threads, workdir):
    """Step records of one muse-train run, each with cpu_s added: the CPU
    time of the process tree between this record and the previous one,
    sampled when the record appears in metrics.jsonl."""
    p = PRESETS[preset]
    run_dir = tempfile.mkdtemp(dir=workdir)
    keys = [f"run.dir={run_dir}", "run.name=bench", f"trainer.steps={p['steps']}",
            "telemetry.log_every=1", "telemetry.progress=off", "checkpoint.every=100000",
            "checkpoint.keep=1", "eval.every=0", f"data.batch_size={BATCH}",
            f"data.seq_len={SEQ_LEN}", "data.shards=data/tiny/shards/pretrain"] + p["set"]
    if side == "muse_keep":
        keys += ["trainer.activation_checkpointing=false", "trainer.keep_gathered=true"]
    cmd = [args.muse, "--config", "configs/tiny/pretrain.yaml"]
    for k in keys:
        cmd += ["--set", k]
    if side == "muse_2ranks":
        cmd = ["mpirun", "-np", str(args.ranks), "--oversubscribe", "--bind-to", "none"] + cmd
    metrics = os.path.join(run_dir, "bench", "metrics.jsonl")
    log = open(os.path.join(run_dir, "log.txt"), "w+")
    proc = subprocess.Popen(cmd, env=env_with_threads(threads), stdout=log, stderr=log)
    records, text, last_cpu = [], "", None
    while True:
        done = proc.poll() is not None
        if os.path.exists(metrics):
            with open(metrics) as f:
                text_now = f.read()
            # Only whole lines: a record may be half written.
            text_now = text_now[:text_now.rfind("\n") + 1]
            if text_now != text:
                cpu = cpu_seconds(proc.pid) if not done else None
                for line in text_now[len(text):].splitlines():
                    r = json.loads(line)
                    if "step_time_s" in r and "eval" not in r:
                        r["cpu_s"] = cpu - last_cpu if cpu is not None and last_cpu is not None \
                            else None
                        records.append(r)
                last_cpu, text = cpu, text_now
        if done:
            break
        time.sleep(0.002)
    if proc.returncode != 0:
        log.seek(0)
        sys.exit(f"error: {' '.join(cmd)} failed:\n{log.read()[-2000:]}")
    log.close()
    subprocess.run(["rm", "-rf", run_dir], check=True)
    return records


def run_torch(args, preset, threads):
    p = PRESETS[preset]
    cmd = [sys.executable, os.path.join(HERE, "torch_train.py"), "--preset", preset,
           "--steps", str(p["steps"]), "--batch", str(BATCH), "--seq-len", str(SEQ_LEN),
           "--threads", str(threads)] + p["args"]
    proc = subprocess.run(cmd, env=env_with_threads(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if "step" in r]


def run_overheads(args):
    """overheads.py at the largest preset measured, or None when it fails."""
    preset = "small" if "small" in args.presets else args.presets[-1]
    proc = subprocess.run([sys.executable, os.path.join(HERE, "overheads.py"), "--preset",
                           preset], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"warning: overheads.py failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout)


def jobs(args):
    """(preset, threads, side) of every row: each thread count for the
    1-rank sides, the multi-rank row once, with cores / ranks threads per rank."""
    out = []
    for preset in args.presets:
        for i, threads in enumerate(args.threads):
            for side, _ in SIDES:
                if side != "muse_2ranks":
                    out.append((preset, threads, side))
                elif i == 0 and args.ranks > 1:
                    out.append((preset, max(1, os.cpu_count() // args.ranks), side))
    return out


def measure(args):
    """Per row: step times and CPU times after warm-up, pooled over
    repetitions, each run's median, and the step-1 loss."""
    results = {}
    workdir = tempfile.mkdtemp()
    rows = jobs(args)
    for rep in range(args.reps):
        for preset in args.presets:
            if rep >= PRESETS[preset]["reps"](args.reps):
                continue
            group = [j for j in rows if j[0] == preset]
            # Rotate the order every repetition: no side always runs first.
            k = rep % len(group)
            for key in group[k:] + group[:k]:
                _, threads, side = key
                start = time.time()
                if side == "torch":
                    records = run_torch(args, preset, threads)
                else:
                    records = run_muse(args, preset, side, threads, workdir)
                warm = PRESETS[preset]["warmup"]
                r = results.setdefault(key, {"times": [], "cpu": [], "run_medians": [],
                                             "loss1": None})
                times = [x["step_time_s"] for x in records[warm:]]
                r["times"] += times
                r["cpu"] += [x["cpu_s"] for x in records[warm:] if x.get("cpu_s") is not None]
                r["run_medians"].append(statistics.median(times))
                r["loss1"] = records[0]["loss"]
                print(f"rep {rep + 1} {preset:5s} {threads}t {side:15s} "
                      f"median {statistics.median(times):.3f} s/step, cpu "
                      f"{statistics.median(r['cpu']) if r['cpu'] else float('nan'):.3f} s "
                      f"({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", workdir], check=True)
    return results


def report(args, results, overheads, load_before, load_after, seconds):
    tokens = BATCH * SEQ_LEN
    muse_version = subprocess.run([args.muse, "--version"], capture_output=True,
                                  text=True).stdout.strip()
    reps = {p: PRESETS[p]["reps"](args.reps) for p in args.presets}
    out = []
    w = out.append
    w("# Training throughput: muse-train vs PyTorch eager\n")
    w("Generated by `bench/train/run.sh`; do not edit by hand (the prose lives in")
    w(f"bench/train/bench.py). Invocation: `THREADS={','.join(map(str, args.threads))} "
      f"REPS={args.reps} RANKS={args.ranks} PRESETS={','.join(args.presets)}`.")
    w("Both sides ran interleaved, run by run, on the same machine:")
    w(f"{os.cpu_count()} cores, {cpu_model()}, {platform.system()}; {muse_version};")
    w(f"PyTorch {torch.__version__} from the same wheel. Load average (1 min) "
      f"{load_before:.1f} before and {load_after:.1f}")
    w(f"after the {seconds / 60:.0f}-minute run: other processes shared the cores, so every "
      "figure is a")
    w("median over runs and steps, not a best case.\n")
    w(METHOD.strip().format(batch=BATCH, seq_len=SEQ_LEN, tokens=tokens,
                            threads=os.cpu_count(), ranks=args.ranks,
                            per_rank=max(1, os.cpu_count() // args.ranks),
                            warm=", ".join(f"{PRESETS[p]['warmup']} ({p})" for p in PRESETS),
                            reps=", ".join(f"{reps[p]} ({p})" for p in args.presets)) + "\n")
    w("## Results\n")
    w("| preset | threads | side | step time | tokens/s | muse-train / PyTorch | "
      "CPU s per step | muse-train / PyTorch by CPU time |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in jobs(args):
        preset, threads, side = key
        r = results.get(key)
        if not r:
            continue
        base = results.get((preset, threads, "torch"))
        if side == "muse_2ranks":
            base = results.get((preset, args.threads[0], "torch"))
        t = statistics.median(r["times"])
        label = dict(SIDES)[side].format(ranks=args.ranks)
        ratio = "1 (baseline)" if side == "torch" else \
            f"**{statistics.median(base['times']) / t:.2f}x**" if base else "n/a"
        cpu = f"{statistics.median(r['cpu']):.2f}" if r["cpu"] else "n/a"
        cpu_ratio = "1 (baseline)" if side == "torch" else \
            f"{statistics.median(base['cpu']) / statistics.median(r['cpu']):.2f}x" \
            if base and base["cpu"] and r["cpu"] else "n/a"
        spread = ", ".join(f"{x:.2f}" for x in r["run_medians"])
        per_rank = " per rank" if side == "muse_2ranks" else ""
        w(f"| {preset} ({PARAMS[preset]}) | {threads}{per_rank} | {label} | {t:.3f} s "
          f"(runs {spread}) | {tokens / t:,.0f} | {ratio} | {cpu} | {cpu_ratio} |")
    w("")
    w("muse-train / PyTorch is the ratio of tokens/s (of median step times): above 1 means")
    w("muse-train trains faster. The CPU-time ratio is PyTorch's CPU s per step over")
    w("muse-train's, so above 1 again means muse-train needs less. The multi-rank row is")
    w(f"compared with PyTorch at {args.threads[0]} thread{'s' if args.threads[0] > 1 else ''}. "
      "\"runs\" lists each run's median step")
    w("time (the spread the load caused).")
    w("Loss at step 1 (same initial distribution, different random draws): " + "; ".join(
        f"{p} muse-train {results[(p, args.threads[0], 'muse_recompute')]['loss1']:.3f}, "
        f"PyTorch {results[(p, args.threads[0], 'torch')]['loss1']:.3f}"
        for p in args.presets) + ".\n")
    w(discussion(args, results, overheads,
                 max(load_before, load_after) > 0.75 * os.cpu_count()) + "\n")
    w(RERUN.strip())
    return "\n".join(out) + "\n"


PARAMS = {"tiny": "1.3M", "small": "40M"}

METHOD = """
## What is measured

One optimizer step on a global batch of {batch} sequences x {seq_len} tokens ({tokens}
tokens): forward, next-token cross-entropy, backward, global gradient-norm
clipping to 1.0 and AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on
matrices only), all in fp32. tokens/s = {tokens} / median step time over every
step after the first {warm} of each run (warm-up: allocator, page faults,
OpenMP pool), pooled over {reps} runs per row. "CPU s per step" is the CPU
time (user + system, all threads and ranks) spent during a step, median: it
barely moves with the load from other processes, so it cross-checks the wall
times (at 2 threads it includes OpenMP threads spinning while they wait).

* **muse-train**: `build/bin/muse-train --config configs/tiny/pretrain.yaml`
  with `--set` overrides: steps, `telemetry.log_every=1`, `eval.every=0`, one
  checkpoint after the last step (not timed). Step times are `step_time_s`
  of `metrics.jsonl`; they include reading and packing the batch from
  `data/tiny/shards/pretrain` (the HDF5 loader), the input checks and, on one
  rank, the solo communicator's copies for FSDP's gather and reduce-scatter.
  Its CPU time is read from /proc when each record appears.
* **PyTorch eager**: `bench/train/torch_model.py`, the same architecture
  written op for op from `model/forward.cpp` (RMSNorm in fp32, GQA with
  half-split rotary, `scaled_dot_product_attention` with the same
  block-diagonal causal bool mask that muse-train builds from the segment
  ids, SwiGLU, output projection tied to the token embedding), parameters as
  ordinary `nn.Parameter`s; `torch.optim.AdamW` with its default
  implementation choice (for CPU tensors the per-tensor loop, neither foreach
  nor fused) and `torch.nn.utils.clip_grad_norm_`. Its batches are synthetic
  but shaped like the loader's: random token ids, documents of ~51 tokens
  packed into rows (so the same kind of block-diagonal mask), ~4 images of 4
  patches per batch, as in the tiny data. The compute does not depend on the
  token values. The batches are built before timing, so the baseline pays no
  data loading; muse-train does.
* **The two muse-train modes**: *default* recomputes each unit's forward in
  backward (full activation checkpointing at unit boundaries, the FSDP
  default: one extra forward per step); *no recompute* sets
  `trainer.activation_checkpointing=false trainer.keep_gathered=true`, which
  keeps every activation as plain eager PyTorch does: the like-for-like row.
* **small preset**: `model.preset=small` (dim 512, 8 layers, 8 heads, 4 kv
  heads, ffn 1408, vocab 32768, tied; 40M parameters) with the tiny data's
  8x8 grayscale images (`model.image_size=8 model.patch_size=4
  model.image_channels=1`) so that it trains on the same shards; the preset's
  224x224 RGB images would only change the patch projector. Both sides use
  the same batch shape as tiny.
* **Threads**: LibTorch (muse-train) and PyTorch default to one intra-op
  OpenMP thread per physical core ({threads} here), through the same library
  code; the runner also pins it explicitly with `OMP_NUM_THREADS` for both
  (and `torch.set_num_threads` in the baseline). The {ranks}-rank row runs
  `mpirun -np {ranks} --oversubscribe --bind-to none` with {per_rank} thread(s) per
  rank: the ranks share the same {threads} cores, so it shows sharding's cost
  (gathers, reduce-scatters, collective verification) next to the parallelism
  it gets from one process per core instead of OpenMP threads; on separate
  nodes or GPUs each rank brings its own cores.
"""

RERUN = """
## Rerun

```
bench/train/run.sh                      # builds muse-train, then runs everything
NO_BUILD=1 REPS=5 bench/train/run.sh    # the existing build/bin/muse-train
PRESETS=tiny THREADS=2,1 bench/train/run.sh
```

Knobs: `REPS` (runs per row, default 3; the small preset runs at most 2),
`THREADS` (comma-separated intra-op thread counts, default LibTorch's), `RANKS`
(default 2; 1 drops the multi-rank row), `PRESETS` (default `tiny,small`),
`BUILD_DIR` (default `build`), `NO_BUILD=1`. Each run's median goes to stderr
as it finishes.
"""

def median_of(results, key, what="times"):
    r = results.get(key)
    return statistics.median(r[what]) if r and r[what] else None


def discussion(args, results, overheads, load_high):
    """The analysis, with its numbers taken from this run."""
    out = ["## Discussion\n"]
    w = out.append
    one = 1 if 1 in args.threads else None
    t0 = args.threads[0]

    w("**Like for like (no recompute vs PyTorch eager).** Both sides run the same LibTorch")
    w("kernels (profiled with torch.profiler, `aten::mm` alone is ~80% of the small step,")
    w("attention and the vocabulary-wide softmax most of the rest), so the difference can only")
    parts = []
    for preset in args.presets:
        for t in args.threads:
            a, b = median_of(results, (preset, t, "torch")), \
                median_of(results, (preset, t, "muse_keep"))
            if a and b:
                parts.append(f"{preset} at {t} thread{'s' if t > 1 else ''} {a / b:.2f}x")
    spread = max((max(r["run_medians"]) / min(r["run_medians"]) - 1) * 100
                 for r in results.values())
    w("come from the work around them. By wall time, muse-train's tokens/s over PyTorch's")
    w("are " + ", ".join(parts) + f"; but the run medians of one row differ by up to "
      f"{spread:.0f}% with the load (see \"runs\").")
    if one:
        cpu = []
        for preset in args.presets:
            a, b = median_of(results, (preset, 1, "torch"), "cpu"), \
                median_of(results, (preset, 1, "muse_keep"), "cpu")
            if a and b:
                cpu.append(f"{preset} {b / a:.2f}x")
        w("CPU time per step at 1 thread, the figure the load disturbs least (though shared")
        w(f"caches and memory bandwidth still move it by several percent): muse-train spends "
          f"{' and '.join(cpu)}")
        w("PyTorch's CPU time (above 1 is more).")
    else:
        w("(Rerun with `THREADS=...,1` for the steadier 1-thread CPU-time comparison.)")
    behind = []
    if t0 > 1:
        for preset in args.presets:
            a, b = median_of(results, (preset, t0, "torch")), \
                median_of(results, (preset, t0, "muse_keep"))
            if a and b and a / b < 0.97:
                behind.append(f"{preset} {a / b:.2f}x")
    if behind:
        w(f"At {t0} threads, the default, muse-train is behind ({', '.join(behind)}): the")
        w("matmuls scale with the threads, but the extra elementwise passes listed below are")
        w("memory-bound and barely do, so at more threads they are a larger share of the step.")
        w("A `perf record` of both sides (small preset, 2 threads, taken while writing this")
        w("benchmark) agrees: the MKL sgemm kernel has the same number of samples on both sides,")
        w("and muse-train's extra samples are in the add, copy, fill, mul and `where` kernels and")
        w("the fp32-to-fp64 copy, the passes in the table below.")
    w("The tiny step also carries work that PyTorch's prepared batches skip (the HDF5 loader,")
    w("input checks with their `.item()` reads).\n")

    w("**Default mode (recompute).** muse-train's default recomputes each block's forward in")
    w("backward (FSDP's activation checkpointing, to hold only unit inputs between forward and")
    w("backward). Against no recompute it costs")
    parts = []
    for preset in args.presets:
        what = "cpu" if one else "times"
        t = 1 if one else t0
        a, b = median_of(results, (preset, t, "muse_keep"), what), \
            median_of(results, (preset, t, "muse_recompute"), what)
        if a and b:
            parts.append(f"{(b / a - 1) * 100:+.0f}% ({preset})")
    w(", ".join(parts) + f" {'CPU time per step at 1 thread' if one else 'step time'}: less")
    w("than the one-third a full extra forward would suggest, because the embedding, the head")
    w("(whose logits are V wide), the loss, clipping, AdamW and the loader are not recomputed.")
    w("On one rank sharding saves no memory and these models fit easily, so the recompute buys")
    w("nothing here: `trainer.activation_checkpointing=false trainer.keep_gathered=true` is the")
    w("setting for small models and single-rank runs (a possible `auto` default: off when the")
    w("world size is 1 or the activations fit).\n")

    if t0 > 1 and one:
        parts = []
        for preset in args.presets:
            for side in ("torch", "muse_keep"):
                a, b = median_of(results, (preset, t0, side)), \
                    median_of(results, (preset, 1, side))
                if a and b:
                    parts.append(f"{preset} {dict(SIDES)[side]} {b / a:.2f}x")
        w(f"**Threads.** Speed-up from 1 to {t0} threads: " + ", ".join(parts) + ".")
        w("With OpenMP, every parallel region waits for its slowest thread and the waiting")
        w("thread spins, which the CPU column counts.")
        if load_high:
            w(f"Here other processes used the same {os.cpu_count()} cores, so a run's step "
              "times also depend on")
            w("which bursts of that load it met, for either side; read the multi-thread rows")
            w("with that in mind.")
        w("")

    if args.ranks > 1:
        parts = []
        for preset in args.presets:
            a, b = median_of(results, (preset, t0, "torch")), \
                median_of(results, (preset, max(1, os.cpu_count() // args.ranks),
                                    "muse_2ranks"))
            r = median_of(results, (preset, t0, "muse_recompute"))
            if a and b and r:
                parts.append(f"{preset}: {a / b:.2f}x PyTorch, {r / b:.2f}x muse-train's own "
                             f"1-rank default")
        w(f"**{args.ranks} ranks.** " + "; ".join(parts) + ". Each rank computes half the")
        w("batch on one thread, then pays the collectives (all-gather of every unit twice, a")
        w("reduce-scatter per unit, the verification messages) through shared memory. Two")
        w("single-threaded processes also tolerate other load better than one process whose")
        w("two OpenMP threads must meet at every op. It is not a scaling result: both ranks")
        w("share the same cores.\n")

    if overheads:
        o = overheads
        w(f"**Where muse-train's step does more work than eager PyTorch.** `bench/train/"
          f"overheads.py`")
        w("reproduces, with the same ATen calls, the parts of trainer/ that eager PyTorch does")
        w(f"not have, at the {o['preset']} preset's sizes ({o['numel'] / 1e6:.0f}M elements), "
          "1 thread, CPU seconds")
        w("per step (medians); the first two rows were fixed after they were measured:\n")
        w("| what | muse-train's way (before the fix, for the first two) | eager PyTorch's way | fix |")
        w("| --- | --- | --- | --- |")
        w(f"| weights as views of one flat leaf per unit (trainer/fsdp.cpp): each view's "
          f"backward (SliceBackward) zero-fills a gradient the size of the whole unit and adds "
          f"it | {o['flat_views_s']:.3f} s | {o['per_param_s']:.3f} s (a leaf per parameter, "
          f"then one copy into a flat buffer) | done: one leaf per weight, its `.grad` a view of "
          f"the unit's zeroed gradient buffer, so AccumulateGrad adds in place |")
        w(f"| global gradient norm with `dtype=kDouble` (trainer/grad_clip.cpp): "
          f"`linalg_vector_norm` first copies every gradient to fp64 | "
          f"{o['grad_norm_fp64_s']:.3f} s | {o['grad_norm_fp32_s']:.3f} s (fp32 norms) | "
          f"done: fp32 norm per shard, squares summed in fp64 |")
        w(f"| AdamW as ~16 elementwise passes plus a `where` (trainer/adamw.cpp) | "
          f"{o['adamw_muse_s']:.3f} s | {o['adamw_torch_default_s']:.3f} s default, "
          f"{o['adamw_torch_fused_s']:.3f} s `fused=True` | `at::_fused_adamw_` on the flat "
          f"shard (one pass; the mask as two calls or a per-element weight-decay) |")
        w(f"| one rank: the solo communicator copies each unit for the all-gather and the "
          f"reduce-scatter, and the shard adds it | {o['solo_copies_s']:.3f} s | none | "
          f"alias `full` to the shard and the gradient to `grad` when the world size is 1 |")
        # What remains after the first two fixes: AdamW and the one-rank copies.
        extra = (o["adamw_muse_s"] - o["adamw_torch_fused_s"]) + o["solo_copies_s"]
        step = median_of(results, (o["preset"], 1, "muse_keep"), "cpu")
        share = f", {extra / step * 100:.0f}% of the measured {step:.1f} s CPU step" if step \
            else ""
        vs_eager = (o["adamw_muse_s"] - o["adamw_torch_default_s"]) + o["solo_copies_s"]
        w("")
        w(f"Against eager PyTorch's way the remaining two cost muse-train about {vs_eager:.2f} s "
          f"of CPU per "
          f"{o['preset']} step;")
        w(f"the fixes with a fused AdamW would save about {extra:.2f} s{share} at one")
        w("thread, and a larger share at more threads, where these memory-bound passes hardly")
        w("speed up while the matmuls do. None of it is in the matmuls, which dominate both")
        w("sides. Next in line, for the default mode: the recompute above.\n")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--muse", default="build/bin/muse-train")
    ap.add_argument("--out", default="docs/performance.md")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default=str(torch.get_num_threads()),
                    help="comma-separated intra-op thread counts (default: LibTorch's default)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--save", help="also write the raw results to this JSON file")
    ap.add_argument("--load", help="skip measuring: report the results saved with --save "
                    "(give the same --threads, --ranks and --presets)")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.presets = [p for p in args.presets.split(",") if p]
    for p in args.presets:
        if p not in PRESETS:
            sys.exit(f"error: --presets: unknown preset '{p}' (tiny or small)")
    if args.load:
        with open(args.load) as f:
            saved = json.load(f)
        results = {tuple(r["key"]): r["value"] for r in saved["results"]}
        overheads, load_before, load_after, seconds, args.reps = (saved[k] for k in (
            "overheads", "load_before", "load_after", "seconds", "reps"))
    else:
        load_before = os.getloadavg()[0]
        start = time.time()
        results = measure(args)
        overheads = run_overheads(args)
        load_after, seconds = os.getloadavg()[0], time.time() - start
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"results": [{"key": list(k), "value": v} for k, v in results.items()],
                       "overheads": overheads, "load_before": load_before,
                       "load_after": load_after, "seconds": seconds, "reps": args.reps}, f)
    text = report(args, results, overheads, load_before, load_after, seconds)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
