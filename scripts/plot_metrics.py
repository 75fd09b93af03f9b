"""Plots training curves from one or more runs' metrics.jsonl.

    plot_metrics.py --out curves.png runs/A/metrics.jsonl [runs/B/metrics.jsonl ...]

One row of panels per run: the training loss with the held-out loss
("eval" records), and the held-out accuracy when the run evaluated prompts.
RL runs (records with reward_mean) get their reward instead of the loss.
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics_io import read_records  # noqa: E402


def series(records, key, evaluation=None):
    """(steps, values) of `key` in training records, or in eval records named `evaluation`."""
    points = [(r["step"], r[key]) for r in records
              if r.get("eval") == evaluation and r.get(key) is not None and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="image file to write (.png or .svg)")
    parser.add_argument("metrics", nargs="+", help="metrics.jsonl files")
    args = parser.parse_args()

    runs = [(os.path.basename(os.path.dirname(os.path.abspath(p))) or p, read_records(p))
            for p in args.metrics]
    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 3.2 * len(runs)), squeeze=False)
    for (name, records), (left, right) in zip(runs, axes):
        if any("reward_mean" in r for r in records):
            left.plot(*series(records, "reward_mean"), label="reward (train)")
            left.set_ylabel("reward")
        else:
            left.plot(*series(records, "loss"), label="train")
            steps, losses = series(records, "loss", "heldout")
            if steps:
                left.plot(steps, losses, "o-", label="held-out")
            left.set_ylabel("loss")
        left.set_title(name)
        left.set_xlabel("step")
        left.legend()
        left.grid(alpha=0.3)

        steps, accuracy = series(records, "accuracy", "heldout")
        if steps:
            right.plot(steps, accuracy, "o-", color="tab:green")
            right.set_ylim(0, 1)
            right.set_title(f"{name}: held-out accuracy")
        else:
            right.plot(*series(records, "tokens_per_s"), color="tab:gray")
            right.set_title(f"{name}: tokens/s")
        right.set_xlabel("step")
        right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
