"""Population fit and report-with-draws figures (issue: the model in PyMC).

Usage::

    python benchmarks/bench_fit.py [--people 1000 10000] [--draws 500] [--tune 500]
                                   [--groups prevalence] [--sampler nutpie]
                                   [--time-eval] [--skip-sampling] [--table-dtype float32]
                                   [--untimed 0.3] [--below-limits 0.5]

Prints the warm latency of a single-case report that evaluates the exact posterior under
all 1,000 parameter draws; then, per cohort size: time to prepare the sufficient statistics
and the groups, optionally (``--time-eval``) compile time and one log-density + gradient
evaluation (pytensor default mode: numba in pytensor 3), then the whole fit (build,
compile, sampling) with R-hat,
bulk/tail ESS, divergences, BFMI and peak RSS (of the process, so far; run one size per
process for a clean peak).  Each figure has its CPU time (``time.process_time``, summed over
the sampler's threads) and the load average beside it: the machine may be shared.
Targets (printed next to the figures): 10k people < 10 min on 2 cores; report with 1,000-draw
uncertainty < 50 ms warm.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Peak RSS of this process and of its largest finished child (chains in processes)."""
    return max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def cpu_s() -> float:
    """CPU time of this process and its finished children (chains in processes)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def without_times(cases, share: float, seed: int = 0) -> list:
    """``cases`` with the collection time removed from the daily-rhythm results (cortisol,
    ACTH, testosterone) of a ``share`` of them (a laboratory archive often lacks it)."""
    import dataclasses

    import numpy as np

    rng = np.random.default_rng(seed)
    rhythm = {"cortisol", "acth", "testosterone", "free_testosterone"}
    return [dataclasses.replace(c, measurements=tuple(
        dataclasses.replace(m, hour=None) if m.analyte in rhythm else m
        for m in c.measurements)) if rng.random() < share else c for c in cases]


def below_limits(cases, share: float, seed: int = 1) -> list:
    """``cases`` where a ``share`` of the women aged 55 and over have oestradiol and
    progesterone below their assays' limits (in place of any results of theirs), as after the
    menopause: two censored results on the gonadal axis."""
    import dataclasses

    import numpy as np

    from neb_bayes.case.model import Measurement

    rng = np.random.default_rng(seed)
    out = []
    for c in cases:
        if c.patient.sex == "F" and (c.patient.age or 0) >= 55 and rng.random() < share:
            kept = tuple(m for m in c.measurements
                         if m.analyte not in ("estradiol", "progesterone"))
            c = dataclasses.replace(c, measurements=kept + (
                Measurement(len(kept), "estradiol", "serum", 18.4, censor="left"),
                Measurement(len(kept) + 1, "progesterone", "serum", 0.3, censor="left")))
        out.append(c)
    return out


def bench_fit(n: int, draws: int, tune: int, groups: tuple[str, ...], sampler: str,
              time_eval: bool, table_dtype: str = "float32", skip_sampling: bool = False,
              untimed: float = 0.0, below: float = 0.0, whiten: bool | None = None) -> None:
    from pymc.blocking import DictToArrayBijection

    from neb_bayes.fit import build_fit_model, fit
    from neb_bayes.inference.pymc_model import prepare_cohort
    from neb_bayes.model.compiled import load_model
    from neb_bayes.simulate import simulate

    model = load_model()
    sims = simulate(model, int(n * 1.1), seed=n, p_repeat=0.0, p_measure=0.4,
                    p_symptom_reported=0.2)
    cases = below_limits(without_times([s.case for s in sims][:n], untimed), below)
    t0, c0 = time.perf_counter(), time.process_time()
    data = prepare_cohort(model, cases)
    t_prep, c_prep = time.perf_counter() - t0, time.process_time() - c0
    n_exact = sum(len(p) for g in data for p in g.exact.values())
    print(f"{len(cases)} people: sufficient statistics {t_prep:.1f} s wall, {c_prep:.1f} s CPU, "
          f"{len(data)} groups (sizes {[len(g.case_ids) for g in data]}); {n_exact} person-axes "
          f"beyond the information form (their factor the exact engine's); load {load()}")
    if time_eval:
        t0, c0 = time.perf_counter(), time.process_time()
        pmodel = build_fit_model(model, cases, groups, table_dtype=table_dtype)
        t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        fn = pmodel.logp_dlogp_function(ravel_inputs=True)
        fn.set_extra_values({})
        t_compile, c_compile = time.perf_counter() - t0, time.process_time() - c0
        x = DictToArrayBijection.map(
            {v.name: pmodel.initial_point()[v.name] for v in pmodel.value_vars}).data
        t0, c0 = time.perf_counter(), time.process_time()
        fn(x)   # an analyte-level fit compiles its laboratory formula here (lab_block)
        t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(5):
            fn(x)
        t_eval, c_eval = (time.perf_counter() - t0) / 5, (time.process_time() - c0) / 5
        print(f"  build {t_build:.1f} s wall ({c_build:.1f} s CPU), compile logp+grad (one "
              f"function, pytensor default mode) {t_compile:.1f} s ({c_compile:.1f} s CPU), "
              f"first call {t_first:.1f} s ({c_first:.1f} s CPU), "
              f"one logp+grad {t_eval * 1e3:.1f} ms wall, {c_eval * 1e3:.1f} ms CPU; peak RSS "
              f"{rss_mib():.0f} MiB; load {load()}")
    if skip_sampling:
        return
    t0, c0 = time.perf_counter(), cpu_s()
    res = fit(model, cases, groups=groups, draws=draws, tune=tune, chains=2, sampler=sampler,
              progressbar=False, table_dtype=table_dtype, whiten=whiten)
    t_fit, c_fit = time.perf_counter() - t0, cpu_s() - c0
    d = res.diagnostics
    ss = res.idata["sample_stats"]
    steps = (f"; leapfrog steps per draw {float(ss['n_steps'].mean()):.0f}"
             if "n_steps" in ss else "")
    settings = json.loads(res.attrs["sampler_settings"])
    chains_in = settings["chains_in"]
    white = settings.get("whitening")
    if isinstance(white, dict) and "seconds" in white:
        white = (f"whitened at the mode ({white['evaluations']} evaluations, "
                 f"{white['seconds']:.0f} s, correlation condition number "
                 f"{white['correlation_condition_number']})")
    print(f"  fit ({sampler}, chains in {chains_in}, "
          f"2 chains x {tune}+{draws}, groups {','.join(groups)}, "
          f"{table_dtype} tables): {t_fit:.0f} s wall, {c_fit:.0f} s CPU (both chains) incl. "
          f"build and compile  [target for 10k people: < 600 s]; "
          f"R-hat max {d['r_hat_max']:.3f}, ESS bulk min {d['ess_bulk_min']:.0f}, "
          f"ESS tail min {d['ess_tail_min']:.0f}, divergences {d['divergences']}, "
          f"BFMI min {d['bfmi_min']:.2f}{steps}; whitening: {white}; peak RSS "
          f"{rss_mib():.0f} MiB (largest "
          f"process); load {load()}")


def load() -> str:
    """The 1/5/15-minute load averages (the machine may be shared)."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def bench_report_draws() -> None:
    import neb_bayes as nb
    from neb_bayes.priorset import load_prior_set

    ps = load_prior_set()
    case = nb.read_case(ROOT / "cases/examples/subclinical_hypothyroidism_01.yaml")
    nb.infer(case, ps)
    ts = []
    for _ in range(30):
        t0 = time.perf_counter()
        nb.infer(case, ps)
        ts.append(time.perf_counter() - t0)
    ts_draws = []
    for _ in range(30):
        t0 = time.perf_counter()
        nb.infer(case, ps, explain=False)
        ts_draws.append(time.perf_counter() - t0)
    print(f"report with {ps.draws.n_draws}-draw uncertainty, warm: median "
          f"{statistics.median(ts) * 1e3:.1f} ms with evidence breakdown and latents, "
          f"{statistics.median(ts_draws) * 1e3:.1f} ms probabilities + intervals only  "
          f"[target < 50 ms]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--groups", default="prevalence")
    ap.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc"])
    ap.add_argument("--whiten", choices=["auto", "on", "off"], default="auto",
                    help="sample whitened coordinates (fit's whiten: auto = its default)")
    ap.add_argument("--skip-fit", action="store_true")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--time-eval", action="store_true",
                    help="also compile (pytensor default mode) and time one logp + gradient")
    ap.add_argument("--skip-sampling", action="store_true",
                    help="stop after the statistics (and --time-eval): no fit")
    ap.add_argument("--table-dtype", default="float32", choices=["float32", "float64"],
                    help="per-person tables of a prevalence-only fit")
    ap.add_argument("--untimed", type=float, default=0.0,
                    help="share of people whose cortisol, ACTH and testosterone results lose "
                         "their collection time (read per own state in the fit)")
    ap.add_argument("--below-limits", type=float, default=0.0,
                    help="share of the women aged 55 and over with oestradiol and progesterone "
                         "below their limits (two censored results on the gonadal axis)")
    args = ap.parse_args()
    from bench_single import machine

    print(f"machine: {machine()}")
    if not args.skip_report:
        bench_report_draws()
    if not args.skip_fit:
        for n in args.people:
            bench_fit(n, args.draws, args.tune, tuple(args.groups.split(",")), args.sampler,
                      args.time_eval, args.table_dtype, args.skip_sampling, args.untimed,
                      args.below_limits, {"auto": None, "on": True, "off": False}[args.whiten])


if __name__ == "__main__":
    main()
