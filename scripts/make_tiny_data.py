"""Writes the raw material of the tiny data set (called by make-tiny-data.sh).

    make_tiny_data.py OUT_DIR

OUT_DIR receives, all derived deterministically from installed packages:
  text.jsonl               English fortunes (package `fortunes`), one record each
  digits/NNNN.png          scikit-learn's bundled 8x8 digits as 8-bit grayscale PNGs
  captions.jsonl           one captioned digit per record: "<image> the digit seven",
                           CAPTIONS_PER_DIGIT records per training digit
  captions_heldout.jsonl   the held-out digits as prompts "<image> the digit" with the
                           name as "answer" (and the whole caption as "text")
  reasoning_train.jsonl    problems over digit images and numbers with step-by-step
  reasoning_heldout.jsonl  solutions "<think>...</think><answer>N</answer>" and the
                           reference answer in "answer" (held-out: other images)
"""

import json
import os
import random
import re
import struct
import sys
import zlib

from sklearn.datasets import load_digits

FORTUNES_DIR = "/usr/share/games/fortunes"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
HELDOUT_FROM = 1600
CAPTIONS_PER_DIGIT = 10  # digits [0, 1600) for training records, the rest held out
N_TRAIN_PROBLEMS = 1200
N_HELDOUT_PROBLEMS = 600  # enough that one point of accuracy is 6 problems


def write_png(path, rows):
    """An 8-bit grayscale PNG of `rows` (lists of 0..255)."""
    height, width = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def fortunes():
    """Every fortune of the English files, overstrike and control characters removed."""
    texts = []
    for name in sorted(os.listdir(FORTUNES_DIR)):
        path = os.path.join(FORTUNES_DIR, name)
        if "." in name or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            content = f.read()
        content = re.sub(r".\x08", "", content)  # "_\bx" underlines, "x\bx" bold
        content = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", content)
        for text in content.split("\n%\n"):
            text = text.strip("\n%").rstrip()
            if text.strip():
                texts.append(text)
    return texts


def caption(rng, digit):
    name = NAMES[digit]
    return rng.choice([
        f"<image> the digit {name}",
        f"<image> a handwritten {digit}",
        f"This image shows the number {name}: <image>",
        f"<image> {digit}",
        f"A small picture of a {name}. <image>",
    ])


def heldout_caption(i, digit):
    """A held-out digit as a prompt and its answer; "text" is the caption they make."""
    return {
        "prompt": "<image> the digit",
        "images": [f"digits/{i:04d}.png"],
        "answer": NAMES[digit],
        "text": f"<image> the digit {NAMES[digit]}",
    }


def problem(rng, pool, labels):
    """One reasoning record over images from `pool` (indices into `labels`)."""
    kind = rng.choice(["sum", "max", "product", "plus", "count"])
    if kind == "sum":
        n = rng.choice([2, 3])
        picks = rng.sample(pool, n)
        values = [labels[i] for i in picks]
        prompt = "What is the sum of the digits in these images? " + " ".join(["<image>"] * n)
        steps = [f"Image {k + 1} shows the digit {v}." for k, v in enumerate(values)]
        total = 0
        for v in values:
            steps.append(f"Adding {v} to {total} gives {total + v}.")
            total += v
        steps.append(f"So the sum is {total}.")
        answer = total
    elif kind == "max":
        picks = rng.sample(pool, 2)
        a, b = labels[picks[0]], labels[picks[1]]
        prompt = "Which digit is larger, the first or the second? Answer with the larger digit. <image> <image>"
        steps = [f"The first image shows {a}.", f"The second image shows {b}."]
        if a == b:
            steps.append(f"Both are {a}, so the larger digit is {a}.")
        else:
            steps.append(f"{max(a, b)} is greater than {min(a, b)}, so the larger digit is {max(a, b)}.")
        answer = max(a, b)
    elif kind == "product":
        picks = rng.sample(pool, 2)
        a, b = labels[picks[0]], labels[picks[1]]
        prompt = "Multiply the two digits shown: <image> <image>"
        steps = [f"The first image shows {a}.", f"The second image shows {b}.",
                 f"{a} times {b} is {a * b}."]
        answer = a * b
    elif kind == "plus":
        picks = [rng.choice(pool)]
        a = labels[picks[0]]
        n = rng.randint(1, 50)
        prompt = f"What is {n} plus the digit in this image? <image>"
        steps = [f"The image shows the digit {a}.", f"{n} + {a} = {n + a}."]
        answer = n + a
    else:
        n = rng.choice([2, 3, 4])
        picks = rng.sample(pool, n)
        values = [labels[i] for i in picks]
        target = rng.choice(values)
        prompt = (f"How many of these images show the digit {target}? " +
                  " ".join(["<image>"] * n))
        steps = [f"Image {k + 1} shows {v}{' (a match)' if v == target else ''}."
                 for k, v in enumerate(values)]
        count = values.count(target)
        steps.append(f"That makes {count} image{'s' if count != 1 else ''} showing {target}.")
        answer = count
    solution = "<think>" + " ".join(steps) + "</think><answer>" + str(answer) + "</answer>"
    return {
        "text": prompt + " " + solution,
        "images": [f"digits/{i:04d}.png" for i in picks],
        "prompt": prompt,
        "solution": solution,
        "answer": str(answer),
    }


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "digits"), exist_ok=True)

    write_jsonl(os.path.join(out, "text.jsonl"), [{"text": t} for t in fortunes()])

    digits = load_digits()
    labels = [int(t) for t in digits.target]
    for i, image in enumerate(digits.images):  # (8, 8) floats in 0..16
        rows = [[round(v * 255 / 16) for v in row] for row in image]
        write_png(os.path.join(out, "digits", f"{i:04d}.png"), rows)

    rng = random.Random(1234)
    # Several captions per digit: images are a small share of the tokens, and
    # the model must see each one a few times to learn to read digits.
    caption_rng = random.Random(4321)
    write_jsonl(os.path.join(out, "captions.jsonl"),
                [{"text": caption(caption_rng, labels[i]), "images": [f"digits/{i:04d}.png"]}
                 for _ in range(CAPTIONS_PER_DIGIT) for i in range(HELDOUT_FROM)])
    write_jsonl(os.path.join(out, "captions_heldout.jsonl"),
                [heldout_caption(i, labels[i]) for i in range(HELDOUT_FROM, len(labels))])
    train_pool = list(range(HELDOUT_FROM))
    heldout_pool = list(range(HELDOUT_FROM, len(labels)))
    write_jsonl(os.path.join(out, "reasoning_train.jsonl"),
                [problem(rng, train_pool, labels) for _ in range(N_TRAIN_PROBLEMS)])
    write_jsonl(os.path.join(out, "reasoning_heldout.jsonl"),
                [problem(rng, heldout_pool, labels) for _ in range(N_HELDOUT_PROBLEMS)])


if __name__ == "__main__":
    main()
