"""The Hugging Face side of bench/rollout/run.sh: LlamaForCausalLM.generate
on a `muse-export --format hf` directory, timed call by call, with the same
requests and answers as `rollout_bench serve`.

    python hf_generate.py HF_DIR IDS.txt [--threads T]

Loads the model once (fp32, torch on T threads), prints {"ready": true, ...},
then answers each request line "BATCH NEW_TOKENS SEED" on stdin with one JSON
line: the wall and CPU seconds of one generate call on the first BATCH prompts of IDS.txt
(repeated when there are fewer), left-padded into one batch with an attention
mask, sampling exactly NEW_TOKENS tokens for each (do_sample, temperature 1,
top_k 0, top_p 1, min_new_tokens = max_new_tokens, the default KV cache).
A request "profile BATCH NEW_TOKENS SEED FILE" runs the same call under
torch.profiler and writes its operator table to FILE.
"""
import argparse
import json
import sys
import time

import torch
import transformers
from transformers import LlamaForCausalLM


def read_ids(path):
    with open(path) as f:
        rows = [[int(t) for t in line.split()] for line in f]
    return [r for r in rows if r]


class Generator:
    def __init__(self, hf_dir, ids_path):
        self.model = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
        pad = self.model.generation_config.pad_token_id
        self.pad_id = 0 if pad is None else pad
        self.rows = read_ids(ids_path)
        with open(f"{hf_dir}/muse_config.json") as f:
            self.preset = json.load(f)["model"]["preset"]

    def batch(self, size):
        """(B, L) input ids and attention mask of the first `size` prompts,
        each row right-aligned."""
        rows = [self.rows[b % len(self.rows)] for b in range(size)]
        width = max(len(r) for r in rows)
        ids = torch.full((size, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((size, width), dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, width - len(r):] = torch.tensor(r)
            mask[b, width - len(r):] = 1
        return ids, mask

    def generate(self, size, new_tokens, seed):
        """Wall and CPU seconds of one generate call, after checking that
        every sequence got exactly `new_tokens` new tokens, and the prompt
        tokens."""
        ids, mask = self.batch(size)
        torch.manual_seed(seed)
        cpu_start, start = time.process_time(), time.perf_counter()
        out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                  temperature=1.0, top_k=0, top_p=1.0,
                                  max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  pad_token_id=self.pad_id)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        if tuple(out.shape) != (size, ids.shape[1] + new_tokens):
            raise SystemExit(f"error: generate returned {tuple(out.shape)} for "
                             f"{tuple(ids.shape)} and {new_tokens} new tokens")
        return seconds, cpu_s, int(mask.sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("ids")
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    gen = Generator(args.hf_dir, args.ids)
    print(json.dumps({"ready": True, "preset": gen.preset, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "profile":
            size, new_tokens, seed = (int(w) for w in words[1:4])
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
                gen.generate(size, new_tokens, seed)
            with open(words[4], "w") as f:
                f.write(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
            print(json.dumps({"profile": words[4]}), flush=True)
            continue
        size, new_tokens, seed = (int(w) for w in words)
        seconds, cpu_s, prompt_tokens = gen.generate(size, new_tokens, seed)
        print(json.dumps({"side": "hf", "preset": gen.preset, "batch": size,
                          "new_tokens": new_tokens, "seed": seed,
                          "prompt_tokens": prompt_tokens, "tokens": size * new_tokens,
                          "seconds": seconds, "cpu_s": cpu_s}), flush=True)


if __name__ == "__main__":
    main()
