#!/usr/bin/env python3
"""Sharded AdamW (C++) against torch.optim.AdamW.

Usage: adamw_compat.py ADAMW_TOOL_EXE

Runs ADAMW_TOOL_EXE into a temporary directory (see adamw_tool.cpp): per
case, an initial unit buffer, K gradients, the per-step learning rates and
the C++ result after K steps. Here every parameter of the unit becomes its own
tensor, in a group with weight decay or without, and torch.optim.AdamW
(foreach=False, the single-tensor path) takes the same K steps. Fails when the
weights or a moment differ from torch's by more than TOLERANCE relative to the
tensor's largest magnitude. (Many elements are bitwise equal;
the others differ by float roundings where torch fuses a multiply-add, which
is large relative to an element only where its value nearly cancels to 0.)
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOLERANCE = 1e-6


def load(path, shape):
    raw = np.fromfile(path, dtype=np.dtype(np.float32).newbyteorder("<"))
    return torch.from_numpy(raw.reshape(shape).copy())


def torch_adamw(case, init, grads):
    """The torch result for the whole buffer: (param, exp_avg, exp_avg_sq)."""
    params = [init[p["offset"]:p["offset"] + p["numel"]].clone().requires_grad_()
              for p in case["params"]]
    decay = [t for t, p in zip(params, case["params"]) if p["weight_decay"]]
    keep = [t for t, p in zip(params, case["params"]) if not p["weight_decay"]]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(case["weight_decay"])},
         {"params": keep, "weight_decay": 0.0}],
        lr=case["lr"][0], betas=(float(case["beta1"]), float(case["beta2"])), eps=float(case["eps"]), foreach=False)
    for step, lr in enumerate(case["lr"]):
        for group in opt.param_groups:
            group["lr"] = lr
        for t, p in zip(params, case["params"]):
            t.grad = grads[step, p["offset"]:p["offset"] + p["numel"]].clone()
        opt.step()
    cat = lambda xs: torch.cat([x.detach() for x in xs])
    return (cat(params), cat([opt.state[t]["exp_avg"] for t in params]),
            cat([opt.state[t]["exp_avg_sq"] for t in params]))


def compare(ours, theirs):
    """max |ours - theirs| / max |theirs|, and the fraction of elements that differ."""
    diff = (ours.double() - theirs.double()).abs()
    return (diff.max() / theirs.double().abs().max()).item(), (diff > 0).double().mean().item()


def main():
    tool = sys.argv[1]
    worst = 0.0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([tool, tmp], check=True)
        cases = sorted(p for p in pathlib.Path(tmp).iterdir() if p.is_dir())
        if not cases:
            sys.exit("adamw_tool wrote no cases")
        for d in cases:
            case = json.loads((d / "case.json").read_text())
            n, k = case["numel"], case["steps"]
            init = load(d / "init.bin", (n,))
            grads = load(d / "grads.bin", (k, n))
            expected = torch_adamw(case, init, grads)
            for what, theirs in zip(("param", "exp_avg", "exp_avg_sq"), expected):
                ours = load(d / f"{what}.bin", (n,))
                rel, differing = compare(ours, theirs)
                worst = max(worst, rel)
                moved = (theirs - (init if what == "param" else 0)).abs().max().item()
                status = "ok" if rel <= TOLERANCE and moved > 0 else "FAIL"
                failed |= status == "FAIL"
                print(f"{d.name:20s} {what:10s} max diff / max |torch| {rel:.2e}, "
                      f"{differing:.0%} of elements not bitwise equal ({status})")
    print(f"worst relative difference {worst:.2e} (tolerance {TOLERANCE:.0e}), torch {torch.__version__}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
