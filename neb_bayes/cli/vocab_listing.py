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
    elif what == "context":
        from neb_bayes.context import flag_table

        lines.append("Context flags (recognised from medications, context text and patient fields)")
        lines.append("and the effects the prior set gives them:")
        for info in flag_table().values():
            terms = ", ".join(info.terms[:8]) + (", ..." if len(info.terms) > 8 else "")
            lines.append(f"\n{info.flag}  [{info.kind}] {info.label}")
            if terms:
                lines.append(f"  recognised from: {terms}")
            for row in raw.get("context_effects", []):
                flags = row["flag"] if isinstance(row["flag"], list) else [row["flag"]]
                if info.flag not in flags:
                    continue
                what_ = (f"analyte {row['analyte']}: shift {row.get('shift', 0):+g} (log), "
                         f"extra sd {row.get('extra_sd', 0):g}" if "analyte" in row
                         else "latent state shift" if "latent" in row
                         else "symptoms caused: " + ", ".join(
                             f"{k} x{v:g}" for k, v in row["symptoms"].items())
                         if "symptoms" in row else "daily rhythm")
                src = row.get("src")
                lines.append(f"  effect: {what_} — {row.get('text', '')} [source: {src}]")
            for ax, prev in raw["prevalence"].items():
                for mod in prev.get("modifiers", []):
                    when = mod.get("when", {})
                    if info.flag == when.get("flag") or info.flag in when.get("any_flag", []):
                        odds = ", ".join(f"{k} x{v:g}" for k, v in mod["odds"].items())
                        lines.append(f"  prior odds ({ax}): {odds} [source: {mod.get('src')}]")
    elif what == "analytes":
        from neb_bayes.vocab import analytes

        modelled = model.modelled_analytes
        for a in analytes().values():
            units = ", ".join(a.units)
            flag = "" if a.id in modelled else "  [read, not evidence in this prior set]"
            lines.append(f"{a.id:24s} {a.name:38s} canonical={a.canonical_unit:10s} "
                         f"units: {units}{flag}")
    return "\n".join(lines)
