"""Reports the SmolLM2 thought-compression runs from their held-out evaluations.

    report_smollm2.py EVAL_DIR --tasks HELDOUT.jsonl [--out DIR] [--json FILE]
                      [--headline NAME] [--recorded FILE]

EVAL_DIR holds one evaluation per trained model, written by
`muse-generate ... --metrics EVAL_DIR/NAME.jsonl --answers EVAL_DIR/NAME.answers.jsonl`
on the held-out task file HELDOUT.jsonl (e.g. data/chat/heldout.jsonl). The
last record of NAME.jsonl with "eval": "greedy" is the result; the answers
file (one line per problem, in task-file order) gives the per-kind figures
and must match the task file and that record. NAME is a setting: `start` is
the starting model, `control` the correctness-only run, any other name a
length penalty (kimi, linear, dler, ...); NAME-seedN is seed N of setting
NAME, and the plain NAME counts as one of its seeds. A record's checkpoint
names the run: a run directory, RUN/checkpoints/step_N (run RUN), or hf:DIR
(no run).

--recorded FILE takes the settings EVAL_DIR does not evaluate from FILE, a
--json output of an earlier report on the same held-out problems (docs/results.json):
their rows, per-kind figures and seeds as recorded there, marked "recorded"
in the table and with "recorded_from" in the JSON. New runs are then
compared with the settings already reported without evaluating them again;
their training curves are drawn only for the runs EVAL_DIR evaluates.

Statistics. One seed: the accuracy's standard error is the binomial one the
evaluation records, the standard error of a proportion sqrt(p (1 - p) / n)
over the n held-out problems. k >= 2 seeds: the row shows the mean over the
seeds and SE = max(s / sqrt(k), sqrt(p (1 - p) / (k n))), where s is the
sample standard deviation of the seeds' accuracies (the standard error of a
mean over seeds, s / sqrt(k)) and p the mean accuracy. The second term, the
binomial SE of all k n answers pooled, is the least uncertainty the answers
can support; it floors the seed term, whose s is itself very uncertain with
two or three seeds and can come out near zero by chance. Response tokens and
truncated fractions are means over the seeds.

Targets. Against the control: at least 50% fewer mean response tokens than
the control's (tokens <= 0.5 x control's) at an accuracy within one SE of
the control's, SE being the control's row SE; an accuracy above the
control's is within (accuracy >= control's - SE). The accuracy difference is
also shown in units of the control's SE. Against the start model: a higher
mean accuracy in fewer mean response tokens (point estimates), shown with
the difference in units of sqrt(SE^2 + SE_start^2), the SE of a difference
of two independent estimates.

Output: Markdown on stdout, a main table (one row per setting) and a table of
accuracy and mean response tokens per problem kind; with --headline NAME
also a paragraph on setting NAME's verdicts. --out DIR writes the same
Markdown to DIR/results.md and the plots DIR/accuracy_vs_tokens.png
(accuracy with SE bars against mean response tokens, seeds as faint points,
the Pareto front of the settings as a step line) and DIR/curves.png
(training reward, accuracy and response tokens over steps, raw and a moving
average over 5 steps, and the runs' "heldout" evaluations, for every setting
with a run directory, read from RUN/metrics.jsonl). --json FILE writes the
figures as JSON: every setting's accuracy, SE, tokens, truncated fraction,
seeds (with run and evaluation file), per-kind figures and run (the run of
a single-seed setting, null with several seeds), the Pareto front and the
targets.

A missing or unreadable file, an answers file that does not match the task
file or its record, a recorded file of another number of problems, or a
missing start or control setting is one `error:` line and a non-zero exit
status.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metrics_io import read_records  # noqa: E402

KINDS = ("add_1d", "add_2d", "sub_2d", "mul_1d2d", "add_3d", "word_1", "word_2")
SEED = re.compile(r"(?P<setting>.+)-seed(?P<seed>\d+)")
WINDOW = 5  # steps in the moving average of the training curves
START, CONTROL = "start", "control"


def run_of(checkpoint):
    """The run directory of a checkpoint argument, None for hf:DIR."""
    if checkpoint.startswith("hf:"):
        return None
    path = os.path.normpath(checkpoint)
    parent = os.path.dirname(path)
    return os.path.dirname(parent) if os.path.basename(parent) == "checkpoints" else path


def read_tasks(path):
    """(answer, kind) of every held-out problem, in file order."""
    tasks = []
    for number, t in enumerate(read_records(path), 1):
        if "answer" not in t or "kind" not in t:
            sys.exit(f"error: {path}: problem {number} has no answer or no kind")
        tasks.append((str(t["answer"]), t["kind"]))
    return tasks


def read_eval(eval_dir, name, tasks, tasks_path):
    """One evaluation: its last greedy record and per-kind sums from its answers."""
    path = os.path.join(eval_dir, name + ".jsonl")
    greedy = [r for r in read_records(path) if r.get("eval") == "greedy"]
    if not greedy:
        sys.exit(f'error: {path}: no "greedy" evaluation record')
    record = greedy[-1]
    keys = ("accuracy", "accuracy_stderr", "response_tokens_mean", "truncated_fraction",
            "checkpoint")
    missing = [k for k in keys if k not in record]
    if missing:
        sys.exit(f"error: {path}: the last greedy record has no {', '.join(missing)}")
    answers_path = os.path.join(eval_dir, name + ".answers.jsonl")
    answers = read_records(answers_path)
    if len(answers) != len(tasks):
        # muse-generate appends to --answers: a repeated evaluation doubles the file.
        sys.exit(f"error: {answers_path}: {len(answers)} answers for the {len(tasks)} problems "
                 f"of {tasks_path}")
    kinds = {}  # kind -> [correct, response tokens, problems]
    for i, (a, (reference, kind)) in enumerate(zip(answers, tasks)):
        if (a.get("index") != i or str(a.get("reference")) != reference
                or "correct" not in a or "response_tokens" not in a):
            sys.exit(f"error: {answers_path}: answer {i + 1} does not match problem {i + 1} of "
                     f"{tasks_path} (index, reference, correct, response_tokens)")
        sums = kinds.setdefault(kind, [0, 0, 0])
        sums[0] += bool(a["correct"])
        sums[1] += a["response_tokens"]
        sums[2] += 1
    accuracy = sum(s[0] for s in kinds.values()) / len(tasks)
    if abs(accuracy - record["accuracy"]) > 1e-9:
        sys.exit(f"error: {answers_path}: accuracy {accuracy:.4f} differs from the last greedy "
                 f"record of {path} ({record['accuracy']:.4f})")
    checkpoint = record["checkpoint"]
    run = run_of(checkpoint)
    return {"name": name, "eval": path, "checkpoint": checkpoint, "run_dir": run,
            "run": run or checkpoint, "kinds": kinds,
            **{k: record[k] for k in keys[:4]}}


def read_settings(eval_dir, tasks, tasks_path):
    """Setting name -> its evaluations (the plain name first, then by seed)."""
    try:
        files = sorted(os.listdir(eval_dir))
    except OSError as e:
        sys.exit(f"error: {eval_dir}: {e.strerror}")
    seeds = {}
    for f in files:
        if not f.endswith(".jsonl") or f.endswith(".answers.jsonl"):
            continue
        name = f[:-len(".jsonl")]
        m = SEED.fullmatch(name)
        setting, seed = (m["setting"], int(m["seed"])) if m else (name, -1)
        seeds.setdefault(setting, []).append((seed, read_eval(eval_dir, name, tasks, tasks_path)))
    return {s: [e for _, e in sorted(seeds[s], key=lambda x: x[0])] for s in sorted(seeds)}


def read_recorded(path, problems, evaluated):
    """The rows of the settings of a report written by --json that are not
    among `evaluated`, each marked with the file it comes from."""
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {path}: {getattr(e, 'strerror', None) or e}")
    if not isinstance(report, dict) or not isinstance(report.get("settings"), dict):
        sys.exit(f"error: {path}: no \"settings\" (not a report_smollm2.py --json output)")
    if report.get("problems") != problems:
        sys.exit(f"error: {path}: recorded on {report.get('problems')} problems, the task file "
                 f"has {problems}")
    keys = ("accuracy", "accuracy_stderr", "response_tokens_mean", "truncated_fraction",
            "seeds", "kinds")
    rows = {}
    for name, row in report["settings"].items():
        if name in evaluated:
            continue
        missing = [k for k in keys if k not in row]
        if missing:
            sys.exit(f"error: {path}: setting {name} has no {', '.join(missing)}")
        rows[name] = dict(row, recorded_from=path)
    return rows


def aggregate(evals, problems):
    """A setting's row: means over its seeds and the accuracy SE of the docstring."""
    k = len(evals)
    accuracy = statistics.fmean(e["accuracy"] for e in evals)
    seed_se = (statistics.stdev(e["accuracy"] for e in evals) / math.sqrt(k)
               if k > 1 else None)
    stderr = (max(seed_se, math.sqrt(accuracy * (1 - accuracy) / (k * problems)))
              if k > 1 else evals[0]["accuracy_stderr"])
    kinds = {}
    for kind in evals[0]["kinds"]:
        n = evals[0]["kinds"][kind][2]
        kinds[kind] = {
            "accuracy": statistics.fmean(e["kinds"][kind][0] / n for e in evals),
            "response_tokens_mean": statistics.fmean(e["kinds"][kind][1] / n for e in evals),
            "problems": n}
    return {
        "accuracy": accuracy, "accuracy_stderr": stderr, "accuracy_stderr_seeds": seed_se,
        "response_tokens_mean": statistics.fmean(e["response_tokens_mean"] for e in evals),
        "truncated_fraction": statistics.fmean(e["truncated_fraction"] for e in evals),
        "seeds": [{"name": e["name"], "accuracy": e["accuracy"],
                   "accuracy_stderr": e["accuracy_stderr"],
                   "response_tokens_mean": e["response_tokens_mean"],
                   "truncated_fraction": e["truncated_fraction"],
                   "run": e["run"], "eval": e["eval"]} for e in evals],
        "run": evals[0]["run"] if k == 1 else None,
        "kinds": kinds}


def change(value, reference):
    return value / reference - 1 if reference else None


def ratio(value, unit):
    return value / unit if unit else None


def verdicts(rows):
    """Each setting's targets against the control and against the start model."""
    control, start = rows[CONTROL], rows[START]
    out = {}
    for name, r in rows.items():
        v = {}
        if name != CONTROL:
            fewer = r["response_tokens_mean"] <= 0.5 * control["response_tokens_mean"]
            within = r["accuracy"] >= control["accuracy"] - control["accuracy_stderr"]
            diff = r["accuracy"] - control["accuracy"]
            v["control"] = {
                "tokens_change": change(r["response_tokens_mean"],
                                        control["response_tokens_mean"]),
                "accuracy_diff": diff,
                "accuracy_diff_control_se": ratio(diff, control["accuracy_stderr"]),
                "half_the_tokens": fewer, "accuracy_within_se": within,
                "met": fewer and within}
        if name != START:
            diff = r["accuracy"] - start["accuracy"]
            se = math.hypot(r["accuracy_stderr"], start["accuracy_stderr"])
            v["start"] = {
                "tokens_change": change(r["response_tokens_mean"], start["response_tokens_mean"]),
                "accuracy_diff": diff, "accuracy_diff_se": ratio(diff, se),
                "met": (r["accuracy"] > start["accuracy"]
                        and r["response_tokens_mean"] < start["response_tokens_mean"])}
        out[name] = v
    return out


def pareto_front(rows):
    """Settings no other setting beats in both tokens (fewer) and accuracy
    (higher), by increasing tokens."""
    def dominated(a, b):  # b at least as good in both and better in one
        return (b["response_tokens_mean"] <= a["response_tokens_mean"]
                and b["accuracy"] >= a["accuracy"]
                and (b["response_tokens_mean"], b["accuracy"])
                != (a["response_tokens_mean"], a["accuracy"]))
    front = [n for n, r in rows.items() if not any(dominated(r, o) for o in rows.values())]
    return sorted(front, key=lambda n: rows[n]["response_tokens_mean"])


def fmt(value, spec, none="—"):
    return none if value is None else format(value, spec)


def yes(flag):
    return "yes" if flag else "no"


def markdown(rows, targets, problems, tasks_path, headline):
    lines = [
        "# SmolLM2-135M-Instruct thought compression: held-out results", "",
        f"{problems} held-out problems ({tasks_path}), greedy decoding. Accuracy ± its "
        "standard error: binomial for one seed; over k seeds, the mean ± max(seed std / "
        "sqrt(k), binomial SE of the pooled answers). Target: ≥50% fewer response tokens "
        "than control at an accuracy within one control SE.", "",
        "| setting | seeds | accuracy % | response tokens | truncated % | tokens vs control "
        "| Δ accuracy / control SE | target met | vs start: higher accuracy, fewer tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, r in rows.items():
        c, s = targets[name].get("control"), targets[name].get("start")
        vs_start = "—" if s is None else (
            f"{yes(s['met'])} ({fmt(s['accuracy_diff_se'], '+.1f', 'n/a')} SE)")
        shown = f"{name} (recorded)" if "recorded_from" in r else name
        lines.append(
            f"| {shown} | {len(r['seeds'])} "
            f"| {100 * r['accuracy']:.1f} ± {100 * r['accuracy_stderr']:.1f} "
            f"| {r['response_tokens_mean']:.1f} | {100 * r['truncated_fraction']:.1f} "
            f"| {fmt(c and c['tokens_change'], '+.0%')} "
            f"| {fmt(c and c['accuracy_diff_control_se'], '+.2f')} "
            f"| {'—' if c is None else yes(c['met'])} | {vs_start} |")
    kinds = list(next(iter(rows.values()))["kinds"])
    kinds = [k for k in KINDS if k in kinds] + sorted(set(kinds) - set(KINDS))
    first = next(iter(rows.values()))["kinds"]
    lines += ["", "## Per kind: accuracy % / mean response tokens", "",
              "| setting | " + " | ".join(f"{k} ({first[k]['problems']})" for k in kinds) + " |",
              "|---|" + "---:|" * len(kinds)]
    for name, r in rows.items():
        cells = [f"{100 * r['kinds'][k]['accuracy']:.1f} / "
                 f"{r['kinds'][k]['response_tokens_mean']:.1f}" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if headline:
        r, c, s = rows[headline], targets[headline].get("control"), targets[headline].get("start")
        k = len(r["seeds"])
        text = (f"**{headline}** ({k} seed{'s' if k > 1 else ''}): accuracy "
                f"{100 * r['accuracy']:.1f} ± {100 * r['accuracy_stderr']:.1f}% at "
                f"{r['response_tokens_mean']:.1f} response tokens.")
        if c:
            text += (f" Against control: {fmt(c['tokens_change'], '+.0%')} tokens, accuracy "
                     f"{fmt(c['accuracy_diff_control_se'], '+.2f')} control SE: target "
                     f"{'met' if c['met'] else 'not met'}.")
        if s:
            text += (f" Against start: {fmt(s['tokens_change'], '+.0%')} tokens, accuracy "
                     f"{fmt(s['accuracy_diff_se'], '+.1f')} SE: higher accuracy in fewer "
                     f"tokens: {yes(s['met'])}.")
        lines += ["", "## Headline", "", text]
    return "\n".join(lines) + "\n"


def colours(rows):
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(rows)}


def plot_front(rows, front, colour, path):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, r in rows.items():
        seeds = r["seeds"]
        if len(seeds) > 1:
            ax.plot([e["response_tokens_mean"] for e in seeds],
                    [100 * e["accuracy"] for e in seeds], "o", color=colour[name], alpha=0.35,
                    markersize=4)
        x, y = r["response_tokens_mean"], 100 * r["accuracy"]
        ax.errorbar([x], [y], yerr=[100 * r["accuracy_stderr"]], fmt="o", color=colour[name],
                    markersize=8, capsize=3)
        ax.annotate(f"{name} ({len(seeds)})" if len(seeds) > 1 else name, (x, y),
                    textcoords="offset points", xytext=(7, 4), fontsize=9)
    ax.step([rows[n]["response_tokens_mean"] for n in front],
            [100 * rows[n]["accuracy"] for n in front], where="post", color="0.4",
            linestyle="--", linewidth=1, zorder=0, label="Pareto front")
    ax.set_xlabel("mean response tokens (held-out, greedy)")
    ax.set_ylabel("held-out accuracy % (± SE)")
    ax.set_title("accuracy against response length (upper left is better; "
                 "faint: seeds, (k): seed count)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def moving_average(values):
    return [statistics.fmean(values[max(0, i - WINDOW + 1):i + 1]) for i in range(len(values))]


def series(records, key):
    points = [(r["step"], r[key]) for r in records if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def read_runs(settings):
    """(setting, records of RUN/metrics.jsonl) of every seed with a run directory."""
    return [(name, read_records(os.path.join(e["run_dir"], "metrics.jsonl")))
            for name, evals in settings.items() for e in evals if e["run_dir"]]


def plot_curves(runs, colour, path):
    """Training and held-out curves of the runs of read_runs; the held-out
    row only when a run evaluated during training."""
    evaluated = any(r.get("eval") == "heldout" for _, records in runs for r in records)
    fig, axes = plt.subplots(2 if evaluated else 1, 3, figsize=(15, 8.5 if evaluated else 4.5),
                             squeeze=False)
    training = [("reward_mean", "training reward (mean)"),
                ("accuracy", "training accuracy (rollouts)"),
                ("response_tokens_mean", "training response tokens (mean)")]
    labelled = set()
    for name, records in runs:
        steps = [r for r in records if "eval" not in r and "reward_mean" in r]
        heldout = [r for r in records if r.get("eval") == "heldout"]
        label = None if name in labelled else name
        labelled.add(name)
        for ax, (key, title) in zip(axes[0], training):
            xs, ys = series(steps, key)
            ax.plot(xs, ys, color=colour[name], alpha=0.25, linewidth=0.8)
            ax.plot(xs, moving_average(ys), color=colour[name], linewidth=1.8, label=label)
            ax.set_title(title)
        if not evaluated:
            continue
        for ax, key in zip(axes[1][:2], ("accuracy", "response_tokens_mean")):
            xs, ys = series(heldout, key)
            ax.plot(xs, ys, "-o", color=colour[name], markersize=3, label=label)
        points = [r for r in heldout if "response_tokens_mean" in r]
        xs = [r["response_tokens_mean"] for r in points]
        ys = [r["accuracy"] for r in points]
        axes[1][2].plot(xs, ys, "-o", color=colour[name], markersize=3, label=label)
        axes[1][2].plot(xs[:1], ys[:1], "s", color=colour[name], markersize=7)
    for ax in axes[0]:
        ax.set_xlabel("RL step")
    if evaluated:
        axes[1][0].set_title('held-out accuracy ("heldout" evaluations)')
        axes[1][1].set_title("held-out response tokens (mean)")
        axes[1][2].set_title("held-out accuracy against tokens (square: first)")
        for ax in axes[1][:2]:
            ax.set_xlabel("RL step")
        axes[1][2].set_xlabel("mean response tokens")
        axes[1][2].set_ylabel("accuracy")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"training curves (faint: per step; solid: moving average over {WINDOW} steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_atomic(path, text):
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    except OSError as e:
        sys.exit(f"error: {path}: {e.strerror}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", help="directory of NAME.jsonl and NAME.answers.jsonl")
    parser.add_argument("--tasks", required=True, help="the held-out task file evaluated")
    parser.add_argument("--out", help="directory for results.md and the plots")
    parser.add_argument("--json", help="file for the figures as JSON")
    parser.add_argument("--headline", help="setting whose verdicts head the report")
    parser.add_argument("--recorded", help="an earlier --json output: the settings EVAL_DIR "
                        "does not evaluate")
    args = parser.parse_args()
    tasks = read_tasks(args.tasks)
    settings = read_settings(args.eval_dir, tasks, args.tasks)
    rows = {name: aggregate(evals, len(tasks)) for name, evals in settings.items()}
    if args.recorded:
        rows.update(read_recorded(args.recorded, len(tasks), rows))
    for needed in (START, CONTROL):
        if needed not in rows:
            sys.exit(f"error: {args.eval_dir}: no {needed} setting ({needed}.jsonl or "
                     f"{needed}-seedN.jsonl)")
    rows = {name: rows[name] for name in [START, CONTROL] + sorted(set(rows) - {START, CONTROL})}
    if args.headline is not None and args.headline not in rows:
        sys.exit(f"error: {args.eval_dir}: no setting {args.headline} (--headline)")
    targets = verdicts(rows)
    front = pareto_front(rows)
    runs = read_runs(settings) if args.out else []  # read first: no output before an error
    text = markdown(rows, targets, len(tasks), args.tasks, args.headline)
    print(text, end="")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        colour = colours(rows)
        plot_front(rows, front, colour, os.path.join(args.out, "accuracy_vs_tokens.png"))
        if runs:
            plot_curves(runs, colour, os.path.join(args.out, "curves.png"))
        else:
            print("no setting has a run directory: curves.png not written", file=sys.stderr)
        write_atomic(os.path.join(args.out, "results.md"), text)
        print(f"wrote {args.out}/results.md and its plots", file=sys.stderr)
    if args.json:
        report = {"source": "scripts/report_smollm2.py", "eval_dir": args.eval_dir,
                  "tasks": args.tasks, "problems": len(tasks), "settings": rows,
                  "pareto_front": front,
                  "targets": {"control": CONTROL, "start": START, "headline": args.headline,
                              "settings": targets}}
        write_atomic(args.json, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
