"""What the benchmark reports say about the machine they ran on: the CPU's
name, its theoretical fp32 peak where lscpu tells enough to work it out, and
a measured fp32 matmul peak.

    python machine.py matmul-peak [--threads N] [--sizes 2048,3072,4096] [--reps 3]

prints the measured peak as one JSON object (run it as a separate process so
that its thread count is its own).
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time


def lscpu():
    """lscpu's "Key: value" lines as a dict (empty if lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def cpu_model():
    """The CPU's model name from lscpu, or what the platform module knows."""
    return lscpu().get("Model name") or platform.processor() or "unknown CPU"


def cpu_mhz(fields):
    """(MHz, where it came from): lscpu's maximum if it shows one, else
    /proc/cpuinfo's current "cpu MHz" (under a hypervisor, the nominal clock
    it exposes; turbo is not visible)."""
    if fields.get("CPU max MHz"):
        return float(fields["CPU max MHz"]), "lscpu CPU max MHz"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", f.read(), re.M)
        if m:
            return float(m.group(1)), "/proc/cpuinfo cpu MHz (nominal, no turbo)"
    except OSError:
        pass
    return None, None


def fp32_flops_per_cycle(fields):
    """fp32 FLOPs per cycle and core (FMA counted as 2), with the reason, or
    (None, why not). Only where vendor, family and flags settle the number of
    FMA pipes and their width: AMD Zen 1 has two 128-bit FMA pipes, Zen 2-4
    two 256-bit ones (Zen 4 splits AVX-512 into two halves), Zen 5 two
    512-bit ones; Intel parts with AVX2 but not AVX-512 two 256-bit ones. For
    Intel's AVX-512 parts the flags do not say whether they have one or two
    512-bit FMA units."""
    flags = set(fields.get("Flags", "").split())
    vendor, family = fields.get("Vendor ID", ""), fields.get("CPU family", "")
    if "fma" not in flags:
        return None, "no FMA in the CPU flags"
    if vendor == "AuthenticAMD" and family.isdigit():
        fam, model = int(family), int(fields.get("Model", "0") or 0)
        if fam == 0x17:
            if model < 0x30:
                return 16, "AMD family 0x17 (Zen 1): 2 FMA pipes x 4 fp32 lanes x 2"
            return 32, "AMD family 0x17 (Zen 2): 2 FMA pipes x 8 fp32 lanes x 2"
        if fam == 0x19:
            zen = "Zen 4, AVX-512 in two halves" if "avx512f" in flags else "Zen 3"
            return 32, f"AMD family 0x19 ({zen}): 2 FMA pipes x 8 fp32 lanes x 2"
        if fam == 0x1A:
            return 64, "AMD family 0x1a (Zen 5): 2 FMA pipes x 16 fp32 lanes x 2"
    elif "avx512f" not in flags and "avx2" in flags:
        return 32, "AVX2 with FMA: 2 FMA pipes x 8 fp32 lanes x 2"
    return None, f"{vendor} family {family}: the FMA pipe count is not in the flags"


def theoretical_fp32_peak(threads):
    """Theoretical fp32 GFLOP/s of the cores `threads` threads occupy (at
    most the physical cores), or a dict whose gflops is None and whose `why`
    says what is missing."""
    fields = lscpu()
    try:
        cores = int(fields["Core(s) per socket"]) * int(fields.get("Socket(s)", "1"))
    except (KeyError, ValueError):
        cores = threads
    per_cycle, why = fp32_flops_per_cycle(fields)
    mhz, mhz_source = cpu_mhz(fields)
    if per_cycle is None or mhz is None:
        return {"gflops": None, "why": why if per_cycle is None else "no clock frequency"}
    cores = min(cores, threads)
    return {"gflops": per_cycle * mhz / 1e3 * cores, "flops_per_cycle": per_cycle,
            "mhz": mhz, "mhz_source": mhz_source, "cores": cores, "why": why}


def busy_cpu_seconds():
    """CPU seconds all processes of the machine have used since boot, plus
    the time the hypervisor gave the virtual CPUs to others (steal), from
    /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is within user).
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def matmul_peak(threads, sizes, reps):
    """Best GFLOP/s of torch.mm on square fp32 matrices of each size (2 n^3
    FLOPs per product), at `threads` intra-op threads, after one untimed
    product per size."""
    import torch

    torch.set_num_threads(threads)
    by_size = {}
    for n in sizes:
        a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        torch.mm(a, b, out=c)
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b, out=c)
            best = min(best, time.perf_counter() - start)
        by_size[n] = 2 * n ** 3 / best / 1e9
    return {"threads": torch.get_num_threads(), "reps": reps, "gflops_by_size": by_size,
            "gflops": max(by_size.values())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    peak = sub.add_parser("matmul-peak", help="measure the fp32 torch.mm peak, print JSON")
    peak.add_argument("--threads", type=int, default=0, help="0: torch's default")
    peak.add_argument("--sizes", default="2048,3072,4096")
    peak.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    import torch

    threads = args.threads or torch.get_num_threads()
    out = matmul_peak(threads, [int(n) for n in args.sizes.split(",")], args.reps)
    out["theoretical"] = theoretical_fp32_peak(threads)
    print(json.dumps(out))


def follow_steps(cmd, env, run_dir, sample):
    """Runs muse-train's `cmd` (its run directory `run_dir`, run name
    `bench`) and returns the step records of its metrics.jsonl (not the
    evaluation ones), each with "sample": `sample(pid)` taken when the record
    appeared (None once the process had ended). Exits with an error line and
    the log's tail when the run fails; the run directory is left in place."""
    metrics = os.path.join(run_dir, "bench", "metrics.jsonl")
    with open(os.path.join(run_dir, "log.txt"), "w+") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        records, text = [], ""
        while True:
            done = proc.poll() is not None
            if os.path.exists(metrics):
                with open(metrics) as f:
                    now = f.read()
                now = now[:now.rfind("\n") + 1]  # whole lines: a record may be half written
                if now != text:
                    value = sample(proc.pid) if not done else None
                    for line in now[len(text):].splitlines():
                        r = json.loads(line)
                        if "step_time_s" in r and "eval" not in r:
                            r["sample"] = value
                            records.append(r)
                    text = now
            if done:
                break
            time.sleep(0.005)
        if proc.returncode != 0:
            log.seek(0)
            sys.exit(f"error: {' '.join(cmd)} failed:\n{log.read()[-2000:]}")
    return records


if __name__ == "__main__":
    main()

