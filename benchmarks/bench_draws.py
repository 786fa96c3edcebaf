"""CPU time of the exact posterior under every parameter draw (the intervals of a report, and
the batch path with draws), in process CPU time so that a shared machine's load counts less.

Usage::

    python benchmarks/bench_draws.py [--repeat 7] [--cases 60] [--double] [--numpy]
                                     [--jsonl CASES.jsonl]

Prints, for each example case, the median CPU time of warm ``probabilities_over_draws`` calls
with the shipped prior set's 1,000 draws on one thread, the median wall-clock time of a whole
warm JSON report (``nb.infer`` with the breakdown, latents and intervals, then
``render_json``: what a clinician waits for; its draws on ``config.REPORT_DRAW_THREADS``
threads) and its CPU time (target < 50 ms per report), and the CPU time per
simulated full work-up through ``infer_batch_draws`` (target: 10,000 cases x 1,000 draws in
< 60 s on 2 workers, i.e. < 12 ms per case), with the mean per case by the most censored
results a block of the case has (``--jsonl``: cases from a file, e.g. written by
``benchmarks/bench_batch.py``'s simulator, instead of ``--cases`` simulated ones).
``--double`` runs the contraction in float64; ``--numpy`` runs the numpy counterparts of
the compiled kernels (what a one-shot CLI report uses, :mod:`neb_bayes.accel`).  Prints figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

EXAMPLES = ["primary_hypothyroidism_01", "subclinical_hypothyroidism_01",
            "cushings_acth_dependent_01", "pcos_01", "hard_primary_hypothyroidism_censored_ft4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="warm calls per example (median)")
    ap.add_argument("--cases", type=int, default=60, help="simulated cases for the batch figure")
    ap.add_argument("--double", action="store_true", help="float64 contraction")
    ap.add_argument("--numpy", action="store_true", help="numpy instead of the compiled kernels")
    ap.add_argument("--jsonl", help="read the batch figure's cases from this JSON Lines file "
                    "(the first --cases of them) instead of simulating them")
    args = ap.parse_args()
    import os

    os.environ["NEB_BAYES_COMPILED"] = "0" if args.numpy else "1"
    print(f"kernels: {'numpy' if args.numpy else 'compiled (numba)'}")

    import neb_bayes as nb
    from neb_bayes.api import _draws_for, resolve_priors
    from neb_bayes.case import read_case
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.batch_exact import infer_batch_draws
    from neb_bayes.inference.draws import probabilities_over_draws
    from neb_bayes.model.compiled import view_for_sex
    from neb_bayes.simulate import simulate

    ps = resolve_priors(None)
    kw = {"single": False} if args.double else {}
    for name in EXAMPLES:
        case = read_case(f"cases/examples/{name}.yaml")
        model = view_for_sex(ps.model, case.patient.sex)
        ev = build_evidence(model, case)
        draws = _draws_for(ps, case.patient.sex)
        probabilities_over_draws(model, draws, ev, **kw)
        times = []
        for _ in range(args.repeat):
            t = time.process_time()
            probabilities_over_draws(model, draws, ev, **kw)
            times.append(time.process_time() - t)
        from neb_bayes.report import render_json

        render_json(nb.infer(case, ps))
        wall, cpu = [], []
        for _ in range(args.repeat):
            t, w = time.process_time(), time.perf_counter()
            render_json(nb.infer(case, ps))
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - t)
        print(f"{name:42s} draws {statistics.median(times) * 1e3:6.1f} ms CPU; whole report "
              f"{statistics.median(wall) * 1e3:6.1f} ms wall, {statistics.median(cpu) * 1e3:6.1f}"
              f" ms CPU (medians of {args.repeat}; target < 50 ms)")

    if args.jsonl:
        from itertools import islice

        from neb_bayes.case.loader import load_text

        with open(args.jsonl, encoding="utf-8") as fh:
            cases = [read_case(load_text(line, "json")) for line in islice(fh, args.cases)]
        what = f"cases of {args.jsonl}"
    else:
        cases = [s.case for s in simulate(ps.model, args.cases, seed=99)]
        what = "simulated full work-ups"
    evs = [build_evidence(ps.model, c) for c in cases]
    infer_batch_draws(ps.model, ps.draws, evs[:2], **kw)
    # case by case, grouped by the most censored results any of its blocks has (the heavy
    # tail: a bivariate or trivariate normal CDF per draw and grid point)
    by: dict[int, list[float]] = {}
    for ev in evs:
        t = time.process_time()
        infer_batch_draws(ps.model, ps.draws, [ev], **kw)
        k = max(((b.censor != 0).sum() for b in ev.blocks), default=0)
        by.setdefault(int(k), []).append(time.process_time() - t)
    per_case = sum(map(sum, by.values())) / len(evs)
    print(f"batch, {len(evs)} {what} x {ps.draws.n_draws:,} draws: "
          f"{per_case * 1e3:.0f} ms CPU per case -> 10,000 cases on 2 workers in "
          f"{10_000 * per_case / 2:,.0f} s of CPU each (target < 60 s); by the most censored "
          "results in one block: " + "; ".join(
              f"{k}: {len(v)} cases, {statistics.mean(v) * 1e3:.0f} ms each"
              for k, v in sorted(by.items())))


if __name__ == "__main__":
    main()
