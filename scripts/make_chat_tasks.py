"""Writes the chat-model task suite: arithmetic of graded difficulty and one-
and two-step word problems, each with its reference answer, for RL from a
pretrained chat model (SmolLM2-135M-Instruct and larger; docs/results.md).

    make_chat_tasks.py OUT_DIR [--seed N]

OUT_DIR receives, deterministically for a seed:
  train.jsonl     problems for RL and for calibrating thresholds
  heldout.jsonl   problems for evaluation only: no held-out problem appears in
                  train.jsonl, under any wording (see `sampled` below)
  heldout-eval.jsonl  its first 280 problems (the file is shuffled), for the
                  evaluations during an RL run (eval.prompts)
  train-easy.jsonl  the training problems of the kinds SmolLM2-135M-Instruct
                  answers right at least 10% of the time (EASY_KINDS): RL
                  learns only from groups whose samples are not all wrong
  MANIFEST.json   the seed, and per file and kind the number of problems

Each record: "prompt" (the user turn, plain text; the chat template is applied
by muse-train with data.chat=true), "answer" (the reference, an integer as
text), "kind", "template" ("bare" for arithmetic), "level" (1 easiest .. 5),
"steps" (arithmetic operations) and "expression" (the operations over the
numbers in the prompt, which evaluates to the answer). Answers are read from responses with
rewards.correctness.extract (last_number suits a model answering in prose).

Difficulty by kind (level, held-out and training counts):
  add_1d    1  7 + 5                                      40 / 55 (of 100 pairs)
  add_2d    2  47 + 38                                   300 / 3000
  sub_2d    2  83 - 29 (never negative)                  300 / 3000
  mul_1d2d  3  7 × 34                                    200 / 450 (of 720 pairs)
  add_3d    3  482 + 739                                 300 / 3000
  word_1    4  one step: buys more, gives away, bags of, shares equally
                                                         500 / 5000
  word_2    5  two steps of those                        500 / 5000
"""

import argparse
import json
import os
import random
import sys

NAMES = ["Tom", "Anna", "Ben", "Maria", "Sam", "Lily", "Omar", "Grace", "Leo", "Nina", "Ravi",
         "Emma", "Jack", "Sofia", "Noah", "Chloe", "Ivan", "Mei", "Lucas", "Zoe"]
# Plurals only: every count in the problems is 2 or more.
OBJECTS = ["apples", "pencils", "marbles", "books", "stickers", "cookies", "oranges", "cards",
           "stamps", "shells", "balloons", "candies", "eggs", "toy cars", "flowers"]
CONTAINERS = ["bags", "boxes", "packs", "baskets", "jars"]


def arithmetic(kind, a, b):
    """(prompt, expression) of a bare arithmetic problem."""
    op = {"add_1d": "+", "add_2d": "+", "sub_2d": "-", "mul_1d2d": "*", "add_3d": "+"}[kind]
    shown = {"+": "+", "-": "-", "*": "\u00d7"}[op]
    return f"What is {a} {shown} {b}?", f"{a} {op} {b}"


# Word problems: each template maps a story (names, objects) and operands to
# (prompt, expression). Operand ranges keep every count at least 2 and every
# intermediate result positive.
def one_step_templates():
    def buys(s, a, b):
        return (f"{s.name} has {a} {s.obj} and buys {b} more. "
                f"How many {s.obj} does {s.name} have now?", f"{a} + {b}")

    def gives(s, a, b):
        return (f"{s.name} has {a} {s.obj} and gives {b} of them to {s.other}. "
                f"How many {s.obj} does {s.name} have left?", f"{a} - {b}")

    def bags(s, a, b):
        return (f"{s.name} buys {a} {s.box} with {b} {s.obj} in each. "
                f"How many {s.obj} does {s.name} buy?", f"{a} * {b}")

    def shares(s, a, b):
        return (f"{s.name} shares {a * b} {s.obj} equally among {a} friends. "
                f"How many {s.obj} does each friend get?", f"{a * b} / {a}")

    return [
        ("buys", buys, lambda r: (r.randrange(2, 100), r.randrange(2, 100))),
        ("gives", gives, lambda r: _minus_pair(r, 100)),
        ("bags", bags, lambda r: (r.randrange(2, 13), r.randrange(2, 26))),
        ("shares", shares, lambda r: (r.randrange(2, 13), r.randrange(2, 26))),
    ]


def two_step_templates():
    def buys_gives(s, a, b, c):
        return (f"{s.name} has {a} {s.obj}, buys {b} more and then gives {c} to {s.other}. "
                f"How many {s.obj} does {s.name} have now?", f"{a} + {b} - {c}")

    def gives_twice(s, a, b, c):
        return (f"{s.name} has {a} {s.obj}, gives {b} to {s.other} and {c} to {s.third}. "
                f"How many {s.obj} does {s.name} have left?", f"{a} - {b} - {c}")

    def bags_plus(s, a, b, c):
        return (f"{s.name} has {a} {s.box} with {b} {s.obj} in each and {c} more {s.obj} "
                f"on the table. How many {s.obj} does {s.name} have in all?", f"{a} * {b} + {c}")

    def bags_gives(s, a, b, c):
        return (f"{s.name} buys {a} {s.box} with {b} {s.obj} in each and gives {c} of them "
                f"to {s.other}. How many {s.obj} does {s.name} keep?", f"{a} * {b} - {c}")

    def buys_shares(s, a, b, c):
        return (f"{s.name} has {a} {s.obj} and buys {b} more. {s.name} then shares them "
                f"equally among {c} friends. How many {s.obj} does each friend get?",
                f"({a} + {b}) / {c}")

    def times_left(s, a, b, c):
        # c times what is left after giving some away.
        return (f"{s.name} has {a} {s.obj} and gives {b} to {s.other}. {s.third} has {c} times "
                f"as many {s.obj} as {s.name} has left. How many {s.obj} does {s.third} have?",
                f"({a} - {b}) * {c}")

    def three(r):
        a, b = r.randrange(2, 60), r.randrange(2, 60)
        return a, b, r.randrange(2, a + b - 1)

    def gives_two(r):
        a = r.randrange(6, 90)
        b = r.randrange(2, a - 3)
        return a, b, r.randrange(2, a - b)

    def bags_more(r):
        return r.randrange(2, 10), r.randrange(2, 13), r.randrange(2, 30)

    def bags_less(r):
        a, b = r.randrange(2, 10), r.randrange(2, 13)
        return a, b, r.randrange(2, a * b)

    def share_after(r):
        c, each = r.randrange(2, 10), r.randrange(2, 13)
        a = r.randrange(2, c * each - 1)
        return a, c * each - a, c

    def times_left_operands(r):
        a = r.randrange(5, 40)
        return a, r.randrange(2, a - 2), r.randrange(2, 6)

    return [
        ("buys_gives", buys_gives, three),
        ("gives_twice", gives_twice, gives_two),
        ("bags_plus", bags_plus, bags_more),
        ("bags_gives", bags_gives, bags_less),
        ("buys_shares", buys_shares, share_after),
        ("times_left", times_left, times_left_operands),
    ]


def _minus_pair(r, top):
    a = r.randrange(4, top)
    return a, r.randrange(2, a - 1)


class Story:
    """Who and what a word problem is about; three distinct names."""

    def __init__(self, r):
        self.name, self.other, self.third = r.sample(NAMES, 3)
        self.obj = r.choice(OBJECTS)
        self.box = r.choice(CONTAINERS)


def evaluate(expression):
    """The integer value of an expression of + - * / and parentheses over
    integers, where every division is exact."""
    value = eval(expression, {"__builtins__": {}}, {})  # only digits, spaces and + - * / ( )
    assert value == int(value), expression
    return int(value)


def record(kind, template, level, steps, prompt, expression):
    return {"prompt": prompt, "answer": str(evaluate(expression)), "kind": kind,
            "template": template, "level": level, "steps": steps, "expression": expression}


# Consecutive repeats after which a template counts as exhausted.
EXHAUSTED_AFTER = 500


def sampled(kind, level, steps, templates, n_heldout, n_train, rng):
    """Problems of one kind, held-out first, then training: a template drawn
    uniformly among those not exhausted, then its numbers and story. What
    makes two problems the same is the kind, the template and the numbers,
    whatever the names and objects; a problem is never in both files. A
    template with few distinct problems (bags of a dozen) runs out first,
    which shifts the training file towards the others (MANIFEST.json counts
    each template)."""
    seen = set()
    live = list(templates)
    repeats = {name: 0 for name, _, _ in templates}
    files = ([], [])
    for target, out in zip((n_heldout, n_train), files):
        while len(out) < target:
            assert live, f"{kind}: fewer than {n_heldout + n_train} distinct problems"
            name, make, operands = rng.choice(live)
            numbers = tuple(operands(rng))
            if (name, numbers) in seen:
                repeats[name] += 1
                if repeats[name] >= EXHAUSTED_AFTER:
                    live = [t for t in live if t[0] != name]
                continue
            repeats[name] = 0
            seen.add((name, numbers))
            out.append(record(kind, name, level, steps, *make(Story(rng), *numbers)))
    return files


def arithmetic_template(kind, lo, hi, ordered=False):
    """The one template of a bare arithmetic kind: numbers in [lo, hi), the
    larger first when `ordered` (differences are never negative)."""
    def operands(rng):
        a, b = rng.randrange(lo, hi), rng.randrange(lo, hi)
        return (max(a, b), min(a, b)) if ordered else (a, b)
    return [("bare", lambda _story, a, b: arithmetic(kind, a, b), operands)]


def build(seed):
    rng = random.Random(seed)
    heldout, train = [], []
    kinds = [  # kind, level, steps, templates, held-out, train
        ("add_1d", 1, 1, arithmetic_template("add_1d", 0, 10), 40, 55),
        ("add_2d", 2, 1, arithmetic_template("add_2d", 10, 100), 300, 3000),
        ("sub_2d", 2, 1, arithmetic_template("sub_2d", 10, 100, ordered=True), 300, 3000),
        ("mul_1d2d", 3, 1, [("bare", lambda _s, a, b: arithmetic("mul_1d2d", a, b),
                             lambda r: (r.randrange(2, 10), r.randrange(10, 100)))], 200, 450),
        ("add_3d", 3, 1, arithmetic_template("add_3d", 100, 1000), 300, 3000),
        ("word_1", 4, 1, one_step_templates(), 500, 5000),
        ("word_2", 5, 2, two_step_templates(), 500, 5000),
    ]
    for kind, level, steps, templates, n_heldout, n_train in kinds:
        held, trained = sampled(kind, level, steps, templates, n_heldout, n_train, rng)
        heldout += held
        train += trained
    rng.shuffle(heldout)
    rng.shuffle(train)
    return heldout, train


def write_jsonl(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)  # never a half-written file where a complete one was


def counts(records):
    """Problems per kind, and per template within each word-problem kind."""
    out = {}
    for r in records:
        key = r["kind"] if r["template"] == "bare" else f"{r['kind']}/{r['template']}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


# Kinds SmolLM2-135M-Instruct answers right at least 10% of the time (greedy,
# 128 tokens, all held-out problems; docs/results.md): add_1d 75%, add_2d 19%,
# word_1 15%, mul_1d2d 14%, against 3-5% for sub_2d, add_3d and word_2.
EASY_KINDS = ("add_1d", "add_2d", "mul_1d2d", "word_1")

# Held-out problems evaluated during an RL run: a greedy pass over 280 costs
# a few minutes on 2 cores, where all 2,140 would cost a quarter of an hour.
EVAL_SUBSET = 280


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    heldout, train = build(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    write_jsonl(os.path.join(args.out_dir, "heldout.jsonl"), heldout)
    write_jsonl(os.path.join(args.out_dir, "train.jsonl"), train)
    write_jsonl(os.path.join(args.out_dir, "heldout-eval.jsonl"), heldout[:EVAL_SUBSET])
    easy = [r for r in train if r["kind"] in EASY_KINDS]
    write_jsonl(os.path.join(args.out_dir, "train-easy.jsonl"), easy)
    manifest = {"seed": args.seed, "heldout": counts(heldout), "train": counts(train),
                "train-easy": counts(easy)}
    with open(os.path.join(args.out_dir, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"{args.out_dir}: {len(heldout)} held-out and {len(train)} training problems "
          f"(seed {args.seed})")


if __name__ == "__main__":
    sys.exit(main())
