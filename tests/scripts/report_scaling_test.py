"""Tests of scripts/report_scaling.py: the log-linear fit, its prediction
interval and Student t quantile, the sigmoid fit (recovery of known
parameters, its intervals against an independent finite-difference
computation, R_0 fixed or fitted), the holdout split, and the command line
on small run directories (pairing with step records, --per-run, --json,
--form, --holdout-fraction, errors, and today's default output unchanged)."""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
sys.path.insert(0, SCRIPTS)

import report_scaling as rs  # noqa: E402


def write_run(root, name, records):
    run = os.path.join(root, name)
    os.makedirs(run)
    with open(os.path.join(run, "metrics.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return run


# Deterministic "noise", at most 0.6 points.
NOISE = (0.004, -0.006, 0.002, 0.005, -0.004, -0.002, 0.006, -0.005, 0.0, 0.003, -0.003, 0.001)
TRUTH = {"a": 0.62, "b": 1.3, "c_mid": 3e12, "r0": 0.3}


def sigmoid(c, a=0.62, b=1.3, c_mid=3e12, r0=0.3):
    """ScaleRL's curve, written out independently of the script."""
    return r0 + (a - r0) / (1 + (c_mid / c) ** b)


def sigmoid_run(root, name, steps=12, start=0.3, curve=sigmoid, noise=NOISE, scale=1e11):
    """A run with a step-0 evaluation `start` (none when None) and evaluations
    at compute scale * 10^(step / 4), a quarter decade apart, accuracy
    curve(compute) + noise; every third evaluation pairs with its step
    record for the compute."""
    records = [] if start is None else [
        {"step": 0, "eval": "heldout", "accuracy": start, "compute_flops": 0.0}]
    for step in range(1, steps + 1):
        c = scale * 10 ** (step / 4)
        records.append({"step": step, "reward_mean": 0, "compute_flops": c})
        ev = {"step": step, "eval": "heldout",
              "accuracy": curve(c) + noise[(step - 1) % len(noise)]}
        if step % 3:
            ev["compute_flops"] = c
        records.append(ev)
    return write_run(root, name, records)


class TQuantile(unittest.TestCase):
    def test_table_values(self):
        # Two-sided 95% critical values from the standard t table.
        for df, t in ((1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423)):
            self.assertAlmostEqual(rs.t_quantile(0.975, df), t, places=4)
        self.assertAlmostEqual(rs.t_quantile(0.975, 1e7), 1.959964, places=5)
        self.assertAlmostEqual(rs.t_quantile(0.025, 10), -2.2281, places=4)
        self.assertAlmostEqual(rs.t_quantile(0.5, 3), 0.0, places=9)

    def test_inverts_cdf(self):
        for df in (1, 3, 13):
            for p in (0.6, 0.9, 0.995):
                self.assertAlmostEqual(rs.t_cdf(rs.t_quantile(p, df), df), p, places=10)


class Fit(unittest.TestCase):
    def test_exact_line(self):
        compute = [1e9, 3e9, 1e10, 4e10, 1e11]
        acc = [0.2 + 0.05 * math.log10(c) for c in compute]
        fit = rs.fit_log_linear(compute, acc)
        self.assertAlmostEqual(fit["intercept"], 0.2, places=10)
        self.assertAlmostEqual(fit["slope"], 0.05, places=10)
        self.assertAlmostEqual(fit["r2"], 1.0, places=10)
        self.assertEqual(fit["n"], 5)
        yhat, lo, hi = rs.predict(fit, 1e12)
        self.assertAlmostEqual(yhat, 0.2 + 0.05 * 12, places=10)
        self.assertAlmostEqual(hi - lo, 0.0, places=10)  # no residual, no band
        self.assertAlmostEqual(fit["slope_se"], 0.0, places=10)

    def test_noisy_line(self):
        compute = [10 ** (9 + k / 4) for k in range(12)]
        noise = [0.02, -0.03, 0.01, 0.025, -0.02, -0.01, 0.03, -0.025, 0.0, 0.015, -0.015, 0.005]
        acc = [0.1 + 0.03 * math.log10(c) + e for c, e in zip(compute, noise)]
        fit = rs.fit_log_linear(compute, acc)
        self.assertLess(fit["r2"], 1.0)
        self.assertGreater(fit["r2"], 0.0)
        self.assertAlmostEqual(fit["slope"], 0.03, delta=0.02)
        # R^2 = 1 - SS_res / SS_tot, recomputed directly.
        xs = [math.log10(c) for c in compute]
        mean = sum(acc) / len(acc)
        res = sum((y - fit["intercept"] - fit["slope"] * x) ** 2 for x, y in zip(xs, acc))
        tot = sum((y - mean) ** 2 for y in acc)
        self.assertAlmostEqual(fit["r2"], 1 - res / tot, places=12)
        sxx = sum((x - sum(xs) / len(xs)) ** 2 for x in xs)
        self.assertAlmostEqual(fit["slope_se"], math.sqrt(res / (len(xs) - 2) / sxx), places=12)

    def test_band_widens_away_from_the_data(self):
        compute = [1e9, 2e9, 5e9, 1e10, 3e10, 1e11]
        acc = [0.30, 0.34, 0.31, 0.38, 0.36, 0.41]
        fit = rs.fit_log_linear(compute, acc)
        width = {}
        for c in (10 ** fit["x_mean"], 1e11, 1e12, 1e13):
            _, lo, hi = rs.predict(fit, c)
            width[c] = hi - lo
        widths = list(width.values())
        self.assertTrue(all(a < b for a, b in zip(widths, widths[1:])), widths)
        # At the mean: t * s * sqrt(1 + 1/n).
        t = rs.t_quantile(0.975, 4)
        self.assertAlmostEqual(widths[0], 2 * t * fit["residual_std"] * math.sqrt(1 + 1 / 6),
                               places=12)

    def test_too_few_points(self):
        with self.assertRaises(rs.FitError):
            rs.fit_log_linear([1e9, 1e10], [0.1, 0.2])
        with self.assertRaises(rs.FitError):
            rs.fit_log_linear([1e9, 1e9, 1e9], [0.1, 0.2, 0.3])
        with self.assertRaises(rs.FitError):
            rs.fit_log_linear([0, 1e9, 1e10], [0.1, 0.2, 0.3])


class SigmoidFit(unittest.TestCase):
    compute = [1e11 * 10 ** (k / 4) for k in range(1, 13)]  # 1.8e11 .. 1e14, C_mid inside

    def assert_recovers(self, fit, truth, rel):
        for key in ("a", "b", "c_mid"):
            self.assertLess(abs(fit[key] - truth[key]) / abs(truth[key]), rel, (key, fit[key]))

    def test_recovers_noiseless_parameters(self):
        acc = [sigmoid(c) for c in self.compute]
        fit = rs.fit_sigmoid(self.compute, acc, 0.3)
        self.assert_recovers(fit, TRUTH, 1e-6)
        self.assertEqual((fit["n"], fit["p"], fit["r0"], fit["r0_fitted"]), (12, 3, 0.3, False))
        self.assertAlmostEqual(fit["r2"], 1.0, places=10)
        self.assertLess(fit["residual_std"], 1e-8)
        self.assertEqual(fit["at_bound"], [])
        # R_0 fitted when not given: recovered as well.
        fit = rs.fit_sigmoid(self.compute, acc)
        self.assert_recovers(fit, TRUTH, 1e-6)
        self.assertTrue(fit["r0_fitted"])
        self.assertEqual(fit["p"], 4)
        self.assertAlmostEqual(fit["r0"], 0.3, places=7)
        # A below R_0 (a run that loses accuracy) and another B and C_mid.
        truth = {"a": 0.2, "b": 0.7, "c_mid": 2e13, "r0": 0.45}
        acc = [sigmoid(c, **truth) for c in self.compute]
        self.assert_recovers(rs.fit_sigmoid(self.compute, acc, 0.45), truth, 1e-6)
        # A may reach the bound 1 but not beyond.
        truth = {"a": 1.0, "b": 2.0, "c_mid": 1e12, "r0": 0.1}
        fit = rs.fit_sigmoid(self.compute, [sigmoid(c, **truth) for c in self.compute], 0.1)
        self.assert_recovers(fit, truth, 1e-6)
        self.assertLessEqual(fit["a"], 1.0)

    def test_fixed_r0_is_used(self):
        acc = [sigmoid(c) + e for c, e in zip(self.compute, NOISE)]
        fixed = rs.fit_sigmoid(self.compute, acc, 0.25)
        self.assertEqual(fixed["r0"], 0.25)
        self.assertAlmostEqual(rs.predict_sigmoid(fixed, 1e-3)[0], 0.25, places=9)  # C -> 0
        self.assertGreater(abs(fixed["a"] - rs.fit_sigmoid(self.compute, acc, 0.3)["a"]), 1e-4)

    def test_noisy_intervals_contain_the_truth(self):
        acc = [sigmoid(c) + e for c, e in zip(self.compute, NOISE)]
        for r0 in (0.3, None):
            fit = rs.fit_sigmoid(self.compute, acc, r0)
            self.assertGreater(fit["residual_std"], 0.001)
            self.assert_recovers(fit, TRUTH, 0.05)
            intervals = rs.sigmoid_intervals(fit)
            for key in ("a", "b", "c_mid"):
                lo, hi = intervals[key]
                self.assertTrue(lo < TRUTH[key] < hi, (r0, key, lo, hi))
                self.assertTrue(lo < fit[key] < hi)
            if r0 is None:
                lo, hi = intervals["r0"]
                self.assertTrue(lo < 0.3 < hi, (lo, hi))
            else:
                self.assertNotIn("r0", intervals)
            for c in (1e12, 1e14, 1e15):
                yhat, lo, hi = rs.predict_sigmoid(fit, c)
                self.assertTrue(lo < sigmoid(c) < hi, (c, lo, hi))

    def test_intervals_match_a_finite_difference_computation(self):
        # s^2 (J^T J)^-1 with J by central differences of the curve in
        # (A, B, log10 C_mid), t on n - 3 degrees of freedom.
        acc = [sigmoid(c) + e for c, e in zip(self.compute, NOISE)]
        fit = rs.fit_sigmoid(self.compute, acc, 0.3)
        theta = [fit["a"], fit["b"], fit["log10_c_mid"]]

        def curve(params, c):
            return sigmoid(c, params[0], params[1], 10 ** params[2], 0.3)

        def gradient(c):
            row = []
            for k in range(3):
                hi, lo = list(theta), list(theta)
                hi[k] += 1e-6
                lo[k] -= 1e-6
                row.append((curve(hi, c) - curve(lo, c)) / 2e-6)
            return rs.np.array(row)

        jac = rs.np.array([gradient(c) for c in self.compute])
        inverse = rs.np.linalg.inv(jac.T @ jac)
        n = len(acc)
        ss_res = sum((y - curve(theta, c)) ** 2 for c, y in zip(self.compute, acc))
        s = math.sqrt(ss_res / (n - 3))
        self.assertAlmostEqual(fit["residual_std"], s, places=12)
        t = rs.t_quantile(0.975, n - 3)
        se = [s * math.sqrt(inverse[k, k]) for k in range(3)]
        intervals = rs.sigmoid_intervals(fit)
        for (lo, hi), want in ((intervals["a"], (theta[0] - t * se[0], theta[0] + t * se[0])),
                               (intervals["b"], (theta[1] - t * se[1], theta[1] + t * se[1])),
                               (intervals["c_mid"], (10 ** (theta[2] - t * se[2]),
                                                     10 ** (theta[2] + t * se[2])))):
            self.assertAlmostEqual(lo / want[0], 1, places=5)
            self.assertAlmostEqual(hi / want[1], 1, places=5)
        # Delta method prediction interval.
        for c in (1e12, 3e14):
            g = gradient(c)
            half = t * s * math.sqrt(1 + g @ inverse @ g)
            yhat, lo, hi = rs.predict_sigmoid(fit, c)
            self.assertAlmostEqual(yhat, curve(theta, c), places=12)
            self.assertAlmostEqual((hi - lo) / (2 * half), 1, places=5)

    def test_deterministic(self):
        acc = [sigmoid(c) + e for c, e in zip(self.compute, NOISE)]
        one, two = rs.fit_sigmoid(self.compute, acc), rs.fit_sigmoid(self.compute, acc)
        self.assertEqual([one[k] for k in ("a", "b", "c_mid", "r0")],
                         [two[k] for k in ("a", "b", "c_mid", "r0")])

    def test_flat_run_has_no_intervals(self):
        fit = rs.fit_sigmoid(self.compute, [0.4] * 12, 0.4)
        self.assertAlmostEqual(fit["a"], 0.4, places=9)
        self.assertIsNone(fit["cov_unscaled"])
        self.assertTrue(all(math.isnan(v) for pair in rs.sigmoid_intervals(fit).values()
                            for v in pair))
        yhat, lo, hi = rs.predict_sigmoid(fit, 1e15)
        self.assertAlmostEqual(yhat, 0.4, places=9)
        self.assertTrue(math.isnan(lo) and math.isnan(hi))

    def test_too_few_points(self):
        with self.assertRaisesRegex(rs.FitError, "3 parameters and needs at least 4"):
            rs.fit_sigmoid([1e9, 1e10, 1e11], [0.1, 0.2, 0.3], 0.05)
        with self.assertRaisesRegex(rs.FitError, "4 parameters and needs at least 5"):
            rs.fit_sigmoid([1e9, 1e10, 1e11, 1e12], [0.1, 0.2, 0.3, 0.35])
        rs.fit_sigmoid([1e9, 1e10, 1e11, 1e12], [0.1, 0.2, 0.3, 0.35], 0.05)  # enough
        with self.assertRaisesRegex(rs.FitError, "2 distinct compute values"):
            rs.fit_sigmoid([1e9, 1e9, 1e10, 1e10], [0.1, 0.2, 0.3, 0.35], 0.05)
        with self.assertRaisesRegex(rs.FitError, "positive"):
            rs.fit_sigmoid([0, 1e9, 1e10, 1e11], [0.1, 0.2, 0.3, 0.35], 0.05)


class Holdout(unittest.TestCase):
    def test_split(self):
        points = [(10.0 ** k, 0.1, k, "r") for k in (5, 1, 3, 2, 4, 6)]
        fitted, held = rs.split_holdout(points, 0.5)
        self.assertEqual([p[2] for p in fitted], [1, 2, 3])
        self.assertEqual([p[2] for p in held], [4, 5, 6])
        self.assertEqual(len(rs.split_holdout(points, 0.7)[0]), 4)  # floor(4.2)
        many = [(float(k), 0.1, k, "r") for k in range(1, 101)]
        self.assertEqual(len(rs.split_holdout(many, 0.29)[0]), 29)  # 0.29 * 100 < 29 in binary
        # Points of the same compute stay on one side.
        tied = [(1.0, 0.1, 1, "a"), (2.0, 0.1, 2, "a"), (2.0, 0.1, 2, "b"), (2.0, 0.1, 3, "a"),
                (3.0, 0.1, 4, "a"), (4.0, 0.1, 5, "a")]
        self.assertEqual(len(rs.split_holdout(tied, 0.4)[0]), 4)
        with self.assertRaisesRegex(rs.FitError, "leaves 2 of 6 points to fit on"):
            rs.split_holdout(points, 0.4)
        with self.assertRaisesRegex(rs.FitError, "none of the 4 points"):
            rs.split_holdout(tied[:4], 0.9)


class CommandLine(unittest.TestCase):
    def run_script(self, *args):
        return subprocess.run([sys.executable, os.path.join(SCRIPTS, "report_scaling.py"), *args],
                              capture_output=True, text=True)

    def test_runs(self):
        with tempfile.TemporaryDirectory() as tmp:
            a, b = 0.1, 0.04
            records = [{"step": 0, "eval": "heldout", "accuracy": 0.9, "compute_flops": 0.0}]
            for step in range(1, 9):
                c = 1e9 * 2 ** step
                records.append({"step": step, "reward_mean": 0, "accuracy": 0.5,
                                "compute_flops": c})
                if step % 2 == 0:
                    ev = {"step": step, "eval": "heldout", "accuracy": a + b * math.log10(c)}
                    if step != 4:  # step 4's eval pairs with its step record
                        ev["compute_flops"] = c
                    records.append(ev)
                    records.append({"step": step, "eval": "other", "accuracy": 0.0})
            one = write_run(tmp, "one", records)
            two = write_run(tmp, "two", records)
            png = os.path.join(tmp, "fit.png")
            p = self.run_script(one, "--json", "--out", png, "--extrapolate", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            [fit] = json.loads(p.stdout)
            self.assertEqual(fit["n"], 4)  # step 0 left out of the fit, reported alone
            self.assertEqual(fit["start_accuracy"], {"one": 0.9})
            self.assertAlmostEqual(fit["slope"], b, places=9)
            self.assertAlmostEqual(fit["intercept"], a, places=9)
            self.assertAlmostEqual(fit["r2"], 1.0, places=9)
            self.assertAlmostEqual(fit["prediction"]["compute_flops"], 1e9 * 2 ** 8 * 10)
            self.assertGreater(os.path.getsize(png), 1000)

            p = self.run_script(one, "--json", "--min-step", "4")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)[0]["n"], 3)  # steps 4, 6, 8
            self.assertEqual(json.loads(p.stdout)[0]["start_accuracy"], {"one": 0.9})
            p = self.run_script(one, two, "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([f["n"] for f in json.loads(p.stdout)], [8])
            p = self.run_script(one, two, "--json", "--per-run")
            self.assertEqual([f["name"] for f in json.loads(p.stdout)], ["one", "two"])
            p = self.run_script(one)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("slope +0.0400 accuracy per decade", p.stdout)
            self.assertIn("R^2 1.000", p.stdout)
            self.assertIn("95% interval +4.00 .. +4.00", p.stdout)
            self.assertIn("step 0 (no RL compute, not fitted): accuracy one 0.900", p.stdout)

            # "other" pairs with the step records throughout; its constant accuracy
            # leaves R^2 undefined (null in JSON).
            p = self.run_script(one, "--eval", "other", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(json.loads(p.stdout)[0]["r2"])

    def expect_error(self, args, text):
        p = self.run_script(*args)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("error: ") and text in lines[0], lines[0])

    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.expect_error([os.path.join(tmp, "missing")], "metrics.jsonl")
            two = write_run(tmp, "two", [
                {"step": s, "eval": "heldout", "accuracy": 0.1 * s, "compute_flops": 1e9 * s}
                for s in (1, 2)])
            self.expect_error([two], "at least 3")
            self.expect_error([two, "--eval", "nope"], "no \"nope\" evaluation records")
            self.expect_error([two, "--min-step", "3"], "from step 3")
            old = write_run(tmp, "old", [{"step": 5, "reward_mean": 0},
                                         {"step": 5, "eval": "heldout", "accuracy": 0.2}])
            self.expect_error([old], "step 5 has no compute_flops")

    # Output of report_scaling.py before --form and --holdout-fraction, on
    # the runs of test_default_output_unchanged.
    GOLDEN_TEXT = {
        ("one",): """\
one: n 12, slope +0.1347 accuracy per decade of compute (+13.47 points; 95% interval +11.36 .. +15.59), intercept -1.2256, R^2 0.953, residual std 0.0283
  compute 1.778e+11 .. 1.000e+14 FLOPs (2.75 decades); at 3.162e+14 (+0.5 decades): accuracy 0.728, 95% prediction interval [0.651, 0.805]
  step 0 (no RL compute, not fitted): accuracy one 0.300
""",
        ("one", "two"): """\
2 runs pooled: n 22, slope +0.1407 accuracy per decade of compute (+14.07 points; 95% interval +12.63 .. +15.50), intercept -1.2995, R^2 0.955, residual std 0.0258
  compute 1.778e+11 .. 1.000e+14 FLOPs (2.75 decades); at 3.162e+14 (+0.5 decades): accuracy 0.740, 95% prediction interval [0.679, 0.801]
  step 0 (no RL compute, not fitted): accuracy one 0.300, two 0.320
""",
        ("one", "two", "--per-run"): """\
one: n 12, slope +0.1347 accuracy per decade of compute (+13.47 points; 95% interval +11.36 .. +15.59), intercept -1.2256, R^2 0.953, residual std 0.0283
  compute 1.778e+11 .. 1.000e+14 FLOPs (2.75 decades); at 3.162e+14 (+0.5 decades): accuracy 0.728, 95% prediction interval [0.651, 0.805]
  step 0 (no RL compute, not fitted): accuracy one 0.300
two: n 10, slope +0.1508 accuracy per decade of compute (+15.08 points; 95% interval +12.70 .. +17.47), intercept -1.4272, R^2 0.964, residual std 0.0235
  compute 3.557e+11 .. 6.325e+13 FLOPs (2.25 decades); at 2.000e+14 (+0.5 decades): accuracy 0.730, 95% prediction interval [0.661, 0.798]
  step 0 (no RL compute, not fitted): accuracy two 0.320
""",
        ("one", "--min-step", "4", "--extrapolate", "1"): """\
one: n 9, slope +0.1318 accuracy per decade of compute (+13.18 points; 95% interval +9.37 .. +16.98), intercept -1.1851, R^2 0.906, residual std 0.0311
  compute 1.000e+12 .. 1.000e+14 FLOPs (2.00 decades); at 1.000e+15 (+1 decades): accuracy 0.791, 95% prediction interval [0.683, 0.900]
  step 0 (no RL compute, not fitted): accuracy one 0.300
""",
    }
    GOLDEN_JSON = (  # one two --per-run --json
        '[{"name": "one", "runs": ["one"], "n": 12, "slope": 0.13474245842432042, '
        '"slope_95": [0.11362228976126648, 0.15586262708737436], "intercept": -1.2256196502093266, '
        '"r2": 0.952845430640503, "residual_std": 0.028337606023287873, '
        '"start_accuracy": {"one": 0.3}, "compute_min": 177827941003.89227, '
        '"compute_max": 100000000000000.0, "extrapolate_decades": 0.5, '
        '"prediction": {"compute_flops": 316227766016837.94, "accuracy": 0.7281459969433195, '
        '"low_95": 0.6514186691737773, "high_95": 0.8048733247128617}}, '
        '{"name": "two", "runs": ["two"], "n": 10, "slope": 0.1508185300112209, '
        '"slope_95": [0.1269810714942902, 0.1746559885281516], "intercept": -1.4272387626963414, '
        '"r2": 0.963779213824361, "residual_std": 0.023472905561326116, '
        '"start_accuracy": {"two": 0.32}, "compute_min": 355655882007.78455, '
        '"compute_max": 63245553203367.59, "extrapolate_decades": 0.5, '
        '"prediction": {"compute_flops": 200000000000000.03, "accuracy": 0.729621558896077, '
        '"low_95": 0.6608948132849841, "high_95": 0.79834830450717}}]')

    def assert_same_json(self, got, want, where="$"):
        """Same structure and key order; numbers equal to 1e-12 relative."""
        self.assertEqual(type(got), type(want), where)
        if isinstance(want, dict):
            self.assertEqual(list(got), list(want), where)
            for key in want:
                self.assert_same_json(got[key], want[key], f"{where}.{key}")
        elif isinstance(want, list):
            self.assertEqual(len(got), len(want), where)
            for k, (g, w) in enumerate(zip(got, want)):
                self.assert_same_json(g, w, f"{where}[{k}]")
        elif isinstance(want, float):
            self.assertLessEqual(abs(got - want), 1e-12 * abs(want), where)
        else:
            self.assertEqual(got, want, where)

    def test_default_output_unchanged(self):
        with tempfile.TemporaryDirectory() as tmp:
            one = sigmoid_run(tmp, "one")
            two = sigmoid_run(tmp, "two", steps=10, start=0.32, scale=2e11, noise=NOISE[::-1])
            paths = {"one": one, "two": two}
            for args, want in self.GOLDEN_TEXT.items():
                p = self.run_script(*[paths.get(a, a) for a in args])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout, want)
                self.assertEqual(p.stderr, "")
            # --form log_linear is the default.
            p = self.run_script(one, "--form", "log_linear")
            self.assertEqual(p.stdout, self.GOLDEN_TEXT[("one",)])
            p = self.run_script(one, two, "--per-run", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assert_same_json(json.loads(p.stdout), json.loads(self.GOLDEN_JSON))

    def test_sigmoid(self):
        with tempfile.TemporaryDirectory() as tmp:
            exact = sigmoid_run(tmp, "exact", noise=(0.0,))
            p = self.run_script(exact, "--form", "sigmoid", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            [fit] = json.loads(p.stdout)
            self.assertEqual(fit["form"], "sigmoid")
            self.assertEqual(fit["n"], 12)  # the step-0 record is R_0, not a point
            self.assertEqual((fit["r0"], fit["r0_fitted"], fit["r0_95"]), (0.3, False, None))
            self.assertEqual(fit["r0_source"], "the step-0 accuracy of exact")
            for key in ("a", "b", "c_mid"):
                self.assertAlmostEqual(fit[key] / TRUTH[key], 1, places=6)
            self.assertAlmostEqual(fit["r2"], 1.0, places=9)
            self.assertAlmostEqual(fit["prediction"]["compute_flops"], 1e14 * 10 ** 0.5)
            self.assertAlmostEqual(fit["prediction"]["accuracy"], sigmoid(1e14 * 10 ** 0.5),
                                   places=6)

            # The step-0 accuracy is R_0 even when it disagrees with the curve.
            low = sigmoid_run(tmp, "low", start=0.25)
            p = self.run_script(low, "--form", "sigmoid", "--json")
            [fit] = json.loads(p.stdout)
            self.assertEqual((fit["r0"], fit["r0_fitted"]), (0.25, False))
            compute = [1e11 * 10 ** (k / 4) for k in range(1, 13)]
            direct = rs.fit_sigmoid(compute, [sigmoid(c) + e for c, e in zip(compute, NOISE)],
                                    0.25)
            self.assertAlmostEqual(fit["a"], direct["a"], places=9)
            self.assertAlmostEqual(fit["b"], direct["b"], places=9)
            lo, hi = rs.sigmoid_intervals(direct)["c_mid"]
            self.assertAlmostEqual(fit["c_mid_95"][0] / lo, 1, places=9)
            self.assertAlmostEqual(fit["c_mid_95"][1] / hi, 1, places=9)
            p = self.run_script(low, "--form", "sigmoid")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("low (sigmoid): n 12, A ", p.stdout)
            self.assertIn("R_0 0.2500, the step-0 accuracy of low (fixed, not fitted)", p.stdout)

            # Without a step-0 record R_0 is fitted, and the report says why.
            bare = sigmoid_run(tmp, "bare", start=None)
            p = self.run_script(bare, "--form", "sigmoid", "--json")
            [fit] = json.loads(p.stdout)
            self.assertTrue(fit["r0_fitted"])
            self.assertEqual(fit["r0_source"], "no step-0 \"heldout\" record in bare")
            self.assertTrue(fit["r0_95"][0] < 0.3 < fit["r0_95"][1], fit["r0_95"])
            p = self.run_script(bare, "--form", "sigmoid")
            self.assertIn("fitted: no step-0 \"heldout\" record in bare", p.stdout)
            # ... and when pooled runs start from different accuracies.
            p = self.run_script(exact, low, "--form", "sigmoid", "--json")
            [fit] = json.loads(p.stdout)
            self.assertTrue(fit["r0_fitted"])
            self.assertIn("step-0 accuracies differ (exact 0.300, low 0.250)", fit["r0_source"])
            p = self.run_script(exact, low, "--form", "sigmoid", "--per-run", "--json")
            self.assertEqual([f["r0"] for f in json.loads(p.stdout)], [0.3, 0.25])

            # --form both: the log-linear fit as before, with a "form" key,
            # then the sigmoid; and the plot.
            png = os.path.join(tmp, "both.png")
            p = self.run_script(low, "--form", "both", "--json", "--out", png)
            self.assertEqual(p.returncode, 0, p.stderr)
            line, curve = json.loads(p.stdout)
            self.assertEqual((line["form"], curve["form"]), ("log_linear", "sigmoid"))
            [alone] = json.loads(self.run_script(low, "--json").stdout)
            self.assertEqual(line, {"name": "low", "form": "log_linear", **alone})
            [sigmoid_alone] = json.loads(self.run_script(low, "--form", "sigmoid", "--json").stdout)
            self.assertEqual(curve, sigmoid_alone)
            self.assertGreater(os.path.getsize(png), 1000)
            p = self.run_script(low, "--form", "both")
            self.assertIn("low (log-linear): n 12, slope", p.stdout)
            self.assertIn("low (sigmoid): n 12, A", p.stdout)

    def test_holdout(self):
        with tempfile.TemporaryDirectory() as tmp:
            # The sigmoid is true: it predicts the second half within its
            # intervals, and better than the line.
            good = sigmoid_run(tmp, "good")
            png = os.path.join(tmp, "holdout.png")
            p = self.run_script(good, "--form", "both", "--holdout-fraction", "0.5", "--json",
                                "--out", png)
            self.assertEqual(p.returncode, 0, p.stderr)
            line, curve = json.loads(p.stdout)
            self.assertGreater(os.path.getsize(png), 1000)
            compute = [1e11 * 10 ** (k / 4) for k in range(1, 13)]
            acc = [sigmoid(c) + e for c, e in zip(compute, NOISE)]
            direct = rs.fit_sigmoid(compute[:6], acc[:6], 0.3)
            for fit in (line, curve):
                h = fit["holdout"]
                self.assertEqual((h["fraction"], h["fit_n"], h["n"], fit["n"]), (0.5, 6, 6, 6))
                self.assertEqual([r["step"] for r in h["points"]], [7, 8, 9, 10, 11, 12])
                self.assertEqual({r["run"] for r in h["points"]}, {"good"})
                self.assertAlmostEqual(fit["compute_max"], compute[5])
                self.assertAlmostEqual(h["split_compute_flops"], 1e11 * 10 ** 1.625)
                # MAE and coverage are what the points say.
                for r, c, y in zip(h["points"], compute[6:], acc[6:]):
                    self.assertAlmostEqual(r["compute_flops"], c)
                    self.assertAlmostEqual(r["accuracy"], y, places=12)
                    self.assertEqual(r["inside_95"], r["low_95"] <= y <= r["high_95"])
                self.assertAlmostEqual(
                    h["mae"], sum(abs(r["predicted"] - r["accuracy"]) for r in h["points"]) / 6,
                    places=12)
                self.assertAlmostEqual(
                    h["coverage_95"], sum(r["inside_95"] for r in h["points"]) / 6, places=12)
            for r, c in zip(curve["holdout"]["points"], compute[6:]):
                yhat, lo, hi = rs.predict_sigmoid(direct, c)
                self.assertAlmostEqual(r["predicted"], yhat, places=9)
                self.assertAlmostEqual(r["low_95"], lo, places=9)
                self.assertLess(abs(r["predicted"] - sigmoid(c)), 0.02)
            self.assertEqual(curve["holdout"]["coverage_95"], 1.0)
            self.assertLess(curve["holdout"]["mae"], 0.01)
            self.assertGreater(line["holdout"]["mae"], 2 * curve["holdout"]["mae"])

            # The sigmoid is false: accuracy collapses right after the split
            # (step 6 at 3.2e12 FLOPs); the predictions miss by 0.12 to 0.38 and
            # most measurements fall outside their intervals, which widen
            # with the extrapolation.
            def collapse(c):
                return sigmoid(c) if c < 4e12 else sigmoid(c) - 0.1 - 0.2 * math.log10(c / 4e12)
            bad = sigmoid_run(tmp, "bad", curve=collapse)
            p = self.run_script(bad, "--form", "sigmoid", "--holdout-fraction", "0.5", "--json")
            self.assertEqual(p.returncode, 0, p.stderr)
            [fit] = json.loads(p.stdout)
            h = fit["holdout"]
            self.assertEqual([r["inside_95"] for r in h["points"]],
                             [False, False, True, True, False, False])
            self.assertAlmostEqual(h["coverage_95"], 2 / 6, places=12)
            errors = [abs(r["predicted"] - r["accuracy"]) for r in h["points"]]
            self.assertGreater(min(errors), 0.1)
            self.assertAlmostEqual(h["mae"], sum(errors) / len(errors), places=12)
            for r, c in zip(h["points"], compute[6:]):
                self.assertAlmostEqual(r["accuracy"], collapse(c) + NOISE[r["step"] - 1],
                                       places=12)

            p = self.run_script(good, bad, "--form", "sigmoid", "--per-run",
                                "--holdout-fraction", "0.5")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("  holdout: fitted on the first 6 of 12 points by compute, predicted "
                          "the other 6: mean absolute error ", p.stdout)
            self.assertIn("6 of 6 inside their 95% prediction intervals (coverage 1.00)", p.stdout)
            self.assertIn("2 of 6 inside their 95% prediction intervals (coverage 0.33)", p.stdout)
            self.assertRegex(p.stdout, r"\n    step 12: compute 1\.000e\+14, measured 0\.\d{3}, "
                                       r"predicted 0\.\d{3}, 95% prediction interval "
                                       r"\[0\.\d{3}, 0\.\d{3}\], outside\n")
            # Pooled, the split is by compute over both runs, and points name their run.
            p = self.run_script(good, bad, "--holdout-fraction", "0.5", "--json")
            [fit] = json.loads(p.stdout)
            self.assertEqual((fit["holdout"]["fit_n"], fit["holdout"]["n"]), (12, 12))
            self.assertEqual({r["run"] for r in fit["holdout"]["points"]}, {"good", "bad"})
            self.assertTrue(all(r["compute_flops"] > fit["compute_max"]
                                for r in fit["holdout"]["points"]))
            p = self.run_script(good, bad, "--holdout-fraction", "0.5")
            self.assertIn("    bad step 7: compute", p.stdout)

    def test_sigmoid_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            three = write_run(tmp, "three", [{"step": 0, "eval": "heldout", "accuracy": 0.1}] + [
                {"step": s, "eval": "heldout", "accuracy": 0.1 * s, "compute_flops": 1e9 * s}
                for s in (1, 2, 3)])
            self.expect_error([three, "--form", "sigmoid"],
                              "three: 3 points; the sigmoid with R_0 fixed has 3 parameters "
                              "and needs at least 4")
            self.expect_error([three, "--form", "both"], "needs at least 4")
            self.assertEqual(self.run_script(three).returncode, 0)  # the line alone is fine
            run = sigmoid_run(tmp, "run")
            self.expect_error([run, "--holdout-fraction", "0.2"],
                              "run: --holdout-fraction 0.2 leaves 2 of 12 points to fit on; "
                              "at least 3 are needed")
            self.expect_error([run, "--form", "sigmoid", "--holdout-fraction", "0.25"],
                              "run (the first 3 of 12 points): 3 points; the sigmoid")
            self.expect_error([run, "--holdout-fraction", "1"], "between 0 and 1")
            bare = sigmoid_run(tmp, "bare", start=None, steps=4)
            self.expect_error([bare, "--form", "sigmoid"], "has 4 parameters and needs at least 5")


if __name__ == "__main__":
    unittest.main()
