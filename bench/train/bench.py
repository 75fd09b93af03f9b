"""Training-step benchmark: muse-train's pretraining loop in one process (no
recompute; its default with recompute; no recompute with every product on
MKL, MUSE_CPU_MATMUL=aten) against the same model, batch and
optimizer step in PyTorch eager, torch.compile and transformers'
LlamaForCausalLM loaded from muse-export's Hugging Face directory,
interleaved run by run so that load from other processes hits every side
alike. The machine's fp32 matmul peak is measured in the same run, between
repetitions, for the MFU of every side. Writes the bench's result JSON
(bench/README.md's interface) and prints its Markdown section.

    python bench.py --muse build/bin/muse-train --export build/bin/muse-export
        --json RESULTS_DIR/train.json [--reps 2] [--threads N[,N...]]
        [--presets tiny,small,smollm2] [--overheads] [--save RAW.json | --load RAW.json]
"""
import argparse
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from machine import busy_cpu_seconds, cpu_model, follow_steps  # noqa: E402
from results import median, row, table, write  # noqa: E402

BATCH, SEQ_LEN = 8, 256
TOKENS = BATCH * SEQ_LEN
MFU_TARGET = 0.5

# Per preset: extra muse-train keys, torch_train.py arguments, steps per run
# (the first `warmup` of each run are discarded: allocator, page faults, the
# OpenMP pool, and compilation for torch.compile) and the number of
# parameters. The small preset keeps the tiny data's 8x8 grayscale images (4
# patches each) so that both presets train on data/tiny/shards/pretrain; its
# ViT-sized image settings would only change the patch projector, a
# negligible part of the step.
PRESETS = {
    "tiny": {"set": [], "args": [], "steps": 8, "warmup": 2, "params": "1.3M"},
    "small": {"set": ["model.preset=small", "model.image_size=8", "model.patch_size=4",
                      "model.image_channels=1"],
              "args": ["--image-size", "8", "--patch-size", "4", "--image-channels", "1"],
              "steps": 3, "warmup": 1, "params": "40M"},
    # SmolLM2-135M-Instruct's shape against eager only (a step takes seconds).
    "smollm2": {"set": ["model.preset=small", "model.image_size=8", "model.patch_size=4",
                        "model.image_channels=1", "model.vocab_size=49152", "model.dim=576",
                        "model.n_layers=30", "model.n_heads=9", "model.n_kv_heads=3",
                        "model.ffn_hidden=1536", "model.rope_theta=100000"],
                "args": ["--image-size", "8", "--patch-size", "4", "--image-channels", "1"],
                "steps": 3, "warmup": 1, "params": "135M", "sides": ["muse_keep", "eager"]},
}

# The sides, in the order of the table. A repetition starts with muse_keep
# (rotated later), whose first run's checkpoint is exported for the hf side.
SIDES = [
    ("muse_keep", "muse-train, no recompute"),
    ("muse_recompute", "muse-train, default (recompute)"),
    ("muse_mkl", "muse-train, no recompute, MKL products"),
    ("eager", "PyTorch eager"),
    ("compile", "PyTorch torch.compile"),
    ("hf", "HF LlamaForCausalLM, text only"),
]
LABEL = dict(SIDES)


def sides_of(preset):
    return PRESETS[preset].get("sides", [side for side, _ in SIDES])


def profiled_preset(presets):
    """The last preset with a torch.compile side (its eager and compile runs
    are profiled), or None."""
    return ([None] + [p for p in presets if "compile" in sides_of(p)])[-1]

# The result rows per preset: muse-train side, baseline side, target ratio.
COMPARISONS = [
    ("vs_eager", "muse_keep", "eager", 1.1),
    ("vs_compile", "muse_keep", "compile", 1.0),
    ("vs_hf", "muse_keep", "hf", None),
    ("recompute_vs_eager", "muse_recompute", "eager", None),
    ("onednn_vs_mkl", "muse_keep", "muse_mkl", None),
]


def env_with_threads(threads, workdir):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    # One inductor cache per bench run: the first compile of a preset is cold.
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(workdir, "inductor")
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    return env


def cpu_seconds(root_pid):
    """CPU time (user + system) so far of `root_pid` and its descendants, from /proc."""
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
    tree, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(stats.get(pid, (0, 0))[1] for pid in tree) / os.sysconf("SC_CLK_TCK")


def muse_keys(preset, side, run_dir):
    p = PRESETS[preset]
    keys = [f"run.dir={run_dir}", "run.name=bench", f"trainer.steps={p['steps']}",
            "telemetry.log_every=1", "telemetry.progress=off", "checkpoint.every=100000",
            "checkpoint.keep=1", "eval.every=0", f"data.batch_size={BATCH}",
            f"data.seq_len={SEQ_LEN}", "data.shards=data/tiny/shards/pretrain"] + p["set"]
    if side in ("muse_keep", "muse_mkl"):
        keys += ["trainer.activation_checkpointing=false", "trainer.keep_gathered=true"]
    return keys


def muse_cmd(args, keys, *extra):
    cmd = [args.muse, "--config", "configs/tiny/pretrain.yaml", *extra]
    for k in keys:
        cmd += ["--set", k]
    return cmd


def parse_count(text):
    """'522G' -> 522e9."""
    m = re.fullmatch(r"([\d.]+)([kMGTP]?)", text)
    return float(m.group(1)) * 1000 ** " kMGTP".index(m.group(2) or " ")


def planned_flops(args, preset, workdir):
    """FLOPs per step as the planner counts them (`muse-train --dry-run`)."""
    run_dir = tempfile.mkdtemp(dir=workdir)
    cmd = muse_cmd(args, muse_keys(preset, "muse_keep", run_dir), "--dry-run")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"FLOPs per step: (\S+)", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not m:
        sys.exit(f"error: {' '.join(cmd)} printed no FLOPs per step:\n{proc.stderr[-2000:]}")
    shutil.rmtree(run_dir)
    return {"flops": parse_count(m.group(1)), "printed": m.group(0)}


def run_muse(args, preset, side, threads, workdir, export_to=None):
    """Step records of one muse-train run, each with cpu_s added: the CPU
    time of the process between this record and the previous one, sampled
    when the record appears in metrics.jsonl. With export_to, the run's
    final checkpoint is exported there as a Hugging Face directory."""
    run_dir = tempfile.mkdtemp(dir=workdir)
    cmd = muse_cmd(args, muse_keys(preset, side, run_dir))
    # The MKL side keeps every product on at::linear (docs/model.md).
    env = dict(env_with_threads(threads, workdir),
               MUSE_CPU_MATMUL="aten" if side == "muse_mkl" else "auto")
    records, last_cpu = follow_steps(cmd, env, run_dir, cpu_seconds), None
    for r in records:
        cpu = r.pop("sample")
        r["cpu_s"] = cpu - last_cpu if None not in (cpu, last_cpu) else None
        last_cpu = cpu
    if export_to:
        cmd = [args.export, "--checkpoint", os.path.join(run_dir, "bench"), "--format", "hf",
               "--out", export_to]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(run_dir)
    return {"records": records}


def run_torch(preset, side, threads, workdir, hf_dir, profile):
    """Step records of one torch_train.py run, and its profile if asked."""
    p = PRESETS[preset]
    cmd = [sys.executable, os.path.join(HERE, "torch_train.py"), "--preset", preset,
           "--mode", side, "--steps", str(p["steps"]), "--batch", str(BATCH),
           "--seq-len", str(SEQ_LEN), "--threads", str(threads)] + p["args"]
    if side == "hf":
        cmd += ["--hf-dir", hf_dir]
    if profile:
        cmd.append("--profile")
    proc = subprocess.run(cmd, env=env_with_threads(threads, workdir), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    out = {"records": [r for r in rows if "step" in r]}
    for r in rows:
        if "profile" in r:
            out["profile"] = r["profile"]
    return out


def run_peak(threads, sizes, reps):
    proc = subprocess.run([sys.executable, os.path.join(HERE, "..", "machine.py"),
                           "matmul-peak", "--threads", str(threads), "--sizes", sizes,
                           "--reps", str(reps)],
                          env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: machine.py matmul-peak failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def run_overheads(preset):
    """overheads.py at `preset`, or None when it fails."""
    proc = subprocess.run([sys.executable, os.path.join(HERE, "overheads.py"), "--preset",
                           preset], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"warning: overheads.py failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout)


def run_side(args, key, workdir, hf_dirs, profile):
    """One run of a side. The first muse-train run of a preset exports its
    checkpoint for the hf side (the rotation starts every preset's first
    repetition with a muse-train side)."""
    preset, threads, side = key
    if side.startswith("muse"):
        export_to = None
        if preset not in hf_dirs:
            export_to = hf_dirs[preset] = os.path.join(workdir, f"hf-{preset}")
        return run_muse(args, preset, side, threads, workdir, export_to)
    return run_torch(preset, side, threads, workdir, hf_dirs.get(preset), profile)


def own_cpu_seconds():
    """CPU time of this process and of its children waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def add_run(results, key, run):
    """Pools a run's steps after warm-up into the side's results, with the
    load from other processes during the run and, of the profiled steps,
    the least disturbed one (the smallest total); returns the run's median
    step time."""
    records, warm = run["records"], PRESETS[key[0]]["warmup"]
    r = results.setdefault(key, {"times": [], "cpu": [], "run_medians": [], "first": [],
                                 "others": [], "loss1": None})
    times = [x["step_time_s"] for x in records[warm:]]
    r["times"] += times
    r["cpu"] += [x["cpu_s"] for x in records[warm:] if x.get("cpu_s") is not None]
    r["run_medians"].append(median(times))
    r["first"].append(records[0]["step_time_s"])
    r["loss1"] = records[0]["loss"]
    r["others"].append(run["others"])
    if "profile" in run and ("profile" not in r or run["profile"]["total_self_cpu_s"] <
                             r["profile"]["total_self_cpu_s"]):
        r["profile"] = run["profile"]
    return r["run_medians"][-1]


def measure(args):
    """Per (preset, threads, side): step times and CPU times after warm-up,
    pooled over repetitions, each run's median, the first step's time and
    the step-1 loss, the other processes' load per run, and for the largest
    preset's eager and compile sides a profiled step per run; the matmul
    peaks, one per repetition and thread count."""
    results, peaks, hf_dirs = {}, [], {}
    workdir = tempfile.mkdtemp(prefix="train-bench.")
    try:
        for rep in range(args.reps):
            for threads in args.threads:
                peaks.append(run_peak(threads, args.peak_sizes, args.peak_reps))
                print(f"rep {rep + 1} matmul peak at {threads}t: "
                      f"{peaks[-1]['gflops']:.1f} GFLOP/s", file=sys.stderr, flush=True)
            for preset in args.presets:
                group = [(preset, t, side) for t in args.threads for side, _ in SIDES
                         if side in sides_of(preset)]
                # Rotate the order every repetition: no side always runs first.
                k = rep % len(group)
                for key in group[k:] + group[:k]:
                    profile = preset == profiled_preset(args.presets) and \
                        key[1] == args.threads[0] and \
                        key[2] in ("eager", "compile")
                    start, busy, own = time.time(), busy_cpu_seconds(), own_cpu_seconds()
                    run = run_side(args, key, workdir, hf_dirs, profile)
                    wall = time.time() - start
                    # Cores kept busy by other processes during the run, on average.
                    run["others"] = max(0.0, (busy_cpu_seconds() - busy) -
                                        (own_cpu_seconds() - own)) / wall
                    run_median = add_run(results, key, run)
                    print(f"rep {rep + 1} {preset:5s} {key[1]}t {key[2]:15s} median "
                          f"{run_median:.3f} s/step, first "
                          f"{run['records'][0]['step_time_s']:.1f} s "
                          f"({wall:.0f} s, others' load {run['others']:.2f} cores)",
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results, peaks


def fmt_flops(x):
    return f"{x / 1e9:,.0f} GFLOP" if x >= 1e10 else f"{x / 1e9:.1f} GFLOP"


class Report:
    """The result rows and the Markdown section of one measured (or loaded) run."""

    def __init__(self, raw):
        self.raw = raw
        self.args = raw["args"]
        self.results = {tuple(r["key"]): r["value"] for r in raw["results"]}
        self.t0 = self.args["threads"][0]
        self.presets = self.args["presets"]
        self.flops = {p: raw["flops"][p]["flops"] for p in self.presets}

    def step_time(self, preset, side, threads=None):
        """The side's median step time, or None if it did not run."""
        r = self.results.get((preset, threads or self.t0, side))
        return median(r["times"]) if r and r["times"] else None

    def run_medians(self, preset, side):
        """Each run's median step time at the first thread count, in
        repetition order: every repetition ran every side."""
        return self.results[(preset, self.t0, side)]["run_medians"]

    def peak(self, threads=None):
        """The best matmul GFLOP/s measured at `threads` in this run."""
        return max(p["gflops"] for p in self.raw["peaks"]
                   if p["threads"] == (threads or self.t0))

    def mfu(self, preset, side, threads=None, step=None):
        """MFU at the side's median step time, or at `step` seconds."""
        t = step or self.step_time(preset, side, threads)
        return self.flops[preset] / t / (self.peak(threads) * 1e9) if t else None

    def rows(self):
        rows = []
        for preset in self.presets:
            params = PRESETS[preset]["params"]
            for name, muse, base, target in COMPARISONS:
                a, b = self.step_time(preset, muse), self.step_time(preset, base)
                if not a or not b:
                    continue
                rows.append(row(
                    f"training tokens/s, {preset} ({params}), {BATCH}x{SEQ_LEN}, {self.t0} "
                    f"threads, {LABEL[muse]} vs {LABEL[base]}", "tokens/s", TOKENS / a,
                    TOKENS / b, LABEL[base], f"train.{preset}.{name}", target=target,
                    pairs=[(TOKENS / x, TOKENS / y) for x, y in
                           zip(self.run_medians(preset, muse), self.run_medians(preset, base))]))
            mfu = self.mfu(preset, "muse_keep")
            if mfu:
                rows.append(row(
                    f"MFU, {preset} ({params}), {LABEL['muse_keep']}, {self.t0} threads",
                    "fraction of measured peak", mfu, MFU_TARGET,
                    f"target MFU ({MFU_TARGET:g} of the measured fp32 matmul peak)",
                    f"train.{preset}.mfu", target=1.0 if preset == "small" else None,
                    pairs=[(self.mfu(preset, "muse_keep", step=t), MFU_TARGET)
                           for t in self.run_medians(preset, "muse_keep")]))
        return rows

    def markdown(self):
        raw, a = self.raw, self.args
        out = []
        w = out.append
        w(f"Generated by `bench/train/run.sh` (`REPS={a['reps']} THREADS="
          f"{','.join(map(str, a['threads']))} PRESETS={','.join(self.presets)}`) in "
          f"{raw['seconds'] / 60:.1f} minutes on {os.cpu_count()} cores, {raw['cpu']}, "
          f"{raw['system']}; {raw['versions']['muse']}; PyTorch {raw['versions']['torch']} "
          f"from the same wheel, transformers {raw['versions']['transformers']}. Other "
          f"processes kept {raw['others']:.2f} of the cores busy on average during the run "
          "(per run in the results table); figures are medians over runs and steps, the "
          "matmul peak a best case.\n")
        w(self.method())
        w(self.results_table())
        w(self.peak_section())
        w(self.compile_section())
        w(self.profile_section())
        w(self.discussion())
        if raw.get("overheads"):
            w(self.overheads_section(raw["overheads"]))
        w(RERUN.strip())
        return "\n".join(out) + "\n"

    def method(self):
        reps = self.args["reps"]
        warm = ", ".join(f"{PRESETS[p]['warmup']} of {PRESETS[p]['steps']} ({p})"
                         for p in self.presets)
        return METHOD.strip().format(batch=BATCH, seq_len=SEQ_LEN, tokens=TOKENS, warm=warm,
                                     reps=reps, threads=self.t0) + "\n"

    def results_table(self):
        lines = []
        for preset in self.presets:
            for t in self.args["threads"]:
                eager = self.step_time(preset, "eager", t)
                for side, label in SIDES:
                    r = self.results.get((preset, t, side))
                    if not r:
                        continue
                    s = median(r["times"])
                    lines.append([
                        f"{preset} ({PRESETS[preset]['params']})", t, label,
                        f"{s:.3f} s ({', '.join(f'{x:.3f}' for x in r['run_medians'])})",
                        f"{TOKENS / s:,.0f}",
                        "1 (baseline)" if side == "eager" else
                        f"**{eager / s:.2f}x**" if eager else "n/a",
                        f"{self.mfu(preset, side, t):.1%}",
                        f"{median(r['cpu']):.2f}" if r["cpu"] else "n/a",
                        ", ".join(f"{x:.2f}" for x in r["others"])])
        out = ["### Results\n",
               table(["preset", "threads", "side", "step time, median (run medians)", "tokens/s",
                      "vs PyTorch eager", "MFU", "CPU s per step", "others' load per run"],
                     lines), ""]
        out.append("\"vs PyTorch eager\" is the ratio of tokens/s: above 1 is faster than eager. "
                   "MFU is the planner's FLOPs per step (below) / median step time / the "
                   "measured fp32 matmul peak at the same thread count. \"CPU s per step\" is "
                   "the CPU time (user + system, all threads) spent during a step, median: it "
                   "moves less with other processes' load than wall time does (with 2 or more "
                   "threads it includes OpenMP threads spinning while they wait). \"others' "
                   "load\" is how many cores other processes (and the hypervisor's steal) kept "
                   "busy during each run, on average, from /proc/stat less this benchmark's own "
                   f"CPU time, out of {os.cpu_count()}: a run with load beside it is slower for "
                   "reasons of its own.")
        losses = "; ".join(
            f"{p} " + ", ".join(f"{LABEL[s]} {self.results[(p, self.t0, s)]['loss1']:.3f}"
                                for s, _ in SIDES if (p, self.t0, s) in self.results)
            for p in self.presets)
        out.append(f"Loss at step 1: {losses}. The HF side starts from the exported weights of "
                   "a muse-train run a few steps in, the others from a fresh initialisation, "
                   "and their batches differ in their random tokens.\n")
        out.append("Result rows (ratio: muse-train's advantage, above 1 is better; target: the "
                   "required ratio):\n")
        lines = []
        for r in self.rows():
            figure = (lambda x: f"{x:.1%}") if r["unit"].startswith("fraction") else \
                (lambda x: f"{x:,.0f} {r['unit']}")
            lines.append([f"`{r['key']}`", figure(r["muse"]),
                          f"{figure(r['baseline'])} {r['baseline_name']}", f"**{r['ratio']:.2f}**",
                          "none" if r["target"] is None else f"{r['target']:g} "
                          f"({'met' if r['ratio'] >= r['target'] else 'missed'})"])
        out.append(table(["key", "muse-train", "baseline", "ratio", "target"], lines))
        return "\n".join(out) + "\n"

    def peak_section(self):
        raw = self.raw
        out = ["### Peak and model FLOPs\n"]
        for t in self.args["threads"]:
            runs = [p for p in raw["peaks"] if p["threads"] == t]
            sizes = sorted(int(n) for n in runs[0]["gflops_by_size"])
            per_run = "; ".join(", ".join(f"{n}: {p['gflops_by_size'][str(n)]:.1f}"
                                          for n in sizes) for p in runs)
            out.append(f"Measured fp32 matmul peak at {t} thread{'s' if t > 1 else ''}: "
                       f"**{self.peak(t):.1f} GFLOP/s**, the best `torch.mm` of two square fp32 "
                       f"n x n matrices (2n^3 FLOPs) over n = {', '.join(map(str, sizes))}, "
                       f"best of {runs[0]['reps']} products each, measured once per repetition "
                       f"between the training runs (GFLOP/s by n, per repetition: {per_run}).")
        theo = raw["peaks"][0]["theoretical"]
        if theo.get("gflops"):
            measured = self.peak(raw["peaks"][0]["threads"])
            above = f" the cores ran above that clock (an effective " \
                f"{measured / (theo['flops_per_cycle'] * theo['cores']):.2f} GHz at least)" \
                if measured > theo["gflops"] else ""
            out.append(f"Theoretical peak from lscpu: {theo['flops_per_cycle']} fp32 FLOP per "
                       f"cycle and core ({theo['why']}) x {theo['mhz'] / 1e3:.2f} GHz "
                       f"({theo['mhz_source']}) x {theo['cores']} core(s) = "
                       f"{theo['gflops']:.0f} GFLOP/s; the measured peak is "
                       f"{measured / theo['gflops']:.0%} of it{':' if above else '.'}{above}"
                       f"{'.' if above else ''} MFU divides by the measured peak.")
        else:
            out.append(f"Theoretical peak: not determinable from lscpu ({theo['why']}).")
        flops = "; ".join(f"{p}: `{raw['flops'][p]['printed']}` ({fmt_flops(self.flops[p])}, "
                          f"{self.flops[p] / TOKENS / 1e6:.1f} MFLOP per token)"
                          for p in self.presets)
        out.append(f"\nModel FLOPs per step, the numerator of every side's MFU: what "
                   f"`muse-train --dry-run` prints for the benchmark's config ({flops}), i.e. "
                   "6·Ψ'·tokens plus 12·L·H·D·T·tokens for attention, forward and backward "
                   "without recompute (docs/memory.md), as MFU conventions count; printed to "
                   "three significant digits.\n")
        return "\n".join(out)

    def compile_section(self):
        lines = []
        for preset in self.presets:
            for t in self.args["threads"]:
                r = self.results.get((preset, t, "compile"))
                e = self.results.get((preset, t, "eager"))
                if r:
                    lines.append([preset, t, ", ".join(f"{first - med:.1f} s" for first, med in
                                                       zip(r["first"], r["run_medians"])),
                                  f"{median(e['first']):.2f} s" if e else "n/a"])
        return "\n".join([
            "### torch.compile's compile time\n",
            "The first step of a torch.compile run traces the model, compiles forward and "
            "backward with inductor (C++ kernels built with g++) and runs; compile time = "
            "that first step minus the run's median step. The bench gives inductor a fresh "
            "cache directory, so the first run of each preset compiles cold and later runs "
            "find its FX-graph and AOTAutograd cache entries (tracing is redone every "
            "run). None of it is in the step times above.\n",
            table(["preset", "threads", "per run (cold cache first)",
                   "eager first step, for comparison"], lines)]) + "\n"

    def profile_section(self):
        preset = profiled_preset(self.presets)
        profiles = {s: self.results.get((preset, self.t0, s), {}).get("profile")
                    for s in ("eager", "compile")}
        profiles = {s: p for s, p in profiles.items() if p}
        if not profiles:
            return ""
        out = [f"### Where the PyTorch step spends its time ({preset}, {self.t0} threads)\n",
               "One extra step after the timed ones in every run, under `torch.profiler` (CPU "
               "activity; the profiler slows the step down), the least disturbed of them (the "
               "smallest total). Phases (wall time of each part of the step, marked with "
               "`record_function`):\n",
               table(["phase"] + [LABEL[s] for s in profiles],
                     [[phase] + [f"{p['phases'].get(phase, 0):.3f} s" for p in profiles.values()]
                      for phase in ("forward", "loss", "backward", "clip", "optimizer")])]
        out.append("\nTop ops by self CPU time (time in the op itself, on the thread that "
                   "called it; a kernel's OpenMP worker threads are not added). In the "
                   "compiled step, inductor's fused C++ kernels count as the self time of "
                   "`## Call CompiledFxGraph ##` (forward and backward graphs), the matrix "
                   "products it leaves to MKL as `aten::mm` and `aten::addmm`; the optimizer's "
                   "ops are eager on both sides.\n")
        for side, prof in profiles.items():
            out.append(f"{LABEL[side]}: {prof['total_self_cpu_s']:.2f} s of self CPU time in "
                       "the profiled step.\n")
            out.append(table(["op", "calls", "self CPU s", "share"], [
                ["`" + re.sub(r"(CompiledFxGraph \w{8})\w+", r"\1…", op["name"]) + "`",
                 op["calls"], f"{op['self_cpu_s']:.3f}", f"{op['share']:.1%}"]
                for op in prof["ops"]]))
            out.append("")
        return "\n".join(out)

    def matmul_share(self, side):
        """Share of the profiled step's self CPU time in the matrix products."""
        preset = profiled_preset(self.presets)
        prof = self.results.get((preset, self.t0, side), {}).get("profile")
        if not prof:
            return None
        return sum(op["share"] for op in prof["ops"]
                   if op["name"] in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                                     "mkl_linear", "mkldnn::_linear_pointwise"))

    def discussion(self):
        out = ["### Discussion\n"]
        w = out.append
        t0 = self.t0

        def ratio_list(muse, base):
            parts = []
            for preset in self.presets:
                a, b = self.step_time(preset, muse), self.step_time(preset, base)
                if a and b:
                    parts.append(f"{preset} {b / a:.2f}x")
            return ", ".join(parts)

        w(f"**Like for like (muse-train without recompute vs PyTorch eager).** muse-train's "
          f"tokens/s over eager's at {t0} threads: {ratio_list('muse_keep', 'eager')} "
          "(target 1.1). The two differ in the library behind the matrix products: "
          "muse-train makes every product of 256 rows or more (at the small preset all of a "
          "step's projections, forward and backward) with oneDNN's matrix product, where "
          "PyTorch's fp32 `linear` and its backward call MKL's sgemm (docs/model.md, "
          "\"Matrix products on the CPU\"). The MKL-products row runs muse-train with "
          "`MUSE_CPU_MATMUL=aten`, the same products as PyTorch: against it, oneDNN's "
          f"gain is {ratio_list('muse_keep', 'muse_mkl')}, and the MKL-products row against "
          f"eager is {ratio_list('muse_mkl', 'eager')}. Attention and the vocabulary-wide "
          "softmax are the same LibTorch kernels on both sides; the rest comes from the work "
          "around them: muse-train's step also reads and packs its batch from the HDF5 shards, "
          "checks its inputs and runs its own FSDP bookkeeping and AdamW (trainer/); eager "
          "PyTorch runs autograd over ordinary parameters and `torch.optim.AdamW`'s "
          "per-tensor loop.\n")
        if self.step_time(profiled_preset(self.presets), "compile"):
            text = (f"**torch.compile.** muse-train against it: "
                    f"{ratio_list('muse_keep', 'compile')} (target 1.0); torch.compile against "
                    f"eager: {ratio_list('compile', 'eager')}. Inductor fuses the elementwise "
                    "chains of the model (RMSNorm, rotary, SwiGLU's gate, the residual adds, "
                    "the mask construction), forward and backward, into C++ loops and leaves "
                    "the matrix products to the same MKL sgemm; the loss, the clipping and "
                    "AdamW stay eager, since only the model is compiled. Each fused loop is "
                    "also one OpenMP parallel region where eager runs one per op, so the "
                    "threads meet less often, which counts most when other processes share "
                    "the cores.")
            share_e, share_c = self.matmul_share("eager"), self.matmul_share("compile")
            if share_e is not None and share_c is not None:
                text += (f" In the profiles above, the matrix products take {share_e:.0%} of "
                         f"the eager step's self CPU time and {share_c:.0%} of the compiled "
                         "one's: what compilation removes is memory-bound work, passes over "
                         "the activations that fusion merges.")
            w(text + "\n")
        w(f"**Hugging Face LlamaForCausalLM.** muse-train against it: "
          f"{ratio_list('muse_keep', 'hf')}; against eager: {ratio_list('hf', 'eager')} (HF "
          "over eager). The HF row trains on text tokens only: LlamaForCausalLM has no image "
          "projector, so the <image> placeholders stay ordinary token embeddings and the "
          "patch projection and its scatter into the sequence (about 4 images of 4 patches "
          "per batch, a negligible share of the FLOPs) are not done. The batch shape "
          f"({BATCH} x {SEQ_LEN}), the packed documents and their block-diagonal causal mask "
          "(transformers builds it from position ids that restart at each document), the "
          "loss over the same counted targets, the clipping and AdamW are the same. Other "
          "differences in work: transformers repeats the key and value heads for "
          "grouped-query attention (`repeat_kv`, a copy per layer) where the others pass "
          "`enable_gqa` to scaled_dot_product_attention, and it builds the mask through its "
          "masking utilities every forward.\n")
        parts = []
        for preset in self.presets:
            k, r = self.step_time(preset, "muse_keep"), self.step_time(preset, "muse_recompute")
            if k and r:
                parts.append(f"{(r / k - 1) * 100:+.0f}% ({preset})")
        w("**Default mode (recompute).** muse-train's default recomputes each block's forward "
          "in backward (FSDP's activation checkpointing, to hold only unit inputs between "
          "forward and backward). Its step time against no recompute: "
          f"{', '.join(parts)}. A full extra forward would add about a third; the embedding, "
          "the head (whose logits are V wide), the loss, clipping, AdamW and the loader are "
          "not recomputed. On one rank sharding saves no memory and these models fit easily, "
          "so `trainer.activation_checkpointing=false trainer.keep_gathered=true` is the "
          "setting for small models and single-rank runs.\n")
        parts = []
        for preset in self.presets:
            sides = ", ".join(f"{LABEL[s]} {self.mfu(preset, s):.0%}" for s, _ in SIDES
                              if self.step_time(preset, s))
            parts.append(f"{preset}: {sides}")
        small = self.mfu("small", "muse_keep") if "small" in self.presets else None
        w(f"**MFU.** Of the measured {self.peak():.0f} GFLOP/s at {t0} threads: "
          + "; ".join(parts) + "."
          + (f" muse-train's small-preset MFU is {small:.0%} against the target of "
             f"{MFU_TARGET:.0%} ({'met' if small >= MFU_TARGET else 'missed'})." if small
             else "")
          + " Only the matrix products run near the peak: the rest of the step (softmax and "
            "cross-entropy over the vocabulary, attention's masked softmax, the norms and "
            "elementwise ops, the optimizer's passes over every parameter) does few model "
            "FLOPs per byte, so a side's MFU is bounded by the share of its step spent in "
            "sgemm, and the tiny preset's products (width 128) are small for sgemm.\n")
        others = [x for r in self.results.values() for x in r["others"]]
        if max(others) > 0.25:
            w(f"**Load.** Other processes kept up to {max(others):.1f} of the "
              f"{os.cpu_count()} cores busy during some runs (the last column of the results): "
              "such a run's step times are longer for reasons of its own, and the medians "
              "pool it with the quieter runs of the same side; the measured peak, a best case, "
              "is higher than what a disturbed step could get. Rerun with more repetitions on "
              "an idle machine for firmer ratios.\n")
        return "\n".join(out)

    def overheads_section(self, o):
        return "\n".join([
            f"### Ways a step can do more work than eager PyTorch (`overheads.py`, "
            f"{o['preset']})\n",
            "`bench/train/overheads.py` times, with the same ATen calls, ways a training step "
            "can spend more than eager PyTorch's, each against the eager way, at the "
            f"{o['preset']} preset's sizes ({o['numel'] / 1e6:.0f}M elements), 1 thread, CPU "
            "seconds per step (medians):\n",
            table(["what", "that way", "eager PyTorch's way"], [
                ["weights as views of one flat leaf per unit: each view's backward "
                 "(SliceBackward) zero-fills a gradient the size of the whole unit and adds it",
                 f"{o['flat_views_s']:.3f} s", f"{o['per_param_s']:.3f} s (a leaf per "
                 "parameter, then one copy into a flat buffer)"],
                ["global gradient norm with `dtype=kDouble` (`linalg_vector_norm` first copies "
                 "every gradient to fp64)", f"{o['grad_norm_fp64_s']:.3f} s",
                 f"{o['grad_norm_fp32_s']:.3f} s (fp32 norms)"],
                ["AdamW as ~16 elementwise passes plus a `where` over a flat shard",
                 f"{o['adamw_muse_s']:.3f} s", f"{o['adamw_torch_default_s']:.3f} s default, "
                 f"{o['adamw_torch_fused_s']:.3f} s `fused=True`"],
                ["one rank: copies for the all-gather and the reduce-scatter, and the shard's "
                 "add", f"{o['solo_copies_s']:.3f} s", "none"]]), ""])


METHOD = """
### What is measured

One optimizer step on a global batch of {batch} sequences x {seq_len} tokens ({tokens}
tokens): forward, next-token cross-entropy, backward, global gradient-norm clipping to
1.0 and AdamW (lr 3e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only), all
in fp32, {threads} intra-op threads (LibTorch's and PyTorch's default, one per physical
core, pinned for every side with `OMP_NUM_THREADS` and, in Python,
`torch.set_num_threads`). tokens/s = {tokens} / median step time over every step after
the first {warm} of each run (warm-up: allocator, page faults, the OpenMP pool, and
torch.compile's compilation), pooled over {reps} runs per side. The sides run one after
another, run by run, the order rotated every repetition, on the same model shape:

* **muse-train** (one process): `build/bin/muse-train --config
  configs/tiny/pretrain.yaml` with `--set` overrides: steps, the batch shape,
  `telemetry.log_every=1`, `eval.every=0`, one checkpoint after the last step (not
  timed). Step times are `step_time_s` of `metrics.jsonl`; they include reading and
  packing the batch from `data/tiny/shards/pretrain` (the HDF5 loader) and the input
  checks. Its CPU time is read from /proc when each record appears. Two modes: *no
  recompute* (`trainer.activation_checkpointing=false trainer.keep_gathered=true`, which
  keeps every activation as plain PyTorch does: the like-for-like row) and the
  *default*, which recomputes each unit's forward in backward. Both make their
  products of 256 rows or more with oneDNN (docs/model.md); *MKL products* is the
  no-recompute mode with `MUSE_CPU_MATMUL=aten`, every product on `at::linear`
  (MKL) as in the PyTorch sides.
* **PyTorch eager**: `bench/train/torch_model.py`, the same architecture written op for
  op from `model/forward.cpp` (RMSNorm in fp32, GQA with half-split rotary,
  `scaled_dot_product_attention` with the same block-diagonal causal bool mask that
  muse-train builds from the segment ids, SwiGLU, output projection tied to the token
  embedding, the image patch projector), parameters as ordinary `nn.Parameter`s;
  `torch.optim.AdamW` with its default implementation choice (for CPU tensors the
  per-tensor loop, neither foreach nor fused) and `torch.nn.utils.clip_grad_norm_`.
  Its batches are synthetic but shaped like the loader's: random token ids, documents
  of ~51 tokens packed into rows (so the same kind of block-diagonal mask), 4 images of
  4 patches per batch, as in the tiny data. The compute does not depend on the token
  values. The batches are built before timing, so the PyTorch sides pay no data
  loading; muse-train does.
* **PyTorch torch.compile**: the same model and step with `torch.compile(model)`
  (default mode, inductor's C++ backend on the CPU); loss, clipping and AdamW as in
  eager. Every batch has the same shapes, so it compiles once.
* **HF LlamaForCausalLM, text only**: transformers' `LlamaForCausalLM` (sdpa attention)
  loaded in fp32 from `muse-export --checkpoint RUN --format hf` of the first
  muse-train run of the preset, trained with the same step, batches, loss and
  optimizer settings on the text tokens only (see the discussion for the difference
  in work).
* **small preset**: `model.preset=small` (dim 512, 8 layers, 8 heads, 4 kv heads, ffn
  1408, vocab 32768, tied; 40M parameters) with the tiny data's 8x8 grayscale images
  (`model.image_size=8 model.patch_size=4 model.image_channels=1`) so that it trains on
  the same shards; the preset's 224x224 RGB images would only change the patch
  projector. **tiny**: dim 128, 4 layers, vocab 4096, 1.3M parameters.
* **smollm2 preset** (`PRESETS=tiny,small,smollm2`): SmolLM2-135M's shape (dim 576,
  30 layers, 9 heads, 3 kv heads, ffn 1536, vocab 49152, tied; 135M parameters) on the
  same data, muse-train without recompute against PyTorch eager only.
"""

RERUN = """
### Rerun

```
bench/train/run.sh                                  # builds muse-train and muse-export, then runs
NO_BUILD=1 REPS=5 bench/train/run.sh                # the existing build/bin binaries
PRESETS=small THREADS=2,1 REPS=3 bench/train/run.sh # more threads counts and repetitions
```

Knobs: `REPS` (runs per side, default 2), `THREADS` (comma-separated intra-op thread
counts, default LibTorch's; the result rows use the first), `PRESETS` (default
`tiny,small,smollm2`), `OVERHEADS=1` (adds overheads.py's table), `RESULTS_DIR` (where
`train.json` goes, default a new temporary directory), `BUILD_DIR` (default `build`),
`NO_BUILD=1`, `SAVE=RAW.json` (keeps the raw measurements; `bench.py --load RAW.json
--json OUT.json` renders them again without measuring). Each run's median goes to stderr as
it finishes.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--muse", default="build/bin/muse-train")
    ap.add_argument("--export", default="build/bin/muse-export")
    ap.add_argument("--json", help="write the result JSON (bench/README.md's interface) here")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", default="",
                    help="comma-separated intra-op thread counts (default: LibTorch's default)")
    ap.add_argument("--presets", default="tiny,small,smollm2")
    ap.add_argument("--peak-sizes", default="2048,3072,4096",
                    help="matrix sides for the matmul peak")
    ap.add_argument("--peak-reps", type=int, default=3)
    ap.add_argument("--overheads", action="store_true",
                    help="also run overheads.py at the largest preset")
    ap.add_argument("--save", help="also write the raw measurements to this JSON file")
    ap.add_argument("--load", help="skip measuring: report the raw measurements saved with "
                    "--save (the other measuring options are ignored)")
    args = ap.parse_args()
    # A terminated run still removes its work directory (the finally in measure).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.load:
        with open(args.load) as f:
            raw = json.load(f)
    else:
        if not args.threads:
            import torch

            args.threads = str(torch.get_num_threads())
        threads = [int(t) for t in args.threads.split(",") if t]
        presets = [p for p in args.presets.split(",") if p]
        for p in presets:
            if p not in PRESETS:
                sys.exit(f"error: --presets: unknown preset '{p}' ({', '.join(PRESETS)})")
        args.threads, args.presets = threads, presets
        start, busy, own = time.time(), busy_cpu_seconds(), own_cpu_seconds()
        workdir = tempfile.mkdtemp(prefix="train-bench-plan.")
        flops = {p: planned_flops(args, p, workdir) for p in presets}
        shutil.rmtree(workdir)
        results, peaks = measure(args)
        overheads = run_overheads(presets[-1]) if args.overheads else None
        raw = {"args": {"reps": args.reps, "threads": threads, "presets": presets},
               "results": [{"key": list(k), "value": v} for k, v in results.items()],
               "peaks": peaks, "flops": flops, "overheads": overheads,
               "versions": {
                   "muse": subprocess.run([args.muse, "--version"], capture_output=True,
                                          text=True).stdout.strip(),
                   "torch": importlib.metadata.version("torch"),
                   "transformers": importlib.metadata.version("transformers")},
               "cpu": cpu_model(), "system": platform.system(),
               "seconds": time.time() - start}
        raw["others"] = max(0.0, (busy_cpu_seconds() - busy) -
                            (own_cpu_seconds() - own)) / raw["seconds"]
    if args.save:
        with open(args.save, "w") as f:
            json.dump(raw, f)
    report = Report(raw)
    text = report.markdown()
    if args.json:
        write(args.json, "train", "Training step: muse-train vs PyTorch eager, torch.compile and "
              "Hugging Face Llama", raw["seconds"], report.rows(), text)
    print(text)


if __name__ == "__main__":
    main()
