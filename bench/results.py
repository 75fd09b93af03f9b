"""What every benchmark writes: the result file $RESULTS_DIR/NAME.json that
bench/report.py assembles into docs/performance.md (bench/README.md has the
format), its rows, and the Markdown helpers of its section.

    from results import row, table, fmt, median, write
"""
import json
import os
import statistics


def median(values):
    return statistics.median(values)


def fmt(x):
    """A figure at a sensible precision: 1,234 / 12.3 / 1.23."""
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def row(metric, unit, muse, baseline, baseline_name, key, target=None, pairs=None,
        lower_is_better=False):
    """One summary row. `muse` and `baseline` are the medians; the ratio is
    muse-train's advantage (muse / baseline, or baseline / muse when
    `lower_is_better`). `pairs` are the (muse, baseline) figures of each
    repetition, measured side by side: their ratios are the row's `reps`, the
    spread bench/report.py judges a change against."""
    def advantage(m, b):
        return b / m if lower_is_better else m / b
    out = {"metric": metric, "unit": unit, "muse": muse, "baseline": baseline,
           "baseline_name": baseline_name, "ratio": advantage(muse, baseline),
           "target": target, "key": key}
    if pairs:
        out["reps"] = [advantage(m, b) for m, b in pairs]
    return out


def table(header, lines):
    """A Markdown table: `header` a list of column names, `lines` lists of
    cells (an empty cell is written `| |`)."""
    def line(cells):
        return " ".join(["|"] + [f"{c} |" if str(c) else "|" for c in cells])
    return "\n".join([line(header), "|" + " --- |" * len(header)] + [line(x) for x in lines])


def write(path, name, title, seconds, rows, markdown):
    """The result file of benchmark `name` (its section `title`), written
    whole or not at all."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"name": name, "title": title, "seconds": seconds, "rows": rows,
                   "markdown": markdown}, f, indent=1)
    os.replace(tmp, path)
