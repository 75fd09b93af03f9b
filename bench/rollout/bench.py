"""Runs the rollout benchmark: model::generate (rollout_bench serve) against
LlamaForCausalLM.generate (hf_generate.py) on the same checkpoint, prompts,
batch sizes and lengths, one JSON line per timed call in --out.

Both sides load the model once and then answer requests; this script sends
the same requests to each in turn, alternating which side goes first, so that
load from other processes hits both alike. Per model: one untimed call with
two new tokens per batch size and side (warm-up), then per repetition and
batch size, on each side, a call with one new token (prefill and the first
sample) and one with --new-tokens.

    python bench.py --bench build/bin/rollout_bench --ids IDS.txt
        --model CHECKPOINT HF_DIR [--model ...] --out RESULTS.jsonl
        [--batches 16,1] [--new-tokens 64] [--reps 3] [--threads 1]
        [--profile DIR]

--profile DIR writes to DIR, per model, hf_PRESET_bB.txt per batch size (the
torch.profiler operator table of one more HF call) and, when perf is
installed, muse_PRESET.txt (perf's top symbols over all of the muse-train
process's calls, which then run under perf record).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Server:
    """A side's process: one request line in, one JSON line out."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            sys.exit(f"error: {' '.join(self.cmd)} exited with {self.proc.returncode}")
        return json.loads(line)

    def ask(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        return self.read()

    def close(self):
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            sys.exit(f"error: {' '.join(self.cmd)} exited with {self.proc.returncode}")


def measure(args, checkpoint, hf_dir, out):
    muse_cmd = [args.bench, "serve", checkpoint, args.ids, str(args.threads)]
    perf_data = None
    if args.profile and shutil.which("perf"):
        perf_data = os.path.join(args.profile, "muse.perf.data")
        muse_cmd = ["perf", "record", "-q", "-o", perf_data, "--"] + muse_cmd
    sides = {
        "muse": Server(muse_cmd),
        "hf": Server([sys.executable, os.path.join(HERE, "hf_generate.py"), hf_dir, args.ids,
                      "--threads", str(args.threads)]),
    }
    ready = {side: server.read() for side, server in sides.items()}
    preset = ready["muse"]["preset"]
    for batch in args.batches:
        for server in sides.values():
            server.ask(batch, 2, 0)
    for rep in range(args.reps):
        for i, batch in enumerate(args.batches):
            order = ["muse", "hf"] if (rep + i) % 2 == 0 else ["hf", "muse"]
            for side in order:
                first = sides[side].ask(batch, 1, rep)
                full = sides[side].ask(batch, args.new_tokens, rep)
                full.update(rep=rep, prefill_s=first["seconds"], threads=args.threads)
                out.write(json.dumps(full) + "\n")
                out.flush()
                print(f"{full['preset']:5s} batch {batch:3d} rep {rep + 1} {side:4s} "
                      f"{full['seconds']:.3f} s ({full['tokens'] / full['seconds']:.0f} tokens/s),"
                      f" first token {first['seconds']:.3f} s", file=sys.stderr, flush=True)
    if args.profile:
        for batch in args.batches:
            path = os.path.join(args.profile, f"hf_{preset}_b{batch}.txt")
            sides["hf"].ask("profile", batch, args.new_tokens, 0, path)
    for server in sides.values():
        server.close()
    if perf_data:
        write_perf_summary(perf_data, os.path.join(args.profile, f"muse_{preset}.txt"))


def write_perf_summary(perf_data, path):
    """perf's shares by library, then its top symbols outside oneDNN's
    just-in-time kernels (which perf cannot name), into `path`."""
    def top(sort, keep, n):
        report = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                                 "--sort", sort], capture_output=True, text=True).stdout
        lines = [line[:110].rstrip() for line in report.splitlines()
                 if "%" in line and not line.startswith("#")]
        return [line.replace("[JIT] tid", "oneDNN JIT kernels, tid") for line in lines
                if keep(line)][:n]
    with open(path, "w") as f:
        f.write("the whole process: start-up, loading, warm-up, first-token and timed calls\n"
                "by library:\n")
        f.write("\n".join(top("dso", lambda line: True, 6)))
        f.write("\nsymbols outside oneDNN's JIT kernels:\n")
        f.write("\n".join(top("symbol", lambda line: "] 0x0000" not in line, 15)) + "\n")
    os.remove(perf_data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, help="rollout_bench binary")
    ap.add_argument("--ids", required=True, help="prompt token ids, one prompt a line")
    ap.add_argument("--model", nargs=2, action="append", required=True,
                    metavar=("CHECKPOINT", "HF_DIR"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", default="16,1")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    start = time.time()
    with open(args.out, "w") as out:
        for checkpoint, hf_dir in args.model:
            measure(args, checkpoint, hf_dir, out)
    print(f"measured in {time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
