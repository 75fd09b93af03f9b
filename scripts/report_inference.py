"""Reports test-time compute evaluations: adaptive re-expansion and
contemplating with refinement rounds. A table on stdout and a plot.

    report_inference.py adaptive [--out PNG] FILE...
    report_inference.py refine [--out PNG] FILE...

FILE is a metrics file: what `muse-generate --metrics` appends, or a run's
metrics.jsonl.

adaptive: the records fixed_budget@N (one per budget) and adaptive (one per
setting evaluated: signal, threshold, budgets) with accuracy,
think_tokens_mean and expanded_fraction. The plot is accuracy against mean
reasoning tokens per problem: the fixed-budget curve and each adaptive point.

refine: the records majority@K, aggregator@K and their +refine@R versions
with accuracy, tokens_per_answer and seconds_per_problem. The plot is
accuracy against all tokens spent per answer, one line per method through
R = 0, 1, ...
"""

import argparse
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics_io import read_records  # noqa: E402

REFINE_NAME = re.compile(r"^(majority|aggregator|aggregator_untrained)@(\d+)(?:\+refine@(\d+))?$")


def records_of(paths):
    out = []
    for path in paths:
        out.extend(r for r in read_records(path) if "eval" in r)
    return out


def adaptive_label(r):
    """The setting in adaptive.* terms: logprob's threshold is stored as the
    uncertainty -logprob, shown here as the log-probability."""
    signal, threshold = r.get("signal", "?"), r.get("threshold", 0)
    rule = (f"answer logprob < {-threshold:g}" if signal == "logprob"
            else f"{signal} > {threshold:g}")
    samples = f", {r['samples']} samples" if r.get("samples", 1) > 1 else ""
    return f"adaptive ({rule}, budgets {r.get('budgets', '?')}, {r.get('expand', '?')}{samples})"


def adaptive_rows(records):
    """The last fixed_budget@N record per N, ascending, and every adaptive
    record with a distinct setting (the last of each)."""
    fixed, adaptive = {}, {}
    for r in records:
        name = r["eval"]
        if name.startswith("fixed_budget@"):
            fixed[int(name.split("@")[1])] = r
        elif name == "adaptive":
            adaptive[adaptive_label(r)] = r
    if not fixed or not adaptive:
        sys.exit("error: no fixed_budget@N and adaptive records "
                 "(write them with muse-generate --adaptive --metrics FILE)")
    return [fixed[n] for n in sorted(fixed)], list(adaptive.items())


def report_adaptive(records, out):
    fixed, adaptive = adaptive_rows(records)
    largest = fixed[-1]
    print("| method | accuracy | reasoning tokens / problem | of the largest budget's "
          "| expanded | passes |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [(r["eval"], r) for r in fixed] + adaptive
    for name, r in rows:
        share = r["think_tokens_mean"] / max(1e-9, largest["think_tokens_mean"])
        print(f"| {name} | {r['accuracy']:.3f} | {r['think_tokens_mean']:.1f} | {share:.0%} "
              f"| {r['expanded_fraction']:.3f} | {r.get('passes_mean', 1):.2f} |")
    if not out:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot([r["think_tokens_mean"] for r in fixed], [r["accuracy"] for r in fixed], "o-",
            color="tab:blue", label="fixed budget")
    for r in fixed:
        ax.annotate(r["eval"].split("@")[1], (r["think_tokens_mean"], r["accuracy"]),
                    textcoords="offset points", xytext=(4, -10), fontsize=8, color="tab:blue")
    markers = "s^Dv<>p*"
    for i, (label, r) in enumerate(adaptive):
        ax.plot(r["think_tokens_mean"], r["accuracy"], markers[i % len(markers)],
                markersize=8, label=label)
    ax.set_xlabel("mean reasoning tokens per problem (every pass counted)")
    ax.set_ylabel("accuracy")
    ax.set_title("Adaptive re-expansion against fixed budgets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def refine_rows(records):
    """{(method, K): {R: record}} from the last record of each name."""
    series = {}
    for r in records:
        m = REFINE_NAME.match(r["eval"])
        if m:
            method, k, rounds = m.group(1), int(m.group(2)), int(m.group(3) or 0)
            series.setdefault((method, k), {})[rounds] = r
    if not any(len(by_round) > 1 for by_round in series.values()):
        sys.exit("error: no +refine@R records next to their R = 0 ones "
                 "(write them with muse-generate --contemplate K --refine-rounds R --metrics FILE)")
    return series


def report_refine(records, out):
    series = refine_rows(records)
    print("| method | K | rounds | accuracy | tokens / answer | seconds / problem |")
    print("|---|---:|---:|---:|---:|---:|")
    for (method, k), by_round in sorted(series.items(), key=lambda s: (s[0][1], s[0][0])):
        for rounds, r in sorted(by_round.items()):
            print(f"| {method} | {k} | {rounds} | {r['accuracy']:.3f} "
                  f"| {r['tokens_per_answer']:.1f} | {r.get('seconds_per_problem', 0):.3f} |")
    if not out:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for (method, k), by_round in sorted(series.items(), key=lambda s: (s[0][1], s[0][0])):
        rounds = sorted(by_round)
        xs = [by_round[r]["tokens_per_answer"] for r in rounds]
        ys = [by_round[r]["accuracy"] for r in rounds]
        (line,) = ax.plot(xs, ys, "o-", label=f"{method}@{k}")
        for r, x, y in zip(rounds, xs, ys):
            ax.annotate(f"R={r}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8,
                        color=line.get_color())
    ax.set_xlabel("tokens per answer (candidates, revisions and aggregator)")
    ax.set_ylabel("accuracy")
    ax.set_title("Refinement rounds before aggregation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["adaptive", "refine"])
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--out", help="write the plot to this PNG")
    args = parser.parse_args()
    records = records_of(args.files)
    (report_adaptive if args.kind == "adaptive" else report_refine)(records, args.out)


if __name__ == "__main__":
    main()
