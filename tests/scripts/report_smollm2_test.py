"""Tests of scripts/report_smollm2.py on a synthetic evaluation directory:
the aggregated accuracies, standard errors and tokens (one seed, several
seeds with a wide spread, several with none), the verdicts against control
and start (met, missed on accuracy, missed on tokens), the per-kind figures,
the Pareto front, the Markdown and plots, and the `error:` lines."""

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
PROBLEMS = 100
KINDS = ("add_1d", "add_2d", "word_1", "word_2")
OFFSET = {"add_1d": -3, "add_2d": -1, "word_1": 1, "word_2": 3}  # response tokens by kind

# Evaluation name -> (accuracy, mean response tokens, truncated fraction).
# control: 40% ± 4.9 (binomial, n = 100) at 100 tokens, so the target is
# <= 50 tokens at >= 35.1%.
EVALS = {
    "start": (0.20, 80, 0.30),
    "control": (0.40, 100, 0.10),
    # 37% (>= 35.1) at 45 tokens: met. Seed SE 3.61 > pooled binomial 2.79.
    "kimi": (0.42, 40, 0.02), "kimi-seed2": (0.30, 45, 0.04), "kimi-seed3": (0.39, 50, 0.06),
    "linear": (0.30, 30, 0.0),  # 30 tokens but 30% < 35.1: missed
    # 45% at 62 tokens: missed on tokens. Identical seeds: the binomial floor.
    "dler-seed1": (0.45, 60, 0.05), "dler-seed2": (0.45, 64, 0.05),
}


def binomial(p, n):
    return math.sqrt(p * (1 - p) / n)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def kind_of(i):
    return KINDS[i % len(KINDS)]


def make_run(root, name):
    run = os.path.join(root, "runs", name)
    os.makedirs(os.path.join(run, "checkpoints", "step_00000008"))
    records = [{"step": 0, "eval": "heldout", "accuracy": 0.2, "response_tokens_mean": 80,
                "prompts": 20, "compute_flops": 0}]
    for step in range(1, 9):
        records.append({"step": step, "reward_mean": 0.1 * step, "accuracy": 0.05 * step,
                        "response_tokens_mean": 80 - 3 * step, "truncated_fraction": 0.1,
                        "compute_flops": 1e12 * step})
        if step % 4 == 0:
            records.append({"step": step, "eval": "heldout", "accuracy": 0.2 + 0.02 * step,
                            "response_tokens_mean": 80 - 4 * step, "prompts": 20,
                            "compute_flops": 1e12 * step})
    write_jsonl(os.path.join(run, "metrics.jsonl"), records)
    return run


def make_eval_dir(root):
    """The task file, EVAL_DIR and runs; returns (tasks, eval_dir, runs)."""
    tasks = os.path.join(root, "heldout.jsonl")
    write_jsonl(tasks, [{"prompt": f"What is {i} + 1?", "answer": str(i + 1), "kind": kind_of(i),
                         "template": "bare", "level": 1} for i in range(PROBLEMS)])
    eval_dir = os.path.join(root, "eval")
    os.makedirs(eval_dir)
    runs = {}
    for name, (accuracy, tokens, truncated) in EVALS.items():
        if name == "start":
            checkpoint = "hf:models/SmolLM2-135M-Instruct"
        else:
            runs[name] = make_run(root, name)
            # Seeds name a checkpoint inside the run, the others the run itself.
            checkpoint = (os.path.join(runs[name], "checkpoints", "step_00000008")
                          if "seed" in name else runs[name])
        correct = round(accuracy * PROBLEMS)
        write_jsonl(os.path.join(eval_dir, name + ".answers.jsonl"), [
            {"index": i, "correct": i < correct, "answer": str(i + 1 if i < correct else 0),
             "reference": str(i + 1), "response_tokens": tokens + OFFSET[kind_of(i)],
             "think_tokens": 0, "finish": "stop", "text": "It is 1."}
            for i in range(PROBLEMS)])
        base = {"step": 8, "eval": "greedy", "accuracy": 0.01, "accuracy_stderr": 0.01,
                "response_tokens_mean": 1, "truncated_fraction": 0, "prompts": PROBLEMS,
                "checkpoint": checkpoint}
        # An earlier evaluation and another kind of record: only the last greedy one counts.
        write_jsonl(os.path.join(eval_dir, name + ".jsonl"), [
            base, dict(base, accuracy=accuracy, accuracy_stderr=binomial(accuracy, PROBLEMS),
                       response_tokens_mean=tokens, truncated_fraction=truncated),
            {"step": 8, "eval": "sampled", "accuracy": 0.9}])
    return tasks, eval_dir, runs


class ReportSmolLM2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = cls.tmp.name
        cls.tasks, cls.eval_dir, cls.runs = make_eval_dir(cls.root)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_script(self, *args):
        return subprocess.run([sys.executable, os.path.join(SCRIPTS, "report_smollm2.py"), *args],
                              capture_output=True, text=True)

    def test_report(self):
        out = os.path.join(self.root, "report")
        path = os.path.join(self.root, "results.json")
        p = self.run_script(self.eval_dir, "--tasks", self.tasks, "--out", out, "--json", path,
                            "--headline", "kimi")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        self.assertEqual(report["source"], "scripts/report_smollm2.py")
        s = report["settings"]
        self.assertEqual(list(s), ["start", "control", "dler", "kimi", "linear"])

        # One seed: the record's binomial SE.
        control = s["control"]
        self.assertAlmostEqual(control["accuracy"], 0.40, places=12)
        self.assertAlmostEqual(control["accuracy_stderr"], binomial(0.4, 100), places=12)
        self.assertIsNone(control["accuracy_stderr_seeds"])
        self.assertEqual(control["run"], self.runs["control"])
        self.assertEqual(s["start"]["run"], "hf:models/SmolLM2-135M-Instruct")

        # Three seeds with a spread: mean, and s / sqrt(3) above the pooled binomial SE.
        kimi = s["kimi"]
        accs = [0.42, 0.30, 0.39]
        seed_se = statistics.stdev(accs) / math.sqrt(3)
        self.assertAlmostEqual(kimi["accuracy"], 0.37, places=12)
        self.assertAlmostEqual(seed_se, 0.0360555, places=6)
        self.assertGreater(seed_se, binomial(0.37, 300))
        self.assertAlmostEqual(kimi["accuracy_stderr"], seed_se, places=12)
        self.assertAlmostEqual(kimi["accuracy_stderr_seeds"], seed_se, places=12)
        self.assertAlmostEqual(kimi["response_tokens_mean"], 45, places=12)
        self.assertAlmostEqual(kimi["truncated_fraction"], 0.04, places=12)
        self.assertIsNone(kimi["run"])
        self.assertEqual([e["name"] for e in kimi["seeds"]], ["kimi", "kimi-seed2", "kimi-seed3"])
        self.assertEqual(kimi["seeds"][1]["run"], self.runs["kimi-seed2"])  # from checkpoints/
        self.assertEqual(kimi["seeds"][1]["eval"],
                         os.path.join(self.eval_dir, "kimi-seed2.jsonl"))
        self.assertAlmostEqual(kimi["seeds"][2]["accuracy"], 0.39, places=12)

        # Identical seeds: the pooled binomial SE over 2 x 100 answers.
        dler = s["dler"]
        self.assertAlmostEqual(dler["accuracy"], 0.45, places=12)
        self.assertAlmostEqual(dler["accuracy_stderr_seeds"], 0.0, places=12)
        self.assertAlmostEqual(dler["accuracy_stderr"], binomial(0.45, 200), places=12)
        self.assertAlmostEqual(dler["response_tokens_mean"], 62, places=12)

        # Per kind, from the answers: kimi's seeds answer the first 42, 30, 39
        # problems right; kind i % 4; word_2 (i = 3, 7, ..) has 3 more tokens.
        for kind, k in zip(KINDS, range(4)):
            expected = statistics.fmean(
                sum(1 for i in range(k, round(a * 100), 4)) / 25 for a in accs)
            self.assertAlmostEqual(kimi["kinds"][kind]["accuracy"], expected, places=12)
            self.assertEqual(kimi["kinds"][kind]["problems"], 25)
        self.assertAlmostEqual(kimi["kinds"]["word_2"]["accuracy"], (10 + 7 + 9) / 75, places=12)
        self.assertAlmostEqual(kimi["kinds"]["word_2"]["response_tokens_mean"], 48, places=12)
        self.assertAlmostEqual(s["start"]["kinds"]["add_1d"]["response_tokens_mean"], 77,
                               places=12)

        t = report["targets"]["settings"]
        self.assertEqual(report["targets"]["headline"], "kimi")
        self.assertNotIn("control", t["control"])
        self.assertNotIn("start", t["start"])
        ck = t["kimi"]["control"]
        self.assertTrue(ck["met"])
        self.assertTrue(ck["half_the_tokens"] and ck["accuracy_within_se"])
        self.assertAlmostEqual(ck["tokens_change"], -0.55, places=12)
        self.assertAlmostEqual(ck["accuracy_diff"], -0.03, places=12)
        self.assertAlmostEqual(ck["accuracy_diff_control_se"], -0.03 / binomial(0.4, 100),
                               places=12)
        cl = t["linear"]["control"]
        self.assertFalse(cl["met"])
        self.assertTrue(cl["half_the_tokens"])
        self.assertFalse(cl["accuracy_within_se"])
        cd = t["dler"]["control"]
        self.assertFalse(cd["met"])
        self.assertFalse(cd["half_the_tokens"])
        self.assertTrue(cd["accuracy_within_se"])  # above control's accuracy is within

        sk = t["kimi"]["start"]
        self.assertTrue(sk["met"])
        self.assertAlmostEqual(sk["accuracy_diff"], 0.17, places=12)
        self.assertAlmostEqual(sk["accuracy_diff_se"],
                               0.17 / math.hypot(seed_se, binomial(0.2, 100)), places=12)
        self.assertFalse(t["control"]["start"]["met"])  # more accurate, but longer
        self.assertTrue(t["linear"]["start"]["met"])

        self.assertEqual(report["pareto_front"], ["linear", "kimi", "dler"])

        # Markdown on stdout and in results.md; the plots.
        with open(os.path.join(out, "results.md"), encoding="utf-8") as f:
            self.assertEqual(f.read(), p.stdout)
        self.assertIn("| kimi | 3 | 37.0 ± 3.6 | 45.0 | 4.0 | -55% | -0.61 | yes | yes (+3.2 SE) |",
                      p.stdout)
        self.assertIn("| control | 1 | 40.0 ± 4.9 | 100.0 | 10.0 | — | — | — | no (+3.2 SE) |",
                      p.stdout)
        self.assertIn("| linear | 1 | 30.0 ± 4.6 | 30.0 | 0.0 | -70% | -2.04 | no | yes", p.stdout)
        self.assertIn("| start | 20.0 / 77.0 | 20.0 / 79.0 | 20.0 / 81.0 | 20.0 / 83.0 |",
                      p.stdout)
        self.assertIn("target met", p.stdout.split("## Headline")[1])
        for png in ("accuracy_vs_tokens.png", "curves.png"):
            self.assertGreater(os.path.getsize(os.path.join(out, png)), 10000, png)

    def test_recorded(self):
        # The settings a directory does not evaluate come from an earlier report.
        full = os.path.join(self.root, "full.json")
        p = self.run_script(self.eval_dir, "--tasks", self.tasks, "--json", full)
        self.assertEqual(p.returncode, 0, p.stderr)
        keep = ("linear.jsonl", "linear.answers.jsonl")
        d = self.variant("only_linear", lambda d: [
            os.remove(os.path.join(d, n)) for n in os.listdir(d) if n not in keep])
        self.expect_error([d, "--tasks", self.tasks], "no start setting")
        path = os.path.join(self.root, "partial.json")
        p = self.run_script(d, "--tasks", self.tasks, "--recorded", full, "--json", path,
                            "--headline", "kimi")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(full, encoding="utf-8") as f:
            before = json.load(f)
        with open(path, encoding="utf-8") as f:
            after = json.load(f)
        self.assertEqual(list(after["settings"]), ["start", "control", "dler", "kimi", "linear"])
        for name, row in after["settings"].items():
            expected = dict(before["settings"][name])
            if name != "linear":
                self.assertEqual(row.pop("recorded_from"), full)
            else:
                self.assertNotIn("recorded_from", row)
                for seed in expected["seeds"]:  # evaluated again, from its copy of the files
                    seed["eval"] = os.path.join(d, "linear.jsonl")
            self.assertEqual(row, expected, name)
        self.assertEqual(after["targets"]["settings"], before["targets"]["settings"])
        self.assertEqual(after["pareto_front"], before["pareto_front"])
        self.assertIn("| kimi (recorded) | 3 | 37.0 ± 3.6 | 45.0 | 4.0 | -55% | -0.61 | yes |",
                      p.stdout)
        self.assertIn("| linear | 1 | 30.0 ± 4.6 |", p.stdout)

        # A report on other problems, or not a report at all, is refused.
        other = os.path.join(self.root, "other.json")
        with open(other, "w", encoding="utf-8") as f:
            json.dump(dict(before, problems=PROBLEMS + 1), f)
        self.expect_error([d, "--tasks", self.tasks, "--recorded", other],
                          f"recorded on {PROBLEMS + 1} problems")
        self.expect_error([d, "--tasks", self.tasks, "--recorded", self.tasks], "heldout.jsonl")

    def expect_error(self, args, text):
        p = self.run_script(*args)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "")  # checked before any report is printed
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("error: ") and text in lines[0], lines[0])

    def variant(self, name, edit):
        """A copy of EVAL_DIR changed by edit(dir)."""
        d = os.path.join(self.root, name)
        shutil.copytree(self.eval_dir, d)
        edit(d)
        return d

    def test_errors(self):
        missing = os.path.join(self.root, "missing.jsonl")
        self.expect_error([self.eval_dir, "--tasks", missing], "missing.jsonl")
        self.expect_error([os.path.join(self.root, "nowhere"), "--tasks", self.tasks], "nowhere")

        def drop_answer(d):
            path = os.path.join(d, "linear.answers.jsonl")
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(lines[:-1])
        d = self.variant("short", drop_answer)
        self.expect_error([d, "--tasks", self.tasks], "linear.answers.jsonl: 99 answers")

        def remove(*names):
            return lambda d: [os.remove(os.path.join(d, n)) for n in names]
        d = self.variant("no_control", remove("control.jsonl", "control.answers.jsonl"))
        self.expect_error([d, "--tasks", self.tasks], "no control setting")
        d = self.variant("no_start", remove("start.jsonl", "start.answers.jsonl"))
        self.expect_error([d, "--tasks", self.tasks], "no start setting")
        d = self.variant("no_answers", remove("kimi-seed3.answers.jsonl"))
        self.expect_error([d, "--tasks", self.tasks], "kimi-seed3.answers.jsonl")

        def stale(d):  # answers of another evaluation: accuracy differs from the record
            shutil.copy(os.path.join(d, "kimi.answers.jsonl"),
                        os.path.join(d, "linear.answers.jsonl"))
        d = self.variant("stale", stale)
        self.expect_error([d, "--tasks", self.tasks], "linear.answers.jsonl: accuracy 0.4200")

        self.expect_error([self.eval_dir, "--tasks", self.tasks, "--headline", "nope"],
                          "no setting nope")

        def no_run(d):  # a checkpoint whose run has no metrics.jsonl: an error with --out only
            path = os.path.join(d, "linear.jsonl")
            with open(path, encoding="utf-8") as f:
                records = [json.loads(line) for line in f]
            records[1]["checkpoint"] = os.path.join(self.root, "runs", "gone")
            write_jsonl(path, records)
        d = self.variant("no_run", no_run)
        p = self.run_script(d, "--tasks", self.tasks)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.expect_error([d, "--tasks", self.tasks, "--out", os.path.join(self.root, "o")],
                          os.path.join("runs", "gone", "metrics.jsonl"))


if __name__ == "__main__":
    unittest.main()
