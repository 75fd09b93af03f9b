"""Fits held-out accuracy against RL compute: accuracy = a + b log10(FLOPs).

    report_scaling.py [--eval NAME] [--min-step STEP] [--per-run]
                      [--extrapolate DECADES] [--out PNG] [--json] RUN_DIR [RUN_DIR ...]

Reads the evaluation records named NAME (default heldout) with step > 0
(and >= STEP with --min-step, e.g. to leave out an early transient) from
each RUN_DIR/metrics.jsonl, with the cumulative RL compute `compute_flops`
of the record (or, when it lacks one, of the step record of the same step;
docs/rl.md describes the key). It fits accuracy = intercept + slope *
log10(compute) by least squares over all runs pooled, or each run alone with
--per-run, and prints the slope (accuracy per decade of compute) with its
95% confidence interval, the intercept, R^2, the residual standard
deviation and the number of points, and the fit's prediction
EXTRAPOLATE decades (default 0.5) past the largest compute with its 95%
prediction interval (Student t). --json prints the fits as JSON instead.
--out writes a plot: the points, the fitted line and the 95% prediction band
from the smallest compute to the extrapolation.

Missing files or records are one `error:` line and exit status 2.
"""

import argparse
import json
import math
import os
import sys

from metrics_io import read_records


class FitError(ValueError):
    """Data a line cannot be fitted to (too few points, no spread)."""


def _beta_fraction(a, b, x):
    """The continued fraction of the incomplete beta function (modified
    Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def _beta_regularized(a, b, x):
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _beta_regularized(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The p-quantile of Student's t with `df` degrees of freedom, by
    bisection on t_cdf (no scipy needed)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2


def fit_log_linear(compute, accuracy):
    """Least squares of accuracy = intercept + slope * log10(compute).

    Returns a dict: slope, intercept, r2 (1 - SS_res / SS_tot; NaN when all
    accuracies are equal), n, residual_std (s = sqrt(SS_res / (n - 2))),
    slope_se (the slope's standard error, s / sqrt(sxx)), and
    x_mean, sxx (log10 compute mean and sum of squared deviations) for the
    prediction interval. Raises FitError for fewer than 3 points, compute
    that is not positive, or a single compute value."""
    if len(compute) != len(accuracy):
        raise FitError(f"{len(compute)} compute values but {len(accuracy)} accuracies")
    n = len(compute)
    if n < 3:
        raise FitError(f"{n} points; a line with a prediction interval needs at least 3")
    if any(not c > 0 for c in compute):
        raise FitError("compute must be positive to take its logarithm")
    xs = [math.log10(c) for c in compute]
    x_mean = sum(xs) / n
    y_mean = sum(accuracy) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx <= 0:
        raise FitError("every point has the same compute")
    sxy = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, accuracy))
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, accuracy))
    ss_tot = sum((y - y_mean) ** 2 for y in accuracy)
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    residual_std = math.sqrt(ss_res / (n - 2))
    return {"slope": slope, "intercept": intercept, "r2": r2, "n": n,
            "residual_std": residual_std, "slope_se": residual_std / math.sqrt(sxx),
            "x_mean": x_mean, "sxx": sxx}


def predict(fit, compute, level=0.95):
    """The fit's accuracy at `compute` and its `level` prediction interval
    for a new measurement: yhat +- t * s * sqrt(1 + 1/n + (x - x_mean)^2 / sxx)
    with t the (1 + level) / 2 quantile of Student's t on n - 2 degrees of
    freedom. Returns (yhat, low, high)."""
    x = math.log10(compute)
    yhat = fit["intercept"] + fit["slope"] * x
    t = t_quantile((1 + level) / 2, fit["n"] - 2)
    half = t * fit["residual_std"] * math.sqrt(
        1 + 1 / fit["n"] + (x - fit["x_mean"]) ** 2 / fit["sxx"])
    return yhat, yhat - half, yhat + half


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_points(run_dir, eval_name, min_step=1):
    """(compute_flops, accuracy, step) of every `eval_name` record with step >=
    max(1, min_step), and the accuracy at step 0 (None without that record)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        records = read_records(path)
    except SystemExit as e:  # read_records exits with its own error line
        fail(str(e.code).removeprefix("error: "))
    step_compute = {}
    evals = {}
    start = None
    for r in records:
        if "step" not in r:
            continue
        if "eval" not in r:
            if "compute_flops" in r:
                step_compute[r["step"]] = r["compute_flops"]
        elif r["eval"] == eval_name and "accuracy" in r:
            if r["step"] == 0:
                start = r["accuracy"]
            elif r["step"] >= min_step:
                evals[r["step"]] = r  # a repeated step: the later record
    if not evals:
        fail(f"{path}: no \"{eval_name}\" evaluation records after step 0"
             + (f" from step {min_step}" if min_step > 1 else ""))
    points = []
    for step, r in sorted(evals.items()):
        compute = r.get("compute_flops", step_compute.get(step))
        if compute is None:
            fail(f"{path}: the \"{eval_name}\" record of step {step} has no compute_flops, "
                 "nor has a step record of that step (a run from before compute accounting, "
                 "or resumed from one)")
        points.append((compute, r["accuracy"], step))
    return points, start


def summarize(name, runs, points, fit, extrapolate, starts):
    largest = max(c for c, _, _ in points)
    at = largest * 10 ** extrapolate
    yhat, lo, hi = predict(fit, at)
    half = t_quantile(0.975, fit["n"] - 2) * fit["slope_se"]
    return {"name": name, "runs": runs, "n": fit["n"], "slope": fit["slope"],
            "slope_95": [fit["slope"] - half, fit["slope"] + half],
            "intercept": fit["intercept"], "r2": fit["r2"],
            "residual_std": fit["residual_std"],
            "start_accuracy": starts,
            "compute_min": min(c for c, _, _ in points), "compute_max": largest,
            "extrapolate_decades": extrapolate,
            "prediction": {"compute_flops": at, "accuracy": yhat, "low_95": lo, "high_95": hi}}


def describe(s):
    r2 = "n/a (every accuracy equal)" if math.isnan(s["r2"]) else f"{s['r2']:.3f}"
    p = s["prediction"]
    decades = math.log10(s["compute_max"] / s["compute_min"])
    starts = ", ".join(f"{run} {acc:.3f}" for run, acc in s["start_accuracy"].items()
                       if acc is not None)
    lo, hi = s["slope_95"]
    return (f"{s['name']}: n {s['n']}, slope {s['slope']:+.4f} accuracy per decade of compute "
            f"({100 * s['slope']:+.2f} points; 95% interval {100 * lo:+.2f} .. {100 * hi:+.2f}), "
            f"intercept {s['intercept']:+.4f}, R^2 {r2}, residual std {s['residual_std']:.4f}\n"
            f"  compute {s['compute_min']:.3e} .. {s['compute_max']:.3e} FLOPs "
            f"({decades:.2f} decades); at {p['compute_flops']:.3e} "
            f"(+{s['extrapolate_decades']:g} decades): accuracy {p['accuracy']:.3f}, "
            f"95% prediction interval [{p['low_95']:.3f}, {p['high_95']:.3f}]"
            + (f"\n  step 0 (no RL compute, not fitted): accuracy {starts}" if starts else ""))


def plot(out, groups, fits, extrapolate, eval_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, (points, start)) in enumerate(groups):
        xs = [c for c, _, _ in points]
        ax.plot(xs, [a for _, a, _ in points], "o", color=colors[i % len(colors)],
                markersize=4, label=name)
        if start is not None:
            ax.axhline(start, color=colors[i % len(colors)], linestyle="-.", linewidth=0.8,
                       label=f"{name} at step 0 (no RL)")
    for i, (fit, summary) in enumerate(fits):
        color = "black" if len(fits) == 1 else colors[i % len(colors)]
        lo_x = math.log10(summary["compute_min"])
        hi_x = math.log10(summary["compute_max"])
        end_x = hi_x + extrapolate
        steps = 100
        grid = [lo_x + (end_x - lo_x) * k / steps for k in range(steps + 1)]
        bands = [predict(fit, 10 ** x) for x in grid]
        xs = [10 ** x for x in grid]
        r2 = "n/a" if math.isnan(fit["r2"]) else f"{fit['r2']:.2f}"
        ax.fill_between(xs, [b[1] for b in bands], [b[2] for b in bands], color=color,
                        alpha=0.12, linewidth=0,
                        label="95% prediction interval" if i == 0 else None)
        inside = [k for k, x in enumerate(grid) if x <= hi_x]
        beyond = [k for k, x in enumerate(grid) if x >= hi_x]
        ax.plot([xs[k] for k in inside], [bands[k][0] for k in inside], "-", color=color,
                label=f"fit: {100 * fit['slope']:+.2f} points/decade, R^2 {r2}")
        ax.plot([xs[k] for k in beyond], [bands[k][0] for k in beyond], "--", color=color)
        ax.axvline(summary["compute_max"], color=color, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative RL compute (FLOPs, all ranks)")
    ax.set_ylabel(f"{eval_name} accuracy")
    ax.set_title(f"accuracy vs RL compute (dashed: +{extrapolate:g} decades extrapolated)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (each with metrics.jsonl)")
    parser.add_argument("--eval", default="heldout", help="evaluation record name")
    parser.add_argument("--min-step", type=int, default=1, metavar="STEP",
                        help="fit only evaluations at this step or later")
    parser.add_argument("--per-run", action="store_true", help="fit each run separately")
    parser.add_argument("--extrapolate", type=float, default=0.5, metavar="DECADES",
                        help="decades of compute past the largest to predict and plot")
    parser.add_argument("--out", help="PNG to write the plot to")
    parser.add_argument("--json", action="store_true", help="print the fits as JSON")
    args = parser.parse_args(argv)
    if not args.extrapolate >= 0:
        fail(f"--extrapolate must be >= 0, got {args.extrapolate}")

    names = [os.path.basename(os.path.normpath(r)) or r for r in args.runs]
    if len(set(names)) < len(names):  # runs of the same name in different sweeps
        names = list(args.runs)
    groups = [(name, read_points(r, args.eval, args.min_step)) for name, r in zip(names, args.runs)]
    if args.per_run:
        fit_sets = [(name, [name], points) for name, (points, _) in groups]
    else:
        name = groups[0][0] if len(groups) == 1 else f"{len(groups)} runs pooled"
        fit_sets = [(name, [n for n, _ in groups], [p for _, (ps, _) in groups for p in ps])]
    starts = {name: start for name, (_, start) in groups}
    fits = []
    for name, runs, points in fit_sets:
        try:
            fit = fit_log_linear([c for c, _, _ in points], [a for _, a, _ in points])
        except FitError as e:
            fail(f"{name}: {e}")
        fits.append((fit, summarize(name, runs, points, fit, args.extrapolate,
                                    {run: starts[run] for run in runs})))
    if args.out:
        plot(args.out, groups, fits, args.extrapolate, args.eval)
    if args.json:
        # JSON has no NaN: an undefined R^2 is null.
        print(json.dumps([{**s, "r2": None if math.isnan(s["r2"]) else s["r2"]}
                          for _, s in fits], indent=2))
    else:
        for _, s in fits:
            print(describe(s))
        if args.out:
            print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
