#!/usr/bin/env python3
"""The C++ model against an independent PyTorch implementation.

Usage: oracle.py MODEL_DUMP_EXE

Runs MODEL_DUMP_EXE into a temporary directory (weights, inputs, logits and
loss of a tied and an untied model, see dump_model.cpp), recomputes the
logits and loss here in float64 from the architecture's definition (the
Llama recipe plus early-fused image patches), and fails when any logit or
loss differs by more than 1e-5. Nothing here calls the C++ code's functions.
"""

import json
import math
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = 1e-5
DTYPES = {"float32": np.float32, "int64": np.int64, "uint8": np.uint8}


def load(directory, entry):
    if entry is None:
        return None
    dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
    raw = np.fromfile(directory / entry["file"], dtype=dtype)
    return torch.from_numpy(raw.reshape(entry["shape"]).copy())


def rms_norm(x, gain, eps):
    return gain * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate(x, positions, theta):
    """Rotary embedding, Llama's half-split layout: dimension i pairs with i + D/2
    and the pair turns by position * theta^(-2i/D).  x (B, h, T, D), positions (B, T)."""
    d = x.shape[-1]
    half = d // 2
    freqs = theta ** (-torch.arange(half, dtype=torch.float64) * 2 / d)  # (D/2)
    angle = positions.to(torch.float64)[:, None, :, None] * freqs  # (B, 1, T, D/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def segments_of(segment_ids, batch, time):
    """(B, T) positions restarting at each run of equal ids, and (B, T, T) allowed
    (same run, key not after query)."""
    positions = torch.zeros(batch, time, dtype=torch.int64)
    allowed = torch.zeros(batch, time, time, dtype=torch.bool)
    for b in range(batch):
        run = [0] * time
        start = 0
        for t in range(time):
            if segment_ids is not None and t > 0 and segment_ids[b, t] != segment_ids[b, t - 1]:
                start = t
            run[t] = start
            positions[b, t] = t - start
        for i in range(time):
            for j in range(i + 1):
                allowed[b, i, j] = run[i] == run[j]
    return positions, allowed


def patches_of(image, patch):
    """(S, S, Ch) uint8 -> (Np, P*P*Ch): patches row by row, each flattened in
    (row, column, channel) order, pixels scaled to [0, 1] then to [-1, 1]."""
    side = image.shape[0]
    pixels = (image.to(torch.float64) / 255.0 - 0.5) / 0.5
    rows = []
    for gy in range(side // patch):
        for gx in range(side // patch):
            block = pixels[gy * patch:(gy + 1) * patch, gx * patch:(gx + 1) * patch, :]
            rows.append(block.reshape(-1))
    return torch.stack(rows)


def forward(cfg, w, case):
    tokens = case["tokens"]
    batch, time = tokens.shape
    c, n_heads, n_kv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    d = c // n_heads
    eps, theta = cfg["norm_eps"], cfg["rope_theta"]

    x = w["model.embed_tokens.weight"][tokens]  # (B, T, C)
    if case["images"] is not None:
        patch = cfg["patch_size"]
        for image, (row, start) in zip(case["images"], case["image_slots"].tolist()):
            vectors = (patches_of(image, patch) @ w["multi_modal_projector.patch_proj.weight"].T
                       + w["multi_modal_projector.patch_proj.bias"]
                       + w["multi_modal_projector.patch_pos"])
            x[row, start:start + vectors.shape[0]] = vectors

    positions, allowed = segments_of(case["segment_ids"], batch, time)
    for il in range(cfg["n_layers"]):
        p = f"model.layers.{il}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(batch, time, n_heads, d).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(batch, time, n_kv, d).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(batch, time, n_kv, d).transpose(1, 2)
        q, k = rotate(q, positions, theta), rotate(k, positions, theta)
        # Query head i reads kv head i // (H / KV).
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        v = v.repeat_interleave(n_heads // n_kv, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)  # (B, H, T, T)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        attn = scores.softmax(-1) @ v  # (B, H, T, D)
        x = x + attn.transpose(1, 2).reshape(batch, time, c) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = F.silu(h @ w[p + "mlp.gate_proj.weight"].T)
        x = x + (gate * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T

    out = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms_norm(x, w["model.norm.weight"], eps) @ out.T  # (B, T, V)


def loss_of(cfg, logits, targets):
    counted = (targets != -100) & (targets != cfg["image_token_id"])
    if not counted.any():
        return 0.0
    return F.cross_entropy(logits[counted], targets[counted]).item()


def check(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    cfg = manifest["config"]
    tied = cfg["tie_embeddings"]
    w = {name: load(directory, e).to(torch.float64) for name, e in manifest["params"].items()}
    assert ("lm_head.weight" in w) != tied, "a tied model has no lm_head.weight"
    failures = 0
    for entry in manifest["cases"]:
        case = {key: load(directory, entry[key])
                for key in ("tokens", "segment_ids", "images", "image_slots", "targets", "logits")}
        expected = forward(cfg, w, case)
        logit_diff = (case["logits"].to(torch.float64) - expected).abs().max().item()
        loss_diff = abs(entry["loss"] - loss_of(cfg, expected, case["targets"]))
        ok = logit_diff <= TOLERANCE and loss_diff <= TOLERANCE
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {directory.name:6s} {entry['name']:16s} "
              f"max |logit diff| {logit_diff:.2e}  |loss diff| {loss_diff:.2e}  "
              f"(logits up to {expected.abs().max().item():.2f})")
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="muse-model-oracle-") as tmp:
        subprocess.run([sys.argv[1], tmp], check=True)
        failures = sum(check(pathlib.Path(tmp) / kind) for kind in ("tied", "untied"))
    print(f"{failures} case(s) beyond {TOLERANCE:g}" if failures
          else f"all cases within {TOLERANCE:g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
