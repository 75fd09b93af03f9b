"""PyTorch FSDP2 side of the distributed step benchmark: bench/train's
torch_model.py sharded with `fully_shard` (one FSDP unit per transformer
block, the root holding the embedding, tied head and final norm) over
gloo on the CPU, trained with the same step as muse-train's pretraining
loop. Prints one JSON object per step and rank.

    python fsdp2_train.py --preset tiny --mode recompute --steps 10 [--ranks 2]
        [--batch 8] [--seq-len 256] [--image-size 8 --patch-size 4 --image-channels 1]
        [--port P] [--rank R] [--profile-steps N]

--mode recompute: reshard after forward and `checkpoint_wrapper` around every
block (muse-train's default); --mode keep: no resharding after forward, no
recompute (`trainer.keep_gathered=true trainer.activation_checkpointing=false`).
Every step record carries step_time_s, cpu_s (this process's CPU time in the
step, all threads), cpu_main_s (the main thread's) and peak_rss_bytes. With
--profile-steps N, N more steps follow with a fresh model under
torch.profiler, and then one record per profiled step and rank with
peak_cpu_bytes and the collectives (see measure).
"""
import argparse
import gc
import json
import math
import os
import sys
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from torch_model import PRESETS, Config, Model, adamw_groups, packed_batch, text_loss  # noqa: E402
from torch_train import MEAN_DOC_LEN, POSITIONS_PER_IMAGE  # noqa: E402


class Block(torch.nn.Module):
    """One transformer block of a Model as a module of its own: fully_shard
    hooks a module's forward, and Model calls its blocks as functions."""

    def __init__(self, cfg, params):
        super().__init__()
        self.cfg = cfg
        for name, p in list(params.named_parameters()):
            self.register_parameter(name, p)

    def forward(self, x, cos, sin, mask):
        return Model.block(self, self, x, cos, sin, mask)


class ShardableModel(Model):
    """Model whose blocks are Block modules, called through __call__."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.blocks = torch.nn.ModuleList(Block(cfg, b) for b in self.blocks)

    def block(self, w, x, cos, sin, mask):
        return w(x, cos, sin, mask)


def shard(model, mesh, mode):
    """The FSDP2 recipe (torchtitan's): fully_shard each block, then the root
    (embedding, patch projector, final norm and the tied head), which FSDP2
    keeps gathered from forward to backward, as muse-train keeps its tied
    embedding."""
    for i, b in enumerate(model.blocks):
        if mode == "recompute":
            b = checkpoint_wrapper(b)
            model.blocks[i] = b
        fully_shard(b, mesh=mesh, reshard_after_forward=mode == "recompute")
    fully_shard(model, mesh=mesh)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            # The loss is each rank's sum over the global target count, so
            # the gradients are summed, not averaged, over ranks. FSDP2 would
            # run a divide factor of 1 as PREMUL_SUM, which gloo does not
            # have ("Cannot use ReduceOp.PREMUL_SUM with Gloo"): force SUM.
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)


def emit(record):
    """One JSON line in a single write: both ranks share stdout."""
    os.write(1, (json.dumps(record) + "\n").encode())


def vm_hwm_bytes():
    """Peak resident memory of this process (VmHWM), as muse-train's
    peak_rss_bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Trainer:
    """The sharded model, its optimizer and this rank's batches."""

    def __init__(self, args, rank, mesh):
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        self.cfg = cfg = Config(**PRESETS[args.preset], image_size=args.image_size,
                                patch_size=args.patch_size, image_channels=args.image_channels)
        self.model = ShardableModel(cfg)
        shard(self.model, mesh, args.mode)
        # muse-train's optim.* defaults; torch.optim's default implementation.
        self.opt = torch.optim.AdamW(adamw_groups(self.model.parameters(), 0.1), lr=3e-4,
                                     betas=(0.9, 0.95), eps=1e-8)
        # Each rank its share of the global batch, as muse-train's loader gives it.
        rows = args.batch // args.ranks
        gen = torch.Generator().manual_seed(args.seed + rank)
        n_images = max(1, round(rows * args.seq_len / POSITIONS_PER_IMAGE))
        self.batches = [packed_batch(cfg, rows, args.seq_len, n_images, MEAN_DOC_LEN, gen)
                        for _ in range(4)]

    def step(self, step):
        """One optimizer step; (loss, gradient norm)."""
        tokens, targets, segment_ids, images, image_slots = \
            self.batches[(step - 1) % len(self.batches)]
        image_token_id = self.cfg.image_token_id
        self.opt.zero_grad(set_to_none=True)
        # The global number of counted targets (muse-train all-reduces it too).
        count = ((targets != -100) & (targets != image_token_id)).sum().double()
        dist.all_reduce(count)
        logits = self.model(tokens, segment_ids, images, image_slots)  # (B,T,V)
        total, _ = text_loss(logits, targets, image_token_id)
        loss = total / count.clamp(min=1)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        loss_sum = loss.detach().double()
        dist.all_reduce(loss_sum)
        return loss_sum.item(), grad_norm


def run_steps(trainer, args, rank, steps, profiled):
    """`steps` steps, each timed with one record; `profiled`: under the
    profiler, each marked for measure() instead."""
    for step in range(1, steps + 1):
        with torch.profiler.record_function(f"step {step}") if profiled else nullcontext():
            start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
            loss, grad_norm = trainer.step(step)
            seconds = time.perf_counter() - start
            cpu, main = time.process_time() - cpu, time.thread_time() - main
        if not profiled:
            emit({"rank": rank, "step": step, "loss": loss,
                  "grad_norm": float(grad_norm.full_tensor()),
                  "tokens": args.batch * args.seq_len, "step_time_s": seconds, "cpu_s": cpu,
                  "cpu_main_s": main, "peak_rss_bytes": vm_hwm_bytes()})


def worker(rank, args):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    mesh = init_device_mesh("cpu", (args.ranks,))
    trainer = Trainer(args, rank, mesh)
    if rank == 0:
        emit({"side": "fsdp2", "mode": args.mode, "ranks": args.ranks,
              "threads": torch.get_num_threads(),
              "params": sum(p.numel() for p in trainer.model.parameters())})
    run_steps(trainer, args, rank, args.steps, profiled=False)
    if args.profile_steps:
        # A fresh model, optimizer and batches under the profiler, so that its
        # running total of live tensor bytes counts every tensor of the
        # training state: what muse-train's peak_cpu_bytes counts.
        del trainer
        gc.collect()
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          profile_memory=True, record_shapes=True)
        profiler.start()
        run_steps(Trainer(args, rank, mesh), args, rank, args.profile_steps, profiled=True)
        profiler.stop()
        for r in measure(profiler, args.ranks):
            emit({"rank": rank, "profiled": True, **r})
    dist.destroy_process_group()


# The collectives as the dispatcher sees them: c10d's ops (what
# torch.distributed's functions and so FSDP2 call) and the functional
# collectives (what DTensor calls, here in clip_grad_norm_): kind, and the
# index of the argument that holds the full (unsharded) buffer.
COLLECTIVES = {
    "c10d::_allgather_base_": ("all_gather", 0),
    "c10d::_reduce_scatter_base_": ("reduce_scatter", 1),
    "c10d::allreduce_": ("all_reduce", 0),
    "_c10d_functional::all_reduce": ("all_reduce", 0),
    "_c10d_functional::all_reduce_": ("all_reduce", 0),
}


def wire_bytes(kind, nbytes, world):
    """Bytes a rank sends for one collective on an nbytes buffer under a ring
    algorithm, the convention of muse-train's comm::CommStats (docs/memory.md):
    (N-1)/N of it for an all-gather or a reduce-scatter, 2(N-1)/N for an
    all-reduce."""
    return (2 if kind == "all_reduce" else 1) * nbytes * (world - 1) // world


def tensor_bytes(meta):
    ts = meta if isinstance(meta, list) else [meta]
    return sum(math.prod(t.sizes) * t.dtype.itemsize for t in ts)


def ops_above(event):
    """The names of the ops an event happened in, outermost first, below the
    step itself."""
    names = []
    e = event.parent if event is not None else None
    while e is not None and not e.name.startswith("step "):
        names.append(e.name)
        e = e.parent
    return names[::-1]


def measure(profiler, world):
    """Per step, from the profiler's records: the peak of live tensor bytes,
    the counterpart of muse-train's peak_cpu_bytes (LibTorch's CPU allocator
    reports every allocation and free made while memory profiling is on with
    the running total of live bytes, and profiling started before the model
    was built, so that total is every CPU tensor byte alive), and the
    collectives called with the bytes this rank sent."""
    allocations, collectives, steps = [], [], {}
    stack = list(profiler.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.typed[0] == torch._C._profiler._EventType.Allocation:
            allocations.append((e.start_time_ns, e.typed[1].total_allocated, e))
        elif e.name.startswith("step "):
            steps[int(e.name.split()[1])] = (e.start_time_ns, e.end_time_ns)
        elif e.name.startswith(("c10d::", "_c10d_functional::")) and "wait" not in e.name:
            if e.name not in COLLECTIVES:
                raise RuntimeError(f"collective {e.name} is not counted")
            kind, arg = COLLECTIVES[e.name]
            nbytes = tensor_bytes(e.typed[1].inputs[arg])
            collectives.append((e.start_time_ns, kind, wire_bytes(kind, nbytes, world)))
    out = []
    for step, (begin, end) in sorted(steps.items()):
        comm = {}
        for t, kind, n in collectives:
            if begin <= t <= end:
                c = comm.setdefault(kind, {"calls": 0, "bytes": 0})
                c["calls"] += 1
                c["bytes"] += n
        peak = max(((a, e) for t, a, e in allocations if begin <= t <= end),
                   key=lambda x: x[0], default=(0, None))
        out.append({"step": step, "peak_cpu_bytes": peak[0], "peak_at": ops_above(peak[1]),
                    "comm": comm, "comm_bytes": sum(c["bytes"] for c in comm.values())})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--mode", choices=["recompute", "keep"], default="recompute")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--image-channels", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--port", type=int, default=29541)
    ap.add_argument("--rank", type=int,
                    help="run this rank only (the launcher starts the others); without it, "
                    "every rank is started here with torch.multiprocessing")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="after the timed steps, this many more with a fresh model under "
                    "torch.profiler (memory and collectives)")
    args = ap.parse_args()
    if args.batch % args.ranks:
        sys.exit("error: --batch must be a multiple of --ranks")
    if args.rank is None:
        mp.spawn(worker, args=(args,), nprocs=args.ranks)
    else:
        worker(args.rank, args)


if __name__ == "__main__":
    main()
