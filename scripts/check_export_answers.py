"""Checks that an exported model answers as muse-generate does: the same
greedy tokens, prompt by prompt, in llama.cpp (a GGUF export) or in
transformers (a Hugging Face export).

    check_export_answers.py (--gguf FILE | --hf DIR) ANSWERS.jsonl

ANSWERS.jsonl is `muse-generate --json` output for the checkpoint the export
was made from: per prompt, its "prompt_ids", the generated "ids" (without the
stop token) and "finish" (stop or length). Each prompt is decoded greedily
from the same ids, up to as many tokens as muse-generate made; a response
that stopped must stop at the same place (the engine's end-of-generation
token). Prints one line per prompt and a summary; exits 1 when any prompt's
tokens differ. Run it with the python that has the engine: llama.cpp's venv
(scripts/install-deps.sh) for --gguf, the project's venv for --hf.
"""
import argparse
import json
import sys


def llama_cpp_decoder(gguf, longest):
    from llama_cpp import Llama

    # An fp32 KV cache (type 0 = GGML_TYPE_F32; llama.cpp's default is f16),
    # as muse-train decodes in fp32.
    llm = Llama(model_path=gguf, n_ctx=longest, n_threads=2, type_k=0, type_v=0, verbose=False)
    stop = llm.token_eos()

    def decode(prompt_ids, limit):
        llm.reset()
        out = []
        for token in llm.generate(prompt_ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            if int(token) == stop or len(out) == limit:
                break
            out.append(int(token))
        return out

    return decode


def transformers_decoder(model_dir):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    stop = model.generation_config.eos_token_id
    stops = set(stop if isinstance(stop, list) else [stop])

    def decode(prompt_ids, limit):
        ids = torch.tensor([prompt_ids])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=limit + 1, eos_token_id=list(stops),
                                 pad_token_id=next(iter(stops)))
        new = out[0, len(prompt_ids):].tolist()
        for i, token in enumerate(new):
            if token in stops:
                return new[:i]
        return new[:limit]

    return decode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    engine = ap.add_mutually_exclusive_group(required=True)
    engine.add_argument("--gguf", help="a GGUF file (muse-export --format gguf)")
    engine.add_argument("--hf", help="a Hugging Face directory (muse-export --format hf)")
    ap.add_argument("answers", help="muse-generate --json output")
    args = ap.parse_args()
    try:
        with open(args.answers, encoding="utf-8") as f:
            answers = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {args.answers}: {e}")
    if not answers:
        sys.exit(f"error: {args.answers}: no answers")
    # Room for one token past muse-generate's, to see whether the engine stops.
    longest = max(len(a["prompt_ids"]) + len(a["ids"]) for a in answers) + 8
    decode = llama_cpp_decoder(args.gguf, longest) if args.gguf else transformers_decoder(args.hf)
    engine_name = "llama.cpp" if args.gguf else "transformers"
    same = 0
    for n, a in enumerate(answers, 1):
        want = a["ids"]
        # A response that stopped gets one more token of room to stop too.
        got = decode(a["prompt_ids"], len(want) + (1 if a["finish"] == "stop" else 0))
        if a["finish"] == "length":
            got = got[:len(want)]
        equal = got == want
        same += equal
        where = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
                     min(len(got), len(want)))
        print(f"[{n}] {len(want)} tokens ({a['finish']}): "
              + ("same" if equal else f"differs from token {where} ({len(got)} tokens)"))
    print(f"{engine_name}: {same} of {len(answers)} answers token for token as muse-generate's")
    return 0 if same == len(answers) else 1


if __name__ == "__main__":
    sys.exit(main())
