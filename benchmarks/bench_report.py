"""HTML report latency per case: warm (in process) and cold (a fresh CLI process).

Usage::

    python benchmarks/bench_report.py [CASE ...] [--runs 5] [--cold-runs 3]

For each case it prints, as medians:

- warm: read + infer + ``render_html`` + write the file, in a process that has rendered one
  report already (matplotlib imported, fonts cached), split into inference (with the prior
  set's parameter draws) and rendering (which includes the next-test ranking, also timed
  alone);
- cold: ``neb-bayes report CASE --format html --out FILE`` from process start to exit.

Not a test: the target (< 1 s per case) is printed next to the figures, with the machine they
came from and its load (other work on a shared machine inflates every figure).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = [
    ROOT / "cases" / "examples" / name
    for name in (
        "primary_hypothyroidism_01.yaml",
        "hard_subclinical_hypothyroidism_repeat_tsh.yaml",
        "hard_ocp_dexamethasone_false_positive.yaml",
        "hard_panhypopituitarism.yaml",
        "pcos_01.yaml",
    )
]
TARGET_S = 1.0


def machine() -> str:
    """CPU model, core count, Python version and current load."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}{load}"


def warm(case: Path, runs: int, out_dir: Path) -> dict[str, float]:
    """Median seconds of each step in a warm process, and the report size in bytes."""
    from neb_bayes.api import infer
    from neb_bayes.case import read_case
    from neb_bayes.next_test import next_tests
    from neb_bayes.report.html import render_html

    out = out_dir / f"{case.stem}.html"
    result = infer(read_case(case))
    out.write_text(render_html(result), encoding="utf-8")  # warm-up: imports, font cache
    steps: dict[str, list[float]] = {"infer": [], "render": [], "render_cpu": [], "next": [],
                                     "total": []}
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        result = infer(read_case(case))
        t1, c1 = time.perf_counter(), time.process_time()
        text = render_html(result)
        out.write_text(text, encoding="utf-8")
        t2, c2 = time.perf_counter(), time.process_time()
        size = len(text.encode("utf-8"))
        next_tests(result)
        t3 = time.perf_counter()
        steps["infer"].append(t1 - t0)
        steps["render"].append(t2 - t1)
        steps["render_cpu"].append(c2 - c1)
        steps["next"].append(t3 - t2)
        steps["total"].append(t2 - t0)
    med = {k: statistics.median(v) for k, v in steps.items()}
    med["size"] = float(size)
    return med


def cold(case: Path, runs: int, out_dir: Path) -> float:
    """Median seconds of a fresh ``neb-bayes report --format html --out`` process."""
    exe = shutil.which("neb-bayes") or str(Path(sys.executable).with_name("neb-bayes"))
    out = out_dir / f"{case.stem}.cold.html"
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run([exe, "report", str(case), "--format", "html", "--out", str(out)],
                       check=True)
        if i:  # the first run warms the OS file cache
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print one line per case."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--runs", type=int, default=5, help="warm repetitions per case")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold CLI runs per case")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"target: < {TARGET_S:.0f} s per case\n")
    head = (f"{'case':42s} {'warm total':>10s} {'infer':>7s} {'render':>7s} {'(cpu)':>7s} "
            f"{'next-test':>9s} {'cold CLI':>9s} {'KiB':>5s}")
    print(head + "\n" + " " * 43 + "(ms; warm total = read + infer + render HTML + write)")
    print("-" * len(head))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        for case in args.cases:
            w = warm(case, args.runs, out_dir)
            c = cold(case, args.cold_runs, out_dir)
            worst = max(worst, w["total"], c)
            print(f"{case.stem[:42]:42s} {w['total'] * 1e3:10.0f} {w['infer'] * 1e3:7.0f} "
                  f"{w['render'] * 1e3:7.0f} {w['render_cpu'] * 1e3:7.0f} "
                  f"{w['next'] * 1e3:9.1f} {c * 1e3:9.0f} {w['size'] / 1024:5.0f}", flush=True)
    verdict = "meets" if worst < TARGET_S else "misses"
    print(f"\nslowest figure {worst * 1e3:.0f} ms: {verdict} the < {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
