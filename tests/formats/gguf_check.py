"""Reads an exported GGUF file with the `gguf` package and checks it against
the Hugging Face export of the same checkpoint (which hf_check.py compares
with muse-train itself).

    gguf_check.py FILE.gguf HF_DIR DTYPE    (DTYPE: fp32, fp16 or bf16)

Checks every llama.cpp key with its exact value type, the tokenizer arrays,
every tensor's name, type and (ggml-order) shape, and that each tensor,
dequantised, equals the HF tensor in DTYPE (norms in F32; q/k rows in GGML's
interleaved rotary order).
"""

import json
import os
import sys

import numpy as np
import torch
from gguf import GGUFReader, GGUFValueType as T
from safetensors.torch import load_file


def main():
    path, hf_dir, dtype = sys.argv[1:4]
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    tok = json.load(open(os.path.join(hf_dir, "tokenizer.json")))
    r = GGUFReader(path)

    def value(key, vtype):
        f = r.fields[key]
        assert f.types[0] == vtype, (key, f.types, vtype)
        if vtype == T.STRING:
            return bytes(f.parts[f.data[0]]).decode()
        if vtype == T.ARRAY:
            return f
        return f.parts[f.data[0]][0]

    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    expect = {
        "general.architecture": (T.STRING, "llama"),
        "general.file_type": (T.UINT32, {"fp32": 0, "fp16": 1, "bf16": 32}[dtype]),
        "general.quantization_version": (T.UINT32, 2),
        "general.alignment": (T.UINT32, 32),
        "llama.context_length": (T.UINT32, cfg["max_position_embeddings"]),
        "llama.embedding_length": (T.UINT32, cfg["hidden_size"]),
        "llama.block_count": (T.UINT32, cfg["num_hidden_layers"]),
        "llama.feed_forward_length": (T.UINT32, cfg["intermediate_size"]),
        "llama.attention.head_count": (T.UINT32, cfg["num_attention_heads"]),
        "llama.attention.head_count_kv": (T.UINT32, cfg["num_key_value_heads"]),
        "llama.rope.dimension_count": (T.UINT32, head_dim),
        "llama.vocab_size": (T.UINT32, cfg["vocab_size"]),
        "tokenizer.ggml.model": (T.STRING, "gpt2"),
        "tokenizer.ggml.pre": (T.STRING, "llama-bpe"),
        "tokenizer.ggml.bos_token_id": (T.UINT32, cfg["bos_token_id"]),
        "tokenizer.ggml.eos_token_id": (T.UINT32, cfg["eos_token_id"]),
        "tokenizer.ggml.add_bos_token": (T.BOOL, True),
    }
    for key, (vtype, want) in expect.items():
        got = value(key, vtype)
        assert got == want, (key, got, want)
    assert abs(value("llama.rope.freq_base", T.FLOAT32) - cfg["rope_theta"]) < 1e-3
    assert abs(value("llama.attention.layer_norm_rms_epsilon", T.FLOAT32) - cfg["rms_norm_eps"]) < 1e-9

    tokens = value("tokenizer.ggml.tokens", T.ARRAY)
    assert tokens.types == [T.ARRAY, T.STRING] and len(tokens.data) == cfg["vocab_size"]
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    by_id.update({a["id"]: a["content"] for a in tok["added_tokens"]})
    for i in (0, 1, 300, cfg["vocab_size"] - 1):
        assert bytes(tokens.parts[tokens.data[i]]).decode() == by_id[i], i
    types = value("tokenizer.ggml.token_type", T.ARRAY)
    assert types.types == [T.ARRAY, T.INT32]
    assert types.parts[types.data[cfg["bos_token_id"]]][0] == 3  # control
    merges = value("tokenizer.ggml.merges", T.ARRAY)
    assert merges.types == [T.ARRAY, T.STRING] and len(merges.data) == len(tok["model"]["merges"])

    hf = load_file(os.path.join(hf_dir, "model.safetensors"))
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
                 "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(cfg["num_hidden_layers"]):
        for a, b in per_layer.items():
            names[f"model.layers.{i}.{a}.weight"] = f"blk.{i}.{b}.weight"
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    ggml_type = {"fp32": 0, "fp16": 1, "bf16": 30}[dtype]
    tensors = {t.name: t for t in r.tensors}
    assert set(tensors) == {names[n] for n in hf}, sorted(set(tensors) ^ {names[n] for n in hf})
    for hf_name, w in hf.items():
        t = tensors[names[hf_name]]
        assert list(t.shape) == list(reversed(w.shape)), (t.name, t.shape, w.shape)
        if w.dim() == 1:
            assert t.tensor_type == 0, (t.name, "norms stay F32")
            want = w
        else:
            assert t.tensor_type == ggml_type, (t.name, t.tensor_type)
            want = w.to(torch_dtype)
        if "q_proj" in hf_name or "k_proj" in hf_name:
            heads = cfg["num_attention_heads"] if "q_proj" in hf_name else cfg["num_key_value_heads"]
            want = want.reshape(heads, 2, w.shape[0] // heads // 2, -1).transpose(1, 2).reshape(w.shape)
        raw = np.asarray(t.data)
        if t.tensor_type == 30:  # bf16 arrives as bytes
            got = torch.from_numpy(raw.copy().view(np.int16)).view(torch.bfloat16)
        else:
            got = torch.from_numpy(raw.copy())
        got = got.reshape(w.shape).to(torch.float32)
        assert torch.equal(got, want.to(torch.float32)), t.name
    print(f"gguf: {len(r.fields)} keys and {len(r.tensors)} {dtype} tensors match {hf_dir}")


if __name__ == "__main__":
    main()
