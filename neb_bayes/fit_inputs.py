"""What ``neb-bayes priors fit`` reads besides the prior set: the cohort
(:func:`read_cohort`: cases that cannot be read and repeated ids left out, as ``batch``
leaves them out) and the known labels per person (``--labels``), checked against the cohort
and the model before anything is fitted.

A labels file maps case ids to what is known of each person: a condition id, a list of
them (``none``: every axis in a non-condition state), or a mapping ``axis: state(s)``.
Every problem is found before the fit starts and reported at once (:class:`LabelError`):
a file that is not a mapping, an unknown condition, axis or state (the known ones named),
conditions that exclude each other on an axis, and ids that are no case of the cohort (a
mistyped id would otherwise leave its person unlabelled without a word).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neb_bayes.model.compiled import CompiledModel

#: a person's known states: axis -> the states they may be in (axis order)
Label = dict[str, list[str]]

#: the condition id that stands for "every axis in a non-condition state"
NONE = "none"


@dataclass
class Cohort:
    """A cohort's cases as the fit reads them.

    Attributes
    ----------
    cases
        The cases fitted, in input order: the first case of each id.
    skipped
        Each case that cannot be read, as its ``errors.jsonl`` record in ``neb-bayes batch``
        (:func:`~neb_bayes.batch.worker.error_record`: ``source``, ``case_id`` when known,
        every error with its field path, and its column for a CSV row).
    repeated
        Each case left out because an earlier case has its id: ``(source, id, source of
        the case fitted with that id)``.
    """

    cases: list = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    repeated: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def skipped_ids(self) -> set[str]:
        """The ids of the cases that cannot be read, where their file gives one."""
        return {r["case_id"] for r in self.skipped if r["case_id"] is not None}


def read_cohort(inputs: Sequence[str | os.PathLike[str]]) -> Cohort:
    """Every case of ``inputs`` (JSON Lines, case files, directories, wide CSV: what
    ``neb-bayes batch`` reads, in its order), read as ``batch`` reads them.  A case that
    cannot be read is skipped with its errors; an id is unique in a cohort (the case-format
    spec), so of the cases with one id the first is fitted and the others are left out, as
    ``batch`` leaves them out of its results."""
    from neb_bayes.batch.inputs import iter_items, parse_item
    from neb_bayes.batch.worker import error_record, read_parsed

    out = Cohort()
    first: dict[str, str] = {}       # id -> source of the case fitted with it
    for k, item in enumerate(iter_items(list(inputs))):
        case, err = read_parsed(parse_item(item), item)
        if case is None:
            out.skipped.append(error_record(k, item.source, **err))
        elif case.id in first:
            out.repeated.append((item.source, case.id, first[case.id]))
        else:
            first[case.id] = item.source
            out.cases.append(case)
    return out


class LabelError(ValueError):
    """A labels file the fit cannot use; ``problems`` lists every problem found, the
    message names the first :data:`NAMED` of them and how many more there are."""

    NAMED = 10

    def __init__(self, path: str | os.PathLike[str], problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:self.NAMED])
        more = len(self.problems) - self.NAMED
        super().__init__(f"labels file {self.path}: {len(self.problems)} problem(s)\n{shown}"
                         + (f"\n  - and {more} more" if more > 0 else ""))


def label_id(key: Any) -> str | None:
    """A labels file's key as the case reader gives a case's id (text or an integer,
    surrounding spaces removed), or ``None`` where it cannot be an id."""
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        return None
    return str(key).strip() or None


def read_labels(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A labels file (YAML or JSON, read as case files are: a key twice is an error) as
    case id -> label as written, the ids as :func:`label_id` gives them.

    Raises
    ------
    LabelError
        Naming the file for unreadable or malformed text, a file that is not a mapping, or
        keys that are no case id (or the same id twice)."""
    from neb_bayes.case.collect import type_name
    from neb_bayes.case.loader import load_file
    from neb_bayes.case.model import CaseError

    try:
        raw = load_file(path)
    except CaseError as exc:
        raise LabelError(path, [e.message for e in exc.errors]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LabelError(path, [f"expected a mapping of case id -> label, got {type_name(raw)}"])
    out: dict[str, Any] = {}
    problems = []
    for key, value in raw.items():
        cid = label_id(key)
        if cid is None:
            problems.append(f"key {key!r}: expected a case id (text or an integer), "
                            f"got {type_name(key)}")
        elif cid in out:
            problems.append(f"{cid}: labelled twice (keys {cid!r} as text and as a number?)")
        else:
            out[cid] = value
    if problems:
        raise LabelError(path, problems)
    return out


def labels_for(model: CompiledModel, cases, path: str | os.PathLike[str], *,
               skipped_ids: Collection[str] = ()) -> list[Label | None]:
    """Known states per case (in the cohort's order; ``None``: unlabelled) from a labels
    file (:func:`read_labels`).

    A list of conditions means every one of them: on each axis the states consistent with
    all (``[prediabetes, insulin_resistance]``: metabolic ``prediabetes_ir``).  Ids of
    ``skipped_ids`` (cases left out for errors in their file, already reported) are not
    applied; any other id that is no case of ``cases`` is an error.

    Raises
    ------
    LabelError
        Every problem of the file at once, each naming the case id: an unknown condition,
        axis or state (with the known ones), conditions that exclude each other, a label
        of the wrong type, ids not in the cohort."""
    raw = read_labels(path)
    problems: list[str] = []
    parsed: dict[str, Label | None] = {}
    for cid, value in raw.items():
        label, found = parse_label(model, value)
        problems += [f"{cid}: {p}" for p in found]
        parsed[cid] = label
    problems += _unknown_ids(raw, {c.id for c in cases}, set(skipped_ids))
    if problems:
        raise LabelError(path, problems)
    return [parsed.get(c.id) for c in cases]


def parse_label(model: CompiledModel, value: Any) -> tuple[Label | None, list[str]]:
    """One person's label as ``(axis -> allowed states, problems)``: a condition id or a
    list of them (the states consistent with all), or a mapping ``axis: state(s)``.
    ``None`` (no label) for a null value."""
    from neb_bayes.case.collect import type_name

    if value is None:
        return None, []
    if isinstance(value, dict):
        return _axis_label(model, value)
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return _condition_label(model, value)
    return None, [f"expected a condition id, a list of them, or a mapping axis: state(s); "
                  f"got {type_name(value)}"]


def _axis_label(model: CompiledModel, value: dict) -> tuple[Label | None, list[str]]:
    """``{axis: state or [states]}``, every name checked against the model."""
    from neb_bayes.case.collect import type_name

    out: Label = {}
    problems = []
    for ax_name, states in value.items():
        if ax_name not in model.axis_names:
            problems.append(f"unknown axis {ax_name!r}; the axes are "
                            f"{', '.join(model.axis_names)}")
            continue
        ax = model.axes[model.axis_index(ax_name)]
        states = [states] if isinstance(states, str) else states
        if not (isinstance(states, list) and states and all(isinstance(s, str) for s in states)):
            problems.append(f"{ax_name}: expected a state or a list of states, got "
                            f"{type_name(states)}")
            continue
        unknown = [s for s in states if s not in ax.states]
        if unknown:
            problems.append(f"{ax_name}: unknown state(s) {', '.join(map(repr, unknown))}; "
                            f"its states are {', '.join(ax.states)}")
            continue
        out[ax_name] = [s for s in ax.states if s in states]
    return (out or None), problems


def _condition_label(model: CompiledModel, conditions: list[str]) -> tuple[Label | None,
                                                                             list[str]]:
    """Condition ids (and ``none``): per axis, the states consistent with every one."""
    unknown = [c for c in conditions if c != NONE and c not in model.conditions]
    if unknown:
        return None, [f"unknown condition(s) {', '.join(map(repr, unknown))}; the conditions "
                      f"are {', '.join((*model.conditions, NONE))}"]
    allowed: dict[int, np.ndarray] = {}
    for cond in dict.fromkeys(conditions):
        for ai, mask in _condition_masks(model, cond):
            allowed[ai] = allowed.get(ai, mask) & mask
    empty = [model.axes[ai].name for ai, mask in allowed.items() if not mask.any()]
    if empty:
        return None, [f"conditions {', '.join(conditions)} exclude each other: no "
                      f"{'/'.join(empty)} state fits them all"]
    return {model.axes[ai].name: [s for s, ok in zip(model.axes[ai].states, mask, strict=True)
                                  if ok]
            for ai, mask in sorted(allowed.items())}, []


def _condition_masks(model: CompiledModel, cond: str) -> list[tuple[int, np.ndarray]]:
    """The axes a condition id restricts and each one's allowed states (boolean masks);
    ``none``: every axis with a condition state, in its non-condition states."""
    if cond == NONE:
        return [(ai, ax.healthy) for ai, ax in enumerate(model.axes) if not ax.healthy.all()]
    k = model.conditions.index(cond)
    return [(int(model.cond_axis[k]), model.cond_states[k])]


def _unknown_ids(raw: dict[str, Any], ids: set[str], skipped: set[str]) -> list[str]:
    """A problem for each labelled id that is no case of the cohort (nor a skipped one),
    with the cohort's id that differs only in letter case, if any."""
    folded = {cid.casefold(): cid for cid in ids}
    out = []
    for cid in raw:
        if cid in ids or cid in skipped:
            continue
        near = folded.get(cid.casefold())
        out.append(f"{cid}: no case of the cohort has this id (ids match exactly"
                   + (f"; did you mean {near}?)" if near else ")"))
    return out
