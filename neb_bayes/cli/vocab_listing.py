"""Plain-text listings behind ``neb-bayes vocab``."""

from __future__ import annotations

from neb_bayes.model.compiled import load_model


def list_vocab(what: str) -> str:
    model = load_model()
    raw = model.spec.raw
    lines: list[str] = []
    if what == "conditions":
        for cond, where in raw["conditions"].items():
            (axis, states), = where.items()
            lines.append(f"{cond:34s} axis={axis:10s} states={','.join(states)}")
        lines.append(f"{'none':34s} no listed condition on any axis")
    elif what == "symptoms":
        causes = raw["symptoms"].get("causes", {})
        for sym in model.symptoms:
            ev = sorted(c for c, t in causes.items() if sym in t)
            lines.append(f"{sym:28s} evidence for: {', '.join(ev) or '(background only)'}")
    elif what == "analytes":
        from neb_bayes.vocab import analytes

        modelled = model.modelled_analytes
        for a in analytes().values():
            units = ", ".join(a.units)
            flag = "" if a.id in modelled else "  [read, not evidence in this prior set]"
            lines.append(f"{a.id:24s} {a.name:38s} canonical={a.canonical_unit:10s} "
                         f"units: {units}{flag}")
    return "\n".join(lines)
