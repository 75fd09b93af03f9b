"""PyTorch side of the training benchmark: the same model, batch shape and
optimizer step as muse-train's pretraining loop (forward, backward,
global-norm clipping to 1.0, AdamW), timed step by step, in one of three
forms:

* eager: torch_model.py's Model as it is;
* compile: the same Model through torch.compile (default mode, inductor);
  the first step includes the compilation;
* hf: transformers' LlamaForCausalLM loaded from a muse-export directory,
  trained on the text tokens only (it has no image projector: the <image>
  placeholders stay token embeddings), packed documents given as position
  ids that restart at 0, from which transformers builds the same
  block-diagonal causal mask.

Prints one JSON object per step with step_time_s and tokens_per_s, as
metrics.jsonl has, and cpu_s (the process's CPU time during the step, all
threads); with --profile, one more step under torch.profiler afterwards,
printed as {"profile": [...]} (not timed).

    python torch_train.py --preset tiny --steps 20 [--mode eager|compile|hf]
        [--hf-dir DIR] [--batch 8] [--seq-len 256] [--threads N]
        [--image-size 8 --patch-size 4 --image-channels 1] [--profile]
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import (PRESETS, Config, Model, adamw_groups, packed_batch,  # noqa: E402
                         segment_positions, text_loss)

# The loader's tiny pretraining data, measured: about 51 tokens per document
# and one 4-patch image per 540 positions, i.e. ~4 images in an 8 x 256 batch.
MEAN_DOC_LEN = 51
POSITIONS_PER_IMAGE = 540
PROFILE_TOP = 15
# The step's phases, marked with record_function in the profiled step.
PHASES = ("zero_grad", "forward", "loss", "backward", "clip", "optimizer")


def build_model(args, cfg):
    """The module and its logits function (batch -> (B, T, V) logits)."""
    if args.mode == "hf":
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32,
                                                 attn_implementation="sdpa")
        if model.config.vocab_size != cfg.vocab_size or \
                model.config.hidden_size != cfg.dim:
            sys.exit(f"error: {args.hf_dir} is not the {args.preset} preset")
        model.train()

        def logits(tokens, segment_ids, images, image_slots):
            # No cache and no attention_mask: transformers then reads packed
            # documents from the restarting position ids.
            positions, _ = segment_positions(segment_ids)
            return model(input_ids=tokens, position_ids=positions, use_cache=False).logits

        return model, logits
    model = Model(cfg)
    run = torch.compile(model) if args.mode == "compile" else model
    return model, run


def profile_rows(prof):
    """The profiled step's phases (wall time, children included) and its top
    ops by self CPU time."""
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key in PHASES}
    ops = sorted((e for e in events if e.key not in PHASES),
                 key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    return {"phases": phases, "total_self_cpu_s": total / 1e6,
            "ops": [{"name": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6,
                     "share": e.self_cpu_time_total / total, "calls": e.count}
                    for e in ops[:PROFILE_TOP]]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--mode", choices=["eager", "compile", "hf"], default="eager")
    ap.add_argument("--hf-dir", help="--mode hf: the muse-export --format hf directory")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (0: LibTorch's default, as muse-train)")
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--image-channels", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--profile", action="store_true",
                    help="profile one more step with torch.profiler after the timed ones")
    args = ap.parse_args()
    if args.mode == "hf" and not args.hf_dir:
        ap.error("--mode hf needs --hf-dir")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = Config(**PRESETS[args.preset], image_size=args.image_size,
                 patch_size=args.patch_size, image_channels=args.image_channels)
    model, logits_fn = build_model(args, cfg)
    params = list(model.parameters())
    # muse-train's optim.* defaults; the default implementation choice
    # (foreach/fused left unset) as a user of torch.optim gets it.
    opt = torch.optim.AdamW(adamw_groups(params, 0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    n_images = max(1, round(args.batch * args.seq_len / POSITIONS_PER_IMAGE))
    batches = [packed_batch(cfg, args.batch, args.seq_len, n_images, MEAN_DOC_LEN, gen)
               for _ in range(4)]
    tokens_per_step = args.batch * args.seq_len
    print(json.dumps({"side": args.mode, "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in params),
                      "adamw": "fused" if opt.defaults.get("fused") else
                      "foreach" if opt.defaults.get("foreach") else "default"}), flush=True)

    def step(i, phase=lambda name: contextlib.nullcontext()):
        tokens, targets, segment_ids, images, image_slots = batches[(i - 1) % len(batches)]
        with phase("zero_grad"):
            opt.zero_grad(set_to_none=True)
        with phase("forward"):
            logits = logits_fn(tokens, segment_ids, images, image_slots)  # (B,T,V)
        with phase("loss"):
            total, count = text_loss(logits, targets, cfg.image_token_id)
            loss = total / count.clamp(min=1)
        with phase("backward"):
            loss.backward()
        with phase("clip"):
            grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        with phase("optimizer"):
            opt.step()
        return loss.item(), float(grad_norm)

    for i in range(1, args.steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss, grad_norm = step(i)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        print(json.dumps({"step": i, "loss": loss, "grad_norm": grad_norm,
                          "tokens": tokens_per_step, "step_time_s": seconds, "cpu_s": cpu_seconds,
                          "tokens_per_s": tokens_per_step / seconds}), flush=True)
    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step(args.steps + 1, torch.profiler.record_function)
        print(json.dumps({"profile": profile_rows(prof)}), flush=True)


if __name__ == "__main__":
    main()
