"""Batch throughput and memory: ``neb-bayes batch`` end to end, ``infer_batch`` alone, and the
naive per-case PyMC alternative, on cases simulated from the shipped (point) prior set.

Usage::

    python benchmarks/bench_batch.py [--quick] [--cases N] [--jobs J] [--chunk-size C]
                                     [--naive-cases 20] [--skip-naive] [--skip-csv]
                                     [--draws-cases 10000]

Prints figures, not a test.  Targets are printed next to them: >= 20,000 cases/s with point
priors; 10,000 cases with all 1,000 parameter draws (``neb-bayes batch --draws -1``, end to
end) in < 60 s; peak RSS of the process tree < 2 GB and independent of the input size (measured on
the full input and on a fifth of it); the fifth also as a wide CSV (one column per analyte,
unit, specimen, time and day met: thousands, mostly empty).  ``--quick`` uses 5,000 cases instead of 100,000
(and 5 cases instead of 20 for the naive PyMC comparison, which takes about half a minute
per case).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_single import machine  # noqa: E402

TARGET_RATE = 20_000
TARGET_RSS_MB = 2048
SEED = 2024


def simulate_to_jsonl(path: Path, n: int, block: int = 5000, **sim) -> float:
    """Write ``n`` simulated cases to ``path`` in blocks (bounded memory); seconds taken.
    ``sim``: options of :func:`neb_bayes.simulate.simulate` (how many results per case)."""
    from neb_bayes.batch.export import write_jsonl
    from neb_bayes.model.compiled import load_model
    from neb_bayes.simulate import simulate

    model = load_model()
    t0 = time.perf_counter()
    with open(path, "w", encoding="utf-8") as fh:
        done = 0
        while done < n:
            k = min(block, n - done)
            cases = [s.case for s in simulate(model, k, seed=SEED + done, **sim)]
            part = path.with_suffix(".part")
            write_jsonl(cases, part)
            fh.write(part.read_text(encoding="utf-8"))
            part.unlink()
            done += k
    return time.perf_counter() - t0


def jsonl_to_csv(src: Path, dst: Path) -> int:
    """Write the cases of a JSON Lines file as a wide CSV (the batch's column convention)."""
    from neb_bayes.batch.export import write_csv
    from neb_bayes.case import read_case
    from neb_bayes.case.loader import load_text

    with open(src, encoding="utf-8") as fh:
        return write_csv([read_case(load_text(line, "json")) for line in fh], dst)


def _tree(pid: int) -> list:
    """The process ``pid`` and its descendants (psutil: a scan of every process, ~1 ms)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(procs: list) -> int:
    import psutil

    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def byte_compile() -> bool:
    """Write neb_bayes's bytecode caches where the environment stops Python from writing them
    (``PYTHONDONTWRITEBYTECODE``, as on the machines these figures come from): as installing
    a wheel does, and as Python itself does on first import elsewhere.  Otherwise each of the
    batch's processes compiles every module it imports from source again (~0.06 s per worker
    start).  Returns whether it compiled."""
    if not sys.dont_write_bytecode:
        return False
    import compileall

    import neb_bayes

    return bool(compileall.compile_dir(Path(neb_bayes.__file__).parent, quiet=1))


def run_cli(args: list[str]) -> tuple[float, float, str, float]:
    """Run ``neb-bayes`` with ``args``; (wall seconds, peak process-tree RSS in MiB, stderr,
    CPU seconds of the process tree: user + system of the CLI and its workers)."""
    import resource

    exe = shutil.which("neb-bayes") or str(Path(sys.executable).with_name("neb-bayes"))
    peak = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    stop = threading.Event()

    def sample() -> None:
        # the tree's RSS every 50 ms; its members looked up again every 0.5 s only (a scan
        # of every process on the machine, CPU the batch would otherwise have)
        nonlocal peak
        procs: list = []
        found = -1.0
        while not stop.is_set():
            if time.perf_counter() - found > 0.5:
                procs, found = _tree(proc.pid), time.perf_counter()
            peak = max(peak, _rss(procs))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()                       # (the wall clock stops when the process exits)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"neb-bayes {' '.join(args)} failed:\n{''.join(stderr)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak / 2**20, "".join(stderr), cpu


def infer_batch_rate(path: Path, chunk: int = 1000, limit: int = 10_000) -> tuple[float, float, int]:
    """Cases/s of reading + evidence, and of ``infer_batch`` alone, over the first ``limit``
    cases of the JSONL file (one process, one BLAS thread)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import json

    from neb_bayes.case import CaseError, read_case
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.batch_exact import infer_batch
    from neb_bayes.model.compiled import load_model

    model = load_model()
    t_read = t_infer = 0.0
    n = 0
    with open(path, encoding="utf-8") as fh:
        while n < limit:
            lines = [line for _, line in zip(range(min(chunk, limit - n)), fh, strict=False)]
            if not lines:
                break
            t0 = time.perf_counter()
            evs = []
            for x in lines:
                try:
                    evs.append(build_evidence(model, read_case(json.loads(x))))
                except CaseError:   # e.g. a simulated case with nothing measured or reported
                    pass
            t1 = time.perf_counter()
            infer_batch(model, evs)
            t_infer += time.perf_counter() - t1
            t_read += t1 - t0
            n += len(lines)
    return n / t_read, n / t_infer, n


def naive_rate(path: Path, n_cases: int) -> list[float]:
    """Seconds per case of a fresh pm.Model + pm.sample, on the first ``n_cases`` cases."""
    import json
    import logging

    import pymc  # noqa: F401 - its import sets its logger's level: quiet it afterwards
    from naive_pymc import naive_probabilities

    from neb_bayes.case import read_case
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.exact import infer_exact
    from neb_bayes.model.compiled import load_model

    for name in ("pymc", "pytensor"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = load_model()
    times = []
    with open(path, encoding="utf-8") as fh:
        for i, line in zip(range(n_cases), fh, strict=False):
            ev = build_evidence(model, read_case(json.loads(line)))
            priors = infer_exact(model, ev, explain=False).prior_marginals
            t0 = time.perf_counter()
            naive_probabilities(model, ev, priors, seed=i)
            times.append(time.perf_counter() - t0)
    return times


def _head(src: Path, dst: Path, n: int) -> Path:
    """Write the first ``n`` lines of ``src`` to ``dst``; returns ``dst``."""
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for _, line in zip(range(n), fin, strict=False):
            fout.write(line)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5,000 cases instead of 100,000")
    ap.add_argument("--cases", type=int, help="number of cases (overrides --quick)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk-size", type=int, default=None,
                    help="cases per chunk (default: the CLI's: 2000 for point probabilities, "
                         "1000 with draws)")
    ap.add_argument("--naive-cases", type=int,
                    help="cases for the naive PyMC comparison (default 20; 5 with --quick)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the big point-probability batch (the median is reported; "
                         "default 3)")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-csv", action="store_true", help="no wide-CSV run")
    ap.add_argument("--draws-cases", type=int,
                    help="cases run end to end with all 1,000 parameter draws (default 10,000, "
                         "the issue's figure; 500 with --quick; 0: none)")
    ap.add_argument("--p-measure", type=float, default=0.6,
                    help="probability that each analyte is measured (0.6, the default, is a full "
                         "work-up of ~27 results; 0.1 is closer to a lab archive's few results)")
    ap.add_argument("--p-symptoms", type=float, default=0.3,
                    help="probability that each symptom is reported (present or absent)")
    ap.add_argument("--write-cases", type=Path, metavar="PATH",
                    help="only write the simulated cases to PATH (JSON Lines) and stop, e.g. "
                         "for `bench_draws.py --jsonl PATH` or `bench_batch_cpu.py PATH`")
    args = ap.parse_args()
    n = args.cases or (5_000 if args.quick else 100_000)
    if args.write_cases:
        secs = simulate_to_jsonl(args.write_cases, n, p_measure=args.p_measure,
                                 p_symptom_reported=args.p_symptoms)
        print(f"wrote {n:,} simulated cases to {args.write_cases} in {secs:.1f} s")
        return
    small = max(n // 5, 1)
    if args.draws_cases is None:
        args.draws_cases = 500 if args.quick else 10_000
    naive_cases = args.naive_cases if args.naive_cases is not None else (5 if args.quick else 20)

    print(f"machine: {machine()}")
    if byte_compile():
        print("PYTHONDONTWRITEBYTECODE is set: neb_bayes's bytecode compiled first, as an "
              "installed package has it (not counted)")
    print(f"cases: {n:,} simulated from the shipped prior set (point priors), seed {SEED}; "
          f"--jobs {args.jobs}, --chunk-size {args.chunk_size or 'the CLI default'}")
    with tempfile.TemporaryDirectory(prefix="neb-bench-") as tmp:
        tmp_path = Path(tmp)
        big = tmp_path / "cases.jsonl"
        secs = simulate_to_jsonl(big, n, p_measure=args.p_measure,
                                 p_symptom_reported=args.p_symptoms)
        print(f"simulated and wrote {n:,} cases in {secs:.1f} s "
              f"({big.stat().st_size / 2**20:.0f} MiB JSONL; not counted below); "
              f"--p-measure {args.p_measure}, --p-symptoms {args.p_symptoms}")
        little = _head(big, tmp_path / "small.jsonl", small)
        # the files just written go to disk now, not in the background of the timed runs
        # (the first of them used to be ~0.5-1 s slower while the kernel wrote ~300 MB back)
        os.sync()

        common = ["--jobs", str(args.jobs), "--no-progress", "--log-every", "1000000"]
        if args.chunk_size:
            common += ["--chunk-size", str(args.chunk_size)]
        # a first batch, not counted: on a new installation numba compiles the engine's
        # kernels into its on-disk cache (~10 s and ~0.4 GB more memory, once); every batch
        # after it, and every figure below, loads them from the cache
        run_cli(["batch", str(_head(big, tmp_path / "warm.jsonl", 100)), "--out",
                 str(tmp_path / "o-warm"), *common])
        wall_s, rss_s, _, _ = run_cli(["batch", str(little), "--out", str(tmp_path / "o-small"),
                                       *common])
        runs = []
        for i in range(args.repeat):   # this machine's speed drifts from minute to minute
            out_big = tmp_path / f"o-big-{i}"
            runs.append(run_cli(["batch", str(big), "--out", str(out_big), *common]))
            if i + 1 < args.repeat:
                shutil.rmtree(out_big)
        wall, rss, log, cpu = sorted(runs, key=lambda r: r[0])[len(runs) // 2]   # the median
        rss = max(r[1] for r in runs)
        rate = n / wall
        each = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"neb-bayes batch end to end (process start to exit, {n:,} cases; median of "
              f"{len(runs)} runs: {each} s): {wall:.1f} s, {rate:,.0f} cases/s  "
              f"[target >= {TARGET_RATE:,} cases/s: {'met' if rate >= TARGET_RATE else 'NOT met'}]")
        print(f"  CPU of the process tree (driver + workers, user + system): {cpu:.1f} s, "
              f"{cpu / n * 1e6:,.0f} us per case -> {n / cpu * args.jobs:,.0f} cases/s on "
              f"{args.jobs} idle cores (what the wall clock shows when nothing else runs)")
        k = max(args.jobs - 1, 0)
        print(f"peak RSS of the process tree (the driver + {k} worker "
              f"process{'es' if k != 1 else ''}): {rss:,.0f} MiB for "
              f"{n:,} cases, {rss_s:,.0f} MiB for {small:,} cases ({wall_s:.1f} s)  "
              f"[target < {TARGET_RSS_MB:,} MiB and independent of input size: "
              f"{'met' if rss < TARGET_RSS_MB and rss < 1.25 * rss_s + 50 else 'NOT met'}]")
        summary = [x for x in log.splitlines() if x.startswith("batch done")]
        if summary:
            print(f"  ({summary[0]})")
        if not args.skip_csv:
            wide = tmp_path / "small.csv"
            jsonl_to_csv(little, wide)
            os.sync()
            with open(wide, encoding="utf-8") as fh:
                n_cols = fh.readline().count(",") + 1
            wall_c, rss_c, _, cpu_c = run_cli(["batch", str(wide), "--out",
                                               str(tmp_path / "o-csv"), *common])
            print(f"the {small:,} cases as a wide CSV ({n_cols:,} columns, "
                  f"{wide.stat().st_size / 2**20:.0f} MiB): {wall_c:.1f} s, "
                  f"{small / wall_c:,.0f} cases/s, CPU {cpu_c:.1f} s, peak RSS {rss_c:,.0f} MiB "
                  f"(as JSON Lines: {wall_s:.1f} s, {small / wall_s:,.0f} cases/s)")

        read_rate, infer_rate, m = infer_batch_rate(big)
        print(f"infer_batch alone (one process, one thread, chunks of 1000, {m:,} cases): "
              f"{infer_rate:,.0f} cases/s; read_case + build_evidence: {read_rate:,.0f} cases/s")
        n_draws = min(args.draws_cases, n)
        if n_draws:
            with_draws = _head(big, tmp_path / "draws.jsonl", n_draws)
            wall_d, rss_d, _, cpu_d = run_cli(["batch", str(with_draws), "--out",
                                               str(tmp_path / "o-draws"), "--draws", "-1",
                                               *common])
            scaled = wall_d * 10_000 / n_draws
            print(f"neb-bayes batch --draws -1 (all 1,000 parameter draws: intervals), "
                  f"{n_draws:,} cases end to end: {wall_d:.1f} s, {n_draws / wall_d:,.1f} "
                  f"cases/s, CPU {cpu_d:.1f} s ({cpu_d / n_draws * 1e3:.1f} ms per case), peak "
                  f"RSS {rss_d:,.0f} MiB"
                  + ("" if n_draws == 10_000 else f"; 10,000 cases at this rate: {scaled:,.0f} s")
                  + f"  [target 10,000 x 1,000 < 60 s: {'met' if scaled < 60 else 'NOT met'}]")

        if not args.skip_naive and naive_cases > 0:
            times = naive_rate(big, naive_cases)
            med = statistics.median(times)
            per_case_batch = 1.0 / rate
            print(f"naive fresh pm.Model + pm.sample per case ({len(times)} of the same cases, "
                  f"2 chains x 1000+1000): median {med:.2f} s/case, total {sum(times):.0f} s "
                  f"(first {times[0]:.1f} s)")
            print(f"ratio naive / batch per case: {med / per_case_batch:,.0f}x "
                  f"(naive {med:.2f} s vs batch {per_case_batch * 1e3:.2f} ms per case)")


if __name__ == "__main__":
    main()
