"""Estimates muse-train's pretraining throughput on H100 SXM GPUs, which the
benchmark machine does not have: the planner's FLOPs per token (muse-train
--dry-run) set against the GPU's peak at the model-FLOPs utilisation (MFU)
that published FSDP-style runs reach on H100. Writes RESULTS_DIR/h100.json
(no rows: an estimate is not a measurement) and prints its Markdown.

    python estimate.py --muse build/bin/muse-train --results-dir DIR
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
from results import fmt, table, write  # noqa: E402

# H100 SXM5 dense BF16 tensor-core peak: NVIDIA's H100 datasheet gives 1,979
# TFLOPS "with sparsity", twice the dense rate; llm.c's llmc/mfu.h derives the
# same figure (756 TF of the H100 PCIe x 528/456 tensor cores x 1830/1620 MHz).
PEAK_FLOPS = 989e12
HBM_GB = 80
# The planner's peak is a CPU estimate: leave room for the CUDA context,
# cuBLAS workspaces and the caching allocator's fragmentation.
MEMORY_BUDGET_GIB = 70
GPUS_PER_NODE = 8
# Bytes per second a GPU can send: NVLink 4 inside a node (the datasheet's
# 900 GB/s is both directions), 400 Gb/s RDMA per GPU between nodes (the
# network of torchtitan's H100 hosts). Nominal: NCCL reaches less.
NVLINK_BYTES_PER_S = 450e9
NIC_BYTES_PER_S = 50e9

# The anchors: published throughput of other trainers on H100, turned into
# MFU with each one's own FLOP count.
# torchtitan, benchmarks/llama3_h100_202412_torchtitan.md, Table 1: Llama 3.1
# 8B, 8 GPUs, FSDP, local batch 2, selective activation checkpointing, no
# torch.compile, 5,762 tokens/s per GPU; seq_len 8192 (train_configs/
# llama3_8b.toml). Its get_num_flop_per_token is 6 x (parameters without the
# token embedding) + 12 x layers x heads x head_dim x seq_len.
TORCHTITAN = {"tokens_per_s": 5762, "params": 8_030_261_248, "vocab": 128256, "dim": 4096,
              "layers": 32, "seq_len": 8192}
# llm.c, scripts/run_gpt2_1558M.sh: GPT-2 1558M on 8 H100 SXM, 1,048,576
# tokens per step in 2.80 s; llm.c's gpt2_estimate_mfu counts 6N + 6 x L x C x T.
LLMC = {"tokens_per_step": 1_048_576, "step_s": 2.80, "gpus": 8, "params": 1558e6,
        "layers": 48, "dim": 1600, "seq_len": 1024}

# The presets estimated, at torchtitan's sequence length and per-GPU batch.
PRESETS = ["1b", "8b"]
SEQ_LEN = 8192
LOCAL_BATCH = 2
# The tiny data's 8x8 grayscale images stand in for the presets' 336x336 RGB
# ones so that the dry run's data check passes; only the patch projector
# changes (under 0.1% of the FLOPs).
IMAGE_KEYS = ["model.image_size=8", "model.patch_size=4", "model.image_channels=1"]
MODES = {"recompute": [], "keep": ["trainer.activation_checkpointing=false",
                                   "trainer.keep_gathered=true"]}
MODE_NAMES = {"recompute": "default (recompute)", "keep": "no recompute"}

SI = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def si(text):
    """'57.9G' -> 57.9e9, '3.8e+03T' -> 3.8e15."""
    m = re.fullmatch(r"([0-9.]+(?:e[+-]?[0-9]+)?)([kMGT]?)", text)
    if not m:
        sys.exit(f"error: cannot read the number '{text}' in muse-train's output")
    return float(m.group(1)) * SI[m.group(2)]


def anchors():
    tt = TORCHTITAN
    tt_fpt = (6 * (tt["params"] - tt["vocab"] * tt["dim"])
              + 12 * tt["layers"] * tt["dim"] * tt["seq_len"])
    lc = LLMC
    lc_fpt = 6 * lc["params"] + 6 * lc["layers"] * lc["dim"] * lc["seq_len"]
    lc_tps = lc["tokens_per_step"] / lc["step_s"] / lc["gpus"]
    return {"torchtitan": {"fpt": tt_fpt, "tokens_per_s": tt["tokens_per_s"],
                           "mfu": tt["tokens_per_s"] * tt_fpt / PEAK_FLOPS},
            "llmc": {"fpt": lc_fpt, "tokens_per_s": lc_tps, "mfu": lc_tps * lc_fpt / PEAK_FLOPS}}


def muse_cmd(muse, config, keys, ranks):
    cmd = [muse, "--config", config]
    for k in keys:
        cmd += ["--set", k]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] + cmd
    return cmd


def run(cmd):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout


def resolved(muse, config, keys):
    """The resolved config (muse-train --print-config) as a dict."""
    return yaml.safe_load(run(muse_cmd(muse, config, keys, 1) + ["--print-config"]))


def dry_run(muse, keys, ranks, work):
    """The planner's figures for the tiny config with `keys` on `ranks` ranks."""
    run_dir = tempfile.mkdtemp(dir=work)  # the dry run writes its config.yaml there
    out = run(muse_cmd(muse, "configs/tiny/pretrain.yaml", keys + [f"run.dir={run_dir}"], ranks)
              + ["--dry-run"])
    plan = {}
    for pattern, name in [(r"^\s+total\s+([0-9.]+) GiB", "peak_gib"),
                          (r"FLOPs per step: .* (\S+) per token\)", "flops"),
                          (r"communication per step: .*\((\d+) bytes sent per rank\)", "wire")]:
        m = re.search(pattern, out, re.M)
        if not m:
            sys.exit(f"error: no '{name}' in the dry run's plan:\n{out[-2000:]}")
        plan[name] = m.groups()
    return {"peak_gib": float(plan["peak_gib"][0]), "fpt": si(plan["flops"][0]),
            "wire_bytes": int(plan["wire"][0])}


def executed_ratio(fpt, model, seq_len):
    """Executed / model FLOPs with recompute: every unit but the head runs its
    forward twice. Model FLOPs are 6N' + 12LCT (docs/model.md); a forward is
    a third of the weights' share, 2N' = (fpt - 12LCT) / 3, less the head's
    output projection 2VC, plus the attention forward 4LCT."""
    L, C, V = model["n_layers"], model["dim"], model["vocab_size"]
    attention = 12 * L * C * seq_len
    extra = (fpt - attention) / 3 - 2 * V * C + attention / 3
    return (fpt + extra) / fpt


def estimate(fpt, ratio, anchor):
    """MFU and tokens/s per GPU at the anchor's hardware efficiency."""
    mfu = anchor["mfu"] / ratio
    return {"mfu": mfu, "tokens_per_s": mfu * PEAK_FLOPS / fpt}


def fmt_s(x):
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def gib(x):
    return f"{x / 2**30:.1f} GiB"


def model_rows(muse, work, anchor):
    """One row per preset and mode, from 8-rank dry runs (two at a time: each
    spends much of its time starting processes)."""
    jobs = []
    for preset in PRESETS:
        keys = [f"model.preset={preset}", f"data.seq_len={SEQ_LEN}",
                f"data.batch_size={LOCAL_BATCH * GPUS_PER_NODE}", "trainer.param_dtype=bf16"]
        keys += IMAGE_KEYS
        model = resolved(muse, "configs/tiny/pretrain.yaml", keys)["model"]
        for mode, mode_keys in MODES.items():
            jobs.append((preset, mode, model, keys + mode_keys))
    with ThreadPoolExecutor(max_workers=2) as pool:
        plans = list(pool.map(lambda job: dry_run(muse, job[3], GPUS_PER_NODE, work), jobs))
    rows = []
    for (preset, mode, model, _), plan in zip(jobs, plans):
        ratio = executed_ratio(plan["fpt"], model, SEQ_LEN) if mode == "recompute" else 1.0
        low = estimate(plan["fpt"], ratio, anchor["torchtitan"])
        high = estimate(plan["fpt"], ratio, anchor["llmc"])
        tokens = LOCAL_BATCH * SEQ_LEN
        rows.append({"preset": preset, "mode": mode, "model": model, "plan": plan,
                     "ratio": ratio, "low": low, "high": high,
                     "step": (tokens / high["tokens_per_s"], tokens / low["tokens_per_s"]),
                     "comm_s": plan["wire_bytes"] / NVLINK_BYTES_PER_S,
                     "fits": plan["peak_gib"] <= MEMORY_BUDGET_GIB,
                     "attention_share": 12 * model["n_layers"] * model["dim"] * SEQ_LEN
                     / plan["fpt"]})
    return rows


def best_rows(rows):
    """Per preset, the fastest mode that fits: no recompute if it fits, else
    the default."""
    best = {}
    for r in rows:
        if r["fits"] and (r["preset"] not in best or r["mode"] == "keep"):
            best[r["preset"]] = r
    return list(best.values())


def cluster_rows(muse, rows):
    """Per-step time for each configs/cluster/*.yaml: the nodes come from the
    name (`-8n-`), the step from the config when it trains the 1b or 8b preset
    at 8192 tokens with a batch that divides over the GPUs, else from each
    preset at torchtitan's local batch."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "configs/cluster/*.yaml"))):
        name = os.path.relpath(path, ROOT)
        m = re.search(r"-(\d+)n-", os.path.basename(path))
        nodes = int(m.group(1)) if m else 1
        gpus = nodes * GPUS_PER_NODE
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        stage = raw.get("stage", "pretrain")
        if stage not in ("pretrain", "sft"):
            # Read as written: resolving would read the model its init_from
            # names (hf:DIR), which only the cluster has.
            source = raw.get("init_from") or f"preset `{raw.get('model', {}).get('preset')}`"
            out.append({"config": name, "gpus": gpus, "as_written": f"`{stage}` from `{source}`",
                        "note": "not estimated: an RL step is mostly generation, and the anchors "
                                "are training throughput"})
            continue
        cfg = resolved(muse, name, [])
        data, trainer = cfg["data"], cfg["trainer"]
        as_written = (f"`{cfg['stage']}`, preset `{cfg['model']['preset']}`, "
                      f"{data['batch_size']} x {data['seq_len']} tokens per step")
        mode = "recompute" if trainer["activation_checkpointing"] else "keep"
        own = [r for r in rows if r["preset"] == cfg["model"]["preset"] and r["mode"] == mode]
        if own and data["seq_len"] == SEQ_LEN and \
                data["batch_size"] % (gpus * trainer["grad_accum"]) == 0:
            chosen, batch, setting = own, data["batch_size"], "as configured"
        else:
            chosen, batch = best_rows(rows), LOCAL_BATCH * gpus
            setting = None
        for r in chosen:
            tokens = batch * SEQ_LEN
            per_gpu = tokens / gpus
            step = (per_gpu / r["high"]["tokens_per_s"], per_gpu / r["low"]["tokens_per_s"])
            # Bytes sent per rank grow as (N-1)/N; the dry run had 8 ranks.
            wire = (r["plan"]["wire_bytes"] * ((gpus - 1) / gpus)
                    / ((GPUS_PER_NODE - 1) / GPUS_PER_NODE))
            link = NIC_BYTES_PER_S if nodes > 1 else NVLINK_BYTES_PER_S
            out.append({"config": name, "gpus": gpus, "as_written": as_written,
                        "setting": setting or (f"`model.preset={r['preset']}`, {batch} x "
                                               f"{SEQ_LEN} ({LOCAL_BATCH} per GPU), "
                                               f"{MODE_NAMES[r['mode']]}"),
                        "tokens": tokens, "step": step,
                        "cluster_tps": (tokens / step[1], tokens / step[0]),
                        "comm_s": wire / link, "link": "RDMA" if nodes > 1 else "NVLink"})
    return out


def markdown(anchor, rows, clusters):
    tt, lc = anchor["torchtitan"], anchor["llmc"]
    p = []
    p.append("**Estimate, not measured: no GPU on the benchmark machine.** Nothing below ran on "
             "a GPU; the figures combine muse-train's own FLOP and memory plan (`muse-train "
             "--dry-run`, computed here) with throughput that other trainers published for "
             "H100. The CUDA build of muse-train compiles here but has not been run.\n")
    p.append("### Method\n")
    p.append(f"* **FLOPs per token** from the planner: `muse-train --dry-run --config "
             f"configs/tiny/pretrain.yaml --set model.preset=P --set data.seq_len={SEQ_LEN} "
             f"--set data.batch_size={LOCAL_BATCH * GPUS_PER_NODE} --set "
             f"trainer.param_dtype=bf16` on {GPUS_PER_NODE} MPI ranks (the tiny data's 8x8 "
             "images replace the presets' 336x336 ones so that the data check passes; only the "
             "patch projector changes). The planner counts 6N' + 12·L·C·T per token "
             "(docs/model.md: PaLM's formula, N' without the lookup tables), which is "
             "torchtitan's `get_num_flop_per_token`. The same dry run gives the per-rank "
             "memory peak and the bytes each rank sends per step.")
    p.append(f"* **Peak**: {PEAK_FLOPS / 1e12:.0f} TFLOP/s dense BF16 for H100 SXM (NVIDIA's "
             "H100 datasheet lists 1,979 TFLOPS with sparsity, twice the dense rate; llm.c's "
             "`llmc/mfu.h` derives 989 TF from the H100 PCIe's 756 TF × 528/456 tensor cores × "
             "1830/1620 MHz).")
    p.append("* **Anchors**, each converted to MFU with its own FLOP count, "
             "MFU = tokens/s per GPU × FLOPs per token / peak:")
    t = TORCHTITAN
    p.append(f"  * torchtitan (benchmarks/llama3_h100_202412_torchtitan.md, Table 1): Llama 3.1 "
             f"8B on 8 H100, FSDP, local batch 2, selective activation checkpointing, no "
             f"torch.compile: {tt['tokens_per_s']:,} tokens/s per GPU at seq_len "
             f"{t['seq_len']} (train_configs/llama3_8b.toml). 6 × ({t['params']:,} − "
             f"{t['vocab']:,} × {t['dim']:,}) + 12 × {t['layers']} × {t['dim']:,} × "
             f"{t['seq_len']:,} = {tt['fpt'] / 1e9:.2f} GFLOPs per token, so MFU = "
             f"{tt['tokens_per_s']:,} × {tt['fpt'] / 1e9:.2f}e9 / {PEAK_FLOPS / 1e12:.0f}e12 = "
             f"**{tt['mfu'] * 100:.1f}%**, within the 33–39% its text reports for 8B without "
             "Float8 (its footnote: the MFU is understated, its H100s ran at 500 W with "
             "HBM2e).")
    p.append(f"  * llm.c (scripts/run_gpt2_1558M.sh): GPT-2 1558M on 8 H100 SXM, 1,048,576 "
             f"tokens per step in 2.80 s, {lc['tokens_per_s']:,.0f} tokens/s per GPU; with its "
             f"`gpt2_estimate_mfu` count 6N + 6·L·C·T = {lc['fpt'] / 1e9:.2f} GFLOPs per token, "
             f"MFU = **{lc['mfu'] * 100:.1f}%** (hand-written fused CUDA kernels, ZeRO-1, no "
             "recompute).")
    p.append("* **muse-train on H100** = the anchors' hardware efficiency applied to "
             "muse-train's plan: MFU = anchor MFU × model FLOPs / executed FLOPs, tokens/s per "
             f"GPU = MFU × {PEAK_FLOPS / 1e12:.0f}e12 / FLOPs per token. The default "
             "(`trainer.activation_checkpointing: true`) runs every unit's forward again in "
             "backward except the head's: executed / model FLOPs = 1 + ((F − 12LCT)/3 − 2VC + "
             "4LCT) / F. torchtitan is the low end (eager PyTorch kernels with FSDP, as "
             "muse-train's LibTorch), llm.c the high end (fused kernels). Step time = tokens per "
             "GPU per step / tokens/s per GPU.")
    p.append(f"* **Memory**: a mode counts as fitting when the planned peak per rank is at most "
             f"{MEMORY_BUDGET_GIB} GiB of the {HBM_GB} GB (the plan is a CPU estimate without "
             "the CUDA context, cuBLAS workspaces and allocator fragmentation).")
    p.append(f"* **Communication check**: the planner's bytes sent per rank per step over "
             f"{NVLINK_BYTES_PER_S / 1e9:.0f} GB/s (NVLink 4 per direction, half the "
             f"datasheet's 900 GB/s) inside a node, {NIC_BYTES_PER_S / 1e9:.0f} GB/s (400 Gb/s "
             "RDMA per GPU, torchtitan's hosts) across nodes: a lower bound on the time the "
             "collectives take, to be hidden under compute by the FSDP prefetch (docs/gpu.md).\n")

    p.append(f"### Per GPU, one node of {GPUS_PER_NODE} H100, {LOCAL_BATCH} x {SEQ_LEN} tokens per "
             "GPU per step\n")
    p.append(table(
        ["preset", "mode", "planned peak per rank", "fits", "FLOPs per token", "attention share",
         "executed / model FLOPs", "MFU", "tokens/s per GPU", "step time",
         "comm per step per rank", "comm at NVLink / step"],
        [[f"`{r['preset']}`", MODE_NAMES[r["mode"]], f"{r['plan']['peak_gib']:.1f} GiB",
          "yes" if r["fits"] else "no", f"{r['plan']['fpt'] / 1e9:.1f} G",
          f"{r['attention_share'] * 100:.0f}%", f"{r['ratio']:.2f}",
          f"{r['low']['mfu'] * 100:.1f}–{r['high']['mfu'] * 100:.1f}%",
          f"{fmt(r['low']['tokens_per_s'])}–{fmt(r['high']['tokens_per_s'])}",
          f"{fmt_s(r['step'][0])}–{fmt_s(r['step'][1])}", gib(r["plan"]["wire_bytes"]),
          f"{r['comm_s'] / r['step'][1] * 100:.0f}–{r['comm_s'] / r['step'][0] * 100:.0f}%"]
         for r in rows]))
    p.append("")
    p.append("Ranges: low = torchtitan's efficiency, high = llm.c's. The 8b preset is "
             "Llama-3-8B's shape (the same 8,030,261,248 text parameters), so its row is the "
             "like-for-like comparison with torchtitan's 5,762 tokens/s per GPU.\n")

    p.append("### Cluster configs (`configs/cluster/`)\n")
    p.append(table(
        ["config", "GPUs", "as written", "estimated for", "tokens per step", "step time",
         "tokens/s, whole job", "comm lower bound per step"],
        [[f"`{c['config']}`", c["gpus"], c["as_written"], c["note"], "", "", "", ""]
         if "note" in c else
         [f"`{c['config']}`", c["gpus"], c["as_written"], c["setting"], fmt(c["tokens"]),
          f"{fmt_s(c['step'][0])}–{fmt_s(c['step'][1])}",
          f"{fmt(c['cluster_tps'][0])}–{fmt(c['cluster_tps'][1])}",
          f"{fmt_s(c['comm_s'])} ({c['link']})"] for c in clusters]))
    p.append("")
    p.append("GPUs = nodes in the config's name × 8. Where a config trains a model the anchors do "
             "not describe, or a batch that does not divide over its GPUs, the row uses the "
             "preset that fits with recompute off if it can, at torchtitan's 2 sequences of "
             "8192 per GPU; with that fixed per-GPU batch the step time does not depend on the "
             "number of GPUs. The communication bound scales the 8-rank plan's bytes by "
             "(N−1)/N; across nodes it is a sizeable share of the step, which the prefetch has "
             "to hide.\n")

    p.append("### What the estimate leaves out\n")
    p.append("* **Attention kernel.** Pretraining packs documents and passes SDPA a "
             "block-diagonal causal mask (`model/forward.cpp`); with an explicit mask PyTorch "
             "cannot use its FlashAttention kernel and takes the memory-efficient one, which is "
             "slower. Attention is the share of FLOPs in the table, so a slower kernel there "
             "can put muse-train below the low end. torchtitan's Llama model calls SDPA with "
             "`is_causal=True` and no document mask.")
    p.append("* **Host synchronisation.** Each micro-batch reads its loss (`item()`) and each "
             "step the gradient norm, so the GPU queue drains once per micro-batch; with "
             "`dist.verify_collectives: true` (the cluster configs' setting) every collective "
             "first exchanges a fingerprint over MPI, a host round trip per collective. Turn it "
             "off for throughput once a job is known to be sound.")
    p.append("* **Communication.** The table's bound uses nominal link rates; NCCL's achieved "
             "bus bandwidth is lower, and the first all-gather and last reduce-scatter of each "
             "micro-batch cannot overlap. `trainer.reduce_dtype: bf16` halves the "
             "reduce-scatter bytes.")
    p.append("* **Not measured on muse-train at all.** The GPU path is compile-checked only; "
             "take a Nsight Systems trace (docs/gpu.md) on the first GPU node and replace this "
             "section with measured tokens/s.")
    return "\n".join(p) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--muse", required=True, help="the muse-train binary")
    ap.add_argument("--results-dir", required=True)
    args = ap.parse_args()
    start = time.time()
    muse = os.path.abspath(args.muse)
    anchor = anchors()
    with tempfile.TemporaryDirectory() as work:
        rows = model_rows(muse, work, anchor)
        clusters = cluster_rows(muse, rows)
    md = markdown(anchor, rows, clusters)
    os.makedirs(args.results_dir, exist_ok=True)
    write(os.path.join(args.results_dir, "h100.json"), "h100",
          "H100 throughput estimate (not measured)", round(time.time() - start, 1), [], md)
    print(md)


if __name__ == "__main__":
    main()
