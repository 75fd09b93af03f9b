"""The same collectives as comm_bench.cpp through torch.distributed's gloo
backend (the same torch wheel), for a side-by-side comparison. Prints one JSON
object per measurement from rank 0.

    python torch_gloo_bench.py --ranks 2 [--reps 20] [--max-mib 64]
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def time_median(reps, op):
    op()
    seconds = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        op()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def worker(rank, world, reps, max_mib, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ring = (world - 1) / world
    nbytes = 4096
    while nbytes <= max_mib << 20:
        n = nbytes // 4
        t = torch.ones(n)
        shard = torch.ones(n // world)
        runs = {
            "all_reduce": (lambda: dist.all_reduce(t), 2 * ring),
            "all_gather": (lambda: dist.all_gather_into_tensor(t, shard), ring),
            "reduce_scatter": (lambda: dist.reduce_scatter_tensor(shard, t), ring),
        }
        for name, (op, factor) in runs.items():
            s = time_median(reps, op)
            if rank == 0:
                print(json.dumps({"impl": "gloo", "collective": name, "bytes": nbytes,
                                  "seconds": s, "busbw_gbps": nbytes * factor / s / 1e9}),
                      flush=True)
        nbytes *= 16
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--max-mib", type=int, default=64)
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args()
    mp.spawn(worker, args=(args.ranks, args.reps, args.max_mib, args.port), nprocs=args.ranks)


if __name__ == "__main__":
    main()
