"""Ways a training step can spend more than PyTorch eager's, each timed
against the eager way in PyTorch on one thread at the sizes of a preset (CPU
seconds, median of repetitions), with the ATen calls such code makes:

* flat_views: a unit's weights as views of one flat leaf, so that every
  view's backward (SliceBackward) fills a zero gradient the size of the
  whole unit and adds it; eager: one leaf per parameter.
* grad_norm: the global norm in fp64 (linalg_vector_norm with
  dtype=kDouble first copies the gradient to fp64); eager:
  clip_grad_norm_'s fp32 norms.
* adamw: AdamW as a sequence of elementwise passes over a flat shard;
  eager: torch.optim.AdamW's default (per-tensor loop) and fused=True.
* solo_copies: with one rank, an FSDP all-gather and reduce-scatter that
  copy every unit, and the gradient shard's add.

Prints one JSON object.

    python overheads.py [--preset small] [--reps 5]
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import PRESETS, Config  # noqa: E402


def unit_shapes(cfg):
    """FSDP units as model/layout.cpp lays them out: embed, blocks, head
    (tied: norm only)."""
    C, F, HD, KVD = cfg.dim, cfg.ffn_hidden, cfg.n_heads * cfg.head_dim, \
        cfg.n_kv_heads * cfg.head_dim
    embed = [(cfg.vocab_size, C), (C, cfg.patch_dim), (C,), (cfg.n_patches, C)]
    block = [(C,), (HD, C), (KVD, C), (KVD, C), (C, HD), (C,), (F, C), (F, C), (C, F)]
    return [embed] + [block] * cfg.n_layers + [[(C,)]]


def cpu_time(fn, reps):
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return sorted(times)[len(times) // 2]


def views(flat, shapes):
    out, offset = [], 0
    for s in shapes:
        out.append(flat[offset:offset + math.prod(s)].view(s))
        offset += math.prod(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = Config(**PRESETS[args.preset])
    units = unit_shapes(cfg)
    sizes = [sum(math.prod(s) for s in u) for u in units]
    n = sum(sizes)
    grads = [[torch.randn(s) for s in u] for u in units]
    out = {"preset": args.preset, "numel": n}

    # Gradients through views of one flat leaf vs one leaf per parameter
    # (whose gradients are then copied into one flat buffer, as FSDP needs).
    def flat_views():
        for u, size, gs in zip(units, sizes, grads):
            leaf = torch.zeros(size).requires_grad_()
            sum((v * g).sum() for v, g in zip(views(leaf, u), gs)).backward()

    def per_param():
        for u, size, gs in zip(units, sizes, grads):
            leaves = [v.requires_grad_() for v in views(torch.zeros(size), u)]
            sum((p * g).sum() for p, g in zip(leaves, gs)).backward()
            torch.cat([p.grad.reshape(-1) for p in leaves])

    out["flat_views_s"] = cpu_time(flat_views, args.reps)
    out["per_param_s"] = cpu_time(per_param, args.reps)

    flat_grads = [torch.randn(size) for size in sizes]
    out["grad_norm_fp64_s"] = cpu_time(lambda: sum(
        torch.linalg.vector_norm(g, 2, dtype=torch.float64).square() for g in flat_grads),
        args.reps)
    out["grad_norm_fp32_s"] = cpu_time(lambda: sum(
        torch.linalg.vector_norm(g, 2).double().square() for g in flat_grads), args.reps)

    # AdamW as separate passes over every element (one shard per unit has
    # the same passes, so one buffer of n stands for them).
    p, g = torch.randn(n), torch.randn(n) * 1e-3
    m, v = torch.zeros(n), torch.zeros(n)
    mask = torch.rand(n) > 0.01
    scratch, denom = torch.empty(n), torch.empty(n)
    lr, wd, b1, b2, eps = 3e-4, 0.1, 0.9, 0.95, 1e-8

    def muse_adamw():
        p.mul_(torch.where(mask, torch.tensor(1.0 - lr * wd), torch.ones(())))
        scratch.copy_(g).sub_(m)
        m.add_(scratch.mul_(1 - b1))
        scratch.copy_(g).mul_(1 - b2).mul_(g)
        v.mul_(b2).add_(scratch)
        torch.sqrt(v, out=denom).div_(0.5).add_(eps)
        scratch.copy_(m).mul_(-lr / 0.1).div_(denom)
        p.add_(scratch)

    out["adamw_muse_s"] = cpu_time(muse_adamw, args.reps)
    for name, kwargs in (("adamw_torch_default_s", {}), ("adamw_torch_fused_s",
                                                         {"fused": True})):
        params = [torch.nn.Parameter(torch.randn(s)) for u in units for s in u]
        for q in params:
            q.grad = torch.randn_like(q) * 1e-3
        opt = torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd,
                                **kwargs)
        out[name] = cpu_time(opt.step, args.reps)

    full = torch.empty(n)
    out["solo_copies_s"] = cpu_time(lambda: (full.copy_(p), full.copy_(g), m.add_(full)),
                                    args.reps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
