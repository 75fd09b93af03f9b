"""Runs the rollout benchmark: muse-train's model::generate (rollout_bench
serve) against vLLM's offline engine (vllm_generate.py) on one Hugging Face
model directory, the same prompt ids and sampling, one JSON line per timed
call in --out.

Both sides load the model once and then answer requests (rollout_bench's
header lists them); this script sends the same requests to each in turn,
alternating which side goes first, so that load from other processes hits
both alike. Each side first answers a small request of every kind (vLLM
compiles its graphs then). Per repetition: a GRPO batch (--group PxGxMAX_NEW,
ending at the model's end tokens), an exact-length batch (--exact BxN) and one
greedy sequence (--single N). Before each workload's pair of calls the
muse-train process measures the machine's limits (a `peak` request), which
the report's roofline for those calls uses: on a shared machine the
attainable speed moves from minute to minute.

    python bench.py --bench build/bin/rollout_bench --vllm-python PY --model DIR
        --ids IDS.txt --out RESULTS.jsonl [--reps 3] [--threads 2]
        [--group 16x8x256] [--exact 128x64] [--single 64] [--profile FILE]

--profile FILE: after the timed calls, one more GRPO batch on the muse-train
side under perf (when installed), summarised into FILE: shares by library
and the top symbols.
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
        self.ready = self.read()

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


def stop_ids(model_dir):
    """The model's end tokens: generation_config.json's eos_token_id (an id
    or a list), as both engines stop a chat response."""
    with open(os.path.join(model_dir, "generation_config.json")) as f:
        eos = json.load(f)["eos_token_id"]
    return eos if isinstance(eos, list) else [eos]


def workloads(args, stops):
    """(name, request words) of one repetition, with the seed as {seed}."""
    p, g, max_new = args.group
    b, n = args.exact
    stop_list = ",".join(str(s) for s in stops)
    return [("group", ["group", p, g, max_new, "{seed}", stop_list]),
            ("exact", [b, n, "{seed}"]),
            ("single", ["greedy", 1, args.single])]


def perf_summary(perf_data, path):
    """perf's shares by library, then its top symbols outside oneDNN's
    just-in-time kernels (which perf cannot name), into `path`."""
    def top(sort, keep, n):
        report = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                                 "--sort", sort], capture_output=True, text=True).stdout
        lines = [line[:120].rstrip() for line in report.splitlines()
                 if "%" in line and not line.startswith("#")]
        return [line.replace("[JIT] tid", "oneDNN JIT kernels, tid") for line in lines
                if keep(line)][:n]
    with open(path, "w") as f:
        f.write("by library:\n" + "\n".join(top("dso", lambda line: True, 6)) + "\n")
        f.write("symbols outside oneDNN's JIT kernels:\n")
        f.write("\n".join(top("symbol", lambda line: "] 0x0000" not in line, 15)) + "\n")
    os.remove(perf_data)


def profile_group(args, stops, path):
    """One GRPO batch on the muse-train side under perf, after the model is
    loaded (perf starts recording when the request is sent)."""
    if not shutil.which("perf"):
        with open(path, "w") as f:
            f.write("perf is not installed (Debian: linux-perf); no profile\n")
        return
    server = Server([args.bench, "serve", f"hf:{args.model}", args.ids, str(args.threads)])
    data = path + ".data"
    perf = subprocess.Popen(["perf", "record", "-q", "-o", data, "-p", str(server.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    words = workloads(args, stops)[0][1]
    server.ask(*[w if w != "{seed}" else 0 for w in words])
    perf.send_signal(2)
    perf.wait()
    server.close()
    perf_summary(data, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, help="rollout_bench binary")
    ap.add_argument("--vllm-python", required=True, help="python of the vLLM venv")
    ap.add_argument("--model", required=True, help="Hugging Face model directory")
    ap.add_argument("--ids", required=True, help="prompt token ids, one prompt a line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--group", default="16x8x256", help="PROMPTSxSAMPLESxMAX_NEW")
    ap.add_argument("--exact", default="128x64", help="BATCHxNEW_TOKENS")
    ap.add_argument("--single", type=int, default=64, help="greedy tokens of one sequence")
    ap.add_argument("--profile")
    args = ap.parse_args()
    args.group = [int(x) for x in args.group.split("x")]
    args.exact = [int(x) for x in args.exact.split("x")]
    stops = stop_ids(args.model)
    start = time.time()
    sides = {
        "muse": Server([args.bench, "serve", f"hf:{args.model}", args.ids, str(args.threads)]),
        "vllm": Server([args.vllm_python, os.path.join(HERE, "vllm_generate.py"), args.model,
                        args.ids, "--threads", str(args.threads),
                        "--max-seqs", str(max(args.exact[0], args.group[0] * args.group[1]))]),
    }
    p, g, _ = args.group
    warm = [["group", p, g, 4, 0, ",".join(map(str, stops))], [args.exact[0], 4, 0],
            ["greedy", 1, 4]]
    for server in sides.values():
        for words in warm:
            server.ask(*words)
    with open(args.out, "w") as out:
        out.write(json.dumps({"ready": {k: s.ready for k, s in sides.items()},
                              "stops": stops, "model": args.model}) + "\n")
        for rep in range(args.reps):
            for i, (name, words) in enumerate(workloads(args, stops)):
                limits = sides["muse"].ask("peak")
                out.write(json.dumps({"peak": limits, "workload": name, "rep": rep}) + "\n")
                print(f"{name:6s} rep {rep + 1} peak {limits['matmul_gflops']:.0f} GFLOP/s, "
                      f"{limits['read_gbps']:.1f} GB/s", file=sys.stderr, flush=True)
                order = ["muse", "vllm"] if (rep + i) % 2 == 0 else ["vllm", "muse"]
                for side in order:
                    r = sides[side].ask(*[w if w != "{seed}" else rep for w in words])
                    r.update(workload=name, rep=rep, threads=args.threads)
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                    print(f"{name:6s} rep {rep + 1} {side:4s} {r['seconds']:7.2f} s "
                          f"({r['tokens'] / r['seconds']:.0f} tokens/s)", file=sys.stderr,
                          flush=True)
    for server in sides.values():
        server.close()
    if args.profile:
        profile_group(args, stops, args.profile)
    print(f"measured in {time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
