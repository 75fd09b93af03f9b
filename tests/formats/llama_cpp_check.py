"""A GGUF export run by llama.cpp (the llama-cpp-python binding, built from
source by scripts/install-deps.sh in its own venv): its logits after the
probe's prompt equal muse-train's to 1e-3 (fp32 weights and an fp32 KV
cache; the kernels differ) and its greedy tokens are muse-train's.

    llama_cpp_check.py GGUF PROBE_JSON

PROBE_JSON is family_probe's or export_probe's output for the checkpoint the
GGUF was exported from; its "greedy" tokens were generated without stop
tokens (family_probe) or up to end-of-text (export_probe), so llama.cpp is
asked for as many.
"""
import json
import sys

import numpy as np

from llama_cpp import Llama


def main():
    gguf, probe_path = sys.argv[1:3]
    probe = json.load(open(probe_path))
    tokens, want = probe["tokens"], probe["greedy"]
    # An fp32 KV cache (type 0 = GGML_TYPE_F32; llama.cpp's default is f16).
    llm = Llama(model_path=gguf, n_ctx=len(tokens) + len(want) + 8, n_threads=2, logits_all=True,
                type_k=0, type_v=0, verbose=False)
    llm.eval(tokens)
    last = np.array(llm.scores[len(tokens) - 1])
    diff = float(np.abs(last - np.array(probe["logits"][-1])).max())
    assert diff < 1e-3, f"{gguf}: llama.cpp's last logits differ by {diff}"
    llm.reset()
    got = []
    for token in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        got.append(int(token))
        if len(got) == len(want):
            break
    assert got == want, f"{gguf}: llama.cpp {got} vs muse-train {want}"
    print(f"{gguf}: llama.cpp's logits within {diff:.1e} and {len(got)} greedy tokens "
          f"({len(set(got))} distinct) equal muse-train's")


if __name__ == "__main__":
    main()
