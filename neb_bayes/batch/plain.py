"""Plain cases read straight into the batch engine's rows, without per-result objects.

Most cases of a laboratory archive are plain: a patient section, results of known analytes
in known units with clock times, symptoms named by id.  For these,
:func:`~neb_bayes.case.read.read_case` and :func:`~neb_bayes.evidence.build_evidence` spend
most of a batch's time making objects (a ``Measurement`` per result, ``Block`` arrays per
axis) that the engine only flattens again.  :class:`PlainReader` reads such a case into the
rows the engine reads (:class:`~neb_bayes.inference.vectorised.Flat`) and an
:class:`~neb_bayes.evidence.Evidence` without blocks (covariates, symptoms, context, the
patient's items not used and warnings, results of analytes the prior set does not model;
results with a method, a note or the lab's reference interval; a daily rhythm without its
collection time, with build_evidence's warning; collection date-times written
``YYYY-MM-DD[T ]HH:MM[:SS][offset]``, the days between them as ``read_case`` counts them),
through the same functions for each part:
:func:`~neb_bayes.case.patient.read_patient` and :func:`~neb_bayes.context.read_context`
for the patient (once per distinct patient section), the parts of
:func:`~neb_bayes.case.measurements.plain_result` for a result, and
:func:`~neb_bayes.evidence.result_row` for the result's row.

A case with anything else the readers would report (an error, an unknown field or symptom,
a result that may point to a context the case does not give, as an hCG may to a pregnancy:
:data:`~neb_bayes.evidence.CONTEXT_SIGNS`,
a symptom listed twice, a zero or implausible value, a date-time other than
``YYYY-MM-DD[T ]HH:MM[:SS][offset]``, an LMP date beside dated results) or whose context
names a symptom is declined
(:meth:`PlainReader.add` returns ``False``) and goes through ``read_case`` and
``build_evidence``, which give every message with its field path.  The rows of a case it
accepts are those of ``build_evidence``, in the same order, so its probabilities are the
same to the last bit (tests hold both readers equal).

A chunk's JSON lines and wide-CSV rows are first read all at once, without a Python object
per result (:meth:`PlainReader.add_texts`: a compiled pass over the texts,
:mod:`neb_bayes.batch.plain_json`; :meth:`PlainReader.add_rows`:
:func:`~neb_bayes.batch.csv_cases.row_parts`), as columns: each distinct result form,
symptom name and patient section resolved once, the values checked and converted as arrays
(the checks of ``plain_value`` and ``plain_day``).  What they do not take is read by
:meth:`PlainReader.add` one case at a time (tests hold the two equal bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

import msgspec
import numpy as np

from neb_bayes import vocab
from neb_bayes.batch.csv_cases import row_parts
from neb_bayes.batch.plain_json import scan_chunk
from neb_bayes.case.collect import Collector
from neb_bayes.case.measurements import (
    plain_dated,
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
from neb_bayes.context import physiological_symptoms, physiology_not_used, read_context
from neb_bayes.evidence import (
    CENSOR_CODE,
    SIGN_ANALYTES,
    Evidence,
    channel_age_effects,
    context_latent_shifts,
    context_symptom_scale,
    lab_corrected,
    log_value,
    not_modelled,
    result_row,
    untimed_rhythm_warning,
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
_decode = msgspec.json.Decoder().decode


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
                 "not_used", "shifted", "aged", "unmoved", "adjustments", "physiology",
                 "lmp_dated")

    def __init__(self, model: CompiledModel, patient, ctx, reader: Collector) -> None:
        self.patient, self.ctx = patient, ctx
        #: an LMP written as a date: its cycle day counts to the case's first dated sample
        #: (read_case), so a case with dated results is the full reader's
        self.lmp_dated = patient.menstrual is not None and patient.menstrual.lmp_date is not None
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
        #: the channels whose results nothing moves (no daily rhythm, context or age effect;
        #: read at once, their rows need no result_row)
        self.unmoved = frozenset(
            c for c, channel in enumerate(model.channels)
            if not channel.diurnal and c not in self.shifted and c not in self.aged)
        #: a result's context, age and rhythm adjustments by (channel, hour, method)
        self.adjustments: dict[tuple, tuple] = {}
        #: the model symptoms that are physiology for this patient, not evidence, each with
        #: its not-used entries when listed present and when listed absent
        #: (each entry made once per patient: the same frozen entry for all their cases)
        stages = physiological_symptoms(ctx.flags)
        self.physiology = {i: (physiology_not_used("present", s, stages[s]),
                               physiology_not_used("absent", s, stages[s]))
                           for i, s in enumerate(model.symptoms) if s in stages}

    def without_physiology(self, present: list[int], absent: list[int]
                           ) -> tuple[list[int], list[int], tuple[NotUsed, ...]]:
        """``present`` and ``absent`` less the symptoms that are physiology for this patient,
        and those as build_evidence lists them as not used (present first, in order)."""
        phys = self.physiology
        notes = tuple(phys[i][k] for k, ids in enumerate((present, absent))
                      for i in ids if i in phys)
        if not notes:
            return present, absent, ()
        return ([i for i in present if i not in phys], [i for i in absent if i not in phys],
                notes)


@lru_cache(maxsize=16)
def _people_of(model: CompiledModel) -> dict[tuple, _Person | None]:
    """The patients read for a model, by their fields as written (shared by its chunks)."""
    return {}


@lru_cache(maxsize=16)
def _people_text_of(model: CompiledModel) -> dict[bytes | None, _Person | None]:
    """The patients read for a model, by their sections' JSON text (shared by its chunks)."""
    return {}


@lru_cache(maxsize=16)
def _forms_of(model: CompiledModel) -> dict[tuple, tuple | None]:
    """Result forms read for a model (:meth:`PlainReader._form`), by their fields as written."""
    return {}


@dataclass
class _Columns:
    """A chunk of cases as columns, whatever they were read from (:meth:`PlainReader.add_texts`,
    :meth:`PlainReader.add_rows`).

    Attributes
    ----------
    ok
        ``(n,)`` the cases whose every part was read into these columns (the others are
        not read here).
    first
        ``(n + 1,)``: case ``i``'s results are ``first[i]:first[i + 1]``, as written.
    form, form_keys
        Each result's form: an index into ``form_keys``, each ``(analyte, specimen, unit,
        collected)`` as written (None: not plain).
    value, text_value, value_text, day, has_day
        Each result's value (a number; 0 where ``text_value``, ``value_text(r)`` giving the
        text), day (0 when not given) and whether it gives one.
    sym_first, sym_state, sym_name, names
        Case ``i``'s symptoms as listed are ``sym_first[i]:sym_first[i + 1]``, each its
        state (index in ``SYMPTOM_STATES``) and name (``names[sym_name[k]]``).
    case_id, person
        Case ``c``'s id as written and its patient (:class:`_Person`; None: not plain).
    """

    ok: np.ndarray
    first: np.ndarray
    form: np.ndarray
    form_keys: list[tuple | None]
    value: np.ndarray
    text_value: np.ndarray
    value_text: Callable[[int], str]
    day: np.ndarray
    has_day: np.ndarray
    sym_first: np.ndarray
    sym_state: np.ndarray
    sym_name: np.ndarray
    names: list[str]
    case_id: Callable[[int], str]
    person: Callable[[int], _Person | None]


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
        #: the rows so far, in order: lists of row tuples (:meth:`add`, :meth:`_results`)
        #: and ``(rows, 9)`` arrays (:meth:`add_texts`)
        self._parts: list[list[tuple] | np.ndarray] = [[]]
        self._people = _people_of(model)
        self._people_text = _people_text_of(model)
        self._symptom_index = {s: i for i, s in enumerate(model.symptoms)}
        self._forms = _forms_of(model)
        #: each channel's floor (log; -inf: none), for the rows read as columns
        self._log_floor = np.array([c.log_floor for c in model.channels])

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
        warned: list[str] = []
        rows = self._results(raw, person, unused, warned)
        if rows is None:
            return False
        present, absent = symptoms
        if not raw and not present and not absent:
            return False      # nothing usable: the case reader's error
        notes: tuple[NotUsed, ...] = ()
        if person.physiology:
            present, absent, notes = person.without_physiology(present, absent)
        rows.sort(key=_axis_of)       # stable: by axis, then as written (build_evidence's order)
        ev = Evidence(
            case_id=case_id.strip(), covariates=person.covariates, blocks=(),
            present=np.array(present, dtype=np.int64), absent=np.array(absent, dtype=np.int64),
            not_used=person.not_used + tuple(unused) + notes,
            warnings=person.warnings + tuple(warned),
            lat_shift=person.lat_shift, context=person.ctx, cause_scale=person.cause_scale)
        # kept only now that nothing can fail
        if type(self._parts[-1]) is not list:
            self._parts.append([])
        self._parts[-1].extend(rows)
        self.n_used.append(len(rows))
        self.axes.append(frozenset(r[0] for r in rows))
        self.evidences.append(ev)
        return True

    def flat(self) -> Flat:
        """Every accepted case's results as the engine's rows (by case, then axis)."""
        # row: axis, channel, y, censor, day, rhythm offset, rhythm var, index, extra
        blocks = [p if type(p) is not list else np.fromiter(chain.from_iterable(p), float,
                                                            9 * len(p)).reshape(-1, 9)
                  for p in self._parts]
        cols = (np.concatenate(blocks) if len(blocks) > 1 else blocks[0]).T
        return Flat(case=np.repeat(np.arange(len(self.n_used)), self.n_used),
                    axis=cols[0].astype(np.int64), channel=cols[1].astype(np.int64),
                    y=cols[2].copy(), censor=cols[3].astype(np.int8), day=cols[4].copy(),
                    diurnal=cols[5].copy(), diurnal_var=cols[6].copy(), extra=cols[8].copy())

    def add_texts(self, texts: list[str] | list[bytes]) -> np.ndarray:
        """Read many cases from their JSON texts (strings or UTF-8 bytes) at once; returns
        which were read.

        The texts are read in one compiled pass (:mod:`neb_bayes.batch.plain_json`), then as
        columns (:meth:`_add_columns`).  The cases read are kept in order as :meth:`add`
        keeps them, with the same rows and evidence.  A case the pass or this reader does
        not take (``False``) is left for :meth:`add` or the full reader, which read it from
        its parsed data.
        """
        if not texts:
            return np.zeros(0, bool)
        sc = scan_chunk(texts)
        spans, text = sc.spans.tolist(), sc.text     # (Python ints: no numpy scalar per case)

        def case_id(c: int) -> str:
            s = spans[c]
            return text[s[0]:s[1]].decode()

        def person(c: int) -> _Person | None:
            s = spans[c]
            return self._person_text(None if s[2] < 0 else text[s[2]:s[3]])

        return self._add_columns(_Columns(
            ok=sc.ok, first=sc.first, form=sc.form,
            form_keys=[sc.form_text(f) for f in range(len(sc.forms))],
            value=sc.values, text_value=sc.text_value,
            value_text=sc.value_text, day=sc.days, has_day=sc.has_day,
            sym_first=sc.sym_first, sym_state=sc.sym_state, sym_name=sc.sym_name,
            names=[sc.name_text(k) for k in range(len(sc.names))],
            case_id=case_id, person=person))

    def add_rows(self, rows: list[tuple]) -> np.ndarray:
        """Read many wide-CSV rows at once (each ``(header, cells)``, as a batch item holds
        it); returns which were read.

        Each row's cells are sorted into the parts this reader reads
        (:func:`~neb_bayes.batch.csv_cases.row_parts`: no case-file mapping, no object per
        result), then read as columns (:meth:`_add_columns`), with the same rows and
        evidence as :func:`~neb_bayes.batch.csv_cases.row_to_case` and :meth:`add` give.
        A row not taken (``False``) is left for them.
        """
        return self._add_parts([row_parts(header, cells) for header, cells in rows])

    def add_long(self, items: list[tuple]) -> np.ndarray:
        """Read many cases of a long CSV at once (each ``(header, rows)``, as a batch item
        holds it, :func:`~neb_bayes.batch.long_csv.long_parts`), as :meth:`add_rows` reads
        wide rows; returns which were read."""
        from neb_bayes.batch.long_csv import long_parts

        return self._add_parts([long_parts(header, rows) for header, rows in items])

    def _add_parts(self, parts: list) -> np.ndarray:
        """The CSV readers' cases (:class:`~neb_bayes.batch.csv_cases.RowParts`, None: not
        plain) as columns, read by :meth:`_add_columns`."""
        forms: dict[tuple, int] = {}
        names: dict[str, int] = {}
        form, value, day, has_day, texts, first = [], [], [], [], {}, [0]
        sym_state, sym_name, sym_first = [], [], [0]
        states = {state: i for i, state in enumerate(SYMPTOM_STATES)}
        for p in parts:
            if p is not None:
                for key, cell, d in zip(p.forms, p.values, p.days, strict=True):
                    form.append(forms.setdefault(key, len(forms)))
                    if type(cell) is str:
                        texts[len(value)] = cell
                        value.append(0.0)
                    else:
                        value.append(cell)
                    day.append(d)
                has_day.extend(p.has_days or [False] * len(p.forms))
                for state, name in p.symptoms:
                    sym_state.append(states[state])
                    sym_name.append(names.setdefault(name, len(names)))
            first.append(len(value))
            sym_first.append(len(sym_state))
        text_value = np.zeros(len(value), bool)
        text_value[list(texts)] = True
        return self._add_columns(_Columns(
            ok=np.array([p is not None and p.case_id is not None for p in parts], bool),
            first=np.array(first, np.int64), form=np.array(form, np.int64),
            form_keys=list(forms), value=np.array(value, float), text_value=text_value,
            value_text=texts.__getitem__, day=np.array(day, float),
            has_day=np.array(has_day, bool),
            sym_first=np.array(sym_first, np.int64), sym_state=np.array(sym_state, np.int64),
            sym_name=np.array(sym_name, np.int64), names=list(names),
            case_id=lambda c: parts[c].case_id, person=lambda c: self._person(parts[c].patient)))

    def _add_columns(self, cols: _Columns) -> np.ndarray:
        """Read the cases of a chunk given as columns (:class:`_Columns`): each distinct
        result form and symptom name resolved once, the values, days and symptom lists
        checked and converted as arrays, and the adjustments of the results that context,
        age or a daily rhythm move looked up once per patient and form; returns which cases
        were read."""
        n = cols.ok.size
        taken = np.zeros(n, bool)
        first, fid = cols.first, cols.form
        # a date-time written YYYY-MM-DDTHH:MM[:SS]: its form is the clock time's, its date
        # (proleptic ordinal, -1: none) gives the day offsets below
        keys, when_f = list(cols.form_keys), np.full(len(cols.form_keys) + 1, -1, np.int64)
        for f, key in enumerate(keys):
            if key is not None and type(key[3]) is str and (
                    dated := plain_dated(key[3])) is not None:
                keys[f], when_f[f] = (*key[:3], dated[0]), dated[1]
        forms = [None if key is None else self._cached_form(key) for key in keys]
        known = np.array([f is not None for f in forms] + [False])
        modelled = [f is not None and f[0] is not None for f in forms]
        ch = np.array([f[0] if m else -1 for f, m in zip(forms, modelled, strict=True)] + [-1])
        axis = np.array([f[1] if m else -1 for f, m in zip(forms, modelled, strict=True)] + [-1])
        scale, lo, hi = (np.array([f[k] if f is not None else 0.0 for f in forms] + [0.0])
                         for k in (5, 6, 7))
        # values: numbers as plain_value reads them (a value written as text: plain_value)
        value, text_value = cols.value, cols.text_value
        with np.errstate(over="ignore", invalid="ignore"):
            canonical = value * scale[fid]
            good = known[fid] & (text_value | (
                (value > 0.0) & (value < _INF) & (scale[fid] > 0.0) & (canonical > 0.0)
                & (lo[fid] <= canonical) & (canonical <= hi[fid])))
        censor = np.zeros(fid.size, np.int64)
        # values written as text (mostly censored ones at an assay's limit: a chunk has few
        # distinct ones), each distinct (text, form) read once
        read_as: dict[tuple[str, int], tuple | None] = {}
        for r in np.flatnonzero(text_value & good).tolist():
            key = (cols.value_text(r), int(fid[r]))
            try:
                read = read_as[key]
            except KeyError:
                f = forms[key[1]]
                read = read_as[key] = plain_value(key[0], f[2], f[3])
            if read is None:
                good[r] = False
            else:
                canonical[r], censor[r] = read[0], CENSOR_CODE[read[1]]
        day, has_date = _dated_days(first, cols.day, when_f[fid], cols.has_day)
        good &= (day >= 0.0) & (day < _INF)
        bad = np.r_[0, np.cumsum(~good)]
        bad = bad[first[1:]] - bad[first[:-1]]
        # symptoms: each distinct name's id as the case reader reads it; a case's present
        # and absent symptoms in build_evidence's order (by id), as _symptoms gives them
        name_sid = [_symptom(name) for name in cols.names]
        rank = {sid: r for r, sid in enumerate(sorted({x for x in name_sid if x is not None}))}
        name_rank = np.array([-1 if x is None else rank[x] for x in name_sid] + [-1])
        name_model = np.array([self._symptom_index.get(x, -1) for x in name_sid] + [-1])
        entry_case = np.repeat(np.arange(n), np.diff(cols.sym_first))
        order = np.lexsort((name_rank[cols.sym_name], entry_case))
        ec, name, state = entry_case[order], cols.sym_name[order], cols.sym_state[order]
        er = name_rank[name]
        sym_bad = np.zeros(n, bool)
        sym_bad[ec[er < 0]] = True                  # a name that is no symptom
        same = (ec[1:] == ec[:-1]) & (er[1:] == er[:-1])
        sym_bad[ec[1:][same & (state[1:] != state[:-1])]] = True     # in two states
        once = np.ones(ec.size, bool)
        once[1:] = ~same
        ec, state, em = ec[once], state[once], name_model[name[once]]
        sym_bad[ec[(state != 2) & (em < 0)]] = True  # not in the model's symptom table
        present, absent = state == 0, state == 1
        p_model, a_model = em[present], em[absent]
        p_at = np.searchsorted(ec[present], np.arange(n + 1))
        a_at = np.searchsorted(ec[absent], np.arange(n + 1))
        # each case's patient and id
        people: dict[int, int] = {}         # id(person) -> its row in ``persons``
        persons: list[_Person] = []
        cases: list[tuple] = []
        pid = np.zeros(n, np.int64)
        # (Python ints in the loop: no numpy scalar per case)
        p_list, a_list, f_list = p_at.tolist(), a_at.tolist(), first.tolist()
        for c in np.flatnonzero(cols.ok & (bad == 0) & ~sym_bad).tolist():
            person = cols.person(c)
            if person is None or (person.lmp_dated and has_date[c]):
                continue
            case_id = cols.case_id(c).strip()
            p0, p1, a0, a1 = p_list[c], p_list[c + 1], a_list[c], a_list[c + 1]
            if not case_id or (f_list[c] == f_list[c + 1] and p0 == p1 and a0 == a1):
                continue
            k = people.setdefault(id(person), len(persons))
            if k == len(persons):
                persons.append(person)
            pid[c] = k
            cases.append((c, person, case_id, p_model[p0:p1], a_model[a0:a1]))
            taken[c] = True
        # the results that context, age or a daily rhythm move: their adjustments, once per
        # patient and form (result_row's, with the patient's cache)
        case_of = np.repeat(np.arange(n), np.diff(first))
        ch_r = ch[fid]
        in_case = taken[case_of] & (ch_r >= 0)
        shift = np.zeros(fid.size)
        extra = np.zeros((3, fid.size))    # rhythm offset, rhythm variance, extra variance
        if persons:
            unmoved = np.zeros((len(persons), len(self.model.channels) + 1), bool)
            for k, person in enumerate(persons):
                unmoved[k, list(person.unmoved)] = True
            moved = np.flatnonzero(in_case & ~unmoved[pid[case_of], ch_r])
            pairs, where = np.unique(pid[case_of[moved]] * len(forms) + fid[moved],
                                     return_inverse=True)
            adj = np.empty((4, pairs.size))
            for k, pair in enumerate(pairs.tolist()):
                person, f = persons[pair // len(forms)], forms[pair % len(forms)]
                if len(person.adjustments) > MAX_ADJUSTMENTS:
                    person.adjustments.clear()
                row = result_row(self.model, person.ctx, person.patient, f[0], 0.0, 0, f[4],
                                 0.0, 0, person.shifted, person.aged, None,
                                 cache=person.adjustments, floor=False)
                adj[:, k] = row[1], row[4], row[5], row[7]     # -shift, offset, variances
            shift[moved] = adj[0, where]
            extra[:, moved] = adj[1:, where]
        # the evidence of each case read (results no channel models: listed as not used; a
        # daily rhythm without its time: build_evidence's warning)
        unused_r = np.r_[0, np.cumsum(taken[case_of] & (ch_r < 0))].tolist()
        warns = np.array([f is not None and f[8] is not None for f in forms] + [False])
        warn_r = np.r_[0, np.cumsum(taken[case_of] & warns[fid])].tolist()
        for c, person, case_id, present, absent in cases:
            r0, r1 = f_list[c], f_list[c + 1]
            unused = () if unused_r[r1] == unused_r[r0] else tuple(
                NotUsed(f"measurements[{r - r0}]", forms[fid[r]][1])
                for r in range(r0, r1) if ch_r[r] < 0)
            warned = () if warn_r[r1] == warn_r[r0] else tuple(
                f"measurements[{r - r0}]: {forms[fid[r]][8]}"
                for r in range(r0, r1) if warns[fid[r]])
            if person.physiology:        # as add() reads them
                kept_p, kept_a, notes = person.without_physiology(present.tolist(),
                                                                  absent.tolist())
                if notes:
                    present, absent = np.array(kept_p, np.int64), np.array(kept_a, np.int64)
                    unused += notes
            self.evidences.append(_evidence(
                case_id=case_id, covariates=person.covariates, present=present, absent=absent,
                not_used=person.not_used + unused, warnings=person.warnings + warned,
                lat_shift=person.lat_shift, context=person.ctx, cause_scale=person.cause_scale))
        # the rows: by case, then axis (stable), as add() orders them; y less the shifts
        rows = np.flatnonzero(in_case)
        rows = rows[np.lexsort((axis[fid[rows]], case_of[rows]))]
        case_r = case_of[rows]
        y = np.log(canonical[rows])             # (log_value's, value by value)
        block = np.empty((rows.size, 9))
        block[:, 0] = axis[fid[rows]]
        block[:, 1] = ch_r[rows]
        block[:, 2] = y + shift[rows]     # (log(c) + -shift: log(c) - shift, bit for bit)
        block[:, 3] = censor[rows]
        # a result below its channel's floor read at it (evidence.floored's)
        floor = self._log_floor[block[:, 1].astype(np.int64)]
        low = (block[:, 2] < floor) & (block[:, 3] <= 0)
        if low.any():
            block[low, 2] = floor[low]
            block[low, 3] = 0
        block[:, 4] = day[rows]
        block[:, 5:7] = extra[:2, rows].T
        block[:, 7] = rows - first[case_r]
        block[:, 8] = extra[2, rows]
        self._parts.append(block)
        self.n_used.extend(np.bincount(case_r, minlength=n)[taken].tolist())
        bits = np.zeros(n, np.int64)
        np.bitwise_or.at(bits, case_r, 1 << axis[fid[rows]])
        self.axes.extend(_axes_of(b) for b in bits[taken].tolist())
        return taken

    # -- the parts of a case --------------------------------------------------------------
    def _person_text(self, text: bytes | None) -> _Person | None:
        """:meth:`_person` of a patient section given as JSON text (None: no section),
        cached by the text (a text msgspec cannot parse: None, the usual path decides)."""
        try:
            return self._people_text[text]
        except KeyError:
            pass
        try:
            person = self._person(None if text is None else _decode(text))
        except msgspec.DecodeError:
            person = None
        if len(self._people_text) > MAX_PEOPLE:
            self._people_text.clear()
        self._people_text[text] = person
        return person

    def _cached_form(self, key: tuple) -> tuple | None:
        """:meth:`_form` of ``(analyte, specimen, unit, collected)``, kept per model."""
        forms = self._forms
        try:
            return forms[key]
        except KeyError:
            if len(forms) > 4096:
                forms.clear()
            form = forms[key] = self._form(*key)
            return form

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

    def _results(self, raw: Any, person: _Person, unused: list[NotUsed],
                 warned: list[str]) -> list[tuple] | None:
        """Each result's row with its axis first, as written; None if one is not plain.

        :func:`~neb_bayes.case.measurements.plain_result` in a loop, with each form's
        channel looked up once; a result no channel models is added to ``unused`` and a
        daily rhythm without its time's warning to ``warned``, as build_evidence lists
        them."""
        if raw is None:
            return []
        if type(raw) is not list:
            return None
        model, forms = self.model, self._forms
        ctx, patient, shifted, aged = person.ctx, person.patient, person.shifted, person.aged
        adjustments, sex = person.adjustments, person.covariates.sex
        if len(adjustments) > MAX_ADJUSTMENTS:
            adjustments.clear()
        rows = []
        # per result: its date (proleptic ordinal, -1: none), whether it gives a day, its row
        when_r, has_day, row_of = [-1] * len(raw), [False] * len(raw), [-1] * len(raw)
        for i, item in enumerate(raw):
            if type(item) is not dict:
                return None
            get = item.get
            specimen, collected, day = get("specimen"), get("collected"), get("day")
            n = 3 + (specimen is not None) + (collected is not None) + (day is not None)
            extra = len(item) != n       # a method, note or reference interval
            if extra and len(item) != n + plain_extra_count(get):
                return None
            has_day[i] = day is not None
            if type(collected) is str and (on := plain_dated(collected)) is not None:
                collected, when_r[i] = on
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
            ch, axis, conv, bounds, hour = form[:5]
            read = plain_value(get("value"), conv, bounds)
            day = plain_day(day)
            if read is None or day is None:
                return None
            method = ri = None
            if extra:
                if (extra := plain_extra(item, conv)) is None:
                    return None
                method, ri, _ = extra
            if ch is None:       # read, but not modelled: axis holds the reason
                unused.append(NotUsed(f"measurements[{i}]", axis))
                continue
            y = log_value(read[0])
            if ri is not None:
                y = lab_corrected(model, ch, y, ri, hour, sex)
            row = result_row(model, ctx, patient, ch, y, CENSOR_CODE[read[1]], hour, day, i,
                             shifted, aged, method, cache=adjustments)
            if form[8] is not None:
                warned.append(f"measurements[{i}]: {form[8]}")
            row_of[i] = len(rows)
            rows.append((axis, *row))
        if max(when_r, default=-1) >= 0:
            if person.lmp_dated:
                return None
            # the days as the columnar pass (and read_case) count them from the dates
            days, _ = _dated_days(np.array([0, len(raw)]),
                                  np.array([rows[k][4] if k >= 0 else 0.0 for k in row_of]),
                                  np.array(when_r), np.array(has_day))
            for k, d in zip(row_of, days.tolist(), strict=True):
                if k >= 0:
                    rows[k] = (*rows[k][:4], d, *rows[k][5:])
        return rows

    def _form(self, name: Any, specimen: Any, unit: Any, collected: Any) -> tuple | None:
        """``(channel, axis, conversion, bounds, hour, scale, low, high, warning)`` of a plain
        result form (``scale``: the conversion's factor, 0 when it has an offset; ``low``,
        ``high``: the plausible bounds, infinite when there are none; ``warning``: a daily
        rhythm without its time, build_evidence's warning, else None); ``(None, reason not
        used, ...)`` for an analyte and specimen no channel models; None when the form is
        not plain."""
        form = plain_form(name, specimen, unit, collected)
        if form is None:
            return None
        analyte, chosen, conv, bounds, hour = form
        if analyte in SIGN_ANALYTES:    # (its warnings are build_evidence's: the full reader's)
            return None
        scale = 0.0 if conv.offset else conv.scale
        lo, hi = bounds if bounds is not None else (-_INF, _INF)
        ch = self.model.channel_for(analyte, chosen)
        if ch is None:
            return (None, not_modelled(self.model, analyte, chosen), conv, bounds, hour, scale,
                    lo, hi, None)
        warning = (untimed_rhythm_warning(analyte)
                   if hour is None and self.model.channels[ch].diurnal else None)
        return ch, self.model.channels[ch].axis, conv, bounds, hour, scale, lo, hi, warning


def _dated_days(first: np.ndarray, day: np.ndarray, when: np.ndarray,
                has_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each result's day and which cases have a dated result, from the cases' results
    ``first`` (as :class:`_Columns`), the days as written, each result's date (``when``:
    proleptic ordinal, -1 none) and whether it gives a day: where a case's results dated
    without a day hold two or more dates, each one's day counts from the first
    (``read_case``'s :func:`~neb_bayes.case.measurements._days_from_dates`)."""
    n = first.size - 1
    dated = when >= 0
    has_date = np.zeros(n, bool)
    if not dated.any():
        return day, has_date
    case_r = np.repeat(np.arange(n), np.diff(first))
    has_date[case_r[dated]] = True
    free = np.flatnonzero(dated & ~has_day)
    c_f, w_f = case_r[free], when[free]
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lo, c_f, w_f)
    np.maximum.at(hi, c_f, w_f)
    spread = hi[c_f] > lo[c_f]
    day = day.copy()
    day[free[spread]] = (w_f - lo[c_f])[spread].astype(float)
    return day, has_date


def _evidence(*, case_id: str, covariates: Covariates, present: np.ndarray, absent: np.ndarray,
              not_used: tuple, warnings: tuple, lat_shift: dict, context: Any,
              cause_scale: np.ndarray | None) -> Evidence:
    """The :class:`~neb_bayes.evidence.Evidence` of a plain case (no blocks, no adjustments),
    made without the frozen dataclass' checked assignment of each field (~1.4 of ~2 us per
    case of a chunk; a test holds it equal to ``Evidence(...)`` and its fields complete)."""
    ev = object.__new__(Evidence)
    ev.__dict__.update(case_id=case_id, covariates=covariates, blocks=(), present=present,
                       absent=absent, not_used=not_used, warnings=warnings, adjustments=(),
                       lat_shift=lat_shift, context=context, cause_scale=cause_scale)
    return ev


def _axis_of(row: tuple) -> int:
    return row[0]


@lru_cache(maxsize=1024)
def _axes_of(bits: int) -> frozenset[int]:
    """The axes whose bits are set (cached: one object per pattern)."""
    return frozenset(i for i in range(bits.bit_length()) if bits >> i & 1)
