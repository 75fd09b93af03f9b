"""What a ZeRO-3 step of muse-train should hold and send, worked out
independently of the trainer from the model dimensions (used by
pretrain_memory_test.sh and pretrain_comm_test.sh; not a test itself).

    python pretrain_formulas.py memory RUN_DIR RANKS
    python pretrain_formulas.py comm RUN_DIR RANKS

prints the expected shard_bytes or comm_bytes per step of the run in RUN_DIR
(its config.yaml and its last checkpoint's manifest.json, whose "model" holds
every model.* field and whose "units" the computed sizes are checked against).

Rules (trainer/shard_plan.h, trainer/fsdp.cpp, comm/communicator.h):
* units: embed (token table, patch projection and bias, patch positions),
  one per block, head (final norm, plus the output matrix when untied);
* a unit of n elements is padded to N*S, S the smallest multiple of 16 with
  N*S >= n; each rank holds S fp32 elements of weights, gradient, and the
  two AdamW moments;
* wire bytes: all-gather and reduce-scatter (N-1)/N of the full padded
  buffer, all-reduce 2(N-1)/N of its buffer (integer division per call);
* per micro-batch every unit's gradient is reduce-scattered once; embed
  (tied) and head are all-gathered once, blocks twice (forward, and again
  for the recompute in backward) unless trainer.keep_gathered keeps them
  from forward to backward (once);
* per step four 8-byte all-reduces: the agreement that every rank read its
  batches (int64), the global target count, the loss and the squared
  gradient norm (doubles).
"""
import json
import re
import sys
from pathlib import Path

ALIGN = 16
FP32 = 4


def resolved(run_dir, key):
    """A scalar of the resolved config.yaml, e.g. 'trainer.keep_gathered'."""
    section, name = key.split(".")
    text = (Path(run_dir) / "config.yaml").read_text()
    block = re.search(rf"^{section}:\n((?:  .*\n)*)", text, re.M).group(1)
    value = re.search(rf"^  {name}: (\S+)", block, re.M).group(1)
    return {"true": True, "false": False}.get(value, value.strip('"'))


def manifest(run_dir):
    latest = (Path(run_dir) / "LATEST").read_text().strip()
    return json.loads((Path(run_dir) / "checkpoints" / latest / "manifest.json").read_text())


def unit_numels(m):
    C, V, F = m["dim"], m["vocab_size"], m["ffn_hidden"]
    D = C // m["n_heads"]
    HD, KVD = m["n_heads"] * D, m["n_kv_heads"] * D
    patch_dim = m["patch_size"] ** 2 * m["image_channels"]
    n_patches = (m["image_size"] // m["patch_size"]) ** 2
    embed = V * C + C * patch_dim + C + n_patches * C
    block = C + HD * C + 2 * KVD * C + C * HD + C + 2 * F * C + C * F
    head = C + (0 if m["tie_embeddings"] else V * C)
    return [("embed", embed)] + [(f"block.{i}", block) for i in range(m["n_layers"])] + [("head", head)]


def shard_numel(n, ranks):
    stride = ALIGN * ranks
    return (n + stride - 1) // stride * stride // ranks


def units_of(run_dir):
    m = manifest(run_dir)
    units = unit_numels(m["model"])
    saved = [(u["name"], u["numel"]) for u in m["units"]]
    assert units == saved, f"computed units {units} differ from the checkpoint's {saved}"
    return m["model"], units


def memory(run_dir, ranks):
    """shard_bytes: fp32 weights, gradient, exp_avg and exp_avg_sq shards."""
    _, units = units_of(run_dir)
    return sum(4 * FP32 * shard_numel(n, ranks) for _, n in units)


def comm(run_dir, ranks):
    model, units = units_of(run_dir)
    keep = resolved(run_dir, "trainer.keep_gathered")
    micro = int(resolved(run_dir, "trainer.grad_accum"))
    N = ranks
    per_micro = 0
    for name, n in units:
        S = shard_numel(n, N)
        unit_wire = FP32 * N * S * (N - 1) // N  # one all-gather or reduce-scatter
        if name == "embed":
            gathers = 1 if model["tie_embeddings"] or keep else 2
        elif name == "head":
            gathers = 1
        else:
            gathers = 1 if keep else 2
        per_micro += (gathers + 1) * unit_wire
    small = 4 * (2 * 8 * (N - 1) // N)
    return micro * per_micro + small


if __name__ == "__main__":
    what, run_dir, ranks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print({"memory": memory, "comm": comm}[what](run_dir, ranks))
