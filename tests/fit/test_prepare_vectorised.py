"""The vectorised sufficient statistics equal the per-person computation they replaced.

``_reference_axes`` is the former per-person loop of ``prepare_group`` (one channel at a
time, its noise covariance inverted on its own, the gross-error slots filled person by
person); ``prepare_group`` now handles every person's results as flat arrays.  Censored,
missing and repeated results (same day and other days), labels, strata and context flags
are all in the cohort.
"""

from __future__ import annotations

import numpy as np
import pytest

from neb_bayes.case.model import Case, Measurement, Patient
from neb_bayes.evidence import build_evidence
from neb_bayes.inference.lab_block import LOG_2PI
from neb_bayes.inference.pymc_model import _modifier_offsets, prepare_group
from neb_bayes.model.compiled import axis_channel_grid, load_model, view_for_sex
from neb_bayes.simulate import simulate

from .conftest import covered

MODEL = load_model()


def _channel_stats(model, block, rows, ch):
    c = model.channels[ch]
    y, d = block.y[rows], block.diurnal[rows]
    day = block.day[rows]
    extra = block.extra_var[rows] if block.extra_var is not None else np.zeros(rows.size)
    same_day = day[:, None] == day[None, :]
    se = np.sqrt(extra)          # the context's variation is shared by a channel's results
    R = c.tau**2 + c.cvi**2 * same_day + np.diag(np.full(rows.size, c.cva**2)) + np.outer(se, se)
    Ri = np.linalg.inv(R)
    one = np.ones(rows.size)
    _, logdet = np.linalg.slogdet(R)
    stats = {"w": one @ Ri @ one, "s1": one @ Ri @ y, "s2": y @ Ri @ y, "t1": one @ Ri @ d,
             "t2": d @ Ri @ d, "t3": y @ Ri @ d, "ld": logdet + rows.size * LOG_2PI}
    return stats, np.stack([Ri @ y, Ri @ one, Ri @ d, np.diag(Ri), np.zeros(rows.size),
                            np.zeros(rows.size)], axis=1)


def _noise_cov(model, block, rows, ch):
    """The noise covariance of ``block``'s results ``rows`` of channel ``ch``."""
    c = model.channels[ch]
    day = block.day[rows]
    extra = block.extra_var[rows] if block.extra_var is not None else np.zeros(rows.size)
    se = np.sqrt(extra)
    return (c.tau**2 + c.cvi**2 * (day[:, None] == day[None, :])
            + np.diag(np.full(rows.size, c.cva**2)) + np.outer(se, se))


def _gross_slots(slots, n_channels, n_results, cen, eps):
    count = np.zeros((len(slots), n_channels), dtype=np.int64)
    for r, person in enumerate(slots):
        for ch, _, _ in person:
            count[r, ch] += 1
    per_ch = count.max(axis=0, initial=0)
    if not per_ch.any():
        per_ch[0] = 1
    first = np.cumsum(per_ch) - per_ch
    R, J = len(slots), int(per_ch.sum())
    out = {k: np.zeros((R, J)) for k in ("ry", "r1", "rd")}
    out |= {"slot_ch": np.repeat(np.arange(n_channels), per_ch), "rjj": np.ones((R, J)),
            "lw": np.full((R, J), -np.inf), "kr": np.zeros((R, J, 2))}
    for r, person in enumerate(slots):
        seen = np.zeros(n_channels, dtype=np.int64)
        for ch, per, lq in person:
            j = first[ch] + seen[ch]
            seen[ch] += 1
            for k, v in zip(("ry", "r1", "rd", "rjj"), per, strict=False):
                out[k][r, j] = v
            out["kr"][r, j] = per[4:]
            out["lw"][r, j] = np.log(eps) + lq
    out["l0"] = np.log1p(-n_results * eps)
    out["cen_lw"] = np.where(np.arange(2) < cen["has"][:, None], np.log(eps) + cen["lq"],
                             -np.inf)
    return out


def _reference_axes(model, evidences):
    """The former per-person loop: per axis ``(rows, stats, A, cen, gross)``, and the
    problems it named."""
    n = len(evidences)
    problems, axes = [], []
    for ai, ax in enumerate(model.axes):
        if not ax.latents:
            continue
        chans, L, *_ = axis_channel_grid(model, ai)
        if chans.size == 0:
            continue
        pos = {int(c): j for j, c in enumerate(chans)}
        stats = {k: np.zeros((n, chans.size)) for k in ("w", "s1", "s2", "t1", "t2", "t3", "ld")}
        two = (n, 2)
        cen = {"has": np.zeros(n), "ch": np.zeros(two, dtype=np.int64), "lim": np.zeros(two),
               "sign": np.zeros(two), "d": np.zeros(two), "var": np.ones(two),
               "lq": np.zeros(two), "alpha": np.ones(two), "kappa": np.zeros(two),
               "cov": np.zeros(n)}
        slots = [[] for _ in range(n)]
        n_results = np.zeros(n)
        for p, ev in enumerate(evidences):
            block = next((b for b in ev.blocks if b.axis == ai), None)
            if block is None:
                continue
            if np.any(block.diurnal_var > 0):
                problems.append(f"{ev.case_id}: result with a daily rhythm but no collection time")
                continue
            obs = block.censor == 0
            n_results[p] = block.n
            for ch in np.unique(block.channel[obs]):
                rows = np.flatnonzero(obs & (block.channel == ch))
                st, per = _channel_stats(model, block, rows, int(ch))
                for k, v in st.items():
                    stats[k][p, pos[int(ch)]] = v
                lq = model.gross_log_density(block.channel[rows], block.y[rows],
                                             block.censor[rows])
                slots[p] += [(pos[int(ch)], per[j].copy(), lq[j]) for j in range(rows.size)]
            cens = np.flatnonzero(~obs)
            if cens.size > 2:
                problems.append(f"{ev.case_id}: {cens.size} censored results on axis {ax.name}")
                continue
            cen["has"][p] = cens.size
            for sl, i in enumerate(cens):
                ch = int(block.channel[i])
                c = model.channels[ch]
                extra = block.extra_var[i] if block.extra_var is not None else 0.0
                cen["ch"][p, sl] = pos[ch]
                cen["lim"][p, sl] = block.y[i]
                cen["sign"][p, sl] = float(block.censor[i])
                cen["d"][p, sl] = block.diurnal[i]
                cen["var"][p, sl] = c.tau**2 + c.cvi**2 + c.cva**2 + extra
                cen["lq"][p, sl] = model.gross_log_density(block.channel[[i]], block.y[[i]],
                                                           block.censor[[i]])[0]
                rep = np.flatnonzero(obs & (block.channel == ch))
                if rep.size:
                    # observed repeats: the censored result's noise given theirs, from the
                    # channel's joint noise covariance (the censored result last)
                    joint = _noise_cov(model, block, np.r_[rep, i], ch)
                    g = np.linalg.solve(joint[:-1, :-1], joint[:-1, -1])
                    cen["alpha"][p, sl] = 1.0 - g.sum()
                    cen["kappa"][p, sl] = block.y[rep] @ g
                    cen["d"][p, sl] = block.diurnal[i] - block.diurnal[rep] @ g
                    cen["var"][p, sl] = joint[-1, -1] - joint[:-1, -1] @ g
                    mine = [entry for entry in slots[p] if entry[0] == pos[ch]]
                    for entry, gj in zip(mine, g, strict=True):
                        entry[1][4 + sl] = gj
            if cens.size == 2 and block.channel[cens[0]] == block.channel[cens[1]]:
                # one channel's two censored results: their noise covariance given its
                # observed results (the two last)
                ch = int(block.channel[cens[0]])
                rep = np.flatnonzero(obs & (block.channel == ch))
                joint = _noise_cov(model, block, np.r_[rep, cens], ch)
                cond = joint[-2:, -2:] - joint[-2:, :-2] @ np.linalg.solve(
                    joint[:-2, :-2], joint[:-2, -2:]) if rep.size else joint[-2:, -2:]
                cen["cov"][p] = cond[0, 1]
        rows = np.flatnonzero((stats["w"] > 0).any(axis=1) | (cen["has"] > 0))
        stats = {k: v[rows] for k, v in stats.items()}
        cen = {k: v[rows] for k, v in cen.items()}
        A = np.einsum("pc,ck,cl->pkl", stats["w"], L, L)
        gross = _gross_slots([slots[p] for p in rows], chans.size, n_results[rows], cen,
                             model.gross_error_rate)
        axes.append((ai, rows, stats, A, cen, gross))
    return axes, problems


def _case(name, sex, *ms, age=45.0):
    return Case(id=name, patient=Patient(sex=sex, age=age), measurements=ms)


def _hand_cases():
    M = Measurement
    return [
        _case("same-day-repeats", "F", M(0, "tsh", "serum", 3.0), M(1, "tsh", "serum", 3.4),
              M(2, "ft4", "serum", 14.0), M(3, "tsh", "serum", 2.2, day=4)),
        _case("three-days", "M", M(0, "ft4", "serum", 12.0), M(1, "ft4", "serum", 13.0, day=2),
              M(2, "ft4", "serum", 11.0, day=9), M(3, "tsh", "serum", 0.01, censor="left")),
        _case("censored-only", "F", M(0, "tsh", "serum", 0.01, censor="left"), age=70.0),
        _case("censored-with-repeats", "M", M(0, "tsh", "serum", 0.01, censor="left"),
              M(1, "tsh", "serum", 0.05), M(2, "tsh", "serum", 0.2, day=5),
              M(3, "cortisol", "serum", 20.0, censor="left", hour=8.0),
              M(4, "cortisol", "serum", 90.0, day=1, hour=16.0)),
        _case("two-censored-one-channel-with-repeats", "F",
              M(0, "tsh", "serum", 0.01, censor="left"), M(1, "tsh", "serum", 0.01, censor="left"),
              M(2, "tsh", "serum", 0.2), M(3, "tsh", "serum", 0.1, day=3),
              M(4, "ft4", "serum", 30.0)),
        _case("two-censored-two-channels", "F", M(0, "tsh", "serum", 0.01, censor="left"),
              M(1, "ft4", "serum", 5.0, censor="left"), M(2, "ft4", "serum", 7.0, day=2)),
        _case("nothing-on-thyroid", None, M(0, "ft4", "serum", 40.0), age=30.0),
        _case("no-results", "M"),
    ]


@pytest.fixture(scope="module")
def cohort():
    sims = simulate(MODEL, 60, seed=11, p_repeat=0.3, p_measure=0.5)
    # those the information form covers (the others are checked below)
    return covered(MODEL, [s.case for s in sims] + _hand_cases())


def _by_view(cases):
    views = {}
    for c in cases:
        views.setdefault(c.patient.sex, []).append(c)
    return views


def test_statistics_equal_the_per_person_computation(cohort):
    assert any(m.censor != "none" for c in cohort for m in c.measurements)
    assert any(m.day > 0 for c in cohort for m in c.measurements)
    labels_seen = 0
    for sex, cases in _by_view(cohort).items():
        view = view_for_sex(MODEL, sex)
        evs = [build_evidence(view, c) for c in cases]
        labels = [{"thyroid": [view.axes[view.axis_index("thyroid")].states[0]]}
                  if i % 3 == 0 else None for i in range(len(cases))]
        labels_seen += sum(lab is not None for lab in labels)
        g = prepare_group(view, evs, labels)
        ref, problems = _reference_axes(view, evs)
        assert not problems
        assert [ad.axis for ad in g.axes] == [r[0] for r in ref]
        for ad, (_, rows, stats, A, cen, gross) in zip(g.axes, ref, strict=True):
            np.testing.assert_array_equal(ad.rows, rows)
            for k in stats:
                np.testing.assert_allclose(ad.stats[k], stats[k], rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(ad.A, A, rtol=1e-13, atol=1e-13)
            for k in cen:
                np.testing.assert_array_equal(ad.cen[k], cen[k])
            assert set(ad.gross) == set(gross)
            for k in gross:
                np.testing.assert_allclose(ad.gross[k], gross[k], rtol=1e-13, atol=1e-13)
        off = [_modifier_offsets(view, ev.covariates) for ev in evs]
        for ai in range(len(view.axes)):
            np.testing.assert_array_equal(g.modoff[ai], np.stack([o[ai] for o in off]))
        for p, ev in enumerate(evs):
            assert set(np.flatnonzero(g.present[p])) == set(ev.present)
            assert set(np.flatnonzero(g.absent[p])) == set(ev.absent)
        thy = view.axis_index("thyroid")
        for p, lab in enumerate(labels):
            allowed = np.isfinite(g.label_mask[thy][p])
            assert allowed.all() if lab is None else allowed.sum() == 1
    assert labels_seen


def test_evidence_beyond_the_information_form_goes_to_the_exact_engine():
    """The people the former per-person loop named as not covered are exactly those whose
    factor on that axis the exact engine computes (``GroupData.exact``), and their results
    on that axis are left out of the information form's statistics whole."""
    M = Measurement
    cases = [
        _case("three-censored", "F", M(0, "tsh", "serum", 0.01, censor="left"),
              M(1, "ft4", "serum", 5.0, censor="left"), M(2, "ft3", "serum", 1.5, censor="left"),
              M(3, "prolactin", "serum", 300.0)),
        _case("fine", "F", M(0, "tsh", "serum", 2.0)),
        _case("censored-with-repeat", "F", M(0, "tsh", "serum", 0.01, censor="left"),
              M(1, "tsh", "serum", 0.3, day=2)),      # covered: its noise given the repeat's
    ]
    view = view_for_sex(MODEL, "F")
    evs = [build_evidence(view, c) for c in cases]
    _, problems = _reference_axes(view, evs)
    assert problems == ["three-censored: 3 censored results on axis thyroid"]
    g = prepare_group(view, evs)
    thy = view.axis_index("thyroid")
    assert {ai: list(p) for ai, p in g.exact.items()} == {thy: [0]}
    ad = next(ad for ad in g.axes if ad.axis == thy)
    assert 0 not in ad.rows and list(ad.rows) == [1, 2]
    # the person's other axes stay in the information form
    pit_or_prl = [ad for ad in g.axes if ad.axis == view.axis_index("prolactin")]
    assert list(pit_or_prl[0].rows) == [0]
