"""Compares RL runs from their metrics.jsonl: a table and a plot.

    plot_rl.py --out DIR RUN_DIR [RUN_DIR ...]

Writes DIR/summary.md, a Markdown table with one row per run: held-out
accuracy and mean reasoning tokens at the first and the last evaluation, the
change in reasoning tokens, and the mean reward of the last logged step. It
also writes DIR/accuracy_vs_think.png, held-out accuracy against mean
reasoning tokens over training with one line per run (the first point
marked), next to the training reward of each run. It reads only the
documented keys: step, reward_mean, and the "eval" records' accuracy and
think_tokens_mean.
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics_io import read_records  # noqa: E402


def read_run(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    steps, evals = [], []
    for r in read_records(path):
        if r.get("eval") == "heldout" and "think_tokens_mean" in r:
            evals.append(r)
        elif "reward_mean" in r:
            steps.append(r)
    if not evals:
        sys.exit(f"error: {path}: no held-out evaluation records with think_tokens_mean")
    return steps, evals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for summary.md and the plot")
    parser.add_argument("runs", nargs="+", help="RL run directories")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    rows = ["| run | accuracy before | accuracy after | think tokens before | think tokens after "
            "| think change | final reward |", "|---|---|---|---|---|---|---|"]
    fig, (ax_front, ax_reward) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run_dir in args.runs:
        name = os.path.basename(os.path.normpath(run_dir))
        steps, evals = read_run(run_dir)
        first, last = evals[0], evals[-1]
        change = (last["think_tokens_mean"] / first["think_tokens_mean"] - 1
                  if first["think_tokens_mean"] else 0.0)
        reward = f"{steps[-1]['reward_mean']:.3f}" if steps else "-"
        rows.append(f"| {name} | {first['accuracy']:.3f} (step {first['step']}) "
                    f"| {last['accuracy']:.3f} (step {last['step']}) "
                    f"| {first['think_tokens_mean']:.1f} | {last['think_tokens_mean']:.1f} "
                    f"| {change:+.0%} | {reward} |")
        xs = [r["think_tokens_mean"] for r in evals]
        ys = [r["accuracy"] for r in evals]
        line, = ax_front.plot(xs, ys, "-o", markersize=3, label=name)
        ax_front.plot(xs[:1], ys[:1], "s", color=line.get_color(), markersize=8)
        if steps:
            ax_reward.plot([r["step"] for r in steps], [r["reward_mean"] for r in steps],
                           label=name, linewidth=1)
    ax_front.set_xlabel("held-out mean reasoning tokens")
    ax_front.set_ylabel("held-out accuracy (greedy)")
    ax_front.set_title("accuracy vs reasoning tokens (square: start)")
    ax_front.legend(fontsize=8)
    ax_reward.set_xlabel("RL step")
    ax_reward.set_ylabel("mean reward (training rollouts)")
    ax_reward.set_title("reward")
    ax_reward.legend(fontsize=8)
    fig.tight_layout()
    plot = os.path.join(args.out, "accuracy_vs_think.png")
    fig.savefig(plot, dpi=110)
    summary = os.path.join(args.out, "summary.md")
    with open(summary + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    os.replace(summary + ".tmp", summary)
    print("\n".join(rows))
    print(f"wrote {summary} and {plot}")


if __name__ == "__main__":
    main()
