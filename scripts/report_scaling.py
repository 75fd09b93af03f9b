"""Fits held-out accuracy against RL compute: a + b log10(FLOPs), or a sigmoid.

    report_scaling.py [--eval NAME] [--min-step STEP] [--per-run]
                      [--form log_linear|sigmoid|both] [--holdout-fraction F]
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

--form sigmoid fits, instead of the line (--form both: as well), the
sigmoidal compute-performance curve of ScaleRL (Khatri et al., "The Art of
Scaling Reinforcement Learning Compute for LLMs", arXiv:2510.13786, Eq. 1):

    R_C - R_0 = (A - R_0) / (1 + (C_mid / C)^B)

R_C is the accuracy after compute C and R_0 the accuracy before RL, the
step-0 evaluation: fixed, not fitted. Without a step-0 record in every run
of a fit, or when pooled runs start from different accuracies, R_0 is fitted
as a fourth parameter, and the report says so. A is the asymptote,
constrained to [0, 1] but not to A > R_0 (a run can lose accuracy, e.g.
under a length penalty); B > 0 the efficiency exponent; C_mid > 0 the
compute at which half of the gain A - R_0 is reached. The fit is nonlinear
least squares by Levenberg-Marquardt (Levenberg, Q. Appl. Math. 2, 1944;
Marquardt, SIAM J. Appl. Math. 11, 1963) in (A, log B, log10 C_mid[, R_0]),
started from the best C_mid for each B of a fixed grid (A, and R_0 when
free, by linear least squares), so deterministic; B stays in [1e-3, 1e3]
and C_mid within 10 decades of the data. Its approximate 95% intervals are
the linearised ones of nonlinear regression (e.g. Seber and Wild, Nonlinear
Regression, 1989): covariance s^2 (J^T J)^-1 with J the Jacobian in (A, B,
log10 C_mid[, R_0]) at the fit and s^2 = SS_res / (n - p), parameter +- t se
with t the 0.975 quantile of Student's t on n - p degrees of freedom; C_mid's
interval is 10^(log10 C_mid +- t se), and none is clipped to the
constraints. The prediction interval of a new measurement is yhat +- t s
sqrt(1 + g^T (J^T J)^-1 g), g the gradient of the curve in the parameters
(the delta method).
Intervals are n/a when J^T J is numerically singular (e.g. a flat run, where
B and C_mid are undetermined). A sigmoid needs at least p + 1 points and p
distinct compute values (p = 3, or 4 with R_0 fitted). The report gives A,
B, C_mid (and a fitted R_0) with their intervals, R^2, the residual standard
deviation s, n and the prediction EXTRAPOLATE decades on, as for the line;
the plot adds the sigmoid and its band.

--holdout-fraction F checks the extrapolation: each fit uses only the first
F of its points sorted by compute (floor(F n), at least 3; points of the
same compute stay together), and predicts the rest. The report adds, per
held-out point, the measured and predicted accuracy, its 95% prediction
interval and whether the measurement is inside it, and over the held-out
points the mean absolute error and the fraction inside (the coverage; about
0.95 when the form is right and the errors independent). The fit's other
numbers are those of the fitted part. JSON adds a "holdout" object to each
fit; the plot draws the fitted points filled, the held-out ones hollow, and
a line at the split. With --form sigmoid or both every JSON fit has a
"form" key, "log_linear" or "sigmoid".

Missing files or records, and data a form cannot be fitted to, are one
`error:` line and exit status 2.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

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


LN10 = math.log(10)
SIGMOID_B_RANGE = (1e-3, 1e3)  # the efficiency exponent B
SIGMOID_C_MID_DECADES = 10  # how far C_mid may leave the data's compute range
SIGMOID_B_STARTS = (0.1, 0.2, 0.5, 1, 2, 5, 10)


def _sigmoid_gain(x, b, m):
    """1 / (1 + (C_mid / C)^B), the fraction of the gain A - R_0 reached at
    x = log10 C, with m = log10 C_mid."""
    return 0.5 * (1 + np.tanh(0.5 * b * LN10 * (np.asarray(x, dtype=float) - m)))


def _sigmoid_curve(theta, x, r0):
    """R_0 + (A - R_0) gain at x for theta = (A, B, log10 C_mid[, R_0])."""
    if len(theta) == 4:
        r0 = theta[3]
    return r0 + (theta[0] - r0) * _sigmoid_gain(x, theta[1], theta[2])


def _sigmoid_jacobian(theta, x, r0):
    """d curve / d (A, B, log10 C_mid[, R_0]) at each x, one row per x."""
    a, b, m = theta[:3]
    if len(theta) == 4:
        r0 = theta[3]
    x = np.atleast_1d(np.asarray(x, dtype=float))
    s = _sigmoid_gain(x, b, m)
    slope = (a - r0) * s * (1 - s) * LN10  # d curve / d (B (x - m))
    columns = [s, slope * (x - m), -slope * b]
    if len(theta) == 4:
        columns.append(1 - s)
    return np.column_stack(columns)


def _sigmoid_start(x, y, r0, b, m):
    """theta at (B, log10 C_mid) with A (and a free R_0) by linear least
    squares, clipped to [0, 1]."""
    s = _sigmoid_gain(x, b, m)
    if r0 is None:  # y = A s + R_0 (1 - s)
        (a, r), *_ = np.linalg.lstsq(np.column_stack([s, 1 - s]), y, rcond=None)
        return np.array([min(max(a, 0.0), 1.0), b, m, min(max(r, 0.0), 1.0)])
    ss = s @ s
    a = r0 + s @ (y - r0) / ss if ss > 0 else r0
    return np.array([min(max(a, 0.0), 1.0), b, m])


def _levenberg_marquardt(x, y, r0, theta, lower, upper, max_iter=400):
    """Minimizes SS_res over theta = (A, B, log10 C_mid[, R_0]) within the
    bounds by Levenberg-Marquardt with Marquardt's diagonal scaling, stepping
    in log B and projecting each trial point onto the bounds. Returns
    (theta, SS_res)."""
    def to_phi(t):
        return np.concatenate([[t[0], math.log(t[1])], t[2:]])

    def to_theta(p):
        return np.concatenate([[p[0], math.exp(p[1])], p[2:]])

    lo, hi = to_phi(lower), to_phi(upper)
    phi = np.clip(to_phi(theta), lo, hi)
    res = y - _sigmoid_curve(to_theta(phi), x, r0)
    sse = res @ res
    lam = 1e-3
    for _ in range(max_iter):
        jac = _sigmoid_jacobian(to_theta(phi), x, r0)
        jac[:, 1] *= math.exp(phi[1])  # d / d log B = B d / dB
        grad = jac.T @ res
        hess = jac.T @ jac
        diag = np.diag(hess)
        scale = np.maximum(diag, 1e-12 * max(diag.max(), 1e-300))
        while True:
            trial = np.clip(phi + np.linalg.solve(hess + lam * np.diag(scale), grad), lo, hi)
            trial_res = y - _sigmoid_curve(to_theta(trial), x, r0)
            trial_sse = trial_res @ trial_res
            if trial_sse < sse:
                break
            lam *= 10
            if lam > 1e16:  # no step lowers SS_res: a minimum
                return to_theta(phi), sse
        done = (sse - trial_sse <= 1e-14 * sse
                and np.all(np.abs(trial - phi) <= 1e-10 * (1 + np.abs(phi))))
        phi, res, sse = trial, trial_res, trial_sse
        lam = max(lam / 10, 1e-15)
        if done:
            break
    return to_theta(phi), sse


def fit_sigmoid(compute, accuracy, r0=None):
    """Least squares of accuracy = R_0 + (A - R_0) / (1 + (C_mid / C)^B)
    with 0 <= A <= 1 and B, C_mid > 0; R_0 fixed at `r0`, or fitted (within
    [0, 1]) when r0 is None.

    Returns a dict: a, b, c_mid, log10_c_mid, r0, r0_fitted, n, p (3, or 4
    with R_0 fitted), r2 (NaN when all accuracies are equal), residual_std
    (s = sqrt(SS_res / (n - p))), at_bound (the names of parameters at a
    bound), theta (A, B, log10 C_mid[, R_0]) and cov_unscaled ((J^T J)^-1 in
    those coordinates, None when numerically singular) for the intervals.
    Raises FitError for fewer than p + 1 points, compute that is not
    positive, or fewer than p distinct compute values."""
    if len(compute) != len(accuracy):
        raise FitError(f"{len(compute)} compute values but {len(accuracy)} accuracies")
    n = len(compute)
    p = 3 if r0 is not None else 4
    if n < p + 1:
        raise FitError(f"{n} points; the sigmoid with R_0 {'fixed' if p == 3 else 'fitted'} "
                       f"has {p} parameters and needs at least {p + 1}")
    if any(not c > 0 for c in compute):
        raise FitError("compute must be positive to take its logarithm")
    distinct = len(set(compute))
    if distinct < p:
        raise FitError(f"{distinct} distinct compute values; the sigmoid's {p} parameters "
                       f"need at least {p}")
    x = np.log10(np.asarray(compute, dtype=float))
    y = np.asarray(accuracy, dtype=float)
    lower = [0.0, SIGMOID_B_RANGE[0], x.min() - SIGMOID_C_MID_DECADES]
    upper = [1.0, SIGMOID_B_RANGE[1], x.max() + SIGMOID_C_MID_DECADES]
    if p == 4:
        lower.append(0.0)
        upper.append(1.0)
    lower, upper = np.array(lower), np.array(upper)
    # One start per B of the grid, at its best C_mid on a grid over the data.
    m_grid = np.linspace(x.min() - 2, x.max() + 2, 17)
    best = None
    for b in SIGMOID_B_STARTS:
        starts = [_sigmoid_start(x, y, r0, b, m) for m in m_grid]
        sses = [float(np.sum((y - _sigmoid_curve(t, x, r0)) ** 2)) for t in starts]
        theta, sse = _levenberg_marquardt(x, y, r0, starts[int(np.argmin(sses))], lower, upper)
        if best is None or sse < best[1]:
            best = (theta, sse)
    theta, sse = best
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    names = ["A", "B", "C_mid", "R_0"][:p]
    at_bound = [name for name, v, lo, hi in zip(names, theta, lower, upper)
                if min(abs(v - lo), abs(v - hi)) <= 1e-9 * max(1.0, abs(v))]
    # (J^T J)^-1 through the SVD of J with unit columns, unless J is
    # numerically rank deficient.
    jac = _sigmoid_jacobian(theta, x, r0)
    norms = np.linalg.norm(jac, axis=0)
    cov_unscaled = None
    if np.all(norms > 0):
        _, sv, vt = np.linalg.svd(jac / norms, full_matrices=False)
        if sv[-1] > 1e-8 * sv[0]:
            inner = (vt.T / sv ** 2) @ vt
            cov_unscaled = inner / np.outer(norms, norms)
    return {"a": float(theta[0]), "b": float(theta[1]), "log10_c_mid": float(theta[2]),
            "c_mid": 10 ** float(theta[2]),
            "r0": float(theta[3]) if p == 4 else float(r0), "r0_fitted": p == 4,
            "n": n, "p": p, "r2": 1 - sse / ss_tot if ss_tot > 0 else float("nan"),
            "residual_std": math.sqrt(sse / (n - p)), "at_bound": at_bound,
            "theta": theta, "cov_unscaled": cov_unscaled}


def sigmoid_intervals(fit, level=0.95):
    """The `level` intervals of the sigmoid's parameters: {"a", "b", "c_mid"
    and, when fitted, "r0": (low, high)}, parameter +- t se with t on n - p
    degrees of freedom; C_mid's from log10 C_mid. NaN without a covariance."""
    if fit["cov_unscaled"] is None:
        se = [float("nan")] * fit["p"]
    else:
        se = [fit["residual_std"] * math.sqrt(max(v, 0.0)) for v in np.diag(fit["cov_unscaled"])]
    t = t_quantile((1 + level) / 2, fit["n"] - fit["p"])
    out = {"a": (fit["a"] - t * se[0], fit["a"] + t * se[0]),
           "b": (fit["b"] - t * se[1], fit["b"] + t * se[1]),
           "c_mid": (10 ** (fit["log10_c_mid"] - t * se[2]),
                     10 ** (fit["log10_c_mid"] + t * se[2]))}
    if fit["r0_fitted"]:
        out["r0"] = (fit["r0"] - t * se[3], fit["r0"] + t * se[3])
    return out


def predict_sigmoid(fit, compute, level=0.95):
    """The sigmoid's accuracy at `compute` and its `level` prediction
    interval for a new measurement by the delta method: yhat +- t * s *
    sqrt(1 + g^T (J^T J)^-1 g), g the curve's gradient in the parameters, t on
    n - p degrees of freedom (NaN bounds without a covariance). Returns
    (yhat, low, high)."""
    x = math.log10(compute)
    r0 = None if fit["r0_fitted"] else fit["r0"]
    yhat = float(_sigmoid_curve(fit["theta"], x, r0))
    if fit["cov_unscaled"] is None:
        return yhat, float("nan"), float("nan")
    g = _sigmoid_jacobian(fit["theta"], x, r0)[0]
    t = t_quantile((1 + level) / 2, fit["n"] - fit["p"])
    half = t * fit["residual_std"] * math.sqrt(1 + max(float(g @ fit["cov_unscaled"] @ g), 0.0))
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


def sigmoid_r0(starts, eval_name):
    """R_0 for a sigmoid fit of the runs with these step-0 accuracies: their
    common value, or None (fit R_0) when a run lacks one or they differ; and
    the reason, for the report."""
    missing = [run for run, acc in starts.items() if acc is None]
    if missing:
        return None, f"no step-0 \"{eval_name}\" record in {', '.join(missing)}"
    values = list(starts.values())
    if max(values) - min(values) > 1e-12:
        return None, "the pooled runs' step-0 accuracies differ (" + ", ".join(
            f"{run} {acc:.3f}" for run, acc in starts.items()) + ")"
    return values[0], "the step-0 accuracy of " + ", ".join(starts)


def summarize_sigmoid(name, runs, points, fit, extrapolate, starts, r0_source):
    largest = max(c for c, _, _ in points)
    at = largest * 10 ** extrapolate
    yhat, lo, hi = predict_sigmoid(fit, at)
    intervals = sigmoid_intervals(fit)
    return {"name": name, "form": "sigmoid", "runs": runs, "n": fit["n"],
            "a": fit["a"], "a_95": list(intervals["a"]),
            "b": fit["b"], "b_95": list(intervals["b"]),
            "c_mid": fit["c_mid"], "c_mid_95": list(intervals["c_mid"]),
            "r0": fit["r0"], "r0_95": list(intervals["r0"]) if fit["r0_fitted"] else None,
            "r0_fitted": fit["r0_fitted"], "r0_source": r0_source,
            "r2": fit["r2"], "residual_std": fit["residual_std"], "at_bound": fit["at_bound"],
            "start_accuracy": starts,
            "compute_min": min(c for c, _, _ in points), "compute_max": largest,
            "extrapolate_decades": extrapolate,
            "prediction": {"compute_flops": at, "accuracy": yhat, "low_95": lo, "high_95": hi}}


def _interval(pair, spec):
    lo, hi = pair
    return "n/a" if math.isnan(lo) or math.isnan(hi) else f"{lo:{spec}} .. {hi:{spec}}"


def _band(lo, hi):
    return "n/a" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.3f}, {hi:.3f}]"


def describe_sigmoid(s):
    r2 = "n/a (every accuracy equal)" if math.isnan(s["r2"]) else f"{s['r2']:.3f}"
    p = s["prediction"]
    decades = math.log10(s["compute_max"] / s["compute_min"])
    if s["r0_fitted"]:
        r0 = (f"R_0 {s['r0']:.4f} (95% interval {_interval(s['r0_95'], '.4f')}), fitted: "
              f"{s['r0_source']}")
    else:
        r0 = f"R_0 {s['r0']:.4f}, {s['r0_source']} (fixed, not fitted)"
    return (f"{s['name']} (sigmoid): n {s['n']}, A {s['a']:.4f} (95% interval "
            f"{_interval(s['a_95'], '.4f')}), B {s['b']:.3f} (95% interval "
            f"{_interval(s['b_95'], '.3f')}), C_mid {s['c_mid']:.3e} FLOPs (95% interval "
            f"{_interval(s['c_mid_95'], '.3e')}), R^2 {r2}, residual std {s['residual_std']:.4f}\n"
            f"  {r0}\n"
            f"  compute {s['compute_min']:.3e} .. {s['compute_max']:.3e} FLOPs "
            f"({decades:.2f} decades); at {p['compute_flops']:.3e} "
            f"(+{s['extrapolate_decades']:g} decades): accuracy {p['accuracy']:.3f}, "
            f"95% prediction interval {_band(p['low_95'], p['high_95'])}"
            + (f"\n  {', '.join(s['at_bound'])} at a bound of the fit (A and R_0 in [0, 1], "
               f"B in [{SIGMOID_B_RANGE[0]:g}, {SIGMOID_B_RANGE[1]:g}], C_mid within "
               f"{SIGMOID_C_MID_DECADES} decades of the data): its intervals are rough"
               if s["at_bound"] else "")
            + ("\n  intervals n/a: the data do not determine every parameter "
               "(J^T J numerically singular)" if math.isnan(s["a_95"][0]) else ""))


def split_holdout(points, fraction):
    """The (compute, accuracy, step, run) points sorted by compute, split
    into the first floor(fraction * n) (with any later points of the same
    compute) to fit on and the rest to predict. Raises FitError when fewer
    than 3 are left to fit on or none to predict."""
    ordered = sorted(points, key=lambda p: p[0])
    n = len(ordered)
    k = math.floor(fraction * n + 1e-9)
    if k > 0:
        k = sum(1 for p in ordered if p[0] <= ordered[k - 1][0])
    if k < 3:
        raise FitError(f"--holdout-fraction {fraction:g} leaves {k} of {n} points to fit on; "
                       "at least 3 are needed")
    if k == n:
        raise FitError(f"--holdout-fraction {fraction:g} leaves none of the {n} points "
                       "to predict")
    return ordered[:k], ordered[k:]


def holdout_summary(predictor, fit, fitted, held, fraction):
    """The fit's predictions of the held-out points: per point the measured
    and predicted accuracy, the 95% prediction interval and whether the
    measurement is inside it (null without an interval), the mean absolute
    error and the coverage (the fraction inside, of the points with an
    interval). split_compute_flops is the geometric mean of the largest
    fitted and the smallest held-out compute."""
    rows = []
    for c, acc, step, run in held:
        yhat, lo, hi = predictor(fit, c)
        inside = None if math.isnan(lo) or math.isnan(hi) else lo <= acc <= hi
        rows.append({"run": run, "step": step, "compute_flops": c, "accuracy": acc,
                     "predicted": yhat, "low_95": lo, "high_95": hi, "inside_95": inside})
    known = [r["inside_95"] for r in rows if r["inside_95"] is not None]
    return {"fraction": fraction, "fit_n": len(fitted), "n": len(rows),
            "split_compute_flops": math.sqrt(fitted[-1][0] * held[0][0]),
            "mae": sum(abs(r["predicted"] - r["accuracy"]) for r in rows) / len(rows),
            "coverage_95": sum(known) / len(known) if known else None,
            "points": rows}


def describe_holdout(h, several_runs):
    known = [r["inside_95"] for r in h["points"] if r["inside_95"] is not None]
    coverage = (f"{sum(known)} of {len(known)} inside their 95% prediction intervals "
                f"(coverage {h['coverage_95']:.2f})" if known else "no prediction intervals")
    lines = [f"  holdout: fitted on the first {h['fit_n']} of {h['fit_n'] + h['n']} points by "
             f"compute, predicted the other {h['n']}: mean absolute error {h['mae']:.4f}, "
             + coverage]
    for r in h["points"]:
        inside = {True: "inside", False: "outside", None: "n/a"}[r["inside_95"]]
        lines.append(f"    {r['run'] + ' ' if several_runs else ''}step {r['step']}: compute "
                     f"{r['compute_flops']:.3e}, measured {r['accuracy']:.3f}, predicted "
                     f"{r['predicted']:.3f}, 95% prediction interval "
                     f"{_band(r['low_95'], r['high_95'])}, {inside}")
    return "\n".join(lines)


def _finite(value):
    """`value` with every NaN or infinity (which JSON lacks) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plot(out, groups, fits, extrapolate, eval_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    held_out = {(r["run"], r["step"])
                for _, s in fits for r in s.get("holdout", {}).get("points", [])}
    for i, (name, (points, start)) in enumerate(groups):
        fitted = [p for p in points if (name, p[2]) not in held_out]
        held = [p for p in points if (name, p[2]) in held_out]
        xs = [c for c, _, _ in fitted]
        ax.plot(xs, [a for _, a, _ in fitted], "o", color=colors[i % len(colors)],
                markersize=4, label=name)
        if held:
            ax.plot([c for c, _, _ in held], [a for _, a, _ in held], "o",
                    color=colors[i % len(colors)], markerfacecolor="none", markersize=4,
                    label=f"{name}, held out (predicted)")
        if start is not None:
            ax.axhline(start, color=colors[i % len(colors)], linestyle="-.", linewidth=0.8,
                       label=f"{name} at step 0 (no RL)")
    set_names = list(dict.fromkeys(s["name"] for _, s in fits))
    banded, marked = set(), set()
    for fit, summary in fits:
        form = summary.get("form", "log_linear")
        i = set_names.index(summary["name"])
        if len(set_names) > 1:
            color = colors[i % len(colors)]
        else:
            color = "black" if form == "log_linear" else "darkred"
        lo_x = math.log10(summary["compute_min"])
        hi_x = math.log10(summary["compute_max"])
        end_x = hi_x + extrapolate
        holdout = summary.get("holdout")
        if holdout:
            end_x = max(end_x, math.log10(max(r["compute_flops"] for r in holdout["points"])))
        steps = 100
        grid = [lo_x + (end_x - lo_x) * k / steps for k in range(steps + 1)]
        bands = [(predict if form == "log_linear" else predict_sigmoid)(fit, 10 ** x)
                 for x in grid]
        xs = [10 ** x for x in grid]
        r2 = "n/a" if math.isnan(fit["r2"]) else f"{fit['r2']:.2f}"
        band_label = "95% prediction interval" if form == "log_linear" else \
            "sigmoid 95% prediction interval"
        ax.fill_between(xs, [b[1] for b in bands], [b[2] for b in bands], color=color,
                        alpha=0.12, linewidth=0,
                        label=band_label if form not in banded else None)
        banded.add(form)
        inside = [k for k, x in enumerate(grid) if x <= hi_x]
        beyond = [k for k, x in enumerate(grid) if x >= hi_x]
        if form == "log_linear":
            style = {"label": f"fit: {100 * fit['slope']:+.2f} points/decade, R^2 {r2}"}
        else:
            style = {"linewidth": 2.0,
                     "label": f"sigmoid: A {fit['a']:.3f}, B {fit['b']:.2f}, "
                              f"C_mid {fit['c_mid']:.2e}, R^2 {r2}"}
        ax.plot([xs[k] for k in inside], [bands[k][0] for k in inside], "-", color=color,
                **style)
        style.pop("label")
        ax.plot([xs[k] for k in beyond], [bands[k][0] for k in beyond], "--", color=color,
                **style)
        if summary["name"] in marked:  # the other form of a fit set marked already
            continue
        if not holdout:
            ax.axvline(summary["compute_max"], color=color, linestyle=":", linewidth=0.8)
        else:
            ax.axvline(holdout["split_compute_flops"],
                       color="gray" if len(set_names) == 1 else color,
                       linestyle="-", linewidth=1.0, alpha=0.6,
                       label="holdout split" if not marked else None)
        marked.add(summary["name"])
    ax.set_xscale("log")
    ax.set_xlabel("cumulative RL compute (FLOPs, all ranks)")
    ax.set_ylabel(f"{eval_name} accuracy")
    if held_out:
        ax.set_title("accuracy vs RL compute (hollow: held out; dashed: predicted past the "
                     "fitted points)")
    else:
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
    parser.add_argument("--form", choices=("log_linear", "sigmoid", "both"), default="log_linear",
                        help="the curve to fit: a + b log10(C) (default), ScaleRL's sigmoid, "
                             "or both")
    parser.add_argument("--holdout-fraction", type=float, metavar="F",
                        help="fit on the first F of the points by compute and predict the rest")
    parser.add_argument("--extrapolate", type=float, default=0.5, metavar="DECADES",
                        help="decades of compute past the largest to predict and plot")
    parser.add_argument("--out", help="PNG to write the plot to")
    parser.add_argument("--json", action="store_true", help="print the fits as JSON")
    args = parser.parse_args(argv)
    if not args.extrapolate >= 0:
        fail(f"--extrapolate must be >= 0, got {args.extrapolate}")
    if args.holdout_fraction is not None and not 0 < args.holdout_fraction < 1:
        fail(f"--holdout-fraction must be between 0 and 1, got {args.holdout_fraction}")

    names = [os.path.basename(os.path.normpath(r)) or r for r in args.runs]
    if len(set(names)) < len(names):  # runs of the same name in different sweeps
        names = list(args.runs)
    groups = [(name, read_points(r, args.eval, args.min_step)) for name, r in zip(names, args.runs)]
    # Each point with its run: (compute, accuracy, step, run).
    if args.per_run:
        fit_sets = [(name, [name], [(*p, name) for p in points]) for name, (points, _) in groups]
    else:
        name = groups[0][0] if len(groups) == 1 else f"{len(groups)} runs pooled"
        fit_sets = [(name, [n for n, _ in groups],
                     [(*p, n) for n, (ps, _) in groups for p in ps])]
    starts = {name: start for name, (_, start) in groups}
    fits = []
    for name, runs, points in fit_sets:
        held = []
        if args.holdout_fraction is not None:
            try:
                points, held = split_holdout(points, args.holdout_fraction)
            except FitError as e:
                fail(f"{name}: {e}")
        where = name if not held else \
            f"{name} (the first {len(points)} of {len(points) + len(held)} points)"
        run_starts = {run: starts[run] for run in runs}
        compute = [c for c, _, _, _ in points]
        accuracy = [a for _, a, _, _ in points]
        points = [(c, a, step) for c, a, step, _ in points]
        if args.form in ("log_linear", "both"):
            try:
                fit = fit_log_linear(compute, accuracy)
            except FitError as e:
                fail(f"{where}: {e}")
            summary = summarize(name, runs, points, fit, args.extrapolate, run_starts)
            if args.form == "both":
                summary = {"name": name, "form": "log_linear", **summary}
            if held:
                summary["holdout"] = holdout_summary(predict, fit, points, held,
                                                     args.holdout_fraction)
            fits.append((fit, summary))
        if args.form in ("sigmoid", "both"):
            r0, r0_source = sigmoid_r0(run_starts, args.eval)
            try:
                fit = fit_sigmoid(compute, accuracy, r0)
            except FitError as e:
                fail(f"{where}: {e}")
            summary = summarize_sigmoid(name, runs, points, fit, args.extrapolate, run_starts,
                                        r0_source)
            if held:
                summary["holdout"] = holdout_summary(predict_sigmoid, fit, points, held,
                                                     args.holdout_fraction)
            fits.append((fit, summary))
    if args.out:
        plot(args.out, groups, fits, args.extrapolate, args.eval)
    if args.json:
        # JSON has no NaN: an undefined R^2 is null (as is, for the sigmoid
        # and the holdout, any undefined interval).
        print(json.dumps([{**s, "r2": None if math.isnan(s["r2"]) else s["r2"]}
                          if "form" not in s and "holdout" not in s else _finite(s)
                          for _, s in fits], indent=2))
    else:
        for _, s in fits:
            if s.get("form") == "sigmoid":
                text = describe_sigmoid(s)
            else:
                text = describe(s if "form" not in s
                                else {**s, "name": f"{s['name']} (log-linear)"})
            if "holdout" in s:
                text += "\n" + describe_holdout(s["holdout"], len(s["runs"]) > 1)
            print(text)
        if args.out:
            print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
