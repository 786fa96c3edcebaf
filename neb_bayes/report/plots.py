"""Figures of the HTML report, drawn with matplotlib (Agg) and returned as SVG or PNG bytes.

This module imports matplotlib at import time: import it only on the HTML path (the JSON and
Markdown reports never do).  Every figure is a :class:`matplotlib.figure.Figure` drawn without
pyplot, so no global figure state is kept between reports.  Texts from a case file never go into
a figure (only vocabulary names and numbers), and ``$`` is escaped so that matplotlib never reads
a label as mathtext.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

__all__ = [
    "CortisolPoint",
    "ResultRow",
    "WaterfallStep",
    "cortisol_day_curve",
    "latent_plot",
    "probability_plot",
    "results_plot",
    "time_series_plot",
    "to_png",
    "to_svg",
    "waterfall_plot",
]

DPI = 96
WIDTH = 8.6  # inches: ~830 px at 96 dpi, the report column width
FOR, AGAINST, NEUTRAL, ACCENT = "#2e7d32", "#c62828", "#9e9e9e", "#1f4e79"
RI_BAND = "#d8ecd9"
STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "svg.fonttype": "none",
}


def _txt(text: str) -> str:
    """Keep matplotlib from reading ``$...$`` as mathtext."""
    return str(text).replace("$", r"\$")


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH, max(height, 1.2)), dpi=DPI)


def _row_labels(ax: Any, labels: Sequence[str], fontsize: float = 8.5) -> None:
    """Category labels left of the axes as plain texts (much cheaper than one tick per row)."""
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    tr = blended_transform_factory(ax.transAxes, ax.transData)
    for y, lab in enumerate(labels):
        ax.text(-0.012, y, lab, transform=tr, ha="right", va="center", fontsize=fontsize)


def _margins(
    fig: Figure, left: float = 2.5, right: float = 0.25, top: float = 0.3, bottom: float = 0.55,
    hspace: float | None = None, wspace: float | None = None,
) -> None:
    """Fixed margins in inches (much cheaper than a layout engine)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h,
                        hspace=hspace, wspace=wspace)


def to_svg(fig: Figure) -> bytes:
    """Render a figure to SVG bytes: texts stay texts, no date or software metadata.

    SVG is about three times faster to write than PNG here and half the size; the report
    embeds it as a ``data:image/svg+xml`` image, so ids and styles of several figures never
    collide and the image can load nothing from outside.
    """
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "neb_bayes"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes (no metadata, so the bytes depend only on the drawing)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None},
                pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def _pct(p: float) -> str:
    if p < 0.001:
        return "<0.1 %"
    if p > 0.999:
        return ">99.9 %"
    return f"{100 * p:.1f} %" if p < 0.1 else f"{100 * p:.0f} %"


# --------------------------------------------------------------------------------------------
def probability_plot(
    rows: Sequence[tuple[str, float, tuple[float, float]]], interval_label: str
) -> Figure:
    """Horizontal bars of posterior probabilities, sorted, with interval whiskers.

    Parameters
    ----------
    rows
        ``(condition id, probability, (low, high))`` in display order (most probable first).
    interval_label
        Legend text for the whiskers (e.g. "90 % equal-tailed interval").
    """
    n = len(rows)
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.24 * n + 0.9)
        _margins(fig, left=2.5, top=0.15, bottom=0.55)
        ax = fig.add_subplot()
        ys = list(range(n))
        probs = [p for _, p, _ in rows]
        colors = [NEUTRAL if name == "none" else ACCENT for name, _, _ in rows]
        ax.barh(ys, probs, color=colors, height=0.62)
        wide = [(y, p, lo, hi) for y, (_, p, (lo, hi)) in zip(ys, rows, strict=True)
                if hi - lo > 1e-6]
        any_iv = bool(wide)
        if wide:
            ax.errorbar([w[1] for w in wide], [w[0] for w in wide],
                        xerr=[[max(w[1] - w[2], 0.0) for w in wide],
                              [max(w[3] - w[1], 0.0) for w in wide]],
                        fmt="none", ecolor="black", elinewidth=1.0, capsize=2.5)
        for y, (_, p, (_lo, hi)) in zip(ys, rows, strict=True):
            ax.text(min(max(p, hi), 1.0) + 0.012, y, _pct(p), va="center", fontsize=8.5)
        _row_labels(ax, [_txt(name) for name, _, _ in rows])
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, 1.12)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25 %", "50 %", "75 %", "100 %"])
        ax.set_xlabel("posterior probability")
        ax.axvline(0.5, color="#cccccc", lw=0.8, zorder=0)
        if any_iv:
            ax.legend(handles=[Line2D([], [], color="black", marker="|", lw=1,
                                      label=_txt(interval_label))],
                      loc="lower right", frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
def latent_plot(latents: Sequence[dict]) -> Figure:
    """Latent axis quantities as fold change from a healthy person's level, with intervals.

    Parameters
    ----------
    latents
        ``Result.latents`` rows (``axis``, ``label``, ``fold_change``,
        ``fold_change_interval``, ``measured``).
    """
    rows = list(latents)
    n = len(rows)
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.27 * n + 1.2)
        _margins(fig, left=3.1, top=0.15, bottom=0.85)
        ax = fig.add_subplot()
        labels = [_txt(f"{lat['axis']}: {lat['label']}") for lat in rows]
        cols = [ACCENT if lat["measured"] else NEUTRAL for lat in rows]
        ax.hlines(range(n), [lat["fold_change_interval"][0] for lat in rows],
                  [lat["fold_change_interval"][1] for lat in rows], colors=cols, lw=2.2)
        ax.scatter([lat["fold_change"] for lat in rows], range(n), c=cols, s=26, zorder=3)
        breaks = [y - 0.5 for y in range(1, n) if rows[y]["axis"] != rows[y - 1]["axis"]]
        if breaks:
            ax.hlines(breaks, 0, 1, transform=blended_transform_factory(ax.transAxes, ax.transData),
                      colors="#e0e0e0", lw=0.8)
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        _row_labels(ax, labels)
        ax.set_ylim(n - 0.5, -0.5)
        xs = [v for lat in rows for v in lat["fold_change_interval"]] + [1.0]
        lo_x, hi_x = max(min(xs) / 1.6, 1e-4), min(max(xs) * 1.6, 1e4)
        ax.set_xlim(lo_x, hi_x)
        decades = math.log10(hi_x / lo_x)
        ax.xaxis.set_major_locator(LogLocator(base=2.0 if decades < 2.5 else 10.0))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("fold change relative to a healthy person's typical level (log scale)")
        ax.legend(handles=[
            Line2D([], [], color=ACCENT, marker="o", lw=2, label="axis with results"),
            Line2D([], [], color=NEUTRAL, marker="o", lw=2, label="no result: population prior"),
        ], loc="lower center", bbox_to_anchor=(0.5, 0.0), bbox_transform=fig.transFigure,
            ncol=2, frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultRow:
    """One lab result placed against its reference interval (canonical unit)."""

    label: str
    value: float
    censor: str                    # "none" | "left" | "right"
    ri: tuple[float, float] | None
    value_text: str                # e.g. "<5 pmol/L"
    used: bool = True


def _ri_position(value: float, ri: tuple[float, float]) -> float:
    """Position on a log scale where the reference interval spans [0, 1]."""
    lo, hi = ri
    lo_eff = lo if lo > 0 else hi / 4.0
    return (math.log(max(value, 1e-12)) - math.log(lo_eff)) / (math.log(hi) - math.log(lo_eff))


def results_plot(rows: Sequence[ResultRow]) -> Figure:
    """Every result as a point on a scale where its reference interval is the band [0, 1].

    The scale is logarithmic within each row (the interval's ends at 0 and 1); a result far
    outside is drawn at the edge with an arrow.  A censored result is a caret at its limit
    pointing the way the true value lies ("<" left, ">" right).  A reference interval that
    starts at 0 is drawn from the left edge.
    """
    n = len(rows)
    xmin, xmax = -1.6, 2.6
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.3 * n + 1.45)
        _margins(fig, left=2.9, top=0.15, bottom=1.05)
        ax = fig.add_subplot()
        ax.axvspan(0, 1, color=RI_BAND, zorder=0)
        for y, r in enumerate(rows):
            if r.ri is None:
                ax.text(0.5, y, "no reference interval", ha="center", va="center",
                        fontsize=7.5, color="#777777")
                continue
            if r.ri[0] <= 0:
                ax.plot([xmin, 0], [y, y], color=RI_BAND, lw=6, solid_capstyle="butt", zorder=0)
            pos = _ri_position(r.value, r.ri)
            inside = r.ri[0] <= r.value <= r.ri[1] and r.censor == "none"
            col = NEUTRAL if not r.used else (ACCENT if inside else AGAINST)
            clipped = min(max(pos, xmin + 0.08), xmax - 0.08)
            if r.censor == "left":
                marker = "<"
            elif r.censor == "right":
                marker = ">"
            elif clipped != pos:
                marker = "<" if pos < clipped else ">"
            else:
                marker = "o"
            face = "white" if r.censor != "none" else col
            ax.plot([clipped], [y], marker=marker, ms=8, color=col, mfc=face, mew=1.6,
                    linestyle="none")
            if r.censor != "none":
                arrow_to = clipped - 0.25 if r.censor == "left" else clipped + 0.25
                ax.annotate("", xy=(arrow_to, y), xytext=(clipped, y),
                            arrowprops={"arrowstyle": "->", "color": col, "lw": 1.2})
            tx = clipped + 0.12 if clipped < 1.7 else clipped - 0.12
            ax.text(tx, y - 0.28, _txt(r.value_text), fontsize=7.5,
                    ha="left" if clipped < 1.7 else "right", va="center", color="#333333")
        _row_labels(ax, [_txt(r.label) for r in rows])
        ax.set_ylim(n - 0.4, -0.7)
        ax.set_xlim(xmin, xmax)
        ax.set_xticks([xmin + 0.08, 0, 1, xmax - 0.08],
                      ["far below", "lower\nlimit", "upper\nlimit", "far above"])
        ax.set_xlabel("position relative to the reference interval (log scale within each row)")
        ax.legend(handles=[
            Patch(color=RI_BAND, label="reference interval"),
            Line2D([], [], marker="o", color=ACCENT, ls="none", label="within"),
            Line2D([], [], marker="o", color=AGAINST, ls="none", label="outside"),
            Line2D([], [], marker="<", color="black", mfc="white", ls="none",
                   label="censored (< or > a limit)"),
        ], loc="lower center", bbox_to_anchor=(0.5, 0.0), bbox_transform=fig.transFigure,
            ncol=4, frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesPoint:
    """One result of a repeated analyte."""

    day: float
    value: float
    censor: str


def time_series_plot(
    series: Sequence[tuple[str, str, tuple[float, float] | None, Sequence[SeriesPoint]]],
) -> Figure:
    """Repeated results of each analyte over ``day``, with the reference interval as a band.

    Parameters
    ----------
    series
        ``(title, unit, reference interval, points)`` per analyte (canonical unit).
    """
    k = len(series)
    cols = min(k, 3)
    nrows = math.ceil(k / cols)
    with matplotlib.rc_context(STYLE):
        fig = _figure(2.3 * nrows + 0.2)
        _margins(fig, left=0.8, top=0.35, bottom=0.55, hspace=0.75, wspace=0.45)
        axes = fig.subplots(nrows, cols, squeeze=False)
        for i, (title, unit, ri, pts) in enumerate(series):
            ax = axes[i // cols][i % cols]
            if ri is not None:
                ax.axhspan(max(ri[0], 1e-12), ri[1], color=RI_BAND, zorder=0)
            days = [p.day for p in pts]
            vals = [p.value for p in pts]
            ax.plot(days, vals, color=ACCENT, lw=1.2)
            for p in pts:
                m = {"left": "v", "right": "^"}.get(p.censor, "o")
                ax.plot([p.day], [p.value], marker=m, color=ACCENT, ms=6,
                        mfc="white" if p.censor != "none" else ACCENT, ls="none")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.set_title(_txt(title), fontsize=9.5)
            ax.set_xlabel("day")
            ax.set_ylabel(_txt(unit))
            span = max(days) - min(days) or 1.0
            ax.set_xlim(min(days) - 0.08 * span, max(days) + 0.08 * span)
            lo = min(vals + ([ri[0]] if ri and ri[0] > 0 else []))
            hi = max(vals + ([ri[1]] if ri else []))
            ax.set_ylim(lo / 1.5, hi * 1.5)
        for j in range(k, nrows * cols):
            axes[j // cols][j % cols].set_visible(False)
    return fig


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CortisolPoint:
    """A cortisol result as a fold of the healthy 08:00 median of its specimen."""

    hour: float
    fold: float
    specimen: str
    censor: str
    text: str


def cortisol_day_curve(
    points: Sequence[CortisolPoint],
    healthy: dict[str, tuple[Sequence[float], Sequence[float], float]],
) -> Figure:
    """Cortisol results by clock time against the healthy daily rhythm.

    Parameters
    ----------
    points
        The results, each as a fold of the healthy 08:00 median of its specimen.
    healthy
        Per specimen: ``(hours, log offsets, sd)`` of the model's healthy rhythm; drawn as a
        median curve and a 95 % band (sd of a healthy person's log level).
    """
    markers = {"serum": "o", "plasma": "o", "saliva": "s"}
    colors = {"serum": ACCENT, "plasma": ACCENT, "saliva": "#8e44ad"}
    with matplotlib.rc_context(STYLE):
        fig = _figure(3.2)
        _margins(fig, left=0.9, top=0.15, bottom=0.6)
        ax = fig.add_subplot()
        for spec, (hours, offs, sd) in healthy.items():
            fold = [math.exp(o) for o in offs]
            col = colors.get(spec, NEUTRAL)
            ax.plot(hours, fold, color=col, lw=1.0, ls="--", label=_txt(f"healthy {spec} median"))
            ax.fill_between(hours, [f * math.exp(-1.96 * sd) for f in fold],
                            [f * math.exp(1.96 * sd) for f in fold], color=col, alpha=0.08)
        for p in points:
            col = colors.get(p.specimen, NEUTRAL)
            m = {"left": "v", "right": "^"}.get(p.censor, markers.get(p.specimen, "o"))
            ax.plot([p.hour], [p.fold], marker=m, color=col, ms=7, ls="none",
                    mfc="white" if p.censor != "none" else col)
            right = p.hour <= 17.0
            ax.annotate(_txt(p.text), (p.hour, p.fold), textcoords="offset points",
                        xytext=(6 if right else -6, 6), ha="left" if right else "right",
                        fontsize=7.5)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlim(0, 24)
        ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
        ax.set_xlabel("clock time of collection")
        ax.set_ylabel("relative to healthy 08:00 median")
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WaterfallStep:
    """One bar of an evidence waterfall: a log Bayes factor (natural log)."""

    label: str
    log_bf: float
    kind: str = "item"   # "item" | "rest" | "joint"


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def waterfall_plot(prior: float, posterior: float, steps: Sequence[WaterfallStep]) -> Figure:
    """How each piece of evidence moved the log odds of one condition, prior to posterior.

    The steps are leave-one-out log Bayes factors; the last step ("together") is whatever the
    single items do not explain (redundant or reinforcing evidence), so that the bars end at the
    posterior exactly.
    """
    start = _logit(prior)
    end = _logit(posterior)
    n = len(steps) + 2
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.3 * n + 1.05)
        _margins(fig, left=2.7, top=0.45, bottom=0.55)
        ax = fig.add_subplot()
        labels = ["prior (population, this stratum)"]
        lefts, widths, cols, ys, joint_rows = [], [], [], [], []
        cum = start
        for i, st in enumerate(steps, 1):
            if st.kind == "joint":
                joint_rows.append((i, cum, st.log_bf))
            else:
                lefts.append(cum)
                widths.append(st.log_bf)
                cols.append(FOR if st.log_bf > 0 else AGAINST)
                ys.append(i)
            ax.text(max(cum, cum + st.log_bf), i, f"  {st.log_bf:+.2f}", va="center", fontsize=7.5)
            cum += st.log_bf
            labels.append(_txt(st.label))
        ax.barh([0, *ys], [start, *widths], left=[0.0, *lefts], color=[NEUTRAL, *cols],
                height=0.6)
        for i, left, width in joint_rows:
            ax.barh([i], [width], left=left, color=NEUTRAL, height=0.6, hatch="//",
                    edgecolor="white")
        # connectors between consecutive bars
        ends = [start]
        c = start
        for st in steps:
            c += st.log_bf
            ends.append(c)
        ax.vlines(ends, [i - 0.3 for i in range(len(ends))], [i + 1.3 for i in range(len(ends))],
                  color="#bbbbbb", lw=0.6, zorder=0)
        ax.barh([n - 1], [end], color=ACCENT, height=0.6)
        labels.append("posterior")
        _row_labels(ax, labels)
        ax.set_ylim(n - 0.5, -0.5)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("log odds (natural log; +1 multiplies the odds by e ≈ 2.7)")
        lims = [0.0, start, end]
        c = start
        for st in steps:
            c += st.log_bf
            lims.append(c)
        lo, hi = min(lims), max(lims)
        pad = 0.12 * (hi - lo or 1.0)
        ax.set_xlim(lo - pad, hi + 2.5 * pad)
        # probability marks along the top edge (a secondary axis costs as much as the plot)
        probs = [1e-6, 1e-4, 0.01, 0.1, 0.5, 0.9, 0.99, 0.9999, 1 - 1e-6]
        ticks = [(_logit(p), p) for p in probs if lo - pad <= _logit(p) <= hi + 2.5 * pad]
        tr = blended_transform_factory(ax.transData, ax.transAxes)
        ax.vlines([t for t, _ in ticks], 1.0, 1.025, transform=tr, colors="black", lw=0.8,
                  clip_on=False)
        for t, p in ticks:
            ax.text(t, 1.035, _pct_tick(p), transform=tr, ha="center", va="bottom", fontsize=7.5)
        ax.text(-0.012, 1.035, "probability", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7.5, color="#555555")
    return fig


def _pct_tick(p: float) -> str:
    if p < 0.01:
        return f"{100 * p:.2g} %"
    if p > 0.99:
        return f"{100 * p:.6g} %"
    return f"{100 * p:g} %"
