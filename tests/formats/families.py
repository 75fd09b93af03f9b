"""Small random Hugging Face models of every text family muse-train reads,
made by transformers, and the comparison of muse-train's forward with
transformers' on them.

    families.py make OUT_DIR          one directory per family under OUT_DIR
    families.py names                 the family directories' names
    families.py check DIR PROBE_JSON FAMILY
                                      transformers' logits and greedy tokens
                                      against family_probe's JSON; DIR must
                                      load as FAMILY's transformers class
                                      (FAMILY: a name above, or smollm2)

Each model has a family's real features: Llama 3.1's llama3 rope scaling,
an untied head with linear scaling, Mistral, Qwen2's q/k/v biases, Qwen3's
q/k norms with head_dim != hidden_size / heads. Every weight is random,
biases and norm gains included (transformers starts them at 0 and 1, which
would hide a wrong bias or norm). The vocabulary is the tiny tokenizer's
4096, so the same directories can be trained on the tiny data.
"""

import json
import os
import sys

import torch
import transformers

# hidden_size / num_attention_heads = 32: vLLM's CPU attention takes head sizes
# of 32 and up (tests/formats/vllm_check.py).
COMMON = dict(vocab_size=4096, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-5)

FAMILIES = {
    "llama31": ("LlamaConfig", "LlamaForCausalLM",
                dict(COMMON, tie_word_embeddings=True,
                     rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                      "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 64})),
    "llama_untied_linear": ("LlamaConfig", "LlamaForCausalLM",
                            dict(COMMON, tie_word_embeddings=False,
                                 rope_parameters={"rope_type": "linear", "rope_theta": 10000.0,
                                                  "factor": 2.0})),
    "mistral": ("MistralConfig", "MistralForCausalLM",
                dict(COMMON, tie_word_embeddings=False, sliding_window=None,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(COMMON, tie_word_embeddings=True,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM",
              dict(COMMON, hidden_size=64, head_dim=32, tie_word_embeddings=True,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
}


# Real checkpoints the check also reads, with their transformers class.
REAL = {"smollm2": "LlamaForCausalLM"}


def make(out_dir):
    for i, (name, (config_class, model_class, kwargs)) in enumerate(FAMILIES.items()):
        torch.manual_seed(100 + i)
        config = getattr(transformers, config_class)(**kwargs)
        model = getattr(transformers, model_class)(config)
        with torch.no_grad():
            for param_name, p in model.named_parameters():
                if "norm" in param_name:
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                elif param_name.endswith(".bias"):
                    p.copy_(0.1 * torch.randn_like(p))
        model.save_pretrained(os.path.join(out_dir, name))


def check(hf_dir, probe_path, name):
    probe = json.load(open(probe_path))
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info[kind], (name, kind, info[kind])
    want = FAMILIES[name][1] if name in FAMILIES else REAL[name]
    assert type(model).__name__ == want, (name, type(model).__name__)
    family = want.removesuffix("ForCausalLM").lower()
    assert probe["family"] == family, (name, probe["family"], family)
    model.eval()
    tokens = probe["tokens"]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0]
    diff = (logits - torch.tensor(probe["logits"])).abs().max().item()
    assert diff < 1e-4, f"{name}: logits differ by {diff}"
    # Every greedy token is transformers' argmax for its prefix.
    seq = tokens + probe["greedy"]
    with torch.no_grad():
        full = model(torch.tensor([seq])).logits[0]
    for t in range(len(tokens), len(seq)):
        assert full[t - 1].argmax().item() == seq[t], f"{name}: greedy token {t} differs"
    print(f"{name}: {type(model).__name__} logits within {diff:.2e}, "
          f"{len(probe['greedy'])} greedy tokens are transformers' argmax")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "names":
        print(" ".join(FAMILIES))
    else:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
