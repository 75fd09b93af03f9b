"""Tests of scripts/make_chat_tasks.py: the chat task suite is deterministic,
its held-out problems never appear in training under any wording, and every
reference answer is what its arithmetic gives, over numbers the prompt states."""

import ast
import json
import operator
import os
import re
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "make_chat_tasks.py")
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
       ast.Div: operator.truediv}


def value(node):
    """An arithmetic expression's value, evaluated here independently of the
    script (integers and + - * / only)."""
    if isinstance(node, ast.Expression):
        return value(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](value(node.left), value(node.right))
    raise AssertionError(f"unexpected expression node {ast.dump(node)}")


def generate(out, seed):
    subprocess.run([sys.executable, SCRIPT, out, "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL)
    return {name: open(os.path.join(out, name), "rb").read()
            for name in ("train.jsonl", "heldout.jsonl", "heldout-eval.jsonl", "train-easy.jsonl",
                         "MANIFEST.json")}


def records(data):
    return [json.loads(line) for line in data.decode().splitlines()]


def identity(r):
    return (r["kind"], r["template"], tuple(re.findall(r"\d+", r["expression"])))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        first = generate(os.path.join(tmp, "a"), 2026)
        again = generate(os.path.join(tmp, "b"), 2026)
        other = generate(os.path.join(tmp, "c"), 7)
    assert first == again, "the same seed gave different files"
    assert first["heldout.jsonl"] != other["heldout.jsonl"], "the seed changed nothing"

    heldout, train = records(first["heldout.jsonl"]), records(first["train.jsonl"])
    assert records(first["heldout-eval.jsonl"]) == heldout[:280], "heldout-eval is not its start"
    easy = records(first["train-easy.jsonl"])
    easy_kinds = {"add_1d", "add_2d", "mul_1d2d", "word_1"}
    assert easy == [r for r in train if r["kind"] in easy_kinds], "train-easy is not a filter"
    assert {r["kind"] for r in easy} == easy_kinds, "train-easy lacks a kind"
    assert len(heldout) >= 2000, len(heldout)
    assert len(train) >= 5 * len(heldout), len(train)
    shared = {identity(r) for r in heldout} & {identity(r) for r in train}
    assert not shared, f"{len(shared)} held-out problems are in training, e.g. {min(shared)}"
    for name, rows in (("heldout", heldout), ("train", train)):
        ids = [identity(r) for r in rows]
        assert len(set(ids)) == len(ids), f"{name}: a problem appears twice"
        prompts = {r["prompt"] for r in rows}
        assert len(prompts) == len(rows), f"{name}: a prompt appears twice"

    manifest = json.loads(first["MANIFEST.json"])
    for name, rows in (("heldout", heldout), ("train", train), ("train-easy", easy)):
        assert sum(manifest[name].values()) == len(rows), (name, manifest[name])

    for r in heldout + train:
        assert set(r) == {"prompt", "answer", "kind", "template", "level", "steps",
                          "expression"}, r
        result = value(ast.parse(r["expression"], mode="eval"))
        assert result == int(result) and result >= 0, r
        assert r["answer"] == str(int(result)), r
        # The prompt states every number the arithmetic uses.
        numbers = re.findall(r"\d+", r["prompt"])
        for n in re.findall(r"\d+", r["expression"]):
            assert n in numbers, (n, r)
        assert r["steps"] == len(re.findall(r"[-+*/]", r["expression"])), r
        assert 1 <= r["level"] <= 5, r

    levels = {r["level"] for r in heldout}
    assert levels == {1, 2, 3, 4, 5}, levels
    by_kind = {}
    for r in heldout:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    assert set(by_kind) == {"add_1d", "add_2d", "sub_2d", "mul_1d2d", "add_3d", "word_1",
                            "word_2"}, by_kind
    print(f"chat tasks: {len(heldout)} held-out and {len(train)} training problems, "
          f"disjoint, deterministic, every answer checked")


if __name__ == "__main__":
    main()
