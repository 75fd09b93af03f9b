"""Loads an exported Hugging Face directory with transformers and compares it
with muse-train's own forward (export_probe's JSON).

    hf_check.py HF_DIR PROBE_JSON TEXT

Checks: AutoTokenizer encodes TEXT to muse-train's ids (muse-train adds BOS
itself); AutoModelForCausalLM loads the text backbone with no missing or
unexpected weights; its logits on the ids equal muse-train's to 1e-4; greedy
generation of up to 32 tokens is identical; the only safetensors files
beside config.json are the model's; the image projector (in muse/) and
muse_config.json are there.
"""

import json
import os
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    hf_dir, probe_path, text = sys.argv[1:4]
    probe = json.load(open(probe_path))
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    ids = tokenizer(text)["input_ids"]
    assert [tokenizer.bos_token_id] + ids == probe["tokens"], (ids, probe["tokens"])

    model, info = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32,
                                                       output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info[kind], (kind, info[kind])
    assert type(model).__name__ == "LlamaForCausalLM", type(model)
    model.eval()
    x = torch.tensor([probe["tokens"]])
    with torch.no_grad():
        logits = model(x).logits[0]
    diff = (logits - torch.tensor(probe["logits"])).abs().max().item()
    assert diff <= 1e-4, f"logits differ by {diff}"
    out = model.generate(x, max_new_tokens=32, do_sample=False)[0, x.shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    if eos in out:
        out = out[:out.index(eos) + 1]
    assert out == probe["greedy"], (out, probe["greedy"])

    # Engines that load every *.safetensors beside config.json (vLLM) find
    # only the model's own; the projector sits in muse/.
    top = sorted(f for f in os.listdir(hf_dir) if f.endswith(".safetensors"))
    assert all(f.startswith("model") for f in top), top

    muse = json.load(open(os.path.join(hf_dir, "muse_config.json")))
    projector = muse["multi_modal_projector"]
    with safe_open(os.path.join(hf_dir, projector["file"]), "pt") as f:
        for name, shape in projector["tensors"].items():
            assert list(f.get_tensor(name).shape) == shape, name
    print(f"hf: transformers loads {hf_dir}; logits within {diff:.2g}, "
          f"{len(out)} greedy tokens identical")


if __name__ == "__main__":
    main()
