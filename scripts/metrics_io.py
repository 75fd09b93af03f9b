"""Reading metrics.jsonl, shared by the plotting and report scripts."""

import json
import sys


def read_records(path):
    """Every record of a metrics.jsonl file; exits with one `error:` line for
    a file that cannot be read, a line that is not JSON, or no records."""
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"error: {path}:{number}: not JSON ({e.msg})")
    except OSError as e:
        sys.exit(f"error: {path}: {e.strerror}")
    if not records:
        sys.exit(f"error: {path}: no records")
    return records
