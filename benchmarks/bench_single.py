"""Single-case latency: cold CLI, warm API, and the naive PyMC alternative, in one run.

Usage::

    python benchmarks/bench_single.py [CASE] [--naive-runs 2] [--skip-naive]

Prints a table of figures (medians) and the machine they came from.  Not a test: targets
(cold CLI < 1 s, warm < 5 ms per case) are printed next to the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT / "cases" / "examples" / "primary_hypothyroidism_01.yaml"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def cold_cli(case: Path, runs: int = 7, disk_cache: bool = True) -> list[float]:
    """Seconds from process start to exit of ``runs`` reports, each a new process; with
    ``disk_cache`` off each loads the prior set from its files (as the first report on a
    machine does), else from neb_bayes's disk cache (every later one)."""
    exe = shutil.which("neb-bayes") or str(Path(sys.executable).with_name("neb-bayes"))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NEB_BAYES_CACHE_DIR": str(Path(tmp) / "cache") if disk_cache
               else "off"}
        for i in range(runs + 1):
            out = Path(tmp) / f"r{i}.json"
            t0 = time.perf_counter()
            subprocess.run([exe, "report", str(case), "--format", "json", "--out", str(out)],
                           check=True, env=env)
            dt = time.perf_counter() - t0
            if i:  # the first run warms the OS file cache, pint's and neb_bayes's caches
                times.append(dt)
    return times


def warm_api(case: Path, n: int = 300) -> dict[str, float]:
    import neb_bayes as nb
    from neb_bayes.model.compiled import load_model

    model = load_model()
    parsed = nb.read_case(case)
    nb.infer(parsed, model)  # warm caches (prior tensor, unit factors)

    def timeit(fn, n: int = n) -> float:
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    from neb_bayes.model.params import draw_problems
    from neb_bayes.priorset import load_prior_set
    from neb_bayes.units import to_canonical
    from neb_bayes.vocab import analytes

    ft4 = analytes()["ft4"]
    ps = load_prior_set()
    return {
        "unit conversion (ng/dL to pmol/L)": timeit(lambda: to_canonical(ft4, 1.0, "ng/dL")),
        "domain check of the prior set's draws (every load)": timeit(
            lambda: draw_problems(ps.draws, ps.model), n=30),
        "read_case": timeit(lambda: nb.read_case(case)),
        "infer (explain: evidence breakdown + latents)": timeit(lambda: nb.infer(parsed, model)),
        "infer (probabilities only)": timeit(lambda: nb.infer(parsed, model, explain=False)),
        "read + infer + JSON report": timeit(
            lambda: __import__("neb_bayes.report", fromlist=["render_json"]).render_json(
                nb.infer(nb.read_case(case), model))),
    }


def naive(case: Path, runs: int) -> tuple[list[float], dict, dict]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from naive_pymc import naive_probabilities

    import neb_bayes as nb
    from neb_bayes.evidence import build_evidence
    from neb_bayes.model.compiled import load_model

    model = load_model()
    parsed = nb.read_case(case)
    ev = build_evidence(model, parsed)
    exact = nb.infer(parsed, model, explain=False)
    priors = exact.exact.prior_marginals
    times, probs = [], {}
    for r in range(runs):
        t0 = time.perf_counter()
        probs = naive_probabilities(model, ev, priors, seed=r)
        times.append(time.perf_counter() - t0)
    exact_axes = {
        model.axes[b.axis].name: dict(zip(model.axes[b.axis].states,
                                          map(float, exact.exact.marginals[b.axis]), strict=True))
        for b in ev.blocks
    }
    _ = np
    return times, probs, exact_axes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("case", nargs="?", default=str(DEFAULT_CASE))
    ap.add_argument("--naive-runs", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    case = Path(args.case)
    print(f"machine: {machine()}")
    print(f"case: {case.relative_to(ROOT) if case.is_relative_to(ROOT) else case}")
    for disk_cache, what in ((True, "prior set from the disk cache"),
                             (False, "prior set from its files, NEB_BAYES_CACHE_DIR=off")):
        cold = cold_cli(case, disk_cache=disk_cache)
        print(f"cold CLI `neb-bayes report --format json` (process start to exit; {what}): "
              f"median {statistics.median(cold) * 1e3:.0f} ms, max {max(cold) * 1e3:.0f} ms "
              f"over {len(cold)} runs  [target < 1000 ms]")
    for name, t in warm_api(case).items():
        print(f"warm API {name}: median {t * 1e3:.4g} ms  [target < 5 ms]")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if not args.skip_naive:
        times, probs, exact_axes = naive(case, args.naive_runs)
        warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
        print(f"naive fresh pm.Model + pm.sample (2 chains x 1000+1000): first {times[0]:.1f} s, "
              f"then {warm:.1f} s per case")
        for ax, st in exact_axes.items():
            worst = max(abs(st[k] - probs[ax].get(k, 0.0)) for k in st)
            print(f"  axis {ax}: max |naive - exact| state probability = {worst:.3f}")


if __name__ == "__main__":
    main()
