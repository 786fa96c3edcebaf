"""Compile a prior set's tables into the index structures and arrays inference uses.

Everything the exact engine, the simulator and the PyMC model need is here, in one place,
derived from :class:`~neb_bayes.model.spec.ModelSpec`; none of them reads the YAML itself.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np

from neb_bayes.model.spec import ModelSpec, is_reference_state, load_spec

LOG_2PI = math.log(2.0 * math.pi)


def cv_to_log_sd(cv: float) -> float:
    """Coefficient of variation of a log-normal quantity to the sd of its logarithm."""
    return math.sqrt(math.log1p(cv * cv))


@dataclass(frozen=True)
class Axis:
    """One discrete axis: its states, the latents it owns and what each state means."""

    name: str
    states: tuple[str, ...]
    latents: tuple[str, ...]
    sex: tuple[str | None, ...]            # sex a state implies (gonadal axis), else None
    condition_of: tuple[tuple[str, ...], ...]  # conditions each state belongs to
    lat_mean: np.ndarray                   # (S, K)
    lat_cov: np.ndarray                    # (S, K, K)
    labels: dict[str, dict] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)  # state -> text for reports
    kept: tuple[int, ...] | None = None    # in a restricted view: indices into the full axis
    #: per state, the context flags of which it needs one (``only_with`` in the tables: a
    #: phase of the cycle), else None
    only_with: tuple[frozenset[str] | None, ...] = ()
    #: per state, the context flags any of which rule it out (``not_with``), else None
    not_with: tuple[frozenset[str] | None, ...] = ()

    def allowed(self, sex: str | None, flags: Collection[str] | None) -> np.ndarray:
        """Boolean mask of the states a patient of this ``sex`` with these context ``flags``
        can be in (``None``: sex unknown; flags ``None``: not known, every gated state kept)."""
        none = (None,) * self.n_states
        return np.array([
            (sex is None or s in (None, sex))
            and (flags is None or ((need is None or not need.isdisjoint(flags))
                                   and (bar is None or bar.isdisjoint(flags))))
            for s, need, bar in zip(self.sex, self.only_with or none, self.not_with or none,
                                    strict=True)])

    @property
    def gate_flags(self) -> frozenset[str]:
        """The context flags that open or close a state of the axis."""
        return frozenset().union(*(g for g in self.only_with + self.not_with if g is not None))

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def baseline(self) -> np.ndarray:
        """Boolean mask of the reference states prevalences are relative to."""
        return np.array([is_reference_state(s) for s in self.states])

    @property
    def healthy(self) -> np.ndarray:
        """Boolean mask of states that are no reported condition."""
        return np.array([not c for c in self.condition_of])

    @property
    def other(self) -> np.ndarray:
        """Boolean mask of states that are neither a reference (normal) state nor a condition:
        readings a report names on their own (e.g. macroprolactinaemia)."""
        return self.healthy & ~self.baseline


@dataclass(frozen=True)
class Effect:
    """A shift of a channel's expected log level while an axis is in one of some states."""

    axis: int
    shift: np.ndarray  # (S_axis,) shift per state (0 where it does not apply)


@dataclass(frozen=True)
class Channel:
    """A measurement channel: one analyte in one specimen group, with its noise model."""

    name: str
    analyte: str
    specimens: tuple[str, ...] | None
    axis: int
    log_median: float
    loadings: np.ndarray        # (K_axis,)
    tau: float                  # person-level residual (log sd)
    cvi: float                  # within-person day-to-day (log sd)
    cva: float                  # analytical (log sd)
    effects: tuple[Effect, ...]
    diurnal: str | None = None  # profile name
    diurnal_scale: float = 0.0
    amp_axis: int | None = None  # axis whose state scales the daily rhythm
    amp: np.ndarray | None = None  # (S_amp_axis,)
    sources: tuple[str, ...] = ()
    #: log of the channel's ``floor`` (canonical unit; -inf: none): a result below it is read
    #: at it (:func:`neb_bayes.evidence.floored`)
    log_floor: float = -math.inf


@dataclass(frozen=True)
class ContextShift:
    """A context flag's effect on one channel's expected log level (and extra noise)."""

    flag: str
    shift: float
    extra_sd: float
    unaffected_methods: tuple[str, ...]
    text: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ContextLatent:
    """A context flag's effect on an axis' latent distribution per state."""

    flag: str
    axis: int
    mean_shift: np.ndarray   # (S, K)
    sd_scale: np.ndarray     # (S,)
    text: str
    #: rows sharing a group do not stack: only the first listed whose flag is raised applies
    group: str | None = None


@dataclass(frozen=True)
class ContextSymptoms:
    """A context flag's effect on the symptoms states cause: treated disease causes fewer.

    ``scale`` multiplies each noisy-OR cause probability (one per symptom-table entry; 1 where
    the row does not name the entry's cause); the leak is unchanged.
    """

    flag: str
    scale: np.ndarray   # (E,)
    text: str


@dataclass(frozen=True)
class ContextDiurnal:
    flag: str
    profile: str
    phase_shift: float
    amplitude: float
    extra_sd: float
    text: str


@dataclass(frozen=True)
class AgeEffect:
    channels: tuple[int, ...]
    sex: str | None
    per_year: float
    start: float
    text: str


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """The model as arrays and index maps (one parameter set)."""

    spec: ModelSpec
    axes: tuple[Axis, ...]
    channels: tuple[Channel, ...]
    conditions: tuple[str, ...]
    cond_axis: np.ndarray            # (n_cond,) axis index of each condition
    cond_states: tuple[np.ndarray, ...]  # per condition: bool mask over its axis' states
    symptoms: tuple[str, ...]
    log1m_leak: np.ndarray           # (P, Y) log(1 - leak) per symptom-propensity level
    log1m_cause: tuple[np.ndarray, ...]  # per axis (S_a, Y): sum over the state's causes of log(1-p)
    log_propensity_w: np.ndarray     # (P,) log weight of each symptom-propensity level
    symptom_table: SymptomTable
    profiles: dict[str, tuple[np.ndarray, np.ndarray]]
    unknown_time_window: tuple[float, float]
    channel_map: dict[tuple[str, str], int] = field(default_factory=dict)
    context_shifts: dict[int, tuple[ContextShift, ...]] = field(default_factory=dict)
    context_latents: tuple[ContextLatent, ...] = ()
    context_diurnal: tuple[ContextDiurnal, ...] = ()
    context_symptoms: tuple[ContextSymptoms, ...] = ()
    age_effects: tuple[AgeEffect, ...] = ()
    prior_base_override: dict[str, np.ndarray] | None = None
    gross_error_rate: float = 0.0   # per result; at most one gross error per axis block
    gross_error_sd: float = 0.0     # extra log sd of a wrong result beyond the population's
    gross_mix: tuple = ()  # per channel (log weight, mean, sd) of its population mixture
    # the same for the people of each sex ({"F": .., "M": ..}): a gross error in a patient of
    # known sex is another person's result of that sex (:meth:`gross_mix_for`)
    gross_mix_sex: dict = field(default_factory=dict)
    #: per sex (None: unknown), per channel: the mean state effect over the healthy states of
    #: the full model (a view may lack them: :func:`neb_bayes.evidence._healthy_log_median`)
    healthy_effect: dict = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------
    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the joint state tensor (one dimension per axis, in prior order)."""
        return tuple(a.n_states for a in self.axes)

    def axis_index(self, name: str) -> int:
        return self.axis_names.index(name)

    def channel_for(self, analyte: str, specimen: str) -> int | None:
        """Index of the channel that models ``analyte`` measured in ``specimen``."""
        cmap = self.channel_map
        return cmap.get((analyte, specimen), cmap.get((analyte, "*")))

    @property
    def modelled_analytes(self) -> frozenset[str]:
        return frozenset(c.analyte for c in self.channels)

    # -- gross errors ------------------------------------------------------------------------
    def gross_mix_for(self, sex: str | None) -> tuple:
        """The gross-error mixtures (per channel) for a patient of this sex: those of the
        people of that sex; with ``None`` (sex unknown) the model's own, ``gross_mix`` (a sex
        view's is its sex's, the full model's everyone's)."""
        return self.gross_mix if sex is None else self.gross_mix_sex.get(sex, self.gross_mix)

    def gross_log_density(self, channel: np.ndarray, y: np.ndarray,
                          censor: np.ndarray, sex: str | None = None) -> np.ndarray:
        """log q(y) of results that are gross errors (a probability mass beyond the limit for
        censored results: ``censor`` -1 below, +1 above, 0 observed) in a patient of ``sex``.

        q is the channel's population distribution among people of the patient's sex
        (:meth:`gross_mix_for`: the mixture over the states its level depends on, weighted by
        the prior for that sex, of each state's marginal distribution; everyone's when the sex
        is unknown), widened by ``gross_error_sd``: a wrong result looks like another
        person's.  ``y`` is the result as the engine reads it (the patient's lab method
        offset, context shifts and age trend removed), so q is the population's distribution
        for people like the patient.  Its tails are never heavier than the widest of the
        states the patient can be in (beyond the widening; a woman's testosterone is not
        explained by a man's), so a far-out result is still read as the state that explains
        it.  Fixed per prior set, whatever the draw.
        """
        channel = np.asarray(channel, dtype=np.int64)
        y = np.asarray(y, float)
        censor = np.asarray(censor)
        mix = self.gross_mix_for(sex)
        # each result's value depends on that result only, whatever else is in the call (the
        # batch engine's answers must not depend on the chunk): the same operations on each
        # (result, component), and the components' terms summed in order (a running sum),
        # so a channel's components padded with weight 0 give the same sum bit for bit
        if y.size <= GROSS_PADDED_MAX:
            # few results (one case): all at once, every channel padded to the most components
            return _gross_log_q(y, censor,
                                *(t[:, channel] for t in gross_table(self, sex)[:4]))
        out = np.empty(y.shape)
        # many (a cohort's, for the PyMC model; the batch engine has its compiled pass,
        # vectorised._gross_log_density): channel by channel, the rows of a (channel,
        # censored) pair found with one sort
        key = channel * 2 + (censor != 0)
        order = np.argsort(key, kind="stable")
        for at in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
            log_w, mean, sd = mix[int(channel[at[0]])]
            out[at] = _gross_log_q(y[at], censor[at], log_w[:, None], mean[:, None],
                                   sd[:, None], np.log(sd)[:, None])
        return out

    # -- diurnal ---------------------------------------------------------------------------
    def diurnal_offset(self, profile: str, hour: float | None) -> tuple[float, float]:
        """Mean offset and extra variance of a profile at a clock hour (``None`` = unknown)."""
        return _diurnal_offset(self, profile, hour)

    def _diurnal_offset(self, profile: str, hour: float | None) -> tuple[float, float]:
        hours, offs = self.profiles[profile]
        if hour is not None:
            return float(np.interp(hour % 24.0, hours, offs, period=24.0)), 0.0
        lo, hi = self.unknown_time_window
        grid = np.linspace(lo, hi, 41)
        vals = np.interp(grid, hours, offs, period=24.0)
        return float(vals.mean()), float(vals.var())


def state_result_moments(model: CompiledModel, channel: int, state: int) -> tuple[float, float]:
    """The log-scale mean and variance of one result on ``channel`` of a person in its own
    axis' ``state`` (no context, no daily-rhythm offset, other axes at no effect): the
    channel's median, its loadings on the state's latent mean and covariance, the state's own
    effects, and the person, day and assay noise.  For the figures and calibration checks
    that read a state's distribution of results."""
    ch = model.channels[channel]
    axis = model.axes[ch.axis]
    mean = ch.log_median + float(ch.loadings @ axis.lat_mean[state])
    mean += sum(float(e.shift[state]) for e in ch.effects if e.axis == ch.axis)
    var = (float(ch.loadings @ axis.lat_cov[state] @ ch.loadings)
           + ch.tau**2 + ch.cvi**2 + ch.cva**2)
    return mean, var


def axis_channel_grid(model: CompiledModel, axis: int):
    """An axis' channels and their state-dependent terms over the axis' dependency grid.

    Returns ``(channels, loadings, deps, sizes, own_idx, effect, amp)``: the model channels
    on the axis ``(C,)``, their latent loadings ``(C, K)``, the sorted axes the channels'
    distribution depends on and their sizes, the own-axis state of each grid point ``(G,)``
    (grid in ``deps`` order, last axis fastest), and per channel and grid point the summed
    state effects and the daily-rhythm amplitude ``(C, G)``.  Shared by the PyMC model and
    the vectorised batch engine.
    """
    chans = np.array([i for i, c in enumerate(model.channels) if c.axis == axis])
    deps = {axis}
    for ci in chans:
        c = model.channels[ci]
        deps.update(e.axis for e in c.effects)
        if c.amp_axis is not None:
            deps.add(c.amp_axis)
    deps = tuple(sorted(deps))
    sizes = [model.axes[d].n_states for d in deps]
    grid = list(product(*[range(s) for s in sizes]))
    own = deps.index(axis)
    effect = np.zeros((chans.size, len(grid)))
    amp = np.zeros((chans.size, len(grid)))
    for j, ci in enumerate(chans):
        c = model.channels[ci]
        for g, states in enumerate(grid):
            effect[j, g] = sum(e.shift[states[deps.index(e.axis)]] for e in c.effects)
            if c.amp_axis is not None:
                amp[j, g] = c.amp[states[deps.index(c.amp_axis)]]
    own_idx = np.array([states[own] for states in grid])
    L = np.stack([model.channels[ci].loadings for ci in chans])
    return chans, L, deps, tuple(sizes), own_idx, effect, amp


@lru_cache(maxsize=8192)
def _diurnal_offset(model: CompiledModel, profile: str, hour: float | None) -> tuple[float, float]:
    """Cached :meth:`CompiledModel.diurnal_offset` (clock times repeat across cases)."""
    return model._diurnal_offset(profile, hour)


def _latent_gaussian(state: dict, latents: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([float(state["mean"][k]) for k in latents])
    sd = np.array([float(state["sd"][k]) for k in latents])
    corr = np.eye(len(latents))
    for a, b, rho in state.get("corr", []):
        i, j = latents.index(a), latents.index(b)
        corr[i, j] = corr[j, i] = rho
    return mean, corr * np.outer(sd, sd)


def _compile_axes(raw: dict) -> tuple[Axis, ...]:
    cond_of: dict[tuple[str, str], list[str]] = {}
    for cond, where in raw["conditions"].items():
        for ax, states in where.items():
            for st in states:
                cond_of.setdefault((ax, st), []).append(cond)
    axes = []
    for name in raw["order"]:
        spec = raw["axes"][name]
        latents = tuple(spec.get("latents", {}))
        states = tuple(spec["states"])
        means, covs = [], []
        for st in states:
            if latents:
                m, c = _latent_gaussian(spec["states"][st], latents)
            else:
                m, c = np.zeros(0), np.zeros((0, 0))
            means.append(m)
            covs.append(c)
        axes.append(
            Axis(
                name=name,
                states=states,
                latents=latents,
                sex=tuple(spec["states"][st].get("sex") for st in states),
                only_with=tuple(_flag_set(spec["states"][st].get("only_with")) for st in states),
                not_with=tuple(_flag_set(spec["states"][st].get("not_with")) for st in states),
                condition_of=tuple(tuple(cond_of.get((name, st), [])) for st in states),
                lat_mean=np.array(means).reshape(len(states), len(latents)),
                lat_cov=np.array(covs).reshape(len(states), len(latents), len(latents)),
                labels=dict(spec.get("latents", {})),
                descriptions={st: s["description"] for st, s in spec["states"].items()
                              if s.get("description")},
            )
        )
    return tuple(axes)


def _sex_mask(axis: Axis, sex: str) -> np.ndarray:
    return np.array([s == sex for s in axis.sex], dtype=float)


def _compile_channels(raw: dict, axes: tuple[Axis, ...]) -> tuple[Channel, ...]:
    names = [a.name for a in axes]
    gonadal = names.index("gonadal")
    by_analyte: dict[str, list[str]] = {}
    for ch, spec in raw["analytes"].items():
        by_analyte.setdefault(spec.get("analyte", ch), []).append(ch)
    effects: dict[str, list[Effect]] = {ch: [] for ch in raw["analytes"]}
    for eff in raw.get("effects", []):
        targets = [eff["analyte"]] if eff["analyte"] in raw["analytes"] else by_analyte[eff["analyte"]]
        for ax_name, states in eff["when"].items():
            ax = axes[names.index(ax_name)]
            shift = np.array([float(eff["shift"]) if s in states else 0.0 for s in ax.states])
            for ch in targets:
                effects[ch].append(Effect(names.index(ax_name), shift))
    channels = []
    for ch, spec in raw["analytes"].items():
        axis = names.index(spec["axis"])
        ax = axes[axis]
        med = spec["median"]
        ch_effects = list(effects[ch])
        if isinstance(med, dict):
            # sex-specific median: base = male, shift for the female gonadal states
            base = math.log(med["M"])
            shift = (math.log(med["F"]) - base) * _sex_mask(axes[gonadal], "F")
            ch_effects.append(Effect(gonadal, shift))
        else:
            base = math.log(med)
        load = np.array([float(spec.get("loadings", {}).get(k, 0.0)) for k in ax.latents])
        diurnal = spec.get("diurnal")
        amp_axis, amp = None, None
        if diurnal:
            if diurnal.get("sex"):
                amp_axis, amp = gonadal, _sex_mask(axes[gonadal], diurnal["sex"])
            else:
                table = raw["axes"][spec["axis"]].get("diurnal_amplitude", {})
                amp_axis = axis
                amp = np.array([float(table.get(s, 1.0)) for s in ax.states])
        src = spec.get("src", [])
        channels.append(
            Channel(
                name=ch,
                analyte=spec.get("analyte", ch),
                specimens=tuple(spec["specimens"]) if "specimens" in spec else None,
                axis=axis,
                log_median=base,
                loadings=load,
                tau=float(spec["tau"]),
                cvi=cv_to_log_sd(float(spec["cvi"])),
                cva=cv_to_log_sd(float(spec["cva"])),
                effects=tuple(ch_effects),
                diurnal=diurnal["profile"] if diurnal else None,
                diurnal_scale=float(diurnal.get("scale", 1.0)) if diurnal else 0.0,
                amp_axis=amp_axis,
                amp=amp,
                sources=tuple(src if isinstance(src, list) else [src]),
                log_floor=math.log(float(spec["floor"])) if "floor" in spec else -math.inf,
            )
        )
    return tuple(channels)


@dataclass(frozen=True)
class SymptomTable:
    """The noisy-OR table as parameters: one probability per (cause, symptom) entry.

    ``state_mask[a]`` (S_a, E) says which entries are active in each state of axis ``a``;
    ``entry_symptom`` (E,) which symptom each entry is about.  Parameter draws vary
    ``cause_logit`` and ``leak_logit``; :meth:`tables` turns them into the engine's arrays.
    """

    entries: tuple[tuple[str, str], ...]      # (cause, symptom)
    entry_symptom: np.ndarray                 # (E,)
    state_mask: tuple[np.ndarray, ...]        # per axis (S_a, E)
    cause_logit: np.ndarray                   # (E,)
    leak_logit: np.ndarray                    # (Y,)
    propensity_log_odds: np.ndarray           # (P,)
    n_symptoms: int

    def tables(self, cause_logit: np.ndarray | None = None, leak_logit: np.ndarray | None = None,
               columns: np.ndarray | None = None, scale: np.ndarray | None = None):
        """(log1m_leak (..., P, Y), per-axis log1m_cause (..., S_a, Y)) for these logits.

        ``columns`` limits the tables to those symptoms (in that order), e.g. the reported ones;
        ``scale`` (E,) multiplies the cause probabilities (a context's
        :class:`ContextSymptoms`: treated disease causes fewer symptoms).
        """
        cl = self.cause_logit if cause_logit is None else cause_logit
        if scale is not None:
            cl = self.scaled_cause_logit(scale, cl)
        ll = self.leak_logit if leak_logit is None else leak_logit
        cols = np.arange(self.n_symptoms) if columns is None else np.asarray(columns, dtype=np.int64)
        use = np.flatnonzero(np.isin(self.entry_symptom, cols))
        log1m_p = -np.logaddexp(0.0, cl[..., use])             # log(1 - sigmoid), (..., E')
        # each entry's (entry, column) pairs: the entries about each column's symptom
        pair_e, pair_y = np.nonzero(self.entry_symptom[use][:, None] == cols[None, :])
        cause = tuple(_masked_sums(log1m_p, m[:, use], pair_e, pair_y, cols.size)
                      for m in self.state_mask)
        log1m_leak = -np.logaddexp(0.0, ll[..., None, cols] + self.propensity_log_odds[:, None])
        return log1m_leak, cause

    def scaled_cause_logit(self, scale: np.ndarray, cause_logit: np.ndarray | None = None) -> np.ndarray:
        """logit(scale * sigmoid(cause_logit)): cause probabilities multiplied by ``scale``
        (``(E,)``, each in (0, 1]; e.g. a context's :class:`ContextSymptoms`)."""
        cl = self.cause_logit if cause_logit is None else cause_logit
        log_p = -np.logaddexp(0.0, -cl) + np.log(scale)
        return log_p - np.log(-np.expm1(log_p))


def _masked_sums(x: np.ndarray, mask: np.ndarray, pair_e: np.ndarray, pair_y: np.ndarray,
                 n_cols: int) -> np.ndarray:
    """``out[..., s, y] = sum_e x[..., e] mask[s, e] [(e, y) a pair]`` ``(..., S, Y)`` from
    the nonzero terms only, each sum in the order of its entries (a state has a few dozen
    active entries of the table's ~170: as a dense matrix product under 1,000 parameter
    draws this took ~45 ms of a report)."""
    s, p = np.nonzero(mask[:, pair_e])                      # (state, pair) of each term
    n_states = mask.shape[0]
    out = np.zeros(x.shape[:-1] + (n_states * n_cols,))
    if s.size:
        target = s * n_cols + pair_y[p]
        order = np.argsort(target, kind="stable")           # entries ascending within a sum
        target, e = target[order], pair_e[p[order]]
        terms = x[..., e] * mask[s[order], e]
        first = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
        out[..., target[first]] = np.add.reduceat(terms, first, axis=-1)
    return out.reshape(x.shape[:-1] + (n_states, n_cols))


def _compile_symptoms(raw: dict, axes: tuple[Axis, ...]):
    sym = raw["symptoms"]
    ids = tuple(sym["leak"])
    leak = np.array([sym["leak"][s] for s in ids])
    prop = sym.get("propensity", {"weights": [1.0], "leak_odds": [1.0]})
    w = np.asarray(prop["weights"], float)
    log_w = np.log(w / w.sum())
    entries = [(cause, s) for cause, tab in sym.get("causes", {}).items() for s in tab]
    probs = np.array([sym["causes"][c][s] for c, s in entries])
    masks = []
    for ax in axes:
        m = np.zeros((ax.n_states, len(entries)))
        for si, st in enumerate(ax.states):
            causes = set(ax.condition_of[si]) | {f"{ax.name}.{st}"}
            for e, (cause, _) in enumerate(entries):
                if cause in causes:
                    m[si, e] = 1.0
        masks.append(m)
    with np.errstate(divide="ignore"):
        cause_logit = np.log(probs) - np.log1p(-probs)
    table = SymptomTable(
        entries=tuple(entries),
        entry_symptom=np.array([ids.index(s) for _, s in entries], dtype=np.int64),
        state_mask=tuple(masks),
        cause_logit=cause_logit,
        leak_logit=np.log(leak) - np.log1p(-leak),
        propensity_log_odds=np.log(np.asarray(prop["leak_odds"], float)),
        n_symptoms=len(ids),
    )
    log1m_leak, tables = table.tables()
    return ids, log1m_leak, log_w, tables, table


def _as_list(x) -> list:
    return list(x) if isinstance(x, list | tuple) else [x]


def _channels_named(raw: dict, channels: tuple[Channel, ...], name: str) -> list[int]:
    """Channel indices for a channel name or an analyte id (all its channels)."""
    if name in raw["analytes"]:
        return [i for i, c in enumerate(channels) if c.name == name]
    return [i for i, c in enumerate(channels) if c.analyte == name]


def _compile_context(raw: dict, axes: tuple[Axis, ...], channels: tuple[Channel, ...],
                     entries: tuple[tuple[str, str], ...]):
    names = [a.name for a in axes]
    shifts: dict[int, list[ContextShift]] = {}
    latents: list[ContextLatent] = []
    diurnal: list[ContextDiurnal] = []
    symptoms: list[ContextSymptoms] = []
    for row in raw.get("context_effects", []):
        src = tuple(_as_list(row.get("src", [])))
        for flag in _as_list(row["flag"]):
            if "symptoms" in row:
                scale = np.array([float(row["symptoms"].get(cause, 1.0)) for cause, _ in entries])
                symptoms.append(ContextSymptoms(flag, scale, row.get("text", flag)))
            if "analyte" in row:
                eff = ContextShift(flag, float(row.get("shift", 0.0)), float(row.get("extra_sd", 0.0)),
                                   tuple(m.lower() for m in row.get("unaffected_methods", [])),
                                   row.get("text", flag), src)
                for name in _as_list(row["analyte"]):
                    for ci in _channels_named(raw, channels, name):
                        shifts.setdefault(ci, []).append(eff)
            if "latent" in row or "sd_scale" in row:
                for ax_name in set(row.get("latent", {})) | set(row.get("sd_scale", {})):
                    ax = axes[names.index(ax_name)]
                    mean = np.zeros((ax.n_states, len(ax.latents)))
                    scale = np.ones(ax.n_states)
                    for st, lat in row.get("latent", {}).get(ax_name, {}).items():
                        for k, v in lat.items():
                            mean[ax.states.index(st), ax.latents.index(k)] = float(v)
                    for st, v in row.get("sd_scale", {}).get(ax_name, {}).items():
                        scale[ax.states.index(st)] = float(v)
                    latents.append(ContextLatent(flag, names.index(ax_name), mean, scale,
                                                 row.get("text", flag), row.get("group")))
            if "diurnal" in row:
                d = row["diurnal"]
                diurnal.append(ContextDiurnal(flag, d["profile"], float(d.get("phase_shift", 0.0)),
                                              float(d.get("amplitude", 1.0)),
                                              float(d.get("extra_sd", 0.0)), row.get("text", flag)))
    ages = []
    for row in raw.get("age_effects", []):
        idx = tuple(ci for name in _as_list(row["analyte"]) for ci in _channels_named(raw, channels, name))
        ages.append(AgeEffect(idx, row.get("sex"), float(row["per_year"]), float(row.get("from", 0.0)),
                              row.get("text", "")))
    return ({k: tuple(v) for k, v in shifts.items()}, tuple(latents), tuple(diurnal), tuple(ages),
            tuple(symptoms))


def compile_spec(spec: ModelSpec) -> CompiledModel:
    """Build the arrays and index maps of a prior set."""
    raw = spec.raw
    axes = _compile_axes(raw)
    channels = _compile_channels(raw, axes)
    names = [a.name for a in axes]
    conditions = tuple(raw["conditions"])
    cond_axis, cond_states = [], []
    for cond in conditions:
        (ax_name, states), = raw["conditions"][cond].items()
        ax = axes[names.index(ax_name)]
        cond_axis.append(names.index(ax_name))
        cond_states.append(np.array([s in states for s in ax.states]))
    ids, log1m_leak, log_prop_w, log1m_cause, sym_table = _compile_symptoms(raw, axes)
    profiles = {
        k: (np.asarray(v["hours"], float), np.asarray(v["offsets"], float))
        for k, v in raw.get("diurnal_profiles", {}).items()
    }
    win = raw.get("unknown_time_window", [7.0, 17.0])
    channel_map = {
        (ch.analyte, sp): i for i, ch in enumerate(channels) for sp in ch.specimens or ("*",)
    }
    ctx_shifts, ctx_latents, ctx_diurnal, ages, ctx_symptoms = _compile_context(
        raw, axes, channels, sym_table.entries)
    gross = raw.get("gross_error") or {}
    model = CompiledModel(
        spec=spec,
        axes=axes,
        channels=channels,
        conditions=conditions,
        cond_axis=np.array(cond_axis),
        cond_states=tuple(cond_states),
        symptoms=ids,
        log1m_leak=log1m_leak,
        log1m_cause=log1m_cause,
        log_propensity_w=log_prop_w,
        symptom_table=sym_table,
        profiles=profiles,
        unknown_time_window=(float(win[0]), float(win[1])),
        channel_map=channel_map,
        context_shifts=ctx_shifts,
        context_latents=ctx_latents,
        context_diurnal=ctx_diurnal,
        context_symptoms=ctx_symptoms,
        age_effects=ages,
        gross_error_rate=float(gross.get("rate", 0.0)),
        gross_error_sd=float(gross.get("widen_sd", 0.0)),
    )
    sexes = sorted({s for ax in model.axes for s in ax.sex if s is not None})
    model = replace(model, healthy_effect={
        sex: np.array([_healthy_effect(model, ch, sex) for ch in model.channels])
        for sex in [None, *sexes]})
    if model.gross_error_rate <= 0:
        return model
    return replace(model, gross_mix=_gross_mix(model),
                   gross_mix_sex={s: _gross_mix(model, s) for s in sexes})


#: at most this many results: :meth:`CompiledModel.gross_log_density` in one pass over every
#: channel padded to the most components (~20 us for a case's ~30 results, against ~10 us
#: per channel one by one); more: channel by channel (padding would triple the work)
GROSS_PADDED_MAX = 1024


def _gross_log_q(y: np.ndarray, censor: np.ndarray, log_w: np.ndarray, mean: np.ndarray,
                 sd: np.ndarray, log_sd: np.ndarray) -> np.ndarray:
    """log q(y) of results from their channels' mixture components, components first
    (``(J, n)`` or broadcasting to it), summed in component order."""
    z = (y - mean) / sd
    dens = log_w + (-0.5 * z * z - log_sd - 0.5 * LOG_2PI)
    cen = np.flatnonzero(censor != 0)
    if cen.size:
        # (imported here: loading a model needs no scipy, ~0.13 s of a batch driver's start)
        from scipy.special import log_ndtr

        dens[:, cen] = (np.broadcast_to(log_w, dens.shape)[:, cen]
                        + log_ndtr(-censor[cen].astype(float) * z[:, cen]))
    mx = dens.max(0)
    # (a running sum: in component order whatever the layout; a sum's pairwise order would
    # depend on the number of results when there is one)
    return mx + np.log(np.add.accumulate(np.exp(dens - mx), axis=0)[-1])


@lru_cache(maxsize=16)
def gross_table(model: CompiledModel, sex: str | None = None) -> tuple[np.ndarray, ...]:
    """``model.gross_mix_for(sex)`` as ``(components, channels)`` arrays, each channel's
    components padded to the most any channel has: log weight (``-inf`` where padded), mean,
    sd and log sd; then each channel's number of components."""
    mix = model.gross_mix_for(sex)
    n = max((w.size for w, _, _ in mix), default=1)
    shape = (n, len(mix))
    log_w, mean, sd = np.full(shape, -np.inf), np.zeros(shape), np.ones(shape)
    for c, (w, mu, s) in enumerate(mix):
        log_w[:w.size, c], mean[:w.size, c], sd[:w.size, c] = w, mu, s
    out = (log_w, mean, sd, np.log(sd), np.array([w.size for w, _, _ in mix]))
    for a in out:
        a.flags.writeable = False
    return out


def _gross_mix(model: CompiledModel, sex: str | None = None) -> tuple:
    """Per channel, its population distribution as a mixture over the states it depends on
    (its own axis' latents and the axes of its state effects), weighted by the prior over the
    people of ``sex`` (everyone when ``None``; ages pooled), widened by ``gross_error_sd``:
    the gross-error density.  Per sex, because a channel's level can differ between the sexes
    far more than between a sex's states (testosterone: a woman's median 1.04 nmol/L, a man's
    17.1): pooled, a woman's testosterone of 15 nmol/L would be read as a likely wrong result
    (a man's) rather than as the hyperandrogenic state that explains it."""
    from neb_bayes.model.prior import Covariates, log_prior

    p = np.exp(log_prior(model, Covariates(sex=sex)))
    nd = len(model.axes)
    out = []
    for ch in model.channels:
        deps = sorted({ch.axis} | {e.axis for e in ch.effects})
        w = p.sum(axis=tuple(a for a in range(nd) if a not in deps))
        ax = model.axes[ch.axis]
        noise = ch.tau**2 + ch.cvi**2 + ch.cva**2 + model.gross_error_sd**2
        lat_var = np.einsum("k,skl,l->s", ch.loadings, ax.lat_cov, ch.loadings) if ax.latents \
            else np.zeros(ax.n_states)
        lat_mean = ax.lat_mean @ ch.loadings if ax.latents else np.zeros(ax.n_states)
        shape = [model.axes[d].n_states for d in deps]
        own = [1] * len(deps)
        own[deps.index(ch.axis)] = ax.n_states
        mean = np.broadcast_to(ch.log_median + lat_mean.reshape(own), shape).copy()
        for e in ch.effects:
            sh = [1] * len(deps)
            sh[deps.index(e.axis)] = e.shift.size
            mean = mean + e.shift.reshape(sh)
        sd = np.broadcast_to(np.sqrt(lat_var + noise).reshape(own), shape)
        # components with the same mean and sd merged (most grid points share them)
        keep = w.ravel() > 0
        comp, inv = np.unique(np.round(np.stack([mean.ravel()[keep], sd.ravel()[keep]], 1), 12),
                              axis=0, return_inverse=True)
        weight = np.bincount(inv.ravel(), weights=w.ravel()[keep]) / w.sum()
        out.append((np.log(weight), comp[:, 0].copy(), comp[:, 1].copy()))
    return tuple(out)


def _healthy_effect(model: CompiledModel, channel: Channel, sex: str | None) -> float:
    """The mean state effect on a channel over the healthy states of a person of this sex
    (the states of no condition, not a phase of the cycle, not macroprolactinaemia)."""
    out = 0.0
    for eff in channel.effects:
        ax = model.axes[eff.axis]
        healthy = [
            i for i, s in enumerate(ax.states)
            if not ax.condition_of[i] and (sex is None or ax.sex[i] in (None, sex))
            and not (ax.only_with and ax.only_with[i]) and s != "macroprolactinemia"
        ]
        out += float(np.mean(eff.shift[healthy]))
    return out


def restrict(model: CompiledModel, keep: dict[int, np.ndarray]) -> CompiledModel:
    """A view of the model with some axes cut to a subset of their states.

    Used when a state is impossible for a patient (the other sex's gonadal states): the
    joint tensor shrinks and every table is sliced alike, so results are unchanged.
    """
    axes = list(model.axes)
    for ai, idx in keep.items():
        ax = axes[ai]
        idx = np.asarray(idx)
        axes[ai] = replace(
            ax, states=tuple(ax.states[i] for i in idx), sex=tuple(ax.sex[i] for i in idx),
            only_with=tuple(ax.only_with[i] for i in idx) if ax.only_with else (),
            not_with=tuple(ax.not_with[i] for i in idx) if ax.not_with else (),
            condition_of=tuple(ax.condition_of[i] for i in idx), lat_mean=ax.lat_mean[idx],
            lat_cov=ax.lat_cov[idx],
            # indices into the full axis, also for a view of a view
            kept=tuple(int(i) if ax.kept is None else ax.kept[i] for i in idx))

    def cut_effects(effects):
        return tuple(replace(e, shift=e.shift[keep[e.axis]]) if e.axis in keep else e
                     for e in effects)

    channels = tuple(
        replace(c, effects=cut_effects(c.effects),
                amp=c.amp[keep[c.amp_axis]] if c.amp_axis in keep else c.amp)
        for c in model.channels)
    table = model.symptom_table
    table = replace(table, state_mask=tuple(
        m[keep[ai]] if ai in keep else m for ai, m in enumerate(table.state_mask)))
    cond_states = tuple(
        m[keep[a]] if a in keep else m for a, m in zip(model.cond_axis, model.cond_states, strict=True))
    context_latents = tuple(
        replace(cl, mean_shift=cl.mean_shift[keep[cl.axis]], sd_scale=cl.sd_scale[keep[cl.axis]])
        if cl.axis in keep else cl for cl in model.context_latents)
    base = model.prior_base_override
    if base is not None:
        base = {ax.name: (base[ax.name][keep[ai]] if ai in keep else base[ax.name])
                for ai, ax in enumerate(model.axes)}
    return replace(
        model, axes=tuple(axes), channels=channels, cond_states=cond_states,
        log1m_cause=tuple(t[keep[ai]] if ai in keep else t for ai, t in enumerate(model.log1m_cause)),
        symptom_table=table, context_latents=context_latents, prior_base_override=base)


@lru_cache(maxsize=64)
def view_for_sex(model: CompiledModel, sex: str | None,
                 gates: frozenset[str] | None = None) -> CompiledModel:
    """The model without the states a patient of this sex cannot be in (``None``: all); its
    gross-error density (``gross_mix``) is that sex's population's.

    With ``gates`` (the patient's context flags that open or close gated states,
    :func:`gates_of`) the states those flags rule out are cut too (``None``: gated states
    kept; their prior alone rules them out, :func:`~neb_bayes.model.prior.modifier_log_odds`).
    """
    keep = {}
    for ai, ax in enumerate(model.axes):
        ok = ax.allowed(sex, gates)
        if not ok.all():
            keep[ai] = np.flatnonzero(ok)
    if not keep:
        return model
    view = restrict(model, keep)
    return view if sex is None else replace(view, gross_mix=model.gross_mix_for(sex))


def gates_of(model: CompiledModel, flags: Collection[str]) -> frozenset[str]:
    """The context flags among ``flags`` that open or close a gated state of the model (the
    key of a patient's view beside the sex, :func:`view_for_sex`)."""
    gates = _gate_flags(model)
    return gates.intersection(flags) if gates else gates


@lru_cache(maxsize=64)
def _gate_flags(model: CompiledModel) -> frozenset[str]:
    return frozenset().union(*(ax.gate_flags for ax in model.axes))


def _flag_set(value: str | list[str] | None) -> frozenset[str] | None:
    """A state's ``only_with`` / ``not_with``: one flag or a list of them."""
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def keep_within(view: CompiledModel, model: CompiledModel) -> dict[int, np.ndarray]:
    """The state indices of ``model`` that its restricted ``view`` kept, per axis it cut
    (:func:`sex_keep` when ``model`` is the full model)."""
    out = {}
    for ai, (ax, outer) in enumerate(zip(view.axes, model.axes, strict=True)):
        if ax.n_states == outer.n_states:
            continue
        where = {k: i for i, k in enumerate(outer.kept or range(outer.n_states))}
        out[ai] = np.array([where[k] for k in ax.kept])
    return out


def sex_keep(model: CompiledModel) -> dict[int, np.ndarray]:
    """The state indices a restricted view kept, per restricted axis."""
    return {ai: np.array(ax.kept) for ai, ax in enumerate(model.axes) if ax.kept is not None}


#: compiled models by (prior set file, fingerprint of its tables), most recent last
_COMPILED: OrderedDict[tuple[str, str], CompiledModel] = OrderedDict()
_COMPILED_MAX = 16


def load_model(path: str | Path | None = None) -> CompiledModel:
    """The compiled model of a prior set file (default: shipped priors), cached per file and
    content: a file written again is read (:func:`~neb_bayes.model.spec.load_spec`) and,
    when its tables changed, compiled again."""
    spec = load_spec(path)
    key = (spec.source, spec.fingerprint)
    model = _COMPILED.get(key)
    if model is None:
        model = _COMPILED[key] = compile_spec(spec)
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return model
