"""Writes the seeds of tests/fuzz/corpus derived from real model files, so
that each target starts from what real checkpoints hold (the venv's python:
it needs torch and transformers).

    python tests/fuzz/seeds.py SMOLLM2_DIR

SMOLLM2_DIR is SmolLM2-135M-Instruct as the tests download it
(~/.cache/muse-train/smollm2-135m-instruct, scripts/smollm2.py). Writes:

  fuzz_hf_config/        config.json of every text family as transformers writes
                         it (tests/formats/families.py: Llama 3.1, Llama with
                         linear rope scaling, Mistral, Qwen2, Qwen3) and
                         SmolLM2's own
  fuzz_tokenizer/        SmolLM2's tokenizer.json, its vocabulary cut to the first
                         512 ids and the merges among them (the whole file is
                         3.5 MB: too slow to mutate)
  fuzz_tokenizer_config/ SmolLM2's tokenizer_config.json and generation_config.json;
                         and per real chat template of tests/data/chat_templates,
                         a tokenizer_config.json holding it with its family's bos
                         and eos tokens (tests/data/chat_template_check.py)

Each file is written only from its sources: running the script again gives
the same bytes.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"
GENERATION_CONFIG_LINE = "\n#generation_config.json\n"  # fuzz_tokenizer_config.cpp's separator
KEPT_IDS = 512

sys.path.insert(0, str(ROOT / "tests/data"))
from chat_template_check import TOKENS  # noqa: E402


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({len(text.encode())} bytes)")


def hf_configs(smollm2):
    out = CORPUS / "fuzz_hf_config"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, str(ROOT / "tests/formats/families.py"), "make", tmp],
                       check=True, capture_output=True)
        for family in sorted(os.listdir(tmp)):
            text = (pathlib.Path(tmp) / family / "config.json").read_text(encoding="utf-8")
            write(out / f"{family.replace('_', '-')}.json", text)
    write(out / "smollm2-135m-instruct.json", (smollm2 / "config.json").read_text(encoding="utf-8"))


def reduced_tokenizer(smollm2):
    data = json.loads((smollm2 / "tokenizer.json").read_text(encoding="utf-8"))
    model = data["model"]
    vocab = {token: i for token, i in model["vocab"].items() if i < KEPT_IDS}
    model["vocab"] = dict(sorted(vocab.items(), key=lambda item: item[1]))
    model["merges"] = [pair for pair in model["merges"]
                       if pair[0] in vocab and pair[1] in vocab and pair[0] + pair[1] in vocab]
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < KEPT_IDS]
    write(CORPUS / "fuzz_tokenizer/smollm2-135m-instruct.json",
          json.dumps(data, ensure_ascii=False, indent=1))


def tokenizer_configs(smollm2):
    out = CORPUS / "fuzz_tokenizer_config"
    write(out / "smollm2-135m-instruct.json",
          (smollm2 / "tokenizer_config.json").read_text(encoding="utf-8").rstrip("\n") +
          GENERATION_CONFIG_LINE + (smollm2 / "generation_config.json").read_text(encoding="utf-8"))
    for template in sorted((ROOT / "tests/data/chat_templates").glob("*.jinja")):
        bos, eos = next((b, e) for prefix, b, e in TOKENS if template.name.startswith(prefix))
        config = {"eos_token": eos, "chat_template": template.read_text(encoding="utf-8")}
        if bos is not None:
            config["bos_token"] = bos
        write(out / f"{template.stem}.json", json.dumps(config, ensure_ascii=False, indent=2))


def main():
    smollm2 = pathlib.Path(sys.argv[1])
    hf_configs(smollm2)
    reduced_tokenizer(smollm2)
    tokenizer_configs(smollm2)


if __name__ == "__main__":
    main()
