"""Runs the distributed step benchmark: muse-train's FSDP on 2 ranks under
mpirun against PyTorch FSDP2 (`fully_shard`, gloo, CPU) on 2 ranks, same
model, batch and optimizer step, in muse-train's default mode (reshard after
forward, recompute in backward) and in its keep-gathered, no-recompute mode.
Interleaved run by run; writes $RESULTS_DIR/fsdp.json and prints its
Markdown.

    python bench.py --muse build/bin/muse-train --results-dir DIR
        [--reps 2] [--presets tiny,small]
"""
import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from machine import cpu_model, follow_steps  # noqa: E402
from results import median, row, table, write  # noqa: E402

RANKS = 2
BATCH, SEQ_LEN = 8, 256
# Per preset: muse-train keys, fsdp2_train.py arguments (bench/train's
# PRESETS: the small preset keeps the tiny data's 8x8 grayscale images),
# steps per timed run (the first `warmup` discarded), timed runs per row (at
# most; `--reps` caps it), and FSDP2's profiled steps (the first has no
# optimizer state yet, so at least 2).
PRESETS = {
    "tiny": {"set": [], "args": [], "steps": 8, "warmup": 2, "reps": 3, "profile_steps": 3},
    "small": {"set": ["model.preset=small", "model.image_size=8", "model.patch_size=4",
                      "model.image_channels=1"],
              "args": ["--image-size", "8", "--patch-size", "4", "--image-channels", "1"],
              "steps": 3, "warmup": 1, "reps": 1, "profile_steps": 2},
}
PARAMS = {"tiny": "1.3M", "small": "40M"}
# muse-train's keys per mode: its default (reshard after forward, recompute in
# backward), and keep gathered without recompute.
MODES = {
    "recompute": [],
    "keep": ["trainer.activation_checkpointing=false", "trainer.keep_gathered=true"],
}


def env_one_thread():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def tree_cpu(root_pid):
    """CPU seconds (user + system) so far of `root_pid` and its descendants,
    and of each muse-train rank's threads: {pid: (main thread, other threads)}."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    head, fields = f.read().rsplit(")", 1)
            except OSError:
                continue
            fields = fields.split()
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                 head.split("(", 1)[1])
    tree, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    tick = os.sysconf("SC_CLK_TCK")
    ranks = {}
    for pid in tree:
        if pid in stats and stats[pid][2] == "muse-train":
            main = other = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                ticks = int(fields[11]) + int(fields[12])
                if int(tid) == pid:
                    main += ticks
                else:
                    other += ticks
            ranks[pid] = (main / tick, other / tick)
    return sum(stats.get(pid, (0, 0, ""))[1] for pid in tree) / tick, ranks


def muse_command(args, preset, mode, run_dir):
    """The 2-rank muse-train command of bench/train's multi-rank row, in `mode`."""
    p = PRESETS[preset]
    keys = [f"run.dir={run_dir}", "run.name=bench", f"trainer.steps={p['steps']}",
            "telemetry.log_every=1", "telemetry.progress=off", "checkpoint.every=100000",
            "checkpoint.keep=1", "eval.every=0", f"data.batch_size={BATCH}",
            f"data.seq_len={SEQ_LEN}", "data.shards=data/tiny/shards/pretrain"] + p["set"] + \
        MODES[mode]
    cmd = ["mpirun", "-np", str(RANKS), "--oversubscribe", "--bind-to", "none", args.muse,
           "--config", "configs/tiny/pretrain.yaml"]
    for k in keys:
        cmd += ["--set", k]
    return cmd


def muse_plan(args, preset, mode, workdir):
    """The memory plan that `muse-train --dry-run` prints for the same launch."""
    run_dir = tempfile.mkdtemp(dir=workdir)
    cmd = muse_command(args, preset, mode, run_dir) + ["--dry-run"]
    proc = subprocess.run(cmd, env=env_one_thread(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("memory plan per rank"))
    end = next(i for i in range(start, len(lines)) if "communication per step" in lines[i])
    return lines[start:end + 1]


def run_muse(args, preset, mode, workdir):
    """rank 0's step records of one 2-rank muse-train run, each with cpu_s:
    the CPU time of both ranks since the previous record, sampled when the
    record appears in metrics.jsonl (None for the first), and threads: each
    rank's CPU time so far, of its main thread and of its other threads."""
    run_dir = tempfile.mkdtemp(dir=workdir)
    cmd = muse_command(args, preset, mode, run_dir)
    records, last_cpu = follow_steps(cmd, env_one_thread(), run_dir, tree_cpu), None
    for r in records:
        cpu, r["threads"] = r.pop("sample") or (None, None)
        r["cpu_s"] = cpu - last_cpu if None not in (cpu, last_cpu) else None
        last_cpu = cpu
    subprocess.run(["rm", "-rf", run_dir], check=True)
    return records


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fsdp2(preset, mode, profile):
    """Both ranks' records of one fsdp2_train.py run, one process per rank:
    step records, and with `profile` those of the profiled steps (peak tensor
    bytes, collectives) that follow the timed ones."""
    p = PRESETS[preset]
    base = [sys.executable, os.path.join(HERE, "fsdp2_train.py"), "--preset", preset,
            "--mode", mode, "--steps", str(p["steps"]), "--ranks", str(RANKS),
            "--batch", str(BATCH), "--seq-len", str(SEQ_LEN),
            "--profile-steps", str(p["profile_steps"] if profile else 0)] + p["args"]
    # PyTorch's gloo process group now and then aborts a rank as it shuts
    # down ("terminate called without an active exception"): one more
    # attempt, said on stderr, before the benchmark gives up.
    for attempt in (1, 2):
        cmd = base + ["--port", str(free_port())]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            procs = [subprocess.Popen(cmd + ["--rank", str(r)], env=env_one_thread(), stdout=out,
                                      stderr=err, text=True) for r in range(RANKS)]
            codes = [proc.wait() for proc in procs]
            out.seek(0)
            err.seek(0)
            if not any(codes):
                return [json.loads(line) for line in out.read().splitlines()
                        if line.startswith("{")]
            message = f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}"
        if attempt == 1:
            print(f"warning: {message}\nrunning it once more", file=sys.stderr, flush=True)
    sys.exit(f"error: {message}")


def fsdp2_steps(records):
    """Rank 0's step records, each with cpu_s and cpu_main_s summed over both
    ranks."""
    steps = [r for r in records if r.get("rank") == 0 and "step_time_s" in r]
    for r in steps:
        for k in ("cpu_s", "cpu_main_s"):
            r[k] = sum(x[k] for x in records if x.get("step") == r["step"] and k in x)
    return steps


def measure(args):
    """Every run, interleaved: per repetition the four (side, mode) rows of a
    preset in an order rotated by one. The first repetition's FSDP2 runs
    also profile a few steps after the timed ones, and muse-train's dry run
    gives its memory plan."""
    runs = {"muse": {}, "fsdp2": {}, "fsdp2_mem": {}, "plan": {}}
    workdir = tempfile.mkdtemp()
    for preset in args.presets:
        group = [(side, mode) for mode in MODES for side in ("muse", "fsdp2")]
        for rep in range(min(args.reps, PRESETS[preset]["reps"])):
            k = rep % len(group)
            for side, mode in group[k:] + group[:k]:
                start = time.time()
                if side == "muse":
                    records = run_muse(args, preset, mode, workdir)
                    if rep == 0:
                        runs["plan"][(preset, mode)] = muse_plan(args, preset, mode, workdir)
                else:
                    out = run_fsdp2(preset, mode, profile=rep == 0)
                    records = fsdp2_steps(out)
                    if rep == 0:
                        runs["fsdp2_mem"][(preset, mode)] = [r for r in out if r.get("profiled")]
                runs[side].setdefault((preset, mode), []).append(records)
                times = [r["step_time_s"] for r in records[PRESETS[preset]["warmup"]:]]
                print(f"rep {rep + 1} {preset:5s} {side:5s} {mode:9s} median "
                      f"{median(times):.3f} s/step ({time.time() - start:.0f} s)",
                      file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", workdir], check=True)
    return runs


def muse_thread_split(rec, warm):
    """CPU s per step of both ranks' main threads and of their other threads
    (the communicators' MPI worker threads), between the end of the warm-up
    and the last record sampled while the job ran."""
    sampled = [i for i, r in enumerate(rec) if r.get("threads")]
    first, last = warm - 1, sampled[-1] if sampled else None
    if last is None or first not in sampled or last <= first:
        return None
    a, b = rec[first]["threads"], rec[last]["threads"]
    main = sum(b[p][0] - a[p][0] for p in b if p in a) / (last - first)
    other = sum(b[p][1] - a[p][1] for p in b if p in a) / (last - first)
    return main, other


def summarize(runs, preset, mode):
    """The figures of one (preset, mode) for both sides: medians over runs
    and steps, and per run (in repetition order) those the rows pair up."""
    warm = PRESETS[preset]["warmup"]
    out = {}

    def cpu_of(recs):
        cpu = [r["cpu_s"] for rec in recs for r in rec[warm:] if r.get("cpu_s") is not None]
        return median(cpu) if cpu else None

    for side in ("muse", "fsdp2"):
        reps = runs[side][(preset, mode)]
        times = [r["step_time_s"] for rec in reps for r in rec[warm:]]
        rss = [rec[-1]["peak_rss_bytes"] for rec in reps]
        out[side] = {"time": median(times),
                     "run_medians": [median([r["step_time_s"] for r in rec[warm:]])
                                     for rec in reps],
                     "cpu": cpu_of(reps), "run_cpu": [cpu_of([rec]) for rec in reps],
                     "rss": median(rss), "run_rss": rss}
    muse_reps = runs["muse"][(preset, mode)]
    splits = [x for x in (muse_thread_split(rec, warm) for rec in muse_reps) if x]
    out["muse"]["split"] = tuple(median(x[i] for x in splits) for i in (0, 1)) \
        if splits else None
    fsdp2_reps = runs["fsdp2"][(preset, mode)]
    main = median(r["cpu_main_s"] for rec in fsdp2_reps for r in rec[warm:])
    out["fsdp2"]["split"] = (main, out["fsdp2"]["cpu"] - main)
    out["muse"]["tensor"] = median(r["peak_cpu_bytes"] for rec in muse_reps for r in rec[warm:])
    comm = {r["comm_bytes"] for rec in muse_reps for r in rec}
    if len(comm) != 1:
        sys.exit(f"error: muse-train's comm_bytes differ between steps: {sorted(comm)}")
    out["muse"]["comm"] = comm.pop()
    # FSDP2's profiled run: steps after the first (which has no optimizer
    # state yet). The peak depends on when gloo's thread completes each
    # asynchronous reduce-scatter and frees its input, so it is kept per
    # rank and step; the rows use rank 0's median, as muse-train reports rank 0.
    mem = runs["fsdp2_mem"][(preset, mode)]
    later = [r for r in mem if r["step"] > 1]
    out["fsdp2"]["tensor_by_rank"] = {
        rank: [r["peak_cpu_bytes"] for r in later if r["rank"] == rank] for rank in range(RANKS)}
    out["fsdp2"]["tensor"] = median(out["fsdp2"]["tensor_by_rank"][0])
    comm = {json.dumps(r["comm"], sort_keys=True) for r in mem}
    if len(comm) != 1:
        sys.exit(f"error: FSDP2's collectives differ between steps or ranks: {sorted(comm)}")
    out["fsdp2"]["collectives"] = json.loads(comm.pop())
    out["fsdp2"]["comm"] = later[0]["comm_bytes"]
    out["fsdp2"]["peak_at"] = [r["peak_at"] for r in later]
    out["plan"] = parse_plan(runs["plan"][(preset, mode)])
    # Exactly: shard_bytes is 16 bytes per shard element (docs/memory.md),
    # the optimizer scratch (the weight-decay mask) 1.
    out["muse"]["scratch"] = muse_reps[0][0]["shard_bytes"] // 16
    return out


def parse_plan(lines):
    """{component: size as printed} of the dry run's memory plan, in its order."""
    plan = {}
    for line in lines[1:]:
        m = re.match(r"\s+([a-z][a-z ]*?)\s+([\d.]+ (?:B|KiB|MiB|GiB))\s", line)
        if m:
            plan[m.group(1)] = m.group(2)
    return plan


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def rows_and_markdown(args, runs, seconds, load):
    rows, md = [], []
    w = md.append
    tokens = BATCH * SEQ_LEN
    muse_version = subprocess.run([args.muse, "--version"], capture_output=True,
                                  text=True).stdout.strip()
    w(f"Both sides ran interleaved on the same machine ({os.cpu_count()} cores, {cpu_model()}, "
      f"{platform.system()}; {muse_version}; PyTorch {torch.__version__} from the same wheel); "
      f"load average (1 min) {load[0]:.1f} before and {load[1]:.1f} after the "
      f"{seconds:.0f}-second run. Other processes shared the cores, so every time is a median "
      "over runs and steps, and the CPU time per step, which the load moves much less, is "
      "given next to it.\n")
    w(METHOD.strip().format(batch=BATCH, seq_len=SEQ_LEN, tokens=tokens, ranks=RANKS,
                            warm=", ".join(f"{PRESETS[p]['warmup']} of {PRESETS[p]['steps']} "
                                           f"({p})" for p in args.presets),
                            reps=", ".join(f"{min(args.reps, PRESETS[p]['reps'])} ({p})"
                                           for p in args.presets),
                            profiled=", ".join(f"{PRESETS[p]['profile_steps']} ({p})"
                                               for p in args.presets)) + "\n")
    w("### Results\n")
    summaries, lines = {}, []
    for preset in args.presets:
        for mode in MODES:
            s = summaries[(preset, mode)] = summarize(runs, preset, mode)
            for side, label in (("fsdp2", "PyTorch FSDP2"), ("muse", "muse-train")):
                x = s[side]
                lines.append([
                    f"{preset} ({PARAMS[preset]})", mode, label,
                    f"{x['time']:.3f} s ({', '.join(f'{t:.2f}' for t in x['run_medians'])})",
                    f"{tokens / x['time']:,.0f}",
                    "1 (baseline)" if side == "fsdp2" else
                    f"**{s['fsdp2']['time'] / x['time']:.2f}x**",
                    f"{x['cpu']:.2f}" if x["cpu"] is not None else "n/a",
                    mib(x["tensor"]), mib(x["rss"]), f"{x['comm']:,}"])
            rows += result_rows(preset, mode, s, tokens)
    w(table(["preset", "mode", "side", "step time (run medians)", "tokens/s",
             "muse-train / FSDP2", "CPU s per step", "peak tensor bytes", "peak RSS",
             "bytes sent per rank per step"], lines))
    w("")
    w("muse-train / FSDP2 is the ratio of tokens/s (of the median step times): above 1 "
      "means muse-train steps faster. CPU s per step: both ranks, all threads, median. "
      "Peak tensor bytes, peak RSS and bytes sent are rank 0's (muse-train's metrics are "
      "rank 0's; the ranks are alike).\n")
    w(discussion(args, summaries))
    return rows, "\n".join(md) + "\n"


def result_rows(preset, mode, s, tokens):
    """The rows of one (preset, mode). Each repetition ran both sides, so
    step time, CPU time and RSS pair up run by run; FSDP2's tensor bytes
    come from one profiled run and the bytes sent are the same every step,
    so those rows have no spread."""
    key, what = f"fsdp.{preset}.{mode}", f"{preset}, {RANKS} ranks, {mode}"
    m, b = s["muse"], s["fsdp2"]
    out = [row(f"step tokens/s, {what}", "tokens/s", tokens / m["time"], tokens / b["time"],
               "PyTorch FSDP2", f"{key}.tokens_per_s", target=1.0,
               pairs=[(tokens / x, tokens / y) for x, y in zip(m["run_medians"],
                                                                b["run_medians"])])]
    if m["cpu"] and b["cpu"]:
        out.append(row(f"CPU s per step (both ranks), {what}", "s", m["cpu"], b["cpu"],
                       "PyTorch FSDP2", f"{key}.cpu_s", lower_is_better=True,
                       pairs=[(x, y) for x, y in zip(m["run_cpu"], b["run_cpu"]) if x and y]))
    out += [row(f"peak tensor bytes per rank, {what}", "bytes", m["tensor"], b["tensor"],
                "PyTorch FSDP2", f"{key}.peak_tensor_bytes", target=1.0, lower_is_better=True),
            row(f"peak RSS per rank, {what}", "bytes", m["rss"], b["rss"], "PyTorch FSDP2",
                f"{key}.peak_rss_bytes", target=1.0, lower_is_better=True,
                pairs=list(zip(m["run_rss"], b["run_rss"]))),
            row(f"bytes sent per rank per step, {what}", "bytes", m["comm"], b["comm"],
                "PyTorch FSDP2", f"{key}.comm_bytes", lower_is_better=True)]
    return out


METHOD = """
### What is measured

One optimizer step of the same model on {ranks} ranks of this machine, a
global batch of {batch} sequences x {seq_len} tokens ({tokens} tokens, each
rank half of the sequences), fp32: forward, next-token cross-entropy over the
global count of targets, backward, reduce-scatter of the gradients,
global-norm clipping to 1.0, AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1
on matrices only). One intra-op thread per rank (`OMP_NUM_THREADS=1`). Step
times are rank 0's wall time per step after the first {warm} steps of each run,
pooled over {reps} runs per row.

* **muse-train**: `mpirun -np {ranks} --oversubscribe --bind-to none muse-train
  --config configs/tiny/pretrain.yaml` with bench/train's `--set` overrides
  (batch, sequence length, `data/tiny/shards/pretrain`, `telemetry.log_every=1`,
  `eval.every=0`, one checkpoint after the last step, not timed). Figures are
  rank 0's `metrics.jsonl` fields: `step_time_s` (it includes reading the
  batch with the HDF5 loader and the input checks), `peak_cpu_bytes` (the
  peak of live CPU tensor bytes in the step, counted by muse-train's
  allocator wrapper: shards, optimizer state, gathered units, activations;
  docs/memory.md), `peak_rss_bytes` (VmHWM of the process since it started)
  and `comm_bytes` (bytes the rank sent in the step in the ring convention:
  (N-1)/N of the full buffer per all-gather or reduce-scatter, 2(N-1)/N per
  all-reduce; docs/memory.md). CPU time is read from /proc, per thread, when
  each record appears.
* **PyTorch FSDP2**: `bench/fsdp/fsdp2_train.py`: bench/train's
  `torch_model.py` (the same architecture op for op, tied output projection)
  with each transformer block as a module, `fully_shard` on every block and
  then on the root (embedding, patch projector, final norm, tied head; FSDP2
  keeps the root gathered from forward to backward), a 1-D CPU device mesh,
  `init_process_group("gloo")`, one process per rank. Batches of the same
  shape, synthetic but shaped like the loader's (packed documents of ~51
  tokens, images), built before timing; the global target count is all-reduced
  as muse-train does, and the gradients are summed over ranks
  (`set_gradient_divide_factor(1.0)`, which FSDP2 runs as a PREMUL_SUM
  reduction that gloo does not have, hence also
  `set_force_sum_reduction_for_comms(True)`: the one workaround FSDP2 needed
  on CPU and gloo in this torch). `torch.nn.utils.clip_grad_norm_` on the
  DTensor gradients and `torch.optim.AdamW` with its default implementation
  (for CPU tensors the per-parameter loop) on the DTensor shards. Step time,
  CPU time (per rank, and of its main thread) and peak RSS (VmHWM, as
  muse-train) come from timed steps without instrumentation. The peak tensor
  bytes and the collectives come from {profiled} more steps after the timed
  ones in the first run of each row, with the model, optimizer and batches
  freed and built again under `torch.profiler` with memory profiling:
  LibTorch's CPU allocator reports every allocation with the running total of
  live tensor bytes since the profiler started, so that total counts every
  tensor of the training state, the counterpart of `peak_cpu_bytes` (the first
  profiled step, before AdamW has its state, is left out); every `c10d::` op
  (what `torch.distributed`, and so FSDP2, calls: `_allgather_base_`,
  `_reduce_scatter_base_`, `allreduce_`) and every functional collective (what
  DTensor calls inside `clip_grad_norm_`) is counted with its buffer size in
  the same ring convention as `comm_bytes`.
* **Modes**: *recompute*, muse-train's default (each block resharded after
  forward, gathered again and its forward recomputed in backward: activation
  checkpointing at unit boundaries) against FSDP2 with
  `reshard_after_forward=True` and `checkpoint_wrapper` around every block
  (torchtitan's full activation checkpointing); *keep*,
  `trainer.activation_checkpointing=false trainer.keep_gathered=true`
  against FSDP2 with `reshard_after_forward=False` and no checkpointing.
* **small preset**: `model.preset=small model.image_size=8 model.patch_size=4
  model.image_channels=1` (dim 512, 8 layers, vocab 32768, 40M parameters)
  on the same data and batch shape.
"""


def discussion(args, summaries):
    out = ["### Discussion\n"]
    w = out.append
    parts = []
    for (preset, mode), s in summaries.items():
        m, b = s["muse"], s["fsdp2"]
        cpu = f" ({b['cpu'] / m['cpu']:.2f}x by CPU time)" if m["cpu"] and b["cpu"] else ""
        parts.append(f"{preset} {mode} {b['time'] / m['time']:.2f}x{cpu}")
    w("**Speed.** muse-train's tokens/s over FSDP2's: " + ", ".join(parts) + ". Where the "
      "CPU time of a step goes, both ranks together (CPU s per step, medians):\n")
    lines = []
    for (preset, mode), s in summaries.items():
        ms, bs = s["muse"]["split"], s["fsdp2"]["split"]
        lines.append([preset, mode] + ([f"{x:.2f}" for x in ms] if ms else ["n/a", "n/a"])
                     + [f"{x:.2f}" for x in bs])
    w(table(["preset", "mode", "muse-train: main threads",
             "muse-train: other threads (MPI worker)", "FSDP2: main threads",
             "FSDP2: other threads (gloo, autograd)"], lines))
    w("")
    w("The main threads run the model, the loss and the optimizer with the same LibTorch "
      "kernels on both sides (muse-train's also read the batch from the HDF5 shards). The "
      "other threads are where the two differ most: muse-train's MPI communicator runs "
      "every collective (after its fingerprint all-gather) as a blocking MPI call on its "
      "worker thread, and Open MPI waits for the other rank by polling its shared-memory "
      "transport (a `perf` profile of a rank puts this thread's samples in "
      "`opal_progress` and the vader BTL). Whenever one rank reaches a collective before "
      "the other, e.g. an all-gather prefetched while the peer still computes the current "
      "block, the worker spins until the peer arrives. Gloo's threads block in the kernel "
      "on their TCP sockets instead; their CPU time, which also covers the copies and the "
      "reductions that muse-train's worker does inside MPI, bounds how much of the "
      "worker's is real work. With 2 ranks on 2 cores that spinning is CPU taken "
      "from the compute threads, so on an otherwise idle machine it costs wall time about "
      "in proportion. Under load from other processes the effect on wall time is "
      "muddier: a process with more runnable threads also gets a larger share of the "
      "contended cores, so the wall-time ratio can favour the side that spins while the "
      "CPU-time ratio does not; when the two ratios disagree, the CPU-time one says more "
      "about the code. The fix belongs in `comm/mpi_communicator.cpp`: start each "
      "collective non-blocking (`MPI_Iallgather`, `MPI_Ireduce_scatter_block`, "
      "`MPI_Iallreduce`) and wait with `MPI_Test` and a short sleep between tests, so that "
      "an idle worker gives its core back; the spinning is free only when every rank has "
      "a spare core.\n")
    parts = []
    for (preset, mode), s in summaries.items():
        by_rank = s["fsdp2"]["tensor_by_rank"]
        spread = "; ".join(f"rank {r} " + ", ".join(mib(x) for x in v)
                           for r, v in by_rank.items())
        parts.append(f"{preset} {mode}: muse-train {mib(s['muse']['tensor'])}, "
                     f"FSDP2 {mib(s['fsdp2']['tensor'])} (per profiled step after the first: "
                     f"{spread})")
    where = sorted({" > ".join(at[-2:]) for s in summaries.values()
                    for at in s["fsdp2"]["peak_at"]})
    w("**Memory.** Peak live tensor bytes per rank: " + "; ".join(parts) + ". FSDP2's peak "
      "moves between steps and ranks because gloo's thread frees an asynchronous "
      "reduce-scatter's input when the collective completes, and the timing decides "
      "whether that comes before the next allocation. It falls in "
      + ", ".join(f"`{x}`" for x in where) + ": the loss's backward over the "
      "vocabulary-wide logits, the head phase where muse-train's planner puts its peak too "
      "(docs/memory.md). The planner (`--dry-run`, the same launch) splits muse-train's "
      "peak as follows (per rank):\n")
    names = list(next(iter(summaries.values()))["plan"])
    w(table(["component"] + [f"{p} {m}" for p, m in summaries],
            [[name] + [s["plan"].get(name, "") for s in summaries.values()] for name in names]
            + [["muse-train, measured"] + [mib(s["muse"]["tensor"]) for s in summaries.values()],
               ["FSDP2, measured"] + [mib(s["fsdp2"]["tensor"]) for s in summaries.values()]]))
    w("")
    w("One of muse-train's buffers is alive at that moment with no counterpart in FSDP2: the "
      "bool weight-decay mask of the whole shard (1 byte per parameter over N, "
      + ", ".join(f"{p} {mib(s['muse']['scratch'])}" for (p, m), s in summaries.items()
                  if m == "recompute") +
      "), which `torch.optim.AdamW` does not need because it decays parameter by parameter. "
      "The one-pass CPU AdamW keeps no fp32 update buffers, and the tied embedding's full "
      "gradient is made after the head's backward, off the peak (docs/memory.md). Peak "
      "RSS tells another story: importing torch (this wheel loads its CUDA libraries) "
      "leaves a Python process about half a GiB resident before any tensor exists, which "
      "muse-train's LibTorch binary does not load.\n")
    parts = []
    for (preset, mode), s in summaries.items():
        c = s["fsdp2"]["collectives"]
        calls = ", ".join(f"{k} {v['calls']} calls {v['bytes']:,} B"
                          for k, v in sorted(c.items()))
        parts.append(f"{preset} {mode}: muse-train {s['muse']['comm']:,}, FSDP2 "
                     f"{s['fsdp2']['comm']:,} ({calls})")
    w("**Communication.** Bytes sent per rank per step: " + "; ".join(parts) + ". Both "
      "gather each block twice per step in the recompute mode and once when kept gathered, "
      "the root (embedding with the tied head) once, and reduce-scatter every gradient "
      "once, so the all-gathers and reduce-scatters match to the byte; the rest is the "
      "small all-reduces: muse-train's four one-element ones (data agreement, target "
      "count, loss, squared gradient norm) against the target count, the loss and "
      "DTensor's all-reduces of the per-parameter norms in `clip_grad_norm_`.\n")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--muse", default="build/bin/muse-train")
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--reps", type=int, default=2,
                    help="timed runs per row (the small preset runs at most once)")
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--save", help="also write the raw runs to this JSON file")
    ap.add_argument("--load", help="skip measuring: report the runs saved with --save")
    args = ap.parse_args()
    args.presets = [p for p in args.presets.split(",") if p]
    for p in args.presets:
        if p not in PRESETS:
            sys.exit(f"error: --presets: unknown preset '{p}' (tiny or small)")
    if args.load:
        with open(args.load) as f:
            saved = json.load(f)
        runs = {side: {tuple(k.split("/")): v for k, v in d.items()}
                for side, d in saved["runs"].items()}
        seconds, load = saved["seconds"], saved["load"]
    else:
        start, load0 = time.time(), os.getloadavg()[0]
        runs = measure(args)
        seconds, load = time.time() - start, (load0, os.getloadavg()[0])
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"runs": {side: {"/".join(k): v for k, v in d.items()}
                                for side, d in runs.items()},
                       "seconds": seconds, "load": load}, f)
    rows, markdown = rows_and_markdown(args, runs, seconds, load)
    os.makedirs(args.results_dir, exist_ok=True)
    write(os.path.join(args.results_dir, "fsdp.json"), "fsdp",
          "Distributed step: muse-train FSDP vs PyTorch FSDP2", seconds, rows, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
