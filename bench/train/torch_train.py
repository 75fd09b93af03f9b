"""PyTorch eager side of the training benchmark: the same model, batch shape
and optimizer step as muse-train's pretraining loop (forward, backward,
global-norm clipping to 1.0, AdamW), timed step by step. Prints one JSON
object per step with step_time_s and tokens_per_s, as metrics.jsonl has, and cpu_s (the
process's CPU time during the step, all threads).

    python torch_train.py --preset tiny --steps 20 [--batch 8] [--seq-len 256]
        [--threads N] [--image-size 8 --patch-size 4 --image-channels 1]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import PRESETS, Config, Model, packed_batch, text_loss  # noqa: E402

# The loader's tiny pretraining data, measured: about 51 tokens per document
# and one 4-patch image per 540 positions, i.e. ~4 images in an 8 x 256 batch.
MEAN_DOC_LEN = 51
POSITIONS_PER_IMAGE = 540


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (0: LibTorch's default, as muse-train)")
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--image-channels", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = Config(**PRESETS[args.preset], image_size=args.image_size,
                 patch_size=args.patch_size, image_channels=args.image_channels)
    model = Model(cfg)
    # muse-train's optim.* defaults; the default implementation choice
    # (foreach/fused left unset) as a user of torch.optim gets it.
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    n_images = max(1, round(args.batch * args.seq_len / POSITIONS_PER_IMAGE))
    batches = [packed_batch(cfg, args.batch, args.seq_len, n_images, MEAN_DOC_LEN, gen)
               for _ in range(4)]
    tokens_per_step = args.batch * args.seq_len
    print(json.dumps({"side": "torch", "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in params),
                      "adamw": "fused" if opt.defaults.get("fused") else
                      "foreach" if opt.defaults.get("foreach") else "default"}), flush=True)

    for step in range(1, args.steps + 1):
        tokens, targets, segment_ids, images, image_slots = batches[(step - 1) % len(batches)]
        start, cpu_start = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        logits = model(tokens, segment_ids, images, image_slots)  # (B,T,V)
        total, count = text_loss(logits, targets, cfg.image_token_id)
        loss = total / count.clamp(min=1)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss_value = loss.item()
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        print(json.dumps({"step": step, "loss": loss_value, "grad_norm": float(grad_norm),
                          "tokens": tokens_per_step, "step_time_s": seconds, "cpu_s": cpu_seconds,
                          "tokens_per_s": tokens_per_step / seconds}), flush=True)


if __name__ == "__main__":
    main()
