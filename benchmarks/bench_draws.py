"""CPU time of the exact posterior under every parameter draw (the intervals of a report, and
the batch path with draws), in process CPU time so that a shared machine's load counts less.

Usage::

    python benchmarks/bench_draws.py [--repeat 7] [--cases 60] [--double] [--numpy]

Prints, for each example case, the median CPU time of warm ``probabilities_over_draws`` calls
with the shipped prior set's 1,000 draws on one thread, the median wall-clock time of a whole
warm JSON report (``nb.infer`` with the breakdown, latents and intervals, then
``render_json``: what a clinician waits for; its draws on ``config.REPORT_DRAW_THREADS``
threads) and its CPU time (target < 50 ms per report), and the CPU time per
simulated full work-up through ``infer_batch_draws`` (target: 10,000 cases x 1,000 draws in
< 60 s on 2 workers, i.e. < 12 ms per case).  ``--double`` runs the contraction in float64;
``--numpy`` runs the numpy counterparts of the compiled kernels (what a one-shot CLI report
uses, :mod:`neb_bayes.accel`).  Prints figures, not a test.
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

    evs = [build_evidence(ps.model, s.case) for s in simulate(ps.model, args.cases, seed=99)]
    infer_batch_draws(ps.model, ps.draws, evs[:2], **kw)
    t = time.process_time()
    infer_batch_draws(ps.model, ps.draws, evs, **kw)
    per_case = (time.process_time() - t) / args.cases
    print(f"batch, {args.cases} simulated full work-ups x {ps.draws.n_draws:,} draws: "
          f"{per_case * 1e3:.0f} ms CPU per case -> 10,000 cases on 2 workers in "
          f"{10_000 * per_case / 2:,.0f} s of CPU each (target < 60 s)")


if __name__ == "__main__":
    main()
