"""Plain cases read straight into the batch engine's rows, without per-result objects.

Most cases of a laboratory archive are plain: a patient section, results of known analytes
in known units with clock times, symptoms named by id.  For these,
:func:`~neb_bayes.case.read.read_case` and :func:`~neb_bayes.evidence.build_evidence` spend
most of a batch's time making objects (a ``Measurement`` per result, ``Block`` arrays per
axis) that the engine only flattens again.  :class:`PlainReader` reads such a case into the
rows the engine reads (:class:`~neb_bayes.inference.vectorised.Flat`) and an
:class:`~neb_bayes.evidence.Evidence` without blocks (covariates, symptoms, context, the
patient's items not used and warnings, results of analytes the prior set does not model;
results with a method, a note or the lab's reference interval),
through the same functions for each part:
:func:`~neb_bayes.case.patient.read_patient` and :func:`~neb_bayes.context.read_context`
for the patient (once per distinct patient section), the parts of
:func:`~neb_bayes.case.measurements.plain_result` for a result, and
:func:`~neb_bayes.evidence.result_row` for the result's row.

A case with anything else the readers would report (an error, an unknown field or symptom,
a symptom listed twice, a zero or implausible value, a date, a result without the
collection time its daily rhythm needs) or whose context names a symptom is declined
(:meth:`PlainReader.add` returns ``False``) and goes through ``read_case`` and
``build_evidence``, which give every message with its field path.  The rows of a case it
accepts are those of ``build_evidence``, in the same order, so its probabilities are the
same to the last bit (tests hold both readers equal).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

from neb_bayes import vocab
from neb_bayes.case.collect import Collector
from neb_bayes.case.measurements import (
    plain_day,
    plain_extra,
    plain_extra_count,
    plain_form,
    plain_value,
)
from neb_bayes.case.model import Case, NotUsed
from neb_bayes.case.patient import read_patient
from neb_bayes.case.read import TOP_KEYS
from neb_bayes.case.symptoms import SYMPTOM_STATES
from neb_bayes.context import read_context
from neb_bayes.evidence import (
    CENSOR_CODE,
    Evidence,
    channel_age_effects,
    context_latent_shifts,
    context_symptom_scale,
    lab_corrected,
    not_modelled,
    result_row,
)
from neb_bayes.inference.vectorised import Flat
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.prior import Covariates

__all__ = ["PlainReader"]

_TOP = frozenset(TOP_KEYS)
#: bounds of the caches a worker keeps for its whole run: distinct patient sections, and per
#: patient the adjustments by channel, hour and method (at most ~0.5 M entries, ~100 MB)
MAX_PEOPLE, MAX_ADJUSTMENTS = 1024, 512
_STATES = frozenset(SYMPTOM_STATES)
_INF = math.inf


def _frozen(x: Any) -> tuple:
    """A hashable image of a parsed JSON/YAML value (types kept: ``1``, ``1.0`` and ``True``
    differ; key order kept: it orders the reader's messages); ``TypeError`` for other values."""
    t = type(x)
    if t is dict:
        return ("d", tuple((k, _frozen(v)) for k, v in x.items()))
    if t is list:
        return ("l", tuple(_frozen(v) for v in x))
    if x is None or t in (str, int, float, bool):
        return (t, x)
    raise TypeError(f"not a JSON value: {t.__name__}")


@lru_cache(maxsize=1024)
def _symptom(name: str) -> str | None:
    """The symptom id a name as written refers to (as the case reader reads it)."""
    text = name.strip()
    return vocab.lookup_symptom(text) if text else None


class _Person:
    """What the patient part of a plain case gives: covariates, context, its evidence parts."""

    __slots__ = ("patient", "ctx", "covariates", "lat_shift", "cause_scale", "warnings",
                 "not_used", "shifted", "aged", "unmoved", "adjustments")

    def __init__(self, model: CompiledModel, patient, ctx, reader: Collector) -> None:
        self.patient, self.ctx = patient, ctx
        self.covariates = Covariates(sex=patient.sex, age=patient.age,
                                     flags=frozenset(ctx.flags))
        self.lat_shift = context_latent_shifts(model, ctx)
        self.cause_scale = context_symptom_scale(model, ctx)
        # what build_evidence lists first: the case reader's (here the patient's), then the
        # context reading's
        self.warnings = tuple(reader.warnings) + tuple(ctx.warnings)
        self.not_used = tuple(reader.not_used) + tuple(ctx.not_used)
        # the channels context or age may move, as build_evidence finds them
        self.shifted = model.context_shifts if ctx.flags else {}
        self.aged = channel_age_effects(model) if patient.age is not None else {}
        #: the channels whose results nothing moves (no daily rhythm, context or age effect):
        #: their rows are result_row's without its call
        self.unmoved = frozenset(
            c for c, channel in enumerate(model.channels)
            if not channel.diurnal and c not in self.shifted and c not in self.aged)
        #: a result's context, age and rhythm adjustments by (channel, hour, method)
        self.adjustments: dict[tuple, tuple] = {}


@lru_cache(maxsize=16)
def _people_of(model: CompiledModel) -> dict[tuple, _Person | None]:
    """The patients read for a model, by their fields as written (shared by its chunks)."""
    return {}


@lru_cache(maxsize=16)
def _forms_of(model: CompiledModel) -> dict[tuple, tuple | None]:
    """Result forms read for a model (:meth:`PlainReader._form`), by their fields as written."""
    return {}


class PlainReader:
    """Reads the plain cases of a chunk into one set of result rows.

    Parameters
    ----------
    model
        The compiled model (prior set) the rows are for.

    Attributes
    ----------
    evidences
        Per accepted case, in the order added: its evidence without blocks (the rows are in
        :meth:`flat`).
    n_used
        Per accepted case: results used (rows).
    axes
        Per accepted case: the axes it has results on.
    """

    def __init__(self, model: CompiledModel) -> None:
        self.model = model
        self.evidences: list[Evidence] = []
        self.n_used: list[int] = []
        self.axes: list[frozenset[int]] = []
        self._rows: list[tuple] = []  # each result's row (:meth:`_results`)
        self._people = _people_of(model)
        self._symptom_index = {s: i for i, s in enumerate(model.symptoms)}
        self._forms = _forms_of(model)

    def add(self, data: Any) -> bool:
        """Read one parsed case; ``False`` (nothing kept) when it is not plain."""
        if type(data) is not dict or not _TOP.issuperset(data):
            return False
        if "case_format" in data:
            fmt = data["case_format"]
            if type(fmt) not in (int, float) or fmt != 1:
                return False
        case_id = data.get("id")
        if type(case_id) is int:
            case_id = str(case_id)
        elif type(case_id) is not str or not case_id.strip():
            return False
        person = self._person(data.get("patient"))
        if person is None:
            return False
        symptoms = self._symptoms(data.get("symptoms"))
        if symptoms is None:
            return False
        raw = data.get("measurements")
        unused: list[NotUsed] = []
        rows = self._results(raw, person, unused)
        if rows is None:
            return False
        present, absent = symptoms
        if not raw and not present and not absent:
            return False      # nothing usable: the case reader's error
        rows.sort(key=_axis_of)       # stable: by axis, then as written (build_evidence's order)
        ev = Evidence(
            case_id=case_id.strip(), covariates=person.covariates, blocks=(),
            present=np.array(present, dtype=np.int64), absent=np.array(absent, dtype=np.int64),
            not_used=person.not_used + tuple(unused), warnings=person.warnings,
            lat_shift=person.lat_shift, context=person.ctx, cause_scale=person.cause_scale)
        # kept only now that nothing can fail
        self._rows.extend(rows)
        self.n_used.append(len(rows))
        self.axes.append(frozenset(r[0] for r in rows))
        self.evidences.append(ev)
        return True

    def flat(self) -> Flat:
        """Every accepted case's results as the engine's rows (by case, then axis)."""
        # row: axis, channel, y, censor, day, rhythm offset, rhythm var, index, extra
        rows = self._rows
        cols = np.fromiter(chain.from_iterable(rows), float, 9 * len(rows)).reshape(-1, 9).T
        return Flat(case=np.repeat(np.arange(len(self.n_used)), self.n_used),
                    axis=cols[0].astype(np.int64), channel=cols[1].astype(np.int64),
                    y=cols[2].copy(), censor=cols[3].astype(np.int8), day=cols[4].copy(),
                    diurnal=cols[5].copy(), diurnal_var=cols[6].copy(), extra=cols[8].copy())

    # -- the parts of a case --------------------------------------------------------------
    def _person(self, raw: Any) -> _Person | None:
        try:
            key = _frozen(raw)
            return self._people[key]
        except KeyError:
            pass
        except TypeError:             # a value that is not JSON-like: the case reader decides
            return None
        c = Collector()
        patient = read_patient(c, raw)
        person = None
        if not c.errors:
            ctx = read_context(Case(id="", patient=patient))
            if not ctx.extra_symptoms:
                person = _Person(self.model, patient, ctx, c)
        if len(self._people) > MAX_PEOPLE:
            self._people.clear()
        self._people[key] = person
        return person

    def _symptoms(self, raw: Any) -> tuple[list[int], list[int]] | None:
        """(present, absent) model symptom indices in build_evidence's order, or None."""
        if raw is None:
            return [], []
        if type(raw) is not dict or not _STATES.issuperset(raw):
            return None
        state_of: dict[str, str] = {}
        for state in SYMPTOM_STATES:
            names = raw.get(state)
            if names is None:
                continue
            if type(names) is not list:
                return None
            for name in names:
                if type(name) is not str:
                    return None
                sid = _symptom(name)
                if sid is None or state_of.setdefault(sid, state) != state:
                    return None       # unknown symptom, or listed in two states
        index = self._symptom_index
        out: dict[str, list[int]] = {"present": [], "absent": []}
        for sid in sorted(state_of):
            state = state_of[sid]
            if state == "unknown":
                continue
            i = index.get(sid)
            if i is None:
                return None           # not in the model's symptom table: listed as not used
            out[state].append(i)
        return out["present"], out["absent"]

    def _results(self, raw: Any, person: _Person, unused: list[NotUsed]) -> list[tuple] | None:
        """Each result's row with its axis first, as written; None if one is not plain.

        :func:`~neb_bayes.case.measurements.plain_result` in a loop, with each form's
        channel looked up once; a result no channel models is added to ``unused`` as
        build_evidence lists it."""
        if raw is None:
            return []
        if type(raw) is not list:
            return None
        model, forms = self.model, self._forms
        ctx, patient, shifted, aged = person.ctx, person.patient, person.shifted, person.aged
        adjustments, sex, unmoved = person.adjustments, person.covariates.sex, person.unmoved
        if len(adjustments) > MAX_ADJUSTMENTS:
            adjustments.clear()
        rows = []
        for i, item in enumerate(raw):
            if type(item) is not dict:
                return None
            get = item.get
            specimen, collected, day = get("specimen"), get("collected"), get("day")
            n = 3 + (specimen is not None) + (collected is not None) + (day is not None)
            extra = len(item) != n       # a method, note or reference interval
            if extra and len(item) != n + plain_extra_count(get):
                return None
            key = (get("analyte"), specimen, get("unit"), collected)
            try:
                form = forms[key]
            except KeyError:
                if len(forms) > 4096:
                    forms.clear()
                form = forms[key] = self._form(*key)
            except TypeError:
                return None
            if form is None:
                return None
            ch, axis, conv, bounds, hour, scale, lo, hi = form
            value = get("value")
            if type(value) is float and 0.0 < value < _INF and scale:
                # (plain_value's reading of a number, here without its calls: most results)
                canonical = value * scale
                if not (canonical > 0.0 and lo <= canonical <= hi):
                    return None
                censor = 0
            else:
                if (read := plain_value(value, conv, bounds)) is None:
                    return None
                canonical, censor = read[0], CENSOR_CODE[read[1]]
            if day is None:
                day = 0.0
            elif (day := plain_day(day)) is None:
                return None
            method = ri = None
            if extra:
                if (extra := plain_extra(item, conv)) is None:
                    return None
                method, ri, _ = extra
            if ch is None:       # read, but not modelled: axis holds the reason
                unused.append(NotUsed(f"measurements[{i}]", axis))
                continue
            y = math.log(canonical)
            if ri is not None:
                y = lab_corrected(model, ch, y, ri, hour, sex)
            if ch in unmoved:    # (result_row's row when nothing moves the result)
                rows.append((axis, ch, y, censor, day, 0.0, 0.0, i, 0.0))
                continue
            row = result_row(model, ctx, patient, ch, y, censor, hour, day, i, shifted, aged,
                             method, cache=adjustments)
            if row[5] != 0.0:
                return None
            rows.append((axis, *row))
        return rows

    def _form(self, name: Any, specimen: Any, unit: Any, collected: Any) -> tuple | None:
        """``(channel, axis, conversion, bounds, hour, scale, low, high)`` of a plain result
        form (``scale``: the conversion's factor, 0 when it has an offset; ``low``, ``high``:
        the plausible bounds, infinite when there are none); ``(None, reason not used,
        ...)`` for an analyte and specimen no channel models; None when the form is not plain
        or is a daily rhythm without its time (a warning)."""
        form = plain_form(name, specimen, unit, collected)
        if form is None:
            return None
        analyte, chosen, conv, bounds, hour = form
        scale = 0.0 if conv.offset else conv.scale
        lo, hi = bounds if bounds is not None else (-_INF, _INF)
        ch = self.model.channel_for(analyte, chosen)
        if ch is None:
            return (None, not_modelled(self.model, analyte, chosen), conv, bounds, hour, scale,
                    lo, hi)
        if hour is None and self.model.channels[ch].diurnal:
            return None
        return ch, self.model.channels[ch].axis, conv, bounds, hour, scale, lo, hi


def _axis_of(row: tuple) -> int:
    return row[0]
