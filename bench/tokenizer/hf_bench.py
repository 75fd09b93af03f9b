"""The `tokenizers` side of bench/tokenizer/run.sh, and its corpus.

    python hf_bench.py prepare OUT_DIR
        OUT_DIR/docs.jsonl: the English fortunes (/usr/share/games/fortunes, the
        Debian `fortunes` package), one {"text": ...} per fortune, '%' lines gone.
        OUT_DIR/train.txt: the fortunes, then Python's standard library sources,
        cut at 10 MiB: the training corpus.
    python hf_bench.py train OUT.json gpt2|llama3 VOCAB_SIZE FILE
    python hf_bench.py encode TOKENIZER.json DOCS.jsonl REPS

train and encode print one JSON line each, like tokenizer_bench.
"""
import glob
import json
import os
import sys
import sysconfig
import time

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<image>", "<think>",
            "</think>", "<answer>", "</answer>"]
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TRAIN_BYTES = 10 << 20


def fortunes():
    docs = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if os.path.isdir(path) or path.endswith((".dat", ".u8")):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            doc = []
            for line in f:
                if line.rstrip("\n") == "%":
                    if doc:
                        docs.append("".join(doc))
                    doc = []
                else:
                    doc.append(line)
            if doc:
                docs.append("".join(doc))
    return docs


def prepare(out_dir):
    docs = fortunes()
    if not docs:
        sys.exit("no fortunes under /usr/share/games/fortunes: apt-get install fortunes")
    with open(os.path.join(out_dir, "docs.jsonl"), "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")
    text = "".join(docs).encode()
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"),
                                 recursive=True)):
        if len(text) >= TRAIN_BYTES:
            break
        with open(path, "rb") as f:
            text += f.read()
    with open(os.path.join(out_dir, "train.txt"), "wb") as f:
        f.write(text[:TRAIN_BYTES])


def train(out, style, vocab_size, path):
    tok = Tokenizer(models.BPE())
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    start = time.perf_counter()
    tok.train([path], trainer)
    seconds = time.perf_counter() - start
    tok.save(out)
    print(json.dumps({"side": "tokenizers", "what": "train", "pretokenizer": style,
                      "vocab_size": tok.get_vocab_size(), "seconds": seconds}))


def checksum(encodings):
    h = 0
    for encoding in encodings:
        for i in encoding.ids:
            h = (h * 1000003 + i + 1) % (1 << 64)
    return h


def encode(tokenizer_path, docs_path, reps):
    start = time.perf_counter()
    tok = Tokenizer.from_file(tokenizer_path)
    load_seconds = time.perf_counter() - start
    with open(docs_path, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    nbytes = sum(len(d.encode()) for d in docs)
    for mode in ("loop", "batch"):
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            if mode == "loop":
                encodings = [tok.encode(d, add_special_tokens=False) for d in docs]
            else:
                encodings = tok.encode_batch(docs, add_special_tokens=False)
            best = min(best, time.perf_counter() - start)
        print(json.dumps({"side": "tokenizers", "what": "encode", "mode": mode,
                          "threads": 1 if mode == "loop" else os.cpu_count(), "bytes": nbytes,
                          "docs": len(docs), "tokens": sum(len(e.ids) for e in encodings),
                          "seconds": best, "load_seconds": load_seconds,
                          "checksum": checksum(encodings)}))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "prepare":
        prepare(args[0])
    elif command == "train":
        train(args[0], args[1], int(args[2]), args[3])
    elif command == "encode":
        encode(args[0], args[1], int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
