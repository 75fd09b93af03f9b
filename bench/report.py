"""Assembles docs/performance.md (and docs/performance.json, the figures the
next run compares with) from the result files of bench/run.sh's benchmarks
(bench/README.md describes the format).

    python report.py --results DIR --out docs/performance.md
        [--previous docs/performance.json] [--notes bench/regression-notes.json]
        [--invocation TEXT] [--seconds N]

A ratio that fell by more than 5% from the previous figures is judged
against the noise of this run: it has regressed when the previous ratio lies
above every one of this run's repetitions of it (their spread, the row's
`reps`). A regression on the same machine as the previous run (the same CPU
model and core count) without a note in bench/regression-notes.json exits 1;
a fall within the spread, against a run from another machine, or of a row
measured once is a warning in the report.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import cpu_model  # noqa: E402
from results import fmt  # noqa: E402

# Sections in the order of the page; a missing result file is reported as such.
ORDER = ["train", "fsdp", "overlap", "rollout", "checkpoint", "data", "tokenizer", "loss", "h100"]
REGRESSION = 0.05


def memory_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def commit():
    out = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def machine():
    """What makes two runs comparable: the CPU model and the core count."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def judge(r, before, same_machine, notes):
    """(cell text, error?) for row `r` against the previous ratio `before`."""
    change = f"{before:.2f}"
    if r["ratio"] >= before * (1 - REGRESSION):
        return change, False
    fall = f"down {100 * (1 - r['ratio'] / before):.0f}%"
    reps = r.get("reps") or []
    note = notes.get(r["key"])
    if len(reps) < 2:
        verdict, error = "measured once, no spread: warning", False
    elif before <= max(reps):
        verdict = f"within this run's spread {min(reps):.2f}-{max(reps):.2f}: noise"
        error = False
    elif not same_machine:
        verdict, error = "above this run's spread, but the previous run was another machine: warning", False
    else:
        verdict, error = f"above this run's spread {min(reps):.2f}-{max(reps):.2f}: regressed", True
    if note:
        verdict, error = verdict + "; " + note, False
    return f"{change} ({fall}, {'**' + verdict + '**' if error else verdict})", error


def anchor(title):
    """The GitHub-style anchor of a Markdown heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", default="docs/performance.md")
    ap.add_argument("--previous", default="docs/performance.json")
    ap.add_argument("--notes", default=os.path.join(HERE, "regression-notes.json"))
    ap.add_argument("--invocation", default="bench/run.sh")
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()

    results, missing = {}, []
    for name in ORDER:
        path = os.path.join(args.results, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                results[name] = json.load(f)
        else:
            missing.append(name)
    previous, previous_machine = {}, None
    if os.path.exists(args.previous):
        with open(args.previous) as f:
            before = json.load(f)
        previous = {r["key"]: r for r in before.get("rows", [])}
        previous_machine = before.get("machine")
    same_machine = previous_machine == machine()
    notes = {}
    if os.path.exists(args.notes):
        with open(args.notes) as f:
            notes = json.load(f)

    rows, unexplained = [], []
    summary = ["| benchmark | measure | muse-train | baseline | ratio | target | met | previous ratio |",
               "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in ORDER:
        for r in results.get(name, {}).get("rows", []):
            rows.append(r)
            target = r.get("target")
            met = "-" if target is None else ("yes" if r["ratio"] >= target else "**no**")
            before = previous.get(r["key"], {}).get("ratio")
            change = ""
            if before:
                change, error = judge(r, before, same_machine, notes)
                if error:
                    unexplained.append(r["key"])
            unit = r.get("unit", "")
            summary.append(
                f"| [{name}](#{anchor(results[name]['title'])}) | {r['metric']} | {fmt(r['muse'])} {unit} | "
                f"{fmt(r['baseline'])} ({r.get('baseline_name', '')}) | **{r['ratio']:.2f}x** | "
                f"{'-' if target is None else f'{target:.2f}x'} | {met} | {change or '-'} |")

    total = args.seconds if args.seconds is not None else \
        sum(r.get("seconds", 0) for r in results.values())
    lines = [
        "# Performance: muse-train side by side with the Python stack",
        "",
        "Generated by `bench/run.sh`; do not edit by hand (the prose lives in each",
        "benchmark's script under bench/). Every figure is a median over repetitions,",
        "and every ratio compares two sides measured in the same run, interleaved,",
        "on the same machine, so that load from other processes hits both alike.",
        "",
        f"* Machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB, "
        f"Linux {platform.release()}, no GPU.",
        f"* Software: muse-train commit {commit()}, LibTorch and PyTorch "
        f"{torch.__version__} (the same wheel), Python {platform.python_version()}.",
        f"* Invocation: `{args.invocation}`; {total / 60:.1f} minutes in all.",
        "",
        "Ratios are muse-train's advantage: above 1 means muse-train is faster (or",
        "leaner), whichever way the unit goes. \"previous ratio\" is the figure of the",
        "run before (docs/performance.json, "
        + ("this machine" if same_machine else
           f"another machine: {previous_machine}" if previous_machine else
           "a run that did not record its machine, so treated as another") + ").",
        "A fall of more than 5% is judged against this run's own repetitions: it is",
        "noise while the previous ratio lies within their spread, a regression when it",
        "lies above all of them, and then an error on the same machine unless",
        "bench/regression-notes.json explains it (bench/README.md).",
        "",
        "## Summary",
        "",
    ] + summary + [""]
    if missing:
        lines += [f"Not run: {', '.join(missing)}.", ""]
    lines += [
        "**GPU**: the figures here are CPU-only. [docs/gpu.md](gpu.md) shows how FSDP's",
        "collectives overlap compute on the NCCL stream and how to take an Nsight Systems",
        "trace; the last section estimates H100 throughput from the planner's FLOPs (an",
        "estimate, not a measurement).",
        "",
    ]
    for name in ORDER:
        if name in results:
            r = results[name]
            lines += [f"## {r['title']}", "",
                      f"`bench/{name}/run.sh`, {r.get('seconds', 0) / 60:.1f} minutes.", "",
                      r["markdown"].strip(), ""]
    lines += ["## Rerun", "", "```",
              "bench/run.sh                          # builds, runs every benchmark, writes this page",
              "NO_BUILD=1 bench/run.sh               # with the binaries in build/bin",
              "ONLY=train,fsdp bench/run.sh          # some of them (the others' sections are left out)",
              "RESULTS_DIR=DIR bench/<name>/run.sh   # one benchmark, its JSON in DIR",
              "```", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"commit": commit(), "machine": machine(), "rows": rows}, f, indent=1)
    print("\n".join(summary))
    if unexplained:
        print(f"error: {len(unexplained)} figure(s) fell more than 5% below the previous run on "
              f"this machine, outside this run's spread, without a note in {args.notes}: "
              f"{', '.join(unexplained)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
