"""Read the ``symptoms`` section of a case."""

from __future__ import annotations

from typing import Any

from neb_bayes import vocab
from neb_bayes.case.collect import Collector, type_name
from neb_bayes.case.model import Symptoms

__all__ = ["SYMPTOM_STATES", "read_symptoms"]

SYMPTOM_STATES = ("present", "absent", "unknown")


def read_symptoms(c: Collector, raw: Any) -> Symptoms:
    """Read ``symptoms``: canonical ids by state; present and absent at once is an error."""
    if raw is None:
        return Symptoms()
    if not isinstance(raw, dict):
        c.error(
            "symptoms",
            f"expected a mapping with present/absent/unknown lists, got {type_name(raw)}",
        )
        return Symptoms()
    c.unknown_keys(raw, SYMPTOM_STATES, "symptoms")
    seen: dict[str, tuple[str, str]] = {}  # symptom id -> (state, path)
    for state in SYMPTOM_STATES:
        for j, name in c.text_list(raw, state, f"symptoms.{state}"):
            path = f"symptoms.{state}[{j}]"
            sid = vocab.lookup_symptom(name)
            if sid is None:
                c.skip(path, f"unknown symptom {name!r}")
                continue
            if sid not in seen:
                seen[sid] = (state, path)
                continue
            first_state, first_path = seen[sid]
            if first_state == state:
                continue
            if {first_state, state} == {"present", "absent"}:
                c.error(path, f"{sid!r} is listed as {state} and as {first_state} ({first_path})")
            else:  # known state wins over unknown
                c.warnings.append(
                    f"{path}: {sid!r} is listed as unknown and as "
                    f"{first_state} ({first_path}); read as {first_state}"
                )
    by_state: dict[str, set[str]] = {s: set() for s in SYMPTOM_STATES}
    for sid, (state, _) in seen.items():
        by_state[state].add(sid)
    return Symptoms(
        present=frozenset(by_state["present"]),
        absent=frozenset(by_state["absent"]),
        unknown=frozenset(by_state["unknown"]),
    )
