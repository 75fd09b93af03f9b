"""Tests of scripts/report_scaling.py: the log-linear fit, its prediction
interval and Student t quantile, and the command line on small run
directories (pairing with step records, --per-run, --json, errors)."""

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


if __name__ == "__main__":
    unittest.main()
