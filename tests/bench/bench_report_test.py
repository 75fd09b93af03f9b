"""Tests of bench/'s report code: the shared result rows and Markdown helpers
(bench/results.py), the regression check of bench/report.py (a fall judged
against the spread of the run's own repetitions, an error only on the same
machine), the rollout benchmark's roofline (bench/rollout/report.py) and the
loss benchmark's rows (bench/loss/report.py), one of the benchmarks on the
shared rows."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
sys.path.insert(0, BENCH)

import report  # noqa: E402
import results  # noqa: E402



def load(name, path):
    """A bench script under a name of its own (several are called report.py)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rollout_report = load("rollout_report", "rollout/report.py")


def read(path):
    with open(path) as f:
        return f.read()


class Rows(unittest.TestCase):
    def test_ratio_is_the_advantage_either_way(self):
        faster = results.row("m", "tokens/s", 300.0, 200.0, "base", "k")
        self.assertAlmostEqual(faster["ratio"], 1.5)
        leaner = results.row("m", "MiB", 100.0, 400.0, "base", "k", lower_is_better=True)
        self.assertAlmostEqual(leaner["ratio"], 4.0)

    def test_repetitions_become_the_spread(self):
        r = results.row("m", "s", 2.0, 1.0, "base", "k", pairs=[(2.0, 1.0), (3.0, 1.0)])
        self.assertEqual(r["reps"], [2.0, 3.0])
        self.assertNotIn("reps", results.row("m", "s", 2.0, 1.0, "base", "k"))

    def test_table(self):
        self.assertEqual(results.table(["a", "b"], [[1, "x"], ["", 2.5]]),
                         "| a | b |\n| --- | --- |\n| 1 | x |\n| | 2.5 |")

    def test_fmt(self):
        self.assertEqual([results.fmt(x) for x in (None, 12345.6, 12.34, 1.234, 0.01234)],
                         ["-", "12,346", "12.3", "1.23", "0.0123"])

    def test_write_is_whole(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.json")
            results.write(path, "x", "X", 1.0, [], "body")
            self.assertEqual(json.loads(read(path))["markdown"], "body")
            self.assertEqual(os.listdir(tmp), ["x.json"])


class LossRows(unittest.TestCase):
    """bench/loss/report.py on two repetitions: medians, the advantage of the
    chunked loss and the spread of the repetitions it ran side by side."""

    def test_rows_carry_the_repetitions(self):
        runs = []
        for rep, (whole, chunked) in enumerate([((400, 2.0), (100, 1.0)), ((440, 3.0), (80, 1.5))]):
            for path, (mib, seconds) in (("logits", whole), ("chunked", chunked)):
                runs.append({"path": path, "chunk": 512 if path == "chunked" else 0,
                             "vocab": 1000, "tokens": 64, "width": 8, "rep": rep,
                             "peak_bytes": mib << 20, "seconds": seconds, "loss": 6.9})
        with tempfile.TemporaryDirectory() as tmp:
            jsonl, out = os.path.join(tmp, "results.jsonl"), os.path.join(tmp, "loss.json")
            with open(jsonl, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in runs)
            proc = subprocess.run([sys.executable, os.path.join(BENCH, "loss", "report.py"),
                                   jsonl, "--json", out], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            written = json.loads(read(out))
        peak, time = written["rows"]
        self.assertEqual((peak["key"], time["key"]), ("loss.1000.peak", "loss.1000.time"))
        self.assertAlmostEqual(peak["ratio"], 420 / 90)
        self.assertEqual(peak["reps"], [4.0, 5.5])
        self.assertAlmostEqual(time["ratio"], 2.5 / 1.25)
        self.assertEqual(time["reps"], [2.0, 2.0])
        self.assertIn("| 1,000 | 420 MiB | 90 MiB | 4.7x |", written["markdown"])


class Judge(unittest.TestCase):
    def row(self, ratio, reps=None):
        return {"ratio": ratio, "reps": reps, "key": "k"}

    def test_a_small_change_is_no_fall(self):
        self.assertEqual(report.judge(self.row(0.97, [0.9, 1.0]), 1.0, True, {}), ("1.00", False))

    def test_a_fall_within_the_spread_is_noise(self):
        text, error = report.judge(self.row(0.8, [0.7, 0.8, 1.05]), 1.0, True, {})
        self.assertFalse(error)
        self.assertIn("noise", text)

    def test_a_fall_below_every_repetition_on_the_same_machine_is_an_error(self):
        text, error = report.judge(self.row(0.8, [0.78, 0.8, 0.83]), 1.0, True, {})
        self.assertTrue(error)
        self.assertIn("regressed", text)

    def test_on_another_machine_it_is_a_warning(self):
        text, error = report.judge(self.row(0.8, [0.78, 0.8, 0.83]), 1.0, False, {})
        self.assertFalse(error)
        self.assertIn("another machine", text)

    def test_one_repetition_has_no_spread(self):
        text, error = report.judge(self.row(0.5, [0.5]), 1.0, True, {})
        self.assertFalse(error)
        self.assertIn("measured once", text)

    def test_a_note_explains_a_regression(self):
        text, error = report.judge(self.row(0.8, [0.79, 0.81]), 1.0, True, {"k": "known"})
        self.assertFalse(error)
        self.assertIn("known", text)


class CommandLine(unittest.TestCase):
    """report.py on a results directory with one benchmark, against previous
    figures from this machine or another."""

    def run_report(self, reps, previous_machine):
        with tempfile.TemporaryDirectory() as tmp:
            res = os.path.join(tmp, "results")
            os.makedirs(res)
            rows = [results.row("m", "s", 1.6, 2.0, "base", "loss.x", pairs=reps)]
            rows[0]["ratio"] = 0.8
            results.write(os.path.join(res, "loss.json"), "loss", "Loss", 1.0, rows, "body")
            previous = os.path.join(tmp, "previous.json")
            with open(previous, "w") as f:
                json.dump({"machine": previous_machine,
                           "rows": [{"key": "loss.x", "ratio": 1.0}]}, f)
            out = os.path.join(tmp, "performance.md")
            proc = subprocess.run([sys.executable, os.path.join(BENCH, "report.py"), "--results",
                                   res, "--out", out, "--previous", previous, "--notes",
                                   os.path.join(tmp, "none.json")],
                                  capture_output=True, text=True)
            page = read(out) if os.path.exists(out) else ""
            written = json.loads(read(os.path.join(tmp, "performance.json")))
            return proc, page, written

    def test_same_machine_outside_the_spread_fails(self):
        proc, page, written = self.run_report([(1.6, 2.0), (1.62, 2.0)], report.machine())
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("loss.x", proc.stderr)
        self.assertIn("regressed", page)
        self.assertEqual(written["machine"], report.machine())

    def test_another_machine_warns(self):
        proc, page, _ = self.run_report([(1.6, 2.0), (1.62, 2.0)], "another CPU, 64 cores")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("another machine", page)

    def test_within_the_spread_passes(self):
        proc, page, _ = self.run_report([(1.6, 2.0), (2.1, 2.0)], report.machine())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("noise", page)


class Roofline(unittest.TestCase):
    shape = {"matmul_params": 1000, "attention_flops_per_position": 10,
             "kv_bytes_per_position": 8}
    peak = {"matmul_gflops": 1e-6, "read_gbps": 1e-6}  # 1000 FLOP/s, 1000 B/s

    def test_one_sequence_is_memory_bound(self):
        reply = {"mode": "greedy", "batch": 1, "new_tokens": 3}
        # Prefill: 2 x 1000 x 2 tokens / 1000 FLOP/s = 4 s; two steps each reading
        # 4000 B of weights plus the cache (context 3 and 4: 24 and 32 B).
        seconds = rollout_report.roofline_seconds(reply, [[1, 2]], self.shape, self.peak)
        self.assertAlmostEqual(seconds, 4 + 4.024 + 4.032)

    def test_a_group_prefills_each_distinct_prompt_once_and_finished_rows_cost_nothing(self):
        reply = {"mode": "group", "prompts": 1, "samples": 2, "lengths": [1, 2]}
        seconds = rollout_report.roofline_seconds(reply, [[1, 2]], self.shape, self.peak)
        # One step, one sequence still running, context 3.
        self.assertAlmostEqual(seconds, 4 + max(2030 / 1000, 4024 / 1000))


if __name__ == "__main__":
    unittest.main()
