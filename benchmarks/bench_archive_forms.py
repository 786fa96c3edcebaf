"""Batch throughput on the forms laboratory archives write: the same cases with clock times,
with collection date-times, and with daily-rhythm results that lack their time.

Usage::

    python benchmarks/bench_archive_forms.py [CASES.jsonl] [--cases 20000] [--untimed 0.3]
                                             [--repeat 3] [--jobs 2]

``CASES.jsonl``: simulated work-ups (``bench_batch.py --write-cases``); without it the cases
are simulated here.  Three variants of the first ``--cases`` of them are written:

* ``clock``: as simulated (``"collected": "08:00"``, repeats by ``"day"``);
* ``dated``: each time written as an ISO date-time, the days as the dates' differences
  (``"2024-03-01T08:00"``: what lab systems export);
* ``untimed``: the collection time removed from the cortisol, ACTH and testosterone results
  of a share (``--untimed``) of the cases (a daily rhythm read as a daytime sample).

``neb-bayes batch --jobs J`` runs on each, alternating, ``--repeat`` times; the median wall
clock and the process tree's CPU are printed, and whether the dated run's probabilities are
the clock run's bit for bit (they must be: the same days, the same hours).  Before the plain
reader took date-times and untimed rhythms (2026-12-06), the dated and untimed variants ran
~3.8x and ~2.3x slower than the clock variant.  Prints figures, not a test.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_batch import byte_compile, run_cli, simulate_to_jsonl  # noqa: E402
from bench_single import machine  # noqa: E402

RHYTHM = ("cortisol", "acth", "testosterone", "free_testosterone")
FIRST_DAY = datetime.date(2024, 3, 1)


def dated(case: dict) -> dict:
    """The case with each result's time as an ISO date-time and no ``day``."""
    out = copy.deepcopy(case)
    for m in out.get("measurements", []):
        day = FIRST_DAY + datetime.timedelta(days=int(m.pop("day", 0)))
        m["collected"] = f"{day.isoformat()}T{m.get('collected', '09:00')}"
    return out


def untimed(case: dict) -> dict:
    """The case with the collection time removed from its daily-rhythm results."""
    out = copy.deepcopy(case)
    for m in out.get("measurements", []):
        if m["analyte"] in RHYTHM:
            m.pop("collected", None)
    return out


def write_variants(src: Path, n: int, share: float, folder: Path) -> dict[str, Path]:
    """The three variants of the first ``n`` cases of ``src``, as JSON Lines in ``folder``."""
    rng = random.Random(0)
    paths = {name: folder / f"{name}.jsonl" for name in ("clock", "dated", "untimed")}
    files = {name: open(p, "w", encoding="utf-8") for name, p in paths.items()}
    try:
        with open(src, encoding="utf-8") as fin:
            for _, line in zip(range(n), fin, strict=False):
                case = json.loads(line)
                files["clock"].write(line if line.endswith("\n") else line + "\n")
                files["dated"].write(json.dumps(dated(case)) + "\n")
                files["untimed"].write(json.dumps(untimed(case) if rng.random() < share
                                                  else case) + "\n")
    finally:
        for fh in files.values():
            fh.close()
    return paths


def probabilities(out: Path):
    """The float columns of a batch's results, in input order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(out / "results.parquet").sort_by("item")
    return {f.name: table.column(f.name).to_numpy() for f in table.schema
            if pa.types.is_floating(f.type)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="?", type=Path, help="simulated cases (JSON Lines)")
    ap.add_argument("--cases", type=int, default=20_000)
    ap.add_argument("--untimed", type=float, default=0.3,
                    help="share of cases whose rhythm results lose their time")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="neb-forms-") as tmp:
        folder = Path(tmp)
        src = args.jsonl
        if src is None:
            src = folder / "sim.jsonl"
            secs = simulate_to_jsonl(src, args.cases, p_measure=0.6, p_symptom_reported=0.3)
            print(f"simulated {args.cases:,} cases in {secs:.1f} s (not counted)")
        paths = write_variants(src, args.cases, args.untimed, folder)
        # one uncounted run: numba's on-disk caches for every path
        run_cli(["batch", str(paths["untimed"]), "--out", str(folder / "warm"),
                 "--jobs", str(args.jobs)])
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for k in range(args.repeat):
            for name, path in paths.items():
                out = folder / f"out-{name}-{k}"
                wall, _, _, cpu = run_cli(["batch", str(path), "--out", str(out),
                                           "--jobs", str(args.jobs)])
                times[name].append((wall, cpu))
        clock = statistics.median(w for w, _ in times["clock"])
        for name, runs in times.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{name:8s} {args.cases:,} cases: {wall:.2f} s wall (runs "
                  f"{', '.join(f'{w:.2f}' for w, _ in runs)}), {args.cases / wall:,.0f} cases/s, "
                  f"CPU {cpu:.2f} s; {wall / clock:.2f}x the clock-time variant")
        a, b = (probabilities(folder / f"out-{name}-0") for name in ("clock", "dated"))
        same = a.keys() == b.keys() and all(np.array_equal(a[c], b[c], equal_nan=True)
                                            for c in a)
        print(f"dated probabilities equal to the clock-time run's bit for bit: {same}")


if __name__ == "__main__":
    main()
