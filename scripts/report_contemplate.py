"""Reports an aggregate-stage run (contemplating mode): a table and a plot.

    report_contemplate.py [--out DIR] [--answers FILE]... RUN_DIR

Reads the evaluation records of RUN_DIR/metrics.jsonl named single, greedy,
majority@K, aggregator_untrained@K and aggregator@K (accuracy,
think_tokens_mean, tokens_per_answer) and prints a Markdown table: one
sample, the solver's greedy answer, then for each K majority vote, the
untrained aggregator (step 0) and the trained aggregator (the last
evaluation), each with its accuracy and binomial standard error, pass@K (for
the vote), reasoning tokens and all tokens spent per answer. With --out it also writes
DIR/contemplate.md (the table) and DIR/contemplate.png (accuracy against K,
and accuracy against tokens spent per answer).

With --answers (muse-generate --contemplate K --metrics ... --answers FILE:
each problem's correctness per method) it adds the paired comparisons the
contemplating-mode target asks for: majority@K against one sample, the
aggregator against majority@K and against the greedy answer, each as the
mean difference over the same problems with its paired standard error
(the standard deviation of the per-problem differences over sqrt(n)).

Several --answers files (the option given once per file: evaluations of the
same problems with different --seed, so each holds another set of K
candidates per problem) are pooled: each problem's correctness per method is
averaged over the sets before the differences are taken, so the standard
error is still taken over problems (a problem's sets are not independent of
each other) while the noise of drawing one candidate set shrinks.
"""

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics_io import read_records  # noqa: E402


def read_evals(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    evals = {}  # name -> records in step order
    for r in read_records(path):
        name = r.get("eval", "")
        if name in ("single", "greedy") or "@" in name:
            evals.setdefault(name, []).append(r)
    if "single" not in evals:
        sys.exit(f"error: {path}: no contemplating-mode evaluation records (eval: single)")
    return evals


def ks_of(evals):
    return sorted({int(n.split("@")[1]) for n in evals
                   if n.startswith("majority@") and "+" not in n})


def rows_of(evals):
    """(method, K, record) rows: the last single and majority, the untrained
    aggregator at step 0 and the trained one at the last evaluation."""
    rows = [("one sample", 1, evals["single"][-1])]
    if "greedy" in evals:
        rows.append(("one greedy answer", 1, evals["greedy"][-1]))
    for k in ks_of(evals):
        rows.append(("majority vote", k, evals[f"majority@{k}"][-1]))
        if f"aggregator_untrained@{k}" in evals:
            rows.append(("aggregator, untrained", k, evals[f"aggregator_untrained@{k}"][0]))
        if f"aggregator@{k}" in evals:
            rows.append(("aggregator, trained", k, evals[f"aggregator@{k}"][-1]))
    return rows


def accuracy_cell(r):
    """Accuracy in percent with its binomial standard error over the problems."""
    acc, n = r["accuracy"], r.get("prompts")
    if not n:
        return f"{100 * acc:.1f}%"
    return f"{100 * acc:.1f}% ± {100 * math.sqrt(acc * (1 - acc) / n):.1f}"


def table(evals):
    out = ["| method | K | accuracy | pass@K | reasoning tokens / answer | tokens / answer | step |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for method, k, r in rows_of(evals):
        pass_at_k = f"{100 * r['pass_at_k']:.1f}%" if "pass_at_k" in r else ""
        out.append(f"| {method} | {k} | {accuracy_cell(r)} | {pass_at_k} | "
                   f"{r['think_tokens_mean']:.1f} | "
                   f"{r.get('tokens_per_answer', float('nan')):.1f} | {r['step']} |")
    prompts = evals["single"][-1].get("prompts")
    if prompts:
        out.append("")
        out.append(f"{prompts} held-out problems; ± is the binomial standard error.")
    return "\n".join(out) + "\n"


def read_answers(path):
    try:
        with open(path, encoding="utf-8") as f:
            answers = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {path}: {e}")
    if not any(m.startswith("majority@") for r in answers for m in r):
        sys.exit(f"error: {path}: no per-problem majority@K records "
                 "(muse-generate --contemplate K --answers FILE)")
    return answers


def pooled_answers(paths):
    """Per-problem records of several evaluations of the same problems, each
    method's correctness averaged over them."""
    sets = [read_answers(p) for p in paths]
    keys = [[(r.get("index"), r.get("reference")) for r in answers] for answers in sets]
    for path, k in zip(paths[1:], keys[1:]):
        if k != keys[0]:
            sys.exit(f"error: {path}: not the problems of {paths[0]} "
                     "(pooled --answers files must evaluate the same problems in order)")
    pooled = []
    for records in zip(*sets):
        methods = set.intersection(*(set(r) for r in records))
        pooled.append({m: sum(float(r[m]) for r in records) / len(records) for m in methods
                       if all(isinstance(r[m], (bool, int, float)) for r in records)
                       and m != "index"})
    return pooled


def paired(answers, a, b):
    """(mean of a - b, its paired standard error) over the problems having both."""
    d = [float(r[a]) - float(r[b]) for r in answers if a in r and b in r]
    n = len(d)
    if n < 2:
        return None
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean, math.sqrt(var / n)


def paired_table(answers, sets=1):
    methods = set().union(*answers)
    out = ["| comparison | difference | paired standard error | difference / SE |",
           "|---|---:|---:|---:|"]
    for k in sorted(int(m.split("@")[1]) for m in methods
                    if m.startswith("majority@") and m[9:].isdigit()):
        aggregator = next((f"{p}@{k}" for p in ("aggregator", "aggregator_untrained")
                           if f"{p}@{k}" in methods), None)
        pairs = [(f"majority@{k}", "single")]
        if aggregator:
            pairs += [(aggregator, f"majority@{k}"), (aggregator, "greedy")]
        for a, b in pairs:
            result = paired(answers, a, b)
            if result is None:
                continue
            mean, se = result
            ratio = f"{mean / se:+.1f}" if se > 0 else "n/a"
            out.append(f"| {a} − {b} | {100 * mean:+.1f} points | {100 * se:.1f} | {ratio} |")
    out.append("")
    if sets == 1:
        out.append(f"{len(answers)} problems, each method on the same ones.")
    else:
        out.append(f"{len(answers)} problems, each method on the same ones, each problem's "
                   f"correctness averaged over {sets} candidate sets.")
    return "\n".join(out) + "\n"


def plot(evals, path):
    ks = ks_of(evals)
    fig, (ax_k, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    single = evals["single"][-1]
    ax_k.axhline(single["accuracy"], color="gray", linestyle=":", label="one sample")
    if "greedy" in evals:
        ax_k.axhline(evals["greedy"][-1]["accuracy"], color="black", linestyle="--",
                     label="one greedy answer")
    series = [("majority vote", "majority@{}", -1, "tab:blue"),
              ("aggregator, untrained", "aggregator_untrained@{}", 0, "tab:orange"),
              ("aggregator, trained", "aggregator@{}", -1, "tab:green")]
    ax_t.scatter([single["tokens_per_answer"]], [single["accuracy"]], color="gray",
                 label="one sample")
    for label, pattern, index, color in series:
        points = [(k, evals[pattern.format(k)][index]) for k in ks if pattern.format(k) in evals]
        if not points:
            continue
        ax_k.plot([k for k, _ in points], [r["accuracy"] for _, r in points], "o-", color=color,
                  label=label)
        ax_t.plot([r["tokens_per_answer"] for _, r in points],
                  [r["accuracy"] for _, r in points], "o-", color=color, label=label)
        for k, r in points:
            ax_t.annotate(f"K={k}", (r["tokens_per_answer"], r["accuracy"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
    ax_k.set_xscale("log", base=2)
    ax_k.set_xticks(ks, [str(k) for k in ks])
    ax_k.set_xlabel("candidates K")
    ax_k.set_ylabel("held-out accuracy")
    ax_k.set_title("accuracy against K")
    ax_t.set_xlabel("tokens generated per answer (solvers + aggregator)")
    ax_t.set_title("accuracy against tokens spent")
    for ax in (ax_k, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", help="directory for contemplate.md and contemplate.png")
    parser.add_argument("--answers", action="append", metavar="FILE",
                        help="per-problem records: adds the paired comparisons; given again "
                        "with other seeds' files of the same problems, they are pooled")
    args = parser.parse_args()
    evals = read_evals(args.run_dir)
    text = table(evals)
    if args.answers:
        text += "\n" + paired_table(pooled_answers(args.answers), sets=len(args.answers))
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "contemplate.md"), "w", encoding="utf-8") as f:
            f.write(text)
        plot(evals, os.path.join(args.out, "contemplate.png"))


if __name__ == "__main__":
    main()
