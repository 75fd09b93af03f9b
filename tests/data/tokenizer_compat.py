"""muse-train's tokenizer against the `tokenizers` package, both ways.

    python tokenizer_compat.py TOKENIZER_TOOL

1. Pre-tokenizer: the GPT-2 and Llama-3 regexes split text around every
   Unicode code point the same way in PCRE2 (C++) and Oniguruma (`tokenizers`).
2. A tokenizer trained in C++ and saved loads in `tokenizers` and encodes the
   test texts to the same ids (special tokens parsed, and not).
3. Tokenizers trained by `tokenizers` (GPT-2 and Llama-3 style; merges as
   pairs and as "a b" strings; ignore_merges; add_prefix_space) load in C++
   and encode to the same ids.
4. NFC normalizer: C++ normalizes every assigned code point, in contexts that
   compose, reorder and block, as `tokenizers`' NFC does; a Qwen2-style
   tokenizer trained by `tokenizers` with the NFC normalizer (and added tokens
   matched after normalization), and the C++-trained ones with NFC put in,
   encode to the same ids in both.
Every C++ encoding must also decode back to its text (but with add_prefix_space or a
normalizer). Exit status 0 when all agree; otherwise the first differences are printed.
"""
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, trainers)

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<image>", "<think>",
            "</think>", "<answer>", "</answer>"]
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

LINES = [
    "The quick brown fox jumps over the lazy dog. I'm sure you're right; they'll see, we'd go.",
    "IT'S LOUD, YOU'VE HEARD, WE'LL SEE. Don't! Can't? Won't...",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Maß, Straße, ÄÖÜ.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ἀρχιμήδης εὕρηκα.",
    "日本語のテキストと中文文本，还有한국어 텍스트도 있습니다。カタカナ ひらがな",
    "مرحبا بالعالم، هذا نص عربي. שלום עולם. नमस्ते दुनिया। สวัสดีชาวโลก",
    "Numbers: 1234567890, 3.14159, 1,000,000, 2024-06-30, ٣٤٥٦, ①②③, ½ ¾, ⅷ, 𝟙𝟚𝟛.",
    "   indented\tline  with   runs\t\tof whitespace   \n\n\r\n \u00a0nbsp\u3000ideo\u2028ls",
    "Emoji 👍🏽 and 👨‍👩‍👧 family, naïve café résumé, e\u0301 combining, ﬁ ligature.",
    "code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; } // done\n\tif x: return {'a': 1}",
    "<|begin_of_text|>The <think>reasoning here</think> <answer>42</answer><|end_of_text|>",
    "<image><image> caption <|pad|><|pad|> <think>\n</think>\n<answer> x </answer>",
    # What NFC changes: decomposed and precomposed pairs, Hangul jamo, marks
    # out of order, singletons, exclusions; and what it leaves alone.
    "Decomposed e\u0301te\u0301 cafe\u0301 n\u0303o A\u030a o\u0308\u0304, precomposed été café ño Å ȫ",
    "\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 (jamo) 한국어 (syllables) \u1100\u1161 \u1100\u1161\u11a8",
    "a\u0301\u0316 q\u0307\u0323 \u212b \u2126 \u0958 \u0915\u093c \U0001d15e ﬁ ｱ ① 日本語 👍🏽 plain",
    "Unicode 10+: a\u1dfa\u0301 \U00011935\U00011930 \u0d3b\u0301 <think>e</think>\u0301 cafe\u0301 \u1100\u1161",
]

# Characters random texts are made of: scripts, digits, spaces, punctuation.
POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n\r\x0b\x0c\x85\u00a0\u1680\u2000\u2009\u200b\u2028\u2029\u202f\u3000")
        + list("'\"!?.,;:-_()[]{}<>|/\\@#$%^&*+=~`") + list("äöüßéèçñøåœæ")
        + list("жщюяЖЩ") + list("αβγΩ") + list("日本語中文한국어") + list("٣٤٥١") + list("①½ⅷ𝟙")
        + ["👍", "🏽", "\u200d", "\u0301", "ſ", "K", "İ"] + ["'s", "'S", "'ll", "'LL", "'ve"]
        + ["\u0300", "\u0316", "\u0323", "\u1100", "\u1161", "\u11a8", "e\u0301", "\u212b",
           "\u1dfa", "cafe\u0301"]
        + SPECIALS + ["<|", "|>", "<think", "</"])


def texts():
    rng = random.Random(5)
    out = list(LINES) + ["", " ", "  ", "\n", "a", "'s", "<think>", "<|pad|", "x" * 300,
                         " " * 50 + "x", "1" * 40, "\n\n\n  \n"]
    for _ in range(600):
        out.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))))
    return out


def corpus():
    rng = random.Random(11)
    lines = []
    for i in range(400):
        line = LINES[i % len(LINES)]
        lines.append(line + " " + " ".join(rng.choice(POOL) for _ in range(8)) + f" {i * 37}\n")
    return "".join(lines)


class Failures:
    def __init__(self):
        self.count = 0

    def report(self, what):
        self.count += 1
        if self.count <= 20:
            print("MISMATCH", what)


def run_tool(tool, *args, stdin=None):
    result = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{tool} {' '.join(args[:1])} failed: {result.stderr.strip()}")
    return result.stdout


def cpp_encode(tool, path, samples):
    """C++ ids of (text, special) samples, and whether each decodes back."""
    stdin = "".join(json.dumps({"text": t, "special": s}) + "\n" for t, s in samples)
    lines = run_tool(tool, "encode", path, stdin=stdin).splitlines()
    return [json.loads(line) for line in lines]


def compare_encodings(tool, path, label, failures, roundtrip=True):
    hf = Tokenizer.from_file(path)
    samples = [(t, s) for t in texts() for s in (True, False)]
    cpp = cpp_encode(tool, path, samples)
    for (text, special), got in zip(samples, cpp):
        hf.encode_special_tokens = not special
        want = hf.encode(text, add_special_tokens=False).ids
        if got["ids"] != want:
            failures.report(f"{label} special={special} {text!r}: C++ {got['ids']} HF {want}")
        if roundtrip and not got["roundtrip"]:
            failures.report(f"{label}: C++ decode(encode({text!r})) differs")
    print(f"{label}: {len(samples)} encodings compared")


def assigned(first, last):
    """The code points in [first, last) that Python's Unicode data assigns,
    private use excepted. Characters newer than PCRE2's Unicode tables (14.0
    for PCRE2 10.42) are left out: PCRE2 does not know them as letters yet."""
    return [cp for cp in range(first, last)
            if unicodedata.category(chr(cp)) not in ("Cn", "Co", "Cs")]


def probe_text(code_points):
    """Each code point in contexts the regexes tell apart."""
    parts = []
    for cp in code_points:
        c = chr(cp)
        parts.append(f"x{c}x 1{c}1 {c}{c}\t'{c} !{c}\n{c}  {c}.{c}\r\n'")
    return "".join(parts)


def compare_pieces(tool, workdir, failures):
    splitters = {
        "llama3": pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
        "gpt2": pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    }
    path = os.path.join(workdir, "probe.txt")
    block = 0x11000
    for first in range(0, 0x110000, block):
        text = probe_text(assigned(first, first + block))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        byte_at = [0] + list(itertools.accumulate(len(c.encode()) for c in text))
        for name, splitter in splitters.items():
            want = [[byte_at[a], byte_at[b]] for _, (a, b) in splitter.pre_tokenize_str(text)]
            got = json.loads(run_tool(tool, "pieces", name, path))
            if got != want:
                i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                         min(len(got), len(want)))
                raw = text.encode()
                at = (got + want)[min(i, len(got) + len(want) - 1)][0]
                failures.report(f"pre-tokenizer {name}, code points {first:#x}..: first difference "
                                f"at piece {i} near {raw[max(0, at - 20):at + 20]!r}: C++ "
                                f"{got[i:i + 3]} HF {want[i:i + 3]}")
    print(f"pre-tokenizers: all {len(assigned(0, 0x110000))} assigned code points (Unicode "
          f"{unicodedata.unidata_version}) compared in context")


def nfc_probe(code_points):
    """Each code point alone, decomposed, and where it may compose, reorder or
    block: after a starter and before a mark, and around Hangul jamo."""
    parts = []
    for cp in code_points:
        c = chr(cp)
        parts.append(f"{c}|{unicodedata.normalize('NFD', c)}|a{c}\u0301|a\u0316{c}|{c}\u0301|"
                     f"{c}\u0316|\u1100{c}|{c}\u1161|{c}\u11a8|")
    return "".join(parts)


def compare_nfc(tool, workdir, failures):
    nfc = normalizers.NFC()
    path = os.path.join(workdir, "nfc.txt")
    block = 0x11000
    for first in range(0, 0x110000, block):
        text = nfc_probe(assigned(first, first + block))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        want = nfc.normalize_str(text)
        got = subprocess.run([tool, "nfc", path], capture_output=True, check=True).stdout
        got = got.decode("utf-8")
        if got != want:
            i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                     min(len(got), len(want)))
            failures.report(f"NFC, code points {first:#x}..: first difference at character {i}: "
                            f"C++ {got[max(0, i - 8):i + 8]!r} HF {want[max(0, i - 8):i + 8]!r}")
    print(f"NFC: all {len(assigned(0, 0x110000))} assigned code points compared in context")


def hf_trained(style, workdir):
    tok = Tokenizer(models.BPE())
    if style in ("llama3", "qwen2"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3 if style == "llama3" else QWEN2),
                                 behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    if style == "qwen2":
        # As in Qwen2's tokenizer.json; the normalizer also applies in training.
        tok.normalizer = normalizers.NFC()
    tok.train_from_iterator(corpus().splitlines(keepends=True), trainer)
    if style == "qwen2":
        # Matched in the normalized text, with their contents normalized too.
        tok.add_tokens([AddedToken("cafe\u0301", normalized=True),
                        AddedToken("\u1100\u1161", normalized=True)])
    path = os.path.join(workdir, f"hf_{style}.json")
    tok.save(path)
    return path


def variant(path, name, change):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    change(data)
    out = path.replace(".json", f"_{name}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    return out


def legacy_merges(data):
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]


def ignore_merges(data):
    data["model"]["ignore_merges"] = True


def prefix_space(data):
    data["pre_tokenizer"]["add_prefix_space"] = True


def nfc(data):
    data["normalizer"] = {"type": "NFC"}


def nfc_sequence(data):
    data["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}


def main():
    tool = sys.argv[1]
    failures = Failures()
    with tempfile.TemporaryDirectory() as workdir:
        compare_pieces(tool, workdir, failures)
        compare_nfc(tool, workdir, failures)

        corpus_path = os.path.join(workdir, "corpus.txt")
        with open(corpus_path, "w", encoding="utf-8") as f:
            f.write(corpus())
        for style in ("llama3", "gpt2"):
            path = os.path.join(workdir, f"cpp_{style}.json")
            run_tool(tool, "train", path, style, "1000", corpus_path)
            compare_encodings(tool, path, f"C++-trained {style} in tokenizers", failures)
            compare_encodings(tool, variant(path, "nfc", nfc),
                              f"C++-trained {style} with NFC in tokenizers", failures,
                              roundtrip=False)

        llama3 = hf_trained("llama3", workdir)
        gpt2 = hf_trained("gpt2", workdir)
        qwen2 = hf_trained("qwen2", workdir)
        for label, path in [
                ("tokenizers-trained llama3", llama3),
                ("tokenizers-trained llama3, ignore_merges",
                 variant(llama3, "ignore", ignore_merges)),
                ("tokenizers-trained gpt2", gpt2),
                ("tokenizers-trained gpt2, merges as strings", variant(gpt2, "legacy", legacy_merges)),
                ("tokenizers-trained gpt2, add_prefix_space", variant(gpt2, "prefix", prefix_space)),
                ("tokenizers-trained qwen2, NFC", qwen2),
                ("tokenizers-trained qwen2, NFC in a Sequence",
                 variant(qwen2, "sequence", nfc_sequence))]:
            # add_prefix_space adds a space that decoding keeps, NFC changes
            # the text: no round trip.
            compare_encodings(tool, path, label + " in C++", failures,
                              roundtrip="add_prefix_space" not in label and "NFC" not in label)
    if failures.count:
        sys.exit(f"{failures.count} mismatches")
    print("all agree")


if __name__ == "__main__":
    main()
