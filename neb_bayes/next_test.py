"""What to test next: candidate tests ranked by the information they are expected to give.

Preposterior analysis, exact in the model
-----------------------------------------
For a candidate test (a model channel not yet measured, at a fixed collection time when the
channel has a daily rhythm) the new log result ``x`` depends only on the states ``s`` of the
axes its block depends on.  Given ``s`` and the results already on that axis, ``x`` has the
conditional density ``q_s(x) = p(old, x | s) / p(old | s)``; both block likelihoods come from
:func:`neb_bayes.inference.exact.block_moments` and
:func:`~neb_bayes.inference.exact.gaussian_block_loglik` (censored old results included).
The predictive density of ``x`` is the mixture ``p(x) = sum_s w_s q_s(x)`` with the current
posterior ``w`` as weights, and learning ``x`` multiplies the joint posterior by ``q_s(x)``:
this is exactly what adding the result as a measurement and re-running
:func:`~neb_bayes.inference.exact.infer_exact` would give (the tests check it), without
re-running the other blocks and the symptoms for every hypothetical value.  The new result is
read as the evidence would read it (the case's context: extra variance, a changed daily
rhythm), and the old results keep their context variances in ``p(old, x | s)`` as in
``p(old | s)``; otherwise ``q_s`` is no density and the probabilities after a test do not
average to the current ones.

A test that yields several results in one procedure (the cosyntropin test's cortisol at 30
and 60 min, a 75 g OGTT's glucose at 0 and 120 min: ``neb_bayes/vocab/test_procedures.yaml``)
is one candidate: ``x`` is then the vector of its results, appended to the block together, and
the predictive is their joint (correlated) distribution, so its gain is the information of all
its results together.  Its results are not candidates of their own unless the table says they
are also ordered alone (a fasting glucose).

The expectation over ``x`` uses Gauss-Hermite nodes (16 per mixture component; a tensor grid
of 10 x 10 or 6 x 6 x 6 for a procedure with two or three results) of the
components' Gaussian conditionals given the *observed* old results.  Without censored results
on the axis these components are exactly ``q_s``; with censored results the nodes are
reweighted by ``p(x) / g(x)`` (deterministic importance sampling), so the rule stays
consistent.  With three or more censored results on one axis the censored ones are left out
of the conditioning for speed (an approximation; stated in the output).  The hypothetical
result is treated as a measured value, never as censored, and is read as the evidence reads a
result: below its channel's ``floor`` at the floor (:func:`neb_bayes.evidence.floored`), so
the probabilities after a low result are those a report with it would give.  Its predictive
density stays the model's (a low result is as likely as the model says); only what is
learned from it is the floor's.  Where a result may fall below a floor the probabilities
after the test therefore need not average to the current ones.

What is measured: the objective
-------------------------------
The uncertainty is, summed over the axes of the *target* conditions, the entropy (bits) of
which target conditions the patient has on that axis: the axis' states grouped by their
membership in its target conditions (one cell per distinct membership, one for "none of
them").  Its expected reduction is the sum over those axes of ``I(cell_a; X)``, the mutual
information between the axis' question and the result, which is never negative.  One
question per axis, not one yes/no question per condition: a condition's subtypes (ACTH-
dependent and -independent Cushing's) are exclusive, so a summed yes/no entropy counted the
split between two likely subtypes twice and did not reward establishing the disease (a test
that confirms it leaves both subtypes uncertain, so it hardly lowered the sum): ACTH, which only
splits, ranked above the screening tests while hypercortisolism was still open.  Target
conditions are those still uncertain (probability in [1 %, 99 %]) on the axes in question:
by default (``scope="question"``) the axes with a usable result or whose state distribution
the evidence moved away from the population prior (total variation >= 0.05).  An axis nobody
has asked about (no result, posterior = prior) is screening, not diagnosis; ``scope="all"``
includes it.  ``none`` is not a target (it is the complement of all axes together).

Presence before subtype: the subtypes of one disease
(``neb_bayes/vocab/condition_families.yaml``: Cushing's ACTH-dependent/-independent,
primary/secondary adrenal insufficiency, primary/secondary male hypogonadism) are one
question, whether the disease is present, until it is established (probability
>= :data:`~neb_bayes.config.ESTABLISHED_PROBABILITY`, 90 %); then each subtype is a question
of its own.  A clinician
establishes the disease before asking its cause (Nieman 2008: ACTH once hypercortisolism is
confirmed); counting the split of a disease still in doubt ranked ACTH, which mostly splits,
above UFC and level with the DST after one abnormal screening test (Cushing's ~60 %).  The
plan's notes name each family asked as presence.

Rare conditions: suspicion raised
---------------------------------
A rare condition the evidence made much more likely without making it probable (Cushingoid
signs alone: Cushing's from ~0.006 % to ~1 %) is neither uncertain by the 1 % rule nor does
its axis move by 0.05; yet a guideline asks to test exactly such a patient.  So a condition
whose posterior odds are :data:`~neb_bayes.config.RAISED_ODDS_RATIO` (10) times its prior
odds or more (the patient's prior: sex, age and context), with a probability of
:data:`~neb_bayes.config.RAISED_MIN_PROBABILITY` (0.1 %) or more and not settled (<= 99 %),
is a target in either scope, "suspicion raised" (the reasons for every target are in
:attr:`NextTestPlan.target_reasons`).  Its question holds few bits (0.08 at 1 %), so its
tests rank below those of a common uncertain condition on another axis; the listing
(:meth:`NextTestPlan.top`) keeps the best test of each axis whose targets are there only for
a raised suspicion.  The minimum gain listed, :data:`MIN_GAIN_BITS` (1e-4 bits), is far
below such a question's entropy (0.011 bits at the 0.1 % floor) and hides none of its
useful tests.

Optionally the gain is traded against an illustrative relative cost
(``neb_bayes/vocab/test_costs.yaml``): ``score = gain / cost ** cost_weight``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from neb_bayes import config
from neb_bayes.evidence import Block, Evidence, floored, result_adjustments
from neb_bayes.inference.exact import block_loglik, block_moments, gaussian_block_loglik
from neb_bayes.model.compiled import CompiledModel

if TYPE_CHECKING:  # pragma: no cover
    from neb_bayes.case.model import Case, Patient
    from neb_bayes.posterior import Result

__all__ = [
    "Candidate",
    "NextTestPlan",
    "candidate_tests",
    "next_tests",
    "plan_next_tests",
    "probabilities_after",
    "load_test_costs",
    "tail_text",
    "load_test_procedures",
    "load_condition_families",
]

Scope = Literal["question", "all"]

UNCERTAIN: tuple[float, float] = (0.01, 0.99)
"""A condition is uncertain while its probability lies in this closed range."""

MOVED_TV: float = 0.05
"""An axis is "in question" when its posterior moved this far from the prior (total variation)."""

GH_NODES: int = 16
"""Gauss-Hermite nodes per predictive mixture component (a test with one result)."""

GH_NODES_BY_DIM: tuple[int, ...] = (GH_NODES, 10, 6)
"""Nodes per dimension of the tensor grid of a test with 1, 2, 3 results (16, 100, 216 per
component)."""

MIN_COMPONENT_MASS: float = 1e-7
"""Mixture components lighter than this (relative) are left out of the quadrature."""

MAX_COMPONENTS: int = 48
"""At most this many distinct mixture components (heaviest first) per candidate."""

DIURNAL_HOURS: dict[str, float] = {
    "cortisol_serum": 8.0,
    "cortisol_saliva": 23.0,
    "acth": 8.0,
    "testosterone": 8.0,
    "free_testosterone": 8.0,
}
"""Collection time (clock hours) of candidates whose channel has a daily rhythm."""

DYNAMIC_LABELS: dict[str, str] = {
    "cortisol_dst": "cortisol after overnight 1 mg dexamethasone (DST)",
    "cortisol_acth_stim_30": "cortisol 30 min after 250 µg cosyntropin",
    "cortisol_acth_stim_60": "cortisol 60 min after 250 µg cosyntropin",
    "cortisol_saliva": "late-night salivary cortisol (23:00)",
    "cortisol_serum": "serum cortisol at 08:00",
}
"""Display names of the dynamic and timed tests."""

DECISION_LEVELS: tuple[float, ...] = (0.01, 0.1, 0.5, 0.9, 0.99)
"""Probabilities a clinician decides at (ruled out, worth pursuing, more likely than not,
established, settled): each listed condition's row gives the chance that the test takes it to
each level above its current probability or more (``chance_at_least``) and to each level below
it or less (``chance_at_most``).  The 10th-90th percentile range hides a rise in fewer than 10 %
of results: a rare condition raised from 0.5 % to 40 % by 5 % of them.  For a test with one
result they are computed on a fine grid of its values (:data:`TAIL_GRID` points, the crossing
of a level placed by linear interpolation: within ~0.001 of re-running inference; an
indicator, which the quadrature's few nodes per component integrate poorly: 0.017 for 0.033),
for a procedure on the quadrature's nodes (coarser)."""

SHOW_MIN_CHANCE: float = 0.005
"""A level the 10th-90th range does not reach is shown for people when its chance is this or
more (:func:`tail_text`)."""

MIN_GAIN_BITS: float = 1e-4
"""Tests expected to gain less than this are not listed."""

SAME_TIME_WINDOW_H: float = 3.0
"""A timed candidate counts as already measured when the same channel was sampled this close."""


@dataclass(frozen=True)
class Candidate:
    """One test that could be done next.

    Attributes
    ----------
    id
        Stable id: the channel id, with the collection time for timed cortisol
        (``cortisol_saliva_2300``); the key of the cost table.
    channel
        Index of the model channel.
    analyte, specimen
        Canonical analyte id and the specimen it would be collected in.
    hour
        Collection time in clock hours for channels with a daily rhythm, else ``None``.
    label
        Display name.
    axis
        Name of the axis whose latents the result loads on.
    dynamic
        Whether it is a dynamic (stimulation/suppression) or timed cortisol test.
    channels, hours
        For a procedure (one test, several results: ``test_procedures.yaml``) every result's
        channel and collection time, in order (``channel``/``hour`` are the first's); empty
        for a test with one result.
    """

    id: str
    channel: int
    analyte: str
    specimen: str
    hour: float | None
    label: str
    axis: str
    dynamic: bool = False
    channels: tuple[int, ...] = ()
    hours: tuple[float | None, ...] = ()

    @property
    def parts(self) -> list[tuple[int, float | None]]:
        """``(channel, hour)`` of each result the test yields (one for a plain test)."""
        if not self.channels:
            return [(self.channel, self.hour)]
        return list(zip(self.channels, self.hours or (None,) * len(self.channels),
                        strict=True))


@dataclass
class NextTestPlan:
    """All candidates of one case, evaluated, best first.

    Attributes
    ----------
    targets
        Target condition ids (uncertain on the axes in question, or under raised suspicion).
    axes
        Axes whose candidates were evaluated.
    entropy_bits
        Current uncertainty: summed over the target axes, the entropy (bits) of which target
        conditions the patient has on the axis.
    target_reasons
        Per target, in the order of ``targets``: ``condition``, ``axis``, ``probability``,
        ``prior_probability`` (this patient's prior), ``odds_ratio`` (posterior over prior
        odds; ``None`` when infinite) and ``why``, the reasons that apply
        (``uncertain_with_results``, ``uncertain_moved``, ``uncertain_screening``,
        ``suspicion_raised``; :func:`target_reason_text` words them).
    rows
        One dict per evaluated candidate, sorted by ``score`` (see :func:`next_tests`).
    notes
        Approximations used, if any.
    """

    targets: list[str]
    axes: list[str]
    entropy_bits: float
    target_reasons: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scope: str = "question"
    cost_weight: float = 0.0

    def raised_axes(self) -> dict[str, list[str]]:
        """Per axis, the targets that are targets only for their raised suspicion (rare ones,
        or ones on an axis not otherwise in question)."""
        out: dict[str, list[str]] = {}
        for d in self.target_reasons:
            if d["why"] == ["suspicion_raised"]:
                out.setdefault(d["axis"], []).append(d["condition"])
        return out

    def top(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` best rows with some expected gain, internal keys removed.

        A rare condition holds few bits (entropy of a 1 % question: 0.08 bits; a common
        one's up to 1 bit and more), so the tests for a raised suspicion can rank below every
        test of a common uncertain condition.  Each axis with a target that is one only for
        its raised suspicion (:meth:`raised_axes`) whose best test (the largest gain on that
        axis' question) is not among the ``n`` best therefore gets it in one of the last
        places (at most ``n - 1`` of them: the best test overall stays), marked with
        ``listed_for`` (the raised conditions); the list stays in rank order.
        """
        rows = [r for r in self.rows if r["expected_information_gain_bits"] > MIN_GAIN_BITS]
        shown = rows[:n]
        extra = []
        for axis, conds in self.raised_axes().items():
            best = max(rows, default=None,
                       key=lambda r, a=axis: (r["_gain_by_axis"].get(a, 0.0), -r["rank"]))
            if best is None or best["_gain_by_axis"].get(axis, 0.0) <= MIN_GAIN_BITS:
                continue
            if any(best is r for r in shown) or any(best is e for e, _ in extra):
                continue
            extra.append((best, conds))
        extra = extra[: max(n - 1, 0)]
        keep = shown[: max(n - len(extra), 0)]
        out = [{k: v for k, v in r.items() if not k.startswith("_")} for r in keep]
        for r, conds in extra:
            out.append({**{k: v for k, v in r.items() if not k.startswith("_")},
                        "listed_for": conds})
        return sorted(out, key=lambda r: r["rank"])


# --------------------------------------------------------------------------------------------
# candidates and costs
@functools.cache
def load_test_costs() -> tuple[float, dict[str, float]]:
    """The illustrative relative cost table: ``(default, {candidate id: cost})``."""
    text = resources.files("neb_bayes.vocab").joinpath("test_costs.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    costs = {str(k): float(v) for k, v in (data.get("costs") or {}).items()}
    return float(data.get("default", 1.0)), costs


MAX_PROCEDURE_RESULTS: int = 3
"""Most results of one procedure (its quadrature is a tensor grid over them)."""


@dataclass(frozen=True)
class Procedure:
    """One test that yields several results (``neb_bayes/vocab/test_procedures.yaml``).

    Attributes
    ----------
    id
        Candidate id and cost key.
    label
        Display name.
    results
        Model channel ids of its results, in order.
    alone
        Those of ``results`` that are also ordered on their own.
    dynamic
        Whether it is a stimulation, suppression or tolerance test.
    """

    id: str
    label: str
    results: tuple[str, ...]
    alone: frozenset[str] = frozenset()
    dynamic: bool = False


@functools.cache
def load_test_procedures() -> tuple[Procedure, ...]:
    """The procedures table: tests that yield several results, each one candidate.

    Raises
    ------
    ValueError
        When an entry has no label, fewer than two or more than
        :data:`MAX_PROCEDURE_RESULTS` results, or ``alone`` names a result it does not have
        (the message names the procedure).
    """
    text = resources.files("neb_bayes.vocab").joinpath("test_procedures.yaml").read_text(
        "utf-8")
    out = []
    for pid, raw in (yaml.safe_load(text).get("procedures") or {}).items():
        results = tuple(str(r) for r in raw.get("results") or ())
        alone = frozenset(str(r) for r in raw.get("alone") or ())
        if not raw.get("label") or not 2 <= len(results) <= MAX_PROCEDURE_RESULTS:
            raise ValueError(f"test_procedures.yaml: procedures.{pid}: needs a label and 2-"
                             f"{MAX_PROCEDURE_RESULTS} results")
        if not alone <= set(results):
            raise ValueError(f"test_procedures.yaml: procedures.{pid}.alone: names a result "
                             "the procedure does not have")
        out.append(Procedure(id=str(pid), label=str(raw["label"]), results=results,
                             alone=alone, dynamic=bool(raw.get("dynamic", False))))
    return tuple(out)


def _cost(cid: str) -> float:
    default, costs = load_test_costs()
    return max(costs.get(cid, default), 1e-6)


def _fmt_hour(hour: float | None) -> str | None:
    if hour is None:
        return None
    h = int(round(hour * 60)) % (24 * 60)
    return f"{h // 60:02d}:{h % 60:02d}"


def _analyte_info(analyte: str) -> tuple[str, tuple[str, ...]]:
    try:
        from neb_bayes.vocab import analytes

        a = analytes().get(analyte)
    except Exception:  # noqa: BLE001 - the vocabulary only names things here
        a = None
    return (a.name, a.specimens) if a is not None else (analyte, ())


def _hour_close(a: float, b: float) -> bool:
    d = abs(a - b) % 24.0
    return min(d, 24.0 - d) <= SAME_TIME_WINDOW_H


def candidate_tests(
    model: CompiledModel, evidence: Evidence, case: Case | None = None
) -> list[Candidate]:
    """Every modelled channel not yet measured, plus the dynamic and timed cortisol tests.

    Parameters
    ----------
    model
        Compiled prior set.
    evidence
        The case's evidence (its blocks say which channels were measured).
    case
        The case, for collection times of timed channels already measured (optional).

    Returns
    -------
    list of Candidate
        In channel order.
    """
    hours: dict[int, list[float | None]] = {}
    by_index = {m.index: m for m in case.measurements} if case is not None else {}
    for block in evidence.blocks:
        for ch, src in zip(block.channel.tolist(), block.source.tolist(), strict=True):
            m = by_index.get(src)
            hours.setdefault(ch, []).append(m.hour if m is not None else None)
    out = []
    for ci, ch in enumerate(model.channels):
        hour = DIURNAL_HOURS.get(ch.name, 8.0) if ch.diurnal else None
        if ci in hours:
            if hour is None or any(h is None or _hour_close(h, hour) for h in hours[ci]):
                continue
        name, vocab_specimens = _analyte_info(ch.analyte)
        specimen = (ch.specimens or vocab_specimens or ("serum",))[0]
        timed = ch.name in ("cortisol_serum", "cortisol_saliva")
        cid = ch.name
        if timed and hour is not None:
            cid = f"{ch.name}_{str(_fmt_hour(hour)).replace(':', '')}"
        label = DYNAMIC_LABELS.get(ch.name, name)
        if hour is not None and not timed:
            label = f"{label} ({_fmt_hour(hour)})"
        out.append(Candidate(
            id=cid, channel=ci, analyte=ch.analyte, specimen=specimen, hour=hour, label=label,
            axis=model.axes[ch.axis].name, dynamic=ch.name in DYNAMIC_LABELS,
        ))
    return _group_procedures(model, out)


def _group_procedures(model: CompiledModel, singles: list[Candidate]) -> list[Candidate]:
    """Replace the results of each procedure (:func:`load_test_procedures`) by one candidate.

    The procedure's results not yet measured (those among ``singles``) become one candidate
    at the place of the first; a result stays a candidate of its own only where a procedure
    lists it under ``alone``.  A procedure whose results the prior set does not model on one
    axis is left out (its results too, unless ``alone``).
    """
    by_name = {model.channels[c.channel].name: c for c in singles}
    after: dict[str, list[Candidate]] = {}        # procedures, by their first result's id
    procedures = load_test_procedures()
    alone = set().union(*(p.alone for p in procedures))
    drop = {r for p in procedures for r in p.results} - alone
    for proc in procedures:
        parts = [by_name[r] for r in proc.results if r in by_name]
        if not parts or len({p.axis for p in parts}) > 1:
            continue
        head = parts[0]
        after.setdefault(head.id, []).append(Candidate(
            id=proc.id, channel=head.channel, analyte=head.analyte, specimen=head.specimen,
            hour=head.hour, label=proc.label, axis=head.axis,
            dynamic=proc.dynamic or any(p.dynamic for p in parts),
            channels=tuple(p.channel for p in parts), hours=tuple(p.hour for p in parts)))
    out = []
    for c in singles:
        if model.channels[c.channel].name not in drop:
            out.append(c)
        out.extend(after.get(c.id, ()))
    return out


# --------------------------------------------------------------------------------------------
# targets
@dataclass(frozen=True)
class Family:
    """Subtypes of one disease (``neb_bayes/vocab/condition_families.yaml``)."""

    id: str
    label: str
    members: tuple[str, ...]


@functools.cache
def load_condition_families() -> tuple[Family, ...]:
    """The condition families: presence is asked before subtype (:func:`_target_cells`)."""
    text = resources.files("neb_bayes.vocab").joinpath("condition_families.yaml").read_text(
        "utf-8")
    return tuple(Family(id=str(fid), label=str(raw.get("label") or fid),
                        members=tuple(str(m) for m in raw.get("members") or ()))
                 for fid, raw in (yaml.safe_load(text).get("families") or {}).items())


def _open_families(
    model: CompiledModel, targets: list[int], marginals: list[np.ndarray] | None
) -> list[tuple[Family, int, np.ndarray]]:
    """The families with a target member that are not established: ``(family, axis, mask)``,
    ``mask`` the axis' states in any member.

    A family is open while its probability is below
    :data:`~neb_bayes.config.ESTABLISHED_PROBABILITY`; a family the model lacks (a member
    unknown, or members on different axes) is skipped.
    """
    if marginals is None:
        return []
    out = []
    names = set(model.conditions)
    for fam in load_condition_families():
        if not set(fam.members) <= names:
            continue
        idx = [model.conditions.index(m) for m in fam.members]
        axes = {int(model.cond_axis[c]) for c in idx}
        if len(axes) != 1 or not set(idx) & set(targets):
            continue
        ai = axes.pop()
        mask = np.any([np.asarray(model.cond_states[c], bool) for c in idx], axis=0)
        if float(np.asarray(marginals[ai])[mask].sum()) < config.ESTABLISHED_PROBABILITY:
            out.append((fam, ai, mask))
    return out


def _target_cells(
    model: CompiledModel, targets: list[int],
    open_fams: Sequence[tuple[Family, int, np.ndarray]] = (),
) -> list[tuple[int, np.ndarray]]:
    """The target axes' states grouped by their membership in the axis' target questions.

    Each target condition is a question of its own, except the members of a condition
    family that is not yet established (``open_fams``, :func:`_open_families`): they are
    one question, whether the disease is present (a clinician
    establishes it before asking the subtype).  Returns one ``(axis, mask)`` per cell with
    some question answered yes (``mask`` over the axis' states), axes in ascending order;
    each axis' states in none form its remaining cell, whose probability is one minus the
    others'.
    """
    merged = {model.conditions.index(m) for fam, _, _ in open_fams for m in fam.members}
    questions = [(int(model.cond_axis[c]), np.asarray(model.cond_states[c], bool))
                 for c in targets if c not in merged]
    questions += [(ai, mask) for _, ai, mask in open_fams]
    cells: list[tuple[int, np.ndarray]] = []
    for ai in sorted({a for a, _ in questions}):
        member = np.stack([m for a, m in questions if a == ai], axis=1)
        for key in dict.fromkeys(map(tuple, member)):
            if any(key):
                cells.append((ai, (member == np.array(key)).all(axis=1)))
    return cells


def _cell_entropy(p: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Entropy (bits) of each target axis' cells, summed over the axes.

    ``p`` holds the cells' probabilities in its last dimension (the order of
    :func:`_target_cells`), ``axes`` each cell's axis; each axis' remaining cell is added.
    """
    p = np.clip(p, 0.0, 1.0)
    total = -(np.where(p > 0, p * np.log2(np.maximum(p, 1e-300)), 0.0)).sum(axis=-1)
    for ai in np.unique(axes):
        rest = np.clip(1.0 - p[..., axes == ai].sum(axis=-1), 0.0, 1.0)
        total = total - np.where(rest > 0, rest * np.log2(np.maximum(rest, 1e-300)), 0.0)
    return total


def _joint_tables(
    model: CompiledModel, joint: np.ndarray, others: tuple[int, ...],
    masks: list[tuple[int, np.ndarray]],
) -> np.ndarray:
    """``(grid points, masks)``: the joint's mass in each (axis, state mask), per grid point."""
    nd = joint.ndim
    tables = []
    for ai, mask in masks:
        shape = [1] * nd
        shape[ai] = model.axes[ai].n_states
        tables.append((joint * mask.astype(float).reshape(shape)).sum(axis=others).reshape(-1))
    if not tables:
        return np.zeros((joint.sum(axis=others).size, 0))
    return np.stack(tables, axis=1)


def _odds_ratio(p: float, p0: float) -> float:
    """Posterior odds over prior odds (``inf`` when the prior is 0 or the posterior 1)."""
    if p0 <= 0.0 or p >= 1.0:
        return math.inf if p > 0.0 else 1.0
    if p0 >= 1.0:
        return 0.0
    return (p / (1.0 - p)) / (p0 / (1.0 - p0))


def _target_details(
    model: CompiledModel, evidence: Evidence, result_exact: Any, scope: Scope
) -> dict[int, dict[str, Any]]:
    """Every target condition with why it is one, in condition order.

    A condition is a target when it is *uncertain* (probability within :data:`UNCERTAIN`)
    on an axis in question (``scope="question"``: an axis with a result or one whose state
    distribution moved from the prior by :data:`MOVED_TV`; ``scope="all"``: every axis), or
    when its *suspicion is raised*: its posterior odds are at least
    :data:`~neb_bayes.config.RAISED_ODDS_RATIO` times its prior odds and its probability is
    at least :data:`~neb_bayes.config.RAISED_MIN_PROBABILITY` (and at most the upper end of
    :data:`UNCERTAIN`: a settled condition is no question), on any axis.  ``why`` lists the
    reasons that apply: ``uncertain_with_results``, ``uncertain_moved``,
    ``uncertain_screening``, ``suspicion_raised``.
    """
    probs = np.asarray(result_exact.condition_probs)
    priors = np.asarray(result_exact.prior_condition_probs)[: probs.size]   # (none last)
    lo, hi = UNCERTAIN
    with_results = {b.axis for b in evidence.blocks}
    moved = {
        ai for ai, (post, prior) in enumerate(
            zip(result_exact.marginals, result_exact.prior_marginals, strict=True))
        if 0.5 * float(np.abs(np.asarray(post) - np.asarray(prior)).sum()) >= MOVED_TV
    }
    out: dict[int, dict[str, Any]] = {}
    for ci, (p, p0) in enumerate(zip(probs.tolist(), priors.tolist(), strict=True)):
        ai = int(model.cond_axis[ci])
        ratio = _odds_ratio(p, p0)
        why = []
        if lo <= p <= hi:
            if ai in with_results:
                why.append("uncertain_with_results")
            elif ai in moved:
                why.append("uncertain_moved")
            elif scope == "all":
                why.append("uncertain_screening")
        if ratio >= config.RAISED_ODDS_RATIO and config.RAISED_MIN_PROBABILITY <= p <= hi:
            why.append("suspicion_raised")
        if why:
            out[ci] = {"condition": model.conditions[ci], "axis": model.axes[ai].name,
                       "probability": round(p, 6), "prior_probability": round(p0, 8),
                       "odds_ratio": round(ratio, 2) if math.isfinite(ratio) else None,
                       "why": why}
    return out


def target_reason_text(detail: dict[str, Any]) -> str:
    """Why a condition is a next-test target, for people (CLI text, HTML, Markdown).

    Parameters
    ----------
    detail
        One entry of :attr:`NextTestPlan.target_reasons`.

    Returns
    -------
    str
        E.g. ``"suspicion raised: odds x180 the prior's (prior 0.004 %)"``.
    """
    from neb_bayes.report.format import fine_pct

    parts = []
    for code in detail["why"]:
        if code == "suspicion_raised":
            ratio = detail["odds_ratio"]
            times = "far" if ratio is None else f"x{ratio:.3g}"
            parts.append(f"suspicion raised: odds {times} the prior's "
                         f"(prior {fine_pct(detail['prior_probability'])})")
        else:
            parts.append(_UNCERTAIN_TEXT[code])
    return "; ".join(parts)


_UNCERTAIN_TEXT = {
    "uncertain_with_results": "uncertain (1-99 %) on an axis with results",
    "uncertain_moved": "uncertain (1-99 %) on an axis the evidence moved",
    "uncertain_screening": "uncertain (1-99 %): screening (scope all)",
}


# --------------------------------------------------------------------------------------------
# one candidate
def _extended_block(
    model: CompiledModel, evidence: Evidence, patient: Patient | None, old: Block | None,
    cand: Candidate, drop_censored: bool,
) -> tuple[Block, Block | None]:
    """The axis' block with the candidate's results appended (log value 0: each node enters
    the mean), all on one new day (one procedure, one visit).

    Each result is read as the evidence reads a result (:func:`result_adjustments`): the
    case's context adds its extra variance and may change its daily rhythm; its shift does not
    matter (the hypothetical value is on the scale the shift was taken off).  The old
    results keep every column, their context variances included.
    """
    if old is not None and drop_censored:
        keep = old.censor == 0
        old = Block(
            axis=old.axis, deps=old.deps, channel=old.channel[keep], y=old.y[keep],
            censor=old.censor[keep], day=old.day[keep], diurnal=old.diurnal[keep],
            diurnal_var=old.diurnal_var[keep], source=old.source[keep],
            extra_var=None if old.extra_var is None else old.extra_var[keep], sex=old.sex,
        ) if keep.any() else None
    deps = set(old.deps) if old is not None else set()
    adj = []
    for ci, hour in cand.parts:
        ch = model.channels[ci]
        deps.add(ch.axis)
        deps.update(e.axis for e in ch.effects)
        if ch.amp_axis is not None:
            deps.add(ch.amp_axis)
        adj.append(_candidate_adjustments(model, evidence, patient, ci, hour))
    d = len(adj)
    day = float(old.day.max()) + 1.0 if old is not None else 0.0

    def cat(values: np.ndarray | None, tail: list[float], dtype: Any,
            fill: float = 0.0) -> np.ndarray:
        new_part = np.array(tail, dtype=dtype)
        if old is None:
            return new_part
        head = np.full(old.n, fill, dtype=dtype) if values is None else values.astype(dtype)
        return np.concatenate([head, new_part])

    new = Block(
        axis=model.channels[cand.channel].axis,
        deps=tuple(sorted(deps)),
        channel=cat(getattr(old, "channel", None), [ci for ci, _ in cand.parts], np.int64),
        y=cat(getattr(old, "y", None), [0.0] * d, float),
        censor=cat(getattr(old, "censor", None), [0] * d, np.int8),
        day=cat(getattr(old, "day", None), [day] * d, float),
        diurnal=cat(getattr(old, "diurnal", None), [a[2] for a in adj], float),
        diurnal_var=cat(getattr(old, "diurnal_var", None), [a[3] for a in adj], float),
        source=cat(getattr(old, "source", None), [-1] * d, np.int64),
        extra_var=cat(getattr(old, "extra_var", None), [a[1] for a in adj], float),
        sex=evidence.covariates.sex,
    )
    return new, old


def _candidate_adjustments(
    model: CompiledModel, evidence: Evidence, patient: Patient | None, channel: int,
    hour: float | None,
) -> tuple[float, float, float, float]:
    """``(shift, extra variance, rhythm offset, rhythm variance)`` of a hypothetical result
    of ``channel`` at ``hour``, as the evidence would read it (no context: the channel's plain
    daily rhythm)."""
    ctx = evidence.context
    if ctx is not None and patient is not None:
        return result_adjustments(model, ctx, channel, hour, None, patient)
    ch = model.channels[channel]
    if not ch.diurnal:
        return 0.0, 0.0, 0.0, 0.0
    d_off, d_var = model.diurnal_offset(ch.diurnal, hour)
    return 0.0, 0.0, d_off * ch.diurnal_scale, d_var * ch.diurnal_scale**2


def _conditional_gaussian(
    mom: Any, block: Block, grid: tuple[int, ...], d: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``grid + (d,)`` and covariance ``grid + (d, d)`` of the new (last ``d``) results
    given the observed old results, per state combination."""
    n = block.n
    new = np.arange(n - d, n)
    cov = np.broadcast_to(mom.cov, grid + (n, n))
    m = np.broadcast_to(mom.mean[..., new], grid + (d,))
    v = cov[..., new, :][..., :, new]
    obs = np.flatnonzero(block.censor[: n - d] == 0)
    if obs.size:
        coo = cov[..., obs, :][..., :, obs]
        con = cov[..., obs, :][..., :, new]                    # grid + (n_obs, d)
        sol = np.linalg.solve(coo, con)
        resid = block.y[obs] - mom.mean[..., obs]
        m = m + np.einsum("...od,...o->...d", sol, np.broadcast_to(resid, grid + (obs.size,)))
        v = v - np.einsum("...od,...oe->...de", sol, con)
    v = 0.5 * (v + np.swapaxes(v, -1, -2)) + 1e-12 * np.eye(d)
    return m, v


def _weighted_quantiles(
    values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]
) -> list[float]:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    cw = cw / cw[-1]
    return [float(values[order][min(np.searchsorted(cw, q), len(cw) - 1)]) for q in qs]


def _level_chances(after: np.ndarray, q: np.ndarray, now: float,
                   on_grid: bool = False) -> dict[str, list[dict]]:
    """The chance, over the predicted results, that a condition's probability after the test
    reaches each of :data:`DECISION_LEVELS` above ``now`` (``chance_at_least``) or falls to
    each below it (``chance_at_most``).

    ``after`` and ``q`` are per node; ``on_grid``: the nodes are a uniform grid and ``q`` its
    (normalised) density, and each interval between two points counts with the share of it
    where the linearly interpolated ``after`` is past the level (the crossing is placed, not
    rounded to a point).
    """
    def share(level: float, sign: float) -> float:
        a = sign * (after - level)                       # >= 0: past the level
        if not on_grid:
            return float(q[a >= 0].sum())
        a0, a1 = a[:-1], a[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(a0 * a1 < 0, np.maximum(a0, a1) / np.abs(a1 - a0), 0.0)
        frac = np.where((a0 >= 0) & (a1 >= 0), 1.0, cross)
        return float((0.5 * (q[:-1] + q[1:]) * frac).sum() / (0.5 * (q[:-1] + q[1:])).sum())

    up = [{"level": lv, "chance": round(share(lv, 1.0), 6)}
          for lv in DECISION_LEVELS if lv > now]
    down = [{"level": lv, "chance": round(share(lv, -1.0), 6)}
            for lv in DECISION_LEVELS if lv < now]
    return {"chance_at_least": up, "chance_at_most": down}


def tail_text(moved: dict[str, Any]) -> str:
    """What a condition's 10th-90th percentile range after a test hides, for people.

    Parameters
    ----------
    moved
        One entry of a row's ``conditions``.

    Returns
    -------
    str
        E.g. ``"to >=10 % in 5.0 %, >=50 % in 2.0 % of results"``: each decision level
        beyond the range whose chance is :data:`SHOW_MIN_CHANCE` or more (the nearest
        first); empty when the range shows everything.
    """
    from neb_bayes.report.format import pct

    def level(p: float) -> str:
        return f"{100 * p:g} %"

    lo, hi = moved["likely_range"]
    parts = [f">={level(d['level'])} in {pct(d['chance'])}"
             for d in moved.get("chance_at_least", ())
             if d["level"] > hi and d["chance"] >= SHOW_MIN_CHANCE]
    parts += [f"<={level(d['level'])} in {pct(d['chance'])}"
              for d in reversed(moved.get("chance_at_most", ()))
              if d["level"] < lo and d["chance"] >= SHOW_MIN_CHANCE]
    return f"to {', '.join(parts)} of results" if parts else ""


@functools.cache
def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, g = np.polynomial.hermite_e.hermegauss(n)
    return t, g / g.sum()


@functools.cache
def _gauss_hermite_grid(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor grid of standard-normal Gauss-Hermite nodes ``(n**d, d)`` and weights."""
    t, g = _gauss_hermite(GH_NODES_BY_DIM[d - 1])
    mesh = np.stack(np.meshgrid(*([t] * d), indexing="ij"), axis=-1).reshape(-1, d)
    wts = np.prod(np.stack(np.meshgrid(*([g] * d), indexing="ij"), axis=-1).reshape(-1, d),
                  axis=1)
    return mesh, wts


def _predictive_nodes(
    mean: np.ndarray, cov: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadrature nodes of the new results' proposal mixture.

    Parameters
    ----------
    mean, cov
        Per state combination (grid + ``(d,)``, grid + ``(d, d)``): the Gaussian of the new
        results given the observed old ones (:func:`_conditional_gaussian`).
    weights
        The combinations' current posterior mass, flattened.

    Returns
    -------
    x, q0, log_g
        Nodes ``(K, d)``, their weights (summing to 1) and the proposal mixture's log density
        at each: a tensor Gauss-Hermite grid (:data:`GH_NODES_BY_DIM` per dimension) through
        each distinct component's Cholesky factor, components lighter than
        :data:`MIN_COMPONENT_MASS` (relative) left out, at most :data:`MAX_COMPONENTS`.
    """
    d = mean.shape[-1]
    mf = np.broadcast_to(mean.reshape(-1, d), (weights.size, d))
    vf = np.broadcast_to(cov.reshape(-1, d, d), (weights.size, d, d))
    keep = weights > MIN_COMPONENT_MASS * weights.sum()
    key = np.round(np.concatenate([mf[keep], vf[keep].reshape(-1, d * d)], axis=1), 9)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    pi = np.bincount(inv.reshape(-1), weights=weights[keep], minlength=len(uniq))
    if len(uniq) > MAX_COMPONENTS:
        top = np.argsort(-pi)[:MAX_COMPONENTS]
        uniq, pi = uniq[top], pi[top]
    pi = pi / pi.sum()
    mu, chol = uniq[:, :d], np.linalg.cholesky(uniq[:, d:].reshape(-1, d, d))
    t, g = _gauss_hermite_grid(d)
    x = (mu[:, None, :] + np.einsum("uij,tj->uti", chol, t)).reshape(-1, d)
    q0 = (pi[:, None] * g[None, :]).reshape(-1)
    z = np.linalg.solve(chol[None], (x[:, None, :] - mu[None])[..., None])[..., 0]
    log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    comp_logpdf = -0.5 * (z**2).sum(axis=-1) - log_det[None] - 0.5 * d * math.log(2 * math.pi)
    from scipy.special import logsumexp

    return x, q0, logsumexp(comp_logpdf + np.log(pi)[None, :], axis=1)


TAIL_GRID: int = 201
"""Points of the fine grid on which a one-result test's decision-level chances are computed."""


def _fine_grid(
    mean: np.ndarray, cov: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform grid ``(TAIL_GRID, 1)`` over every weighty component's mean +- 7 sd, and its
    weights (equal: the predictive density at each point is multiplied in)."""
    keep = weights > MIN_COMPONENT_MASS * weights.sum()
    mu = np.broadcast_to(mean.reshape(-1), weights.shape)[keep]
    sd = np.sqrt(np.broadcast_to(cov.reshape(-1), weights.shape)[keep])
    xs = np.linspace(float((mu - 7 * sd).min()), float((mu + 7 * sd).max()), TAIL_GRID)
    return xs[:, None], np.ones(TAIL_GRID)


def _node_loglik(mom: Any, block: Block, ll_old: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(K, S)``: exact ``log q_s(x_k) = log p(old, x_k | s) - log p(old | s)`` of each node
    ``x_k`` (the new results, the block's last ``x.shape[1]``) and state combination."""
    k, d = x.shape
    mean_b = np.empty((k,) + mom.mean.shape)
    mean_b[...] = mom.mean
    mean_b[..., -d:] -= x.reshape((k,) + (1,) * (mom.mean.ndim - 1) + (d,))
    ll_new = gaussian_block_loglik(block.y, block.censor, mean_b, mom.cov)
    return (ll_new - ll_old).reshape(k, -1)


def _as_read(model: CompiledModel, cand: Candidate, x: np.ndarray) -> np.ndarray:
    """The hypothetical results ``x`` (nodes, results: log values on the evidence's scale) as
    the evidence reads them: each below its channel's floor read at it
    (:func:`neb_bayes.evidence.floored`, the reading of a real result)."""
    out = x.copy()
    for j, (ci, _) in enumerate(cand.parts):
        out[:, j] = floored(model, ci, x[:, j], np.zeros(len(x), np.int8))[0]
    return out


@dataclass(frozen=True)
class _Setting:
    """One candidate's block and the parts of its preposterior that do not depend on the
    hypothetical results (:func:`_setting`)."""

    block: Block
    deps: tuple[int, ...]
    others: tuple[int, ...]
    grid: tuple[int, ...]
    wf: np.ndarray          # the current posterior over the grid, flattened
    mom: Any                # block moments with the new results' log values at 0
    ll_old: np.ndarray      # log p(old | s) on the grid


def _setting(
    model: CompiledModel, evidence: Evidence, patient: Patient | None, joint: np.ndarray,
    cand: Candidate, notes: set[str],
) -> _Setting:
    """The candidate's block (its results appended to the axis' old ones) and what its
    preposterior needs besides the hypothetical results; an approximation made is added to
    ``notes``."""
    ch = model.channels[cand.channel]
    old = next((b for b in evidence.blocks if b.axis == ch.axis), None)
    drop = old is not None and int((old.censor != 0).sum()) >= 3
    if drop:
        notes.add(f"{model.axes[ch.axis].name}: three or more censored results; their "
                  "information was left out of the next-test conditioning")
    block, old = _extended_block(model, evidence, patient, old, cand, drop)
    deps = block.deps
    others = tuple(i for i in range(joint.ndim) if i not in deps)
    w = joint.sum(axis=others)
    latent = evidence.latent_params(model, ch.axis)   # the case's context effects
    mom = block_moments(model, block, latent=latent)
    # log p(old | s) on the extended grid; the planning model has no gross-error component
    # (a test's value is judged as if its result were right), so neither term has it
    if old is not None:
        ll_old = block_loglik(model, old, latent=latent, gross=False).reshape(
            [model.axes[dd].n_states if dd in old.deps else 1 for dd in deps])
    else:
        ll_old = np.zeros([1] * len(deps))
    return _Setting(block=block, deps=deps, others=others, grid=w.shape, wf=w.reshape(-1),
                    mom=mom, ll_old=ll_old)


def _read_loglik(model: CompiledModel, cand: Candidate, st: _Setting, x: np.ndarray,
                 L: np.ndarray | None = None) -> np.ndarray:
    """``(K, S)``: ``log q_s`` of the nodes ``x`` as the evidence reads them (:func:`_as_read`),
    what the posterior after each result is made from; ``L``, the nodes' own (the predictive
    density's), where none lies below a floor."""
    xr = _as_read(model, cand, x)
    if L is not None and np.array_equal(xr, x):
        return L
    return _node_loglik(st.mom, st.block, st.ll_old, xr)


def probabilities_after(result: Result, cand: Candidate, x: np.ndarray) -> np.ndarray:
    """Every condition's probability after each hypothetical result of a candidate, as the
    next-test plan computes it (exact in the model, without the gross-error component).

    Parameters
    ----------
    result
        The case's posterior.
    cand
        A candidate test (:func:`candidate_tests`).
    x
        ``(K, d)``: log values of the test's ``d`` results (the evidence's scale, less
        context shifts), one row per hypothetical outcome.

    Returns
    -------
    numpy.ndarray
        ``(K, conditions)`` in the model's condition order.
    """
    model, joint = result.model, result.exact.joint
    patient = result.case.patient if result.case is not None else None
    st = _setting(model, result.evidence, patient, joint, cand, set())
    C = _joint_tables(model, joint, st.others,
                      [(int(model.cond_axis[c]), model.cond_states[c])
                       for c in range(len(model.conditions))])
    La = _read_loglik(model, cand, st, np.asarray(x, float).reshape(-1, len(cand.parts)))
    E = np.exp(La - La.max(axis=1, keepdims=True))
    return (E @ C) / (E @ st.wf)[:, None]


def _evaluate(
    model: CompiledModel,
    evidence: Evidence,
    patient: Patient | None,
    joint: np.ndarray,
    cand: Candidate,
    targets: list[int],
    cells: list[tuple[int, np.ndarray]],
    cond_tables: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]],
    notes: set[str],
) -> dict[str, Any]:
    ch = model.channels[cand.channel]
    d = len(cand.parts)
    st = _setting(model, evidence, patient, joint, cand, notes)
    deps, others, wf, mom, block, ll_old = (st.deps, st.others, st.wf, st.mom, st.block,
                                            st.ll_old)
    cond_mean, cond_cov = _conditional_gaussian(mom, block, st.grid, d)
    x, q0, log_g = _predictive_nodes(cond_mean, cond_cov, wf)
    from scipy.special import logsumexp  # (here: a report that ranks no test never loads it)

    L = _node_loglik(mom, block, ll_old, x)                             # (K, S)
    logw = np.log(np.maximum(wf, 1e-300))
    log_p = logsumexp(L + logw[None, :], axis=1)                        # predictive density
    q = q0 * np.exp(np.clip(log_p - log_g, -700, 50))
    q = q / q.sum()
    # what is learned from each result: read as the evidence reads it (floors)
    La = _read_loglik(model, cand, st, x, L)
    # condition probabilities after each hypothetical result
    if deps not in cond_tables:
        cond_tables[deps] = (
            _joint_tables(model, joint, others,
                          [(int(model.cond_axis[c]), model.cond_states[c]) for c in targets]),
            _joint_tables(model, joint, others, cells))
    C, C_cells = cond_tables[deps]                           # (S, n_targets), (S, n_cells)
    E = np.exp(La - La.max(axis=1, keepdims=True))
    norm = (E @ wf)[:, None]
    post = (E @ C) / norm                                                # (K, n_targets)
    now = C.sum(axis=0)
    cell_axes = np.array([ai for ai, _ in cells])
    p_now, p_after = C_cells.sum(axis=0), (E @ C_cells) / norm
    h_now = float(_cell_entropy(p_now, cell_axes))
    h_after = float(q @ _cell_entropy(p_after, cell_axes))
    gain = max(h_now - h_after, 0.0)
    gain_by_axis = {}
    for ai in np.unique(cell_axes).tolist():
        sel = cell_axes == ai
        g_a = (float(_cell_entropy(p_now[sel], cell_axes[sel]))
               - float(q @ _cell_entropy(p_after[:, sel], cell_axes[sel])))
        gain_by_axis[model.axes[ai].name] = max(g_a, 0.0)
    change = q @ np.abs(post - now[None, :])
    shown = [j for j in np.argsort(-change)[:3] if change[j] >= 1e-4]
    # the chances of the decision levels: an indicator, which the few Gauss-Hermite nodes of
    # a component integrate poorly; for one result a fine grid (exact predictive, trapezoid)
    t_post, t_q = post, q
    if d == 1 and shown:
        xs, t_q = _fine_grid(cond_mean, cond_cov, wf)
        Lt = _node_loglik(mom, block, ll_old, xs)
        log_pt = logsumexp(Lt + logw[None, :], axis=1)
        t_q = t_q * np.exp(log_pt - log_pt.max())
        t_q = t_q / t_q.sum()
        Lta = _read_loglik(model, cand, st, xs, Lt)
        Et = np.exp(Lta - Lta.max(axis=1, keepdims=True))
        t_post = (Et @ C) / (Et @ wf)[:, None]
    moved = []
    for j in shown:
        p10, p90 = _weighted_quantiles(post[:, j], q, (0.1, 0.9))
        moved.append({
            "condition": model.conditions[targets[j]],
            "probability": round(float(now[j]), 6),
            "likely_range": [round(p10, 6), round(p90, 6)],
            "expected_change": round(float(change[j]), 6),
            **_level_chances(t_post[:, j], t_q, float(now[j]), on_grid=t_post is not post),
        })
    cost = _cost(cand.id)
    return {
        "test": cand.id,
        "label": cand.label,
        "analyte": cand.analyte,
        "channel": ch.name,
        "results": [model.channels[ci].name for ci, _ in cand.parts],
        "specimen": cand.specimen,
        "collected": _fmt_hour(cand.hour),
        "axis": cand.axis,
        "dynamic": cand.dynamic,
        "expected_information_gain_bits": round(gain, 6),
        "relative_cost": cost,
        "conditions": moved,
        "_gain_by_axis": gain_by_axis,     # each target axis' share of the gain
        "_quadrature_mass": float(np.sum(q0 * np.exp(np.clip(log_p - log_g, -700, 50)))),
        # the target probabilities expected after the test: the current ones (a check)
        "_expected_probability": {model.conditions[c]: float(v)
                                  for c, v in zip(targets, q @ post, strict=True)},
    }


# --------------------------------------------------------------------------------------------
# public API
def plan_next_tests(
    result: Result,
    *,
    cost_weight: float = 0.0,
    scope: Scope = "question",
    candidates: list[Candidate] | None = None,
) -> NextTestPlan:
    """Evaluate every candidate test of a case by expected information gain.

    Parameters
    ----------
    result
        The case's posterior (:func:`neb_bayes.api.infer`).
    cost_weight
        ``score = gain / relative_cost ** cost_weight``; 0 ranks by information alone,
        1 by bits per unit of (illustrative) cost.
    scope
        ``"question"``: target the uncertain conditions on axes with results or moved by the
        evidence; ``"all"``: every uncertain condition (screening included).  Either way a
        condition under raised suspicion is a target.
    candidates
        Candidate tests to evaluate (default: :func:`candidate_tests`).

    Returns
    -------
    NextTestPlan
        Targets, current entropy and the evaluated candidates, best score first.
    """
    model, ev, post = result.model, result.evidence, result.exact
    details = _target_details(model, ev, post, scope)
    targets = list(details)
    target_axes = sorted({int(model.cond_axis[c]) for c in targets})
    open_fams = _open_families(model, targets, post.marginals)
    cells = _target_cells(model, targets, open_fams)
    cell_probs = np.array([float(np.asarray(post.marginals[ai])[mask].sum())
                           for ai, mask in cells])
    plan = NextTestPlan(
        targets=[model.conditions[c] for c in targets],
        target_reasons=list(details.values()),
        axes=[model.axes[a].name for a in target_axes],
        entropy_bits=(float(_cell_entropy(cell_probs, np.array([ai for ai, _ in cells])))
                      if targets else 0.0),
        scope=scope,
        cost_weight=cost_weight,
    )
    if not targets:
        return plan
    cands = candidates if candidates is not None else candidate_tests(model, ev, result.case)
    cands = [c for c in cands if model.channels[c.channel].axis in target_axes
             or any(e.axis in target_axes for e in model.channels[c.channel].effects)]
    from neb_bayes.report.format import pct

    tables: dict[tuple[int, ...], np.ndarray] = {}
    patient = result.case.patient if result.case is not None else None
    notes = {f"{', '.join(fam.members)}: asked as one question, whether {fam.label} is "
             f"present, until it is established ({pct(config.ESTABLISHED_PROBABILITY)} or "
             "more): presence before subtype" for fam, _, _ in open_fams}
    rows = [_evaluate(model, ev, patient, post.joint, c, targets, cells, tables, notes)
            for c in cands]
    for r in rows:
        gain, cost = r["expected_information_gain_bits"], r["relative_cost"]
        r["score"] = round(gain / cost**cost_weight, 6)
    rows.sort(key=lambda r: (-r["score"], -r["expected_information_gain_bits"], r["test"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    plan.rows = rows
    plan.notes = sorted(notes)
    return plan


def next_tests(result: Result, top: int = 5, **kwargs: Any) -> list[dict[str, Any]]:
    """The ``top`` most informative next tests for a case (for reports).

    Parameters
    ----------
    result
        The case's posterior.
    top
        How many to return.
    **kwargs
        ``cost_weight`` and ``scope``, as in :func:`plan_next_tests`.

    Returns
    -------
    list of dict
        Best first; each with ``rank``, ``test`` (id), ``label``, ``analyte`` and
        ``channel`` (the first result's), ``results`` (the channel id of every result the test
        yields: several for a procedure such as ``cosyntropin``), ``specimen``,
        ``collected`` (``"HH:MM"`` or ``None``), ``axis``, ``dynamic``,
        ``expected_information_gain_bits`` (sum over the target axes of the mutual
        information between the axis' target conditions and the result),
        ``relative_cost``, ``score`` and ``conditions`` (the up to three target conditions
        the result would move most: current ``probability``, ``likely_range`` = 10th-90th
        percentile after the test, ``expected_change``, and ``chance_at_least`` /
        ``chance_at_most``: per decision level above / below the current probability
        (:data:`DECISION_LEVELS`), the chance that the probability after the test reaches it,
        which shows a rise in few results the range hides); a test kept in the list as the best
        for a raised suspicion (:meth:`NextTestPlan.top`) also has ``listed_for``.
        Tests with no expected gain are left out; an empty list means no target.
    """
    return plan_next_tests(result, **kwargs).top(top)
