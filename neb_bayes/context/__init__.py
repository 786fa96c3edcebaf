"""Recognise medications, context and physiology that change how results read.

:func:`read_context` turns a case's patient block (medications, free-text context, pregnancy,
menopausal status, menstrual phase, age) into context *flags* with a strength in [0, 1].  The
flags are what the prior set's ``context_effects`` table and prevalence modifiers refer to;
this module only recognises, it applies nothing.  Whatever it cannot recognise is listed as
not used; negated mentions ("no glucocorticoid exposure", "hCG negative") are noted and not
applied.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from neb_bayes.case.menstrual import phase_from_cycle_day, read_menstrual_phase
from neb_bayes.case.model import Case, NotUsed

TERMS_FILE = Path(__file__).with_name("terms.yaml")
#: Why a medication none of whose words is a term is not used: the engine knows only the
#: medications that change endocrine results, so it cannot tell a drug without such an effect
#: from a misspelt one.
UNRECOGNISED_MEDICATION = (
    "medication '{text}' not recognised: not one of the medications this model knows to "
    "change endocrine results (`neb-bayes vocab context` lists them); if it is one, check "
    "its spelling")
#: Why a context mention that says it is not known yet is not used
UNCERTAIN_CONTEXT = (
    "context '{text}': {label} is mentioned as not known yet (possible, pending, to be "
    "excluded): not read as a fact; give it as one when it is known")
_NEGATION = re.compile(r"\b(no|not|denies|denied|negative|without|never|nil|none)\b", re.I)
#: after a term, in its clause: what says the thing is absent ("pregnancy excluded")
_NEGATION_AFTER = re.compile(r"\b(negative|excluded|ruled out|unlikely|absent)\b", re.I)
#: in a term's clause: what says it is not known yet ("possible pregnancy", "pregnancy test
#: pending", "pregnancy to be excluded"): such a mention is not read as a fact
_UNCERTAIN = re.compile(
    r"(\?|\b(possible|possibly|suspected|suspicion|query|queried|pending|awaited|"
    r"probable|probably|likely|maybe|to be (excluded|ruled out|confirmed)|rule out|r/o|if)\b)",
    re.I)
_STOPPED = re.compile(
    r"\b(stopped|discontinued|withdrawn|withdrawal|tapered off|ceased|came off|off since|"
    r"weaned|finished)\b", re.I)
_DOSE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mg|mcg|µg|μg|ug|g)\b", re.I)
_WEEK = re.compile(r"(?:week|wk|gw)\s*(\d{1,2})|(\d{1,2})\s*(?:weeks?|wks?)\b", re.I)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})")
#: NICE NG23 1.2.1: a woman over 45 who has not had a period for at least 12 months (and is
#: not on hormonal contraception) is postmenopausal, without laboratory tests
MENOPAUSE_MIN_AGE = 45.0
MENOPAUSE_AMENORRHOEA_MONTHS = 12.0
#: with no menopausal status and nothing else to go by, a woman this old is taken as
#: postmenopausal
ASSUMED_POSTMENOPAUSAL_AGE = 55.0
#: from this age, a woman with no menopausal status and no cycle history is read as in the
#: menopause transition or after (``perimenopausal``: gonadotropins variable, often high),
#: not as a cycling woman: the transition begins at a median ~47 and the final period comes
#: at a median 52.5 (SWAN, Gold 2013), ~90 % of women have had it by 55 (NHANES figures), so
#: at 45-54 most women are in the transition or after it; NICE NG23 reads the transition
#: from 45 on symptoms alone (priors/default.yaml: sources c_transition_age)
TRANSITION_MIN_AGE = MENOPAUSE_MIN_AGE
#: from this age to :data:`TRANSITION_MIN_AGE`, a woman whose cycle text shows her cycling
#: (a phase, a cycle day or regular cycles, no disturbance) is in the late reproductive stage
#: (``late_reproductive``: STRAW+10 -3b/-3a, regular cycles with a variable, sometimes raised
#: early-follicular FSH; priors/default.yaml: sources c_late_reproductive)
LATE_REPRODUCTIVE_MIN_AGE = 40.0
#: Age before which no cycle is assumed (menarche: median ~12.5 y in girls of European
#: descent; below this a phase is not summed over)
MENARCHE_AGE = 12.0
#: context flags under which the ovary does not cycle (or its phase does not matter): then no
#: unknown phase is summed over (:func:`_read_unknown_phase`)
NO_CYCLE_FLAGS = frozenset({"pregnancy_any", "postmenopausal", "perimenopausal", "oral_estrogen",
                            "breastfeeding", "ovulatory_phase", "luteal_phase",
                            "depot_medroxyprogesterone"})
#: cycle disturbances that, from :data:`TRANSITION_MIN_AGE`, are the menopause transition by
#: definition: STRAW+10 stages the early transition by a persistent >= 7-day difference in the
#: length of consecutive cycles and the late transition by >= 60 days without a period
#: (Harlow et al., Menopause/JCEM 2012), and NICE NG23 1.2.1 diagnoses the perimenopause in
#: women over 45 from irregular periods (priors/default.yaml: sources c_transition_age)
TRANSITION_DISTURBANCES = frozenset({"irregular", "oligomenorrhoea", "amenorrhoea", "amenorrhea"})
#: symptoms that are a stage's physiology, not evidence of a condition: the menopause
#: transition is defined by variable cycles and 60 days or more without a period (STRAW;
#: Harlow et al., ReSTAGE, Climacteric 2007), after menopause there are no periods, suckling
#: suppresses ovulation and the periods while breastfeeding (lactational amenorrhoea;
#: McNeilly, Endocrinol Metab Clin North Am 1993; priors/default.yaml: sources
#: c_lactation_gonadal), a pregnancy has no periods, and nausea and vomiting come with most
#: first trimesters (69 % of pregnancies, meta-analysis of 59 studies, Einarson et al., J Popul
#: Ther Clin Pharmacol 2013; 89 % in early pregnancy, 99 % of them starting in the first
#: trimester, Chan et al., Matern Child Health J 2011), so they tell nothing of the adrenal or
#: other axes there; combined hormonal contraception suppresses ovulation through the
#: hypothalamus and pituitary, its bleeds are withdrawal bleeds, and absent ones ("pill
#: amenorrhoea", a thin endometrium) are benign (Nguyen & Jacobson, Managing Contraception
#: 2016), so on oral estrogen (the combined pill, HRT) the bleeding pattern tells nothing
#: of the ovary either; nor on progestogen-only contraception, whose main adverse effect is
#: poor cycle control (context/terms.yaml: progestogen_contraception)
PHYSIOLOGICAL_SYMPTOMS = {"perimenopausal": ("amenorrhea", "oligomenorrhea"),
                          "oral_estrogen": ("amenorrhea", "oligomenorrhea"),
                          "progestogen_contraception": ("amenorrhea", "oligomenorrhea"),
                          "postmenopausal": ("amenorrhea", "oligomenorrhea"),
                          "breastfeeding": ("amenorrhea", "oligomenorrhea"),
                          "pregnancy_any": ("amenorrhea", "oligomenorrhea"),
                          "pregnancy_t1": ("nausea",)}
#: how a stage of :data:`PHYSIOLOGICAL_SYMPTOMS` is named in a report (else its flag)
STAGE_NAMES = {"pregnancy_any": "pregnancy", "pregnancy_t1": "first-trimester pregnancy",
               "oral_estrogen": "oral estrogen (the combined pill, HRT)",
               "progestogen_contraception": "progestogen-only contraception"}
#: context flags the cycle text may name ("lactational amenorrhoea", "postpartum,
#: breastfeeding"), read there as in the free-text context
CYCLE_TEXT_FLAGS = ("breastfeeding",)


@dataclass(frozen=True)
class FlagInfo:
    flag: str
    label: str
    kind: str
    terms: tuple[str, ...]
    when_stopped: str | None
    implies: tuple[str, ...]
    overrides: tuple[str, ...]


@cache
def flag_table() -> dict[str, FlagInfo]:
    """Every context flag the engine can recognise, with its terms."""
    raw = yaml.load(TERMS_FILE.read_text(encoding="utf-8"),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["flags"]
    return {
        k: FlagInfo(
            flag=k, label=v["label"], kind=v["kind"],
            terms=tuple(t.lower() for t in v.get("terms", [])),
            when_stopped=v.get("when_stopped"), implies=tuple(v.get("implies", [])),
            overrides=tuple(v.get("overrides", [])),
        )
        for k, v in raw.items()
    }


@cache
def _patterns() -> list[tuple[str, re.Pattern]]:
    out = []
    for info in flag_table().values():
        for term in info.terms:
            # a term ends at a non-letter: "levothyroxine100mcg" names levothyroxine
            out.append((info.flag, re.compile(
                r"(?<![\w-])" + re.escape(term) + r"(?![^\W\d_]|-)", re.I)))
    return out


@dataclass
class ContextReading:
    """What the patient block says about context, as flags with strengths."""

    flags: dict[str, float] = field(default_factory=dict)
    details: dict[str, dict] = field(default_factory=dict)
    recognised: list[dict] = field(default_factory=list)
    negated: list[dict] = field(default_factory=list)
    not_used: list[NotUsed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra_symptoms: set[str] = field(default_factory=set)
    #: what was assumed to read an item, as "accounted for" entries (``flag``, ``text``,
    #: ``items``), e.g. the phase a cycle day written alone was read as
    assumptions: list[dict] = field(default_factory=list)

    def set(self, flag: str, strength: float, item: str, text: str) -> None:
        strength = max(0.0, min(1.0, strength))
        if strength <= 0:
            return
        self.flags[flag] = max(self.flags.get(flag, 0.0), strength)
        self.recognised.append({"item": item, "flag": flag, "label": flag_table()[flag].label,
                                "strength": round(strength, 3), "text": text})
        for implied in flag_table()[flag].implies:
            self.flags[implied] = max(self.flags.get(implied, 0.0), strength)


def _fold(text: str) -> str:
    """``text`` without accents ("Lévothyrox" -> "Levothyrox"), as terms are matched."""
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _match(text: str) -> list[tuple[str, int]]:
    """Flags named in a text (accent-folded first: :func:`_fold`) and where each term starts."""
    hits = []
    for flag, pat in _patterns():
        for m in pat.finditer(text):
            hits.append((flag, m.start()))
    return hits


def _first_hits(hits: list[tuple[str, int]]) -> list[tuple[str, int]]:
    first: dict[str, int] = {}
    for flag, pos in hits:
        first[flag] = min(pos, first.get(flag, pos))
    return sorted(first.items(), key=lambda kv: kv[1])


def _clause(text: str, pos: int) -> tuple[str, str]:
    """The parts of the term's clause before and after ``pos`` (a clause ends at "." or ";"
    and at "but"/"except"; a parenthesis is an aside about something else: "pregnant
    (dating scan pending)")."""
    cut = r"[.;]|\bbut\b|\bexcept\b"
    before, after = re.split(cut, text[:pos])[-1], re.split(cut, text[pos:])[0]
    return re.sub(r"\([^)]*\)?", " ", before), re.sub(r"\([^)]*\)?", " ", after)


def _negated(text: str, pos: int) -> bool:
    """Whether the term at ``pos`` is negated: a negation before it in its clause governs
    the rest of it ("no X, Y or Z"); after it, words that say it is absent ("pregnancy
    excluded", "hCG negative"), unless they say it is still to be found out."""
    before, after = _clause(text, pos)
    if _NEGATION.search(before):
        return True
    return bool(_NEGATION_AFTER.search(after)) and not _uncertain(text, pos)


def _uncertain(text: str, pos: int) -> bool:
    """Whether the term's clause says it is not known yet ("possible pregnancy", "pregnancy
    test pending", "pregnancy to be excluded")."""
    before, after = _clause(text, pos)
    return bool(_UNCERTAIN.search(before) or _UNCERTAIN.search(after))


def _dose_mg(text: str) -> float | None:
    m = _DOSE.search(text)
    if not m:
        return None
    v = float(m.group(1).replace(",", "."))
    unit = m.group(2).lower()
    return v * {"mg": 1.0, "g": 1000.0}.get(unit, 1e-3)


def _hour(text: str | None) -> float | None:
    if not text:
        return None
    m = _CLOCK.match(str(text).strip())
    if not m:
        t = re.search(r"T(\d{2}):(\d{2})", str(text))
        if not t:
            return None
        return int(t.group(1)) + int(t.group(2)) / 60
    return (int(m.group(1)) % 24) + int(m.group(2)) / 60


def _biotin_strength(dose: float | None, reading: ContextReading, item: str) -> float:
    """Interference strength of a biotin dose (facts §4c: effects from 100-500 ng/mL serum)."""
    if dose is None:
        reading.warnings.append(f"{item}: biotin dose not given; interference assumed moderate")
        return 0.5
    if dose >= 5.0:
        return 1.0
    if dose >= 1.0:
        return 0.4
    return 0.0


def _read_medication(reading: ContextReading, i: int, med) -> None:
    item = f"patient.medications[{i}]"
    raw = med.raw
    written = med.name if isinstance(raw, dict) else str(raw)
    text = _fold(written)
    status = str(raw.get("status", "")) if isinstance(raw, dict) else ""
    full = " ".join([text, status] + ([str(v) for v in raw.values()] if isinstance(raw, dict) else []))
    hits = _match(text)
    if not hits:
        reading.not_used.append(NotUsed(item, UNRECOGNISED_MEDICATION.format(text=written)))
        return
    stopped = bool(_STOPPED.search(full)) or status.lower() in {"stopped", "withdrawn", "discontinued"}
    for flag, pos in _first_hits(hits):
        info = flag_table()[flag]
        if _negated(text, pos):
            reading.negated.append({"item": item, "flag": flag, "text": text})
            continue
        if stopped:
            if info.when_stopped:
                days = raw.get("stopped_days_ago") if isinstance(raw, dict) else None
                strength = 1.0 if days is None else (1.0 if days <= 180 else 0.5)
                reading.set(info.when_stopped, strength, item, f"{text} (stopped)")
            else:
                reading.negated.append({"item": item, "flag": flag, "text": f"{text} (stopped)"})
            continue
        strength = 1.0
        if flag == "biotin":
            dose = med.dose_mg_per_day if med.dose_mg_per_day is not None else _dose_mg(full)
            strength = _biotin_strength(dose, reading, item)
            reading.details["biotin"] = {"dose_mg_per_day": dose,
                                         "last_dose_hour": _hour(med.last_dose)}
            if strength == 0:
                reading.negated.append({"item": item, "flag": flag,
                                        "text": f"{text}: dose too low to interfere"})
                continue
        if flag == "levothyroxine" and med.last_dose:
            reading.details["levothyroxine"] = {"last_dose_hour": _hour(med.last_dose)}
        reading.set(flag, strength, item, text)


def _read_context_item(reading: ContextReading, i: int, text: str) -> None:
    item = f"patient.context[{i}]"
    written, text = text, _fold(text)
    hits = _match(text)
    if not hits:
        reading.not_used.append(NotUsed(item, f"context '{written}' not recognised"))
        return
    for flag, pos in _first_hits(hits):
        if _negated(text, pos):
            reading.negated.append({"item": item, "flag": flag, "text": text})
            continue
        if _uncertain(text, pos):
            reading.not_used.append(NotUsed(item, UNCERTAIN_CONTEXT.format(
                text=written, label=flag_table()[flag].label)))
            continue
        if flag == "pregnancy":
            m = _WEEK.search(text)
            week = float(m.group(1) or m.group(2)) if m else None
            reading.details.setdefault("pregnancy", {})["week"] = week
            reading.details["pregnancy"]["item"] = item
            continue
        if flag == "fasting" and any(f == "non_fasting" for f, _ in hits):
            continue
        stopped = bool(_STOPPED.search(text))
        info = flag_table()[flag]
        if stopped and info.kind == "medication":
            if info.when_stopped:
                reading.set(info.when_stopped, 1.0, item, text)
            continue
        reading.set(flag, 1.0, item, text)


def _trimester(week: float | None) -> str:
    if week is None:
        return "pregnancy_unknown_trimester"
    if week < 14:
        return "pregnancy_t1"
    if week < 28:
        return "pregnancy_t2"
    return "pregnancy_t3"


def read_context(case: Case) -> ContextReading:
    """Recognise every context flag in a case's patient block."""
    p = case.patient
    reading = ContextReading()
    for i, med in enumerate(p.medications):
        _read_medication(reading, i, med)
    for i, text in enumerate(p.context):
        _read_context_item(reading, i, str(text))
    # the menstrual phase first: "pregnant" there is pregnancy, as in the free text
    _read_menstrual(reading, case)
    # pregnancy: the patient fields win over free text
    preg_text = reading.details.get("pregnancy")
    pregnant = p.pregnant
    if pregnant is None and preg_text is not None:
        pregnant = True
    if pregnant:
        week = p.gestational_week
        if week is None and preg_text:
            week = preg_text.get("week")
        lmp = getattr(_menstrual_reading(case), "days_since_lmp", None)
        if week is None and lmp is not None and 0 <= lmp <= 45 * 7:
            # dated from the LMP (Naegele: gestational age in weeks since its first day)
            week = round(lmp / 7.0, 1)
            reading.assumptions.append({
                "flag": "pregnancy", "items": ["patient.menstrual_phase"],
                "text": f"gestational week {week:g} counted from the LMP to the first sample"})
        tri = _trimester(week)
        item = "patient.pregnant" if p.pregnant else preg_text["item"]
        reading.set("pregnancy_any", 1.0, item, "pregnant")
        reading.set(tri, 1.0, item, f"gestational week {week:g}" if week is not None else "pregnant")
        if week is None:
            reading.warnings.append("pregnant but gestational week not given: pregnancy effects "
                                    "read with trimester-averaged, wider adjustments")
    if p.sex == "F" and not pregnant:
        _read_menopause(reading, case)
    _read_unknown_phase(reading, case)
    _label_physiology(reading)
    # a critical-illness flag gives way to the recovery flag when both are named
    for info in flag_table().values():
        if info.flag in reading.flags:
            for other in info.overrides:
                reading.flags.pop(other, None)
    return reading


def _read_menopause(reading: ContextReading, case: Case) -> None:
    """Menopause: the status as given (or as the cycle text names it); without one,
    postmenopausal after 12 months without a period past 45 (NICE NG23), or from age alone
    (55); from 45 with no cycle history either, in the transition or after it
    (:data:`TRANSITION_MIN_AGE`); from 40 to 45, with a cycle written without a disturbance,
    in the late reproductive stage (:data:`LATE_REPRODUCTIVE_MIN_AGE`); from 45,
    premenopausal or with a cycle written, in the transition when the periods are irregular
    or absent, else still cycling at the age of ovarian ageing (:func:`_read_midlife_cycle`).
    From 45 on oral estrogen (the combined pill), premenopausal or no status: the pill hides
    the stage (NICE NG23 1.2.4), read as in the transition or after it.  A status "n/a" tells
    no stage: read as not given.  In the transition and after
    menopause, irregular or absent periods are physiology: the cycle text's disturbance is
    then no evidence of a condition (:data:`PHYSIOLOGICAL_SYMPTOMS`)."""
    p = case.patient
    status = (p.menopausal_status or "").lower()
    if status == "n/a":
        # "not applicable" tells no stage: read as a status not given
        status = ""
    months = _amenorrhoea_months(case)
    if status.startswith("post"):
        reading.set("postmenopausal", 1.0, "patient.menopausal_status", status)
    elif not status and _cycle_phase(case) == "postmenopausal":
        # the cycle text says it ("postmenopausal for 3 years"): as the status field would
        reading.set("postmenopausal", 1.0, "patient.menstrual_phase", p.menstrual_phase)
    elif status.startswith("peri"):
        reading.set("perimenopausal", 1.0, "patient.menopausal_status", status)
    elif (not status and p.age is not None and p.age >= MENOPAUSE_MIN_AGE
          and months is not None and months >= MENOPAUSE_AMENORRHOEA_MONTHS
          and "oral_estrogen" not in reading.flags):
        reading.set("postmenopausal", 1.0, "patient.menstrual_phase",
                    f"age {p.age:g}, no period for {months:g} months: postmenopausal")
        reading.warnings.append("menopausal status not given; postmenopausal read from age and "
                                f"{MENOPAUSE_AMENORRHOEA_MONTHS:g} months without a period")
    elif not status and p.age is not None and p.age >= ASSUMED_POSTMENOPAUSAL_AGE:
        reading.set("postmenopausal", 1.0, "patient.age",
                    f"age {p.age:g} with no menopausal status: assumed postmenopausal")
        reading.warnings.append("menopausal status not given; assumed postmenopausal from age")
    elif (not status and p.age is not None and p.age >= TRANSITION_MIN_AGE
          and not _cycle_history(case) and "oral_estrogen" not in reading.flags):
        reading.set("perimenopausal", 1.0, "patient.age",
                    f"age {p.age:g} with no menopausal status or cycle history: read as in "
                    "the menopause transition or after it")
        reading.warnings.append(
            "menopausal status and cycle not given; at this age read as in the menopause "
            "transition or after it (gonadotropins variable, often high); give the status "
            "or the cycle if known")
    elif status in ("", "premenopausal") and p.age is not None:
        _read_late_cycling_years(reading, case)


def _read_unknown_phase(reading: ContextReading, case: Case) -> None:
    """A woman (or a patient of unknown sex) who may be cycling and whose phase is not
    written (no phase, or a cycle day that does not settle one): ``cycle_phase_unknown``,
    which opens the healthy ovary's ovulatory and luteal states beside its follicular
    baseline (prior set: sources c_cycle_phases), so that a mid-cycle LH surge or a luteal
    progesterone reads as the phase it may be.  Not where the cycle is known not to run
    (:data:`NO_CYCLE_FLAGS`, a cycle disturbance written, a phase such as amenorrhoeic or
    on hormonal contraception) or before :data:`MENARCHE_AGE`."""
    p = case.patient
    if (p.sex == "M" or NO_CYCLE_FLAGS.intersection(reading.flags)
            or (p.age is not None and p.age < MENARCHE_AGE)):
        return
    r = _menstrual_reading(case)
    if r is not None and r.disturbance is not None:
        return
    if reading.details.get("cycle", {}).get("phase") not in (None, "unknown"):
        return
    item = "patient.menstrual_phase" if p.menstrual_phase else "patient.sex"
    reading.set("cycle_phase_unknown", 1.0, item,
                "cycle phase not given: the healthy ovary read over the cycle's phases")


def _read_late_cycling_years(reading: ContextReading, case: Case) -> None:
    """A woman of known age, premenopausal or without a status, not read by the rules of
    :func:`_read_menopause` before: from :data:`TRANSITION_MIN_AGE` on oral estrogen the
    stage is hidden (the pill's withdrawal bleeds and suppressed FSH, NICE NG23 1.2.4: read
    as in the transition or after it), otherwise :func:`_read_midlife_cycle`; from
    :data:`LATE_REPRODUCTIVE_MIN_AGE`, off the pill, with a cycle written without a
    disturbance, the late reproductive stage."""
    p = case.patient
    on_pill = "oral_estrogen" in reading.flags
    if p.age >= TRANSITION_MIN_AGE and on_pill:
        reading.set("perimenopausal", 1.0, "patient.age",
                    f"age {p.age:g} on oral estrogen: stage not known (the pill hides the "
                    "cycle and FSH); read as in the menopause transition or after it")
    elif p.age >= TRANSITION_MIN_AGE:
        _read_midlife_cycle(reading, case)
    elif (p.age >= LATE_REPRODUCTIVE_MIN_AGE and not on_pill and _cycle_history(case)
          and _menstrual_reading(case).disturbance is None
          and _cycle_phase(case) in (None, "follicular", "ovulatory", "luteal")):
        reading.set("late_reproductive", 1.0, "patient.menstrual_phase",
                    f"age {p.age:g}, cycling: late reproductive stage (FSH variable)")


def _read_midlife_cycle(reading: ContextReading, case: Case) -> None:
    """A woman from :data:`TRANSITION_MIN_AGE` not read as postmenopausal or perimenopausal
    by the rules before (status premenopausal, or a cycle written): irregular, infrequent or
    absent periods are the menopause transition by definition
    (:data:`TRANSITION_DISTURBANCES`: ``perimenopausal``); otherwise she is still cycling at
    the age of ovarian ageing (``ovarian_ageing``: the late reproductive stage or the early
    transition, in which FSH is variable and can be high, STRAW+10), whatever the status
    says."""
    p = case.patient
    r = _menstrual_reading(case)
    disturbance = getattr(r, "disturbance", None)
    if disturbance in TRANSITION_DISTURBANCES:
        reading.set("perimenopausal", 1.0, "patient.menstrual_phase",
                    f"age {p.age:g} with {disturbance} periods: the menopause transition "
                    "(STRAW+10; NICE NG23)")
    else:
        item = "patient.menopausal_status" if p.menopausal_status else "patient.age"
        reading.set("ovarian_ageing", 1.0, item,
                    f"age {p.age:g}, still cycling: ovarian ageing (late reproductive stage "
                    "or early menopause transition; FSH variable, can be high)")


def _label_physiology(reading: ContextReading) -> None:
    """The cycle text's disturbances that are a stage's physiology
    (:func:`physiological_symptoms`) taken out of the evidence and labelled so."""
    for symptom, stage in physiological_symptoms(reading.flags).items():
        if symptom not in reading.extra_symptoms:
            continue
        reading.extra_symptoms.discard(symptom)
        for entry in reading.recognised:
            if entry.get("flag") == f"symptom:{symptom}":
                entry["label"] = f"{symptom} ({stage}: physiology, not evidence)"


def physiological_symptoms(flags: Collection[str]) -> dict[str, str]:
    """The symptoms that are physiology, not evidence, under a reading's flags, each with the
    stage that makes it so, as a report names it (:data:`PHYSIOLOGICAL_SYMPTOMS`: menopause,
    breastfeeding, pregnancy)."""
    return {symptom: STAGE_NAMES.get(stage, stage)
            for stage, symptoms in PHYSIOLOGICAL_SYMPTOMS.items()
            if stage in flags for symptom in symptoms}


def physiology_not_used(status: str, symptom: str, stage: str) -> NotUsed:
    """The not-used entry of a listed symptom that is ``stage``'s physiology
    (:func:`physiological_symptoms`), as the case reader and the batch's reader list it."""
    return NotUsed(f"symptoms.{status}: {symptom}", f"{stage} physiology, not evidence")


def _menstrual_reading(case: Case):
    """What the case reader read from the cycle text (None: no text, or nothing read)."""
    p = case.patient
    if not p.menstrual_phase:
        return None
    return p.menstrual or read_menstrual_phase(p.menstrual_phase)


def _cycle_phase(case: Case) -> str | None:
    """The phase the cycle text names (None: no text, or none named)."""
    return getattr(_menstrual_reading(case), "phase", None)


def _cycle_history(case: Case) -> bool:
    """Whether the cycle text says anything about the cycle (a phase, a cycle day, a
    disturbance, regular cycles); "unknown" or an unread text says nothing."""
    r = _menstrual_reading(case)
    if r is None:
        return False
    phase = _cycle_phase(case)
    return ((phase is not None and phase != "unknown") or r.cycle_day is not None
            or r.disturbance is not None or r.regular)


def _amenorrhoea_months(case: Case) -> float | None:
    """How long the cycle text says the periods have been absent (None: not written)."""
    r = _menstrual_reading(case)
    if r is None or r.disturbance not in {"amenorrhoea", "amenorrhea"}:
        return None
    return r.duration_months


def _read_menstrual(reading: ContextReading, case: Case) -> None:
    p = case.patient
    # what the case reader read from the text (None: it listed the text as not used)
    r = _menstrual_reading(case)
    if r is None:
        return
    item = "patient.menstrual_phase"
    if p.sex == "M":
        reading.not_used.append(NotUsed(item, "a menstrual phase is not read for sex M"))
        return
    phase = getattr(r, "phase", None)
    if (r.lmp_date is not None and r.cycle_day is None and r.duration_months is None
            and r.phase not in ("pregnant", "postpartum") and not p.pregnant):
        reading.not_used.append(NotUsed(
            item, f"LMP {r.lmp_date.isoformat()}: no cycle day counted (it needs a sample "
                  "collected as an ISO date-time within 60 days after it; from 3 months it "
                  "reads as amenorrhoea)"))
    if phase is None and r.cycle_day is not None:
        phase = _phase_of_day(reading, r, p.menstrual_phase)
    reading.details["cycle"] = {"phase": phase}
    text = _fold(p.menstrual_phase)
    for flag, pos in _first_hits(_match(text)):
        if flag in CYCLE_TEXT_FLAGS and not _negated(text, pos) and not _uncertain(text, pos):
            reading.set(flag, 1.0, item, p.menstrual_phase)
    if phase == "ovulatory":
        reading.set("ovulatory_phase", 1.0, item, p.menstrual_phase)
    elif phase == "luteal":
        reading.set("luteal_phase", 1.0, item, p.menstrual_phase)
    elif phase == "pregnant":
        _pregnant_phase(reading, p.pregnant, p.menstrual_phase)
    progestogen_only = re.search(r"progest(?:ogen|in)[- ]only|\bpop\b|mini[- ]?pill",
                                 p.menstrual_phase, re.I)
    if phase == "hormonal_contraception" and not progestogen_only:
        # combined pill, either week: CBG, SHBG and TBG stay raised in the pill-free week
        reading.set("oral_estrogen", 1.0, item, p.menstrual_phase)
    elif phase == "hormonal_contraception":
        reading.set("progestogen_contraception", 1.0, item, p.menstrual_phase)
    if getattr(r, "regular", False):
        # regular cycles written: ovarian insufficiency and central hypogonadism are defined
        # by absent or infrequent periods (prior set: sources c_regular_cycles)
        reading.set("regular_cycles", 1.0, item, p.menstrual_phase)
    disturbance = getattr(r, "disturbance", None)
    if disturbance in {"amenorrhoea", "amenorrhea"} or phase == "amenorrhoeic":
        reading.extra_symptoms.add("amenorrhea")
        reading.recognised.append({"item": item, "flag": "symptom:amenorrhea",
                                   "label": "amenorrhoea (evidence)", "strength": 1.0,
                                   "text": p.menstrual_phase})
    elif disturbance in {"oligomenorrhoea", "oligomenorrhea", "irregular", "anovulation"}:
        reading.extra_symptoms.add("oligomenorrhea")
        reading.recognised.append({"item": item, "flag": "symptom:oligomenorrhea",
                                   "label": "oligomenorrhoea (evidence)", "strength": 1.0,
                                   "text": p.menstrual_phase})


def _phase_of_day(reading: ContextReading, r, text: str) -> str | None:
    """The phase of a cycle day written without one (:func:`phase_from_cycle_day`), noted as
    an assumption; none with disturbed cycles or where the day does not settle it (then the
    day is listed as not used, with the reason)."""
    item = "patient.menstrual_phase"
    day = r.cycle_day
    if r.disturbance is not None:
        reading.not_used.append(NotUsed(
            item, f"cycle day {day}: no phase assumed with {r.disturbance} (cycles not regular)"))
        return None
    phase, basis = phase_from_cycle_day(day, r.cycle_length_days)
    if phase is None:
        reading.not_used.append(NotUsed(
            item, f"cycle day {day}: no phase written and the day does not settle one ({basis})"))
        return None
    baseline = " (the model's baseline phase)" if phase == "follicular" else ""
    reading.assumptions.append({
        "flag": "menstrual_phase", "items": [item],
        "text": f"cycle day {day} read as the {phase} phase{baseline}: {basis}"})
    return phase


def _pregnant_phase(reading: ContextReading, pregnant: bool | None, text: str) -> None:
    """A menstrual phase that says "pregnant": pregnancy, unless ``patient.pregnant`` says
    false (then the field wins, and the contradiction is a warning, not silence)."""
    item = "patient.menstrual_phase"
    if pregnant is False:
        reading.warnings.append(
            f"{item}: says pregnant while patient.pregnant is false; read as not pregnant "
            "(patient.pregnant wins), check the case")
        reading.not_used.append(NotUsed(item, "pregnant contradicts patient.pregnant: false"))
        return
    m = _WEEK.search(text)
    week = float(m.group(1) or m.group(2)) if m else None
    reading.details.setdefault("pregnancy", {"week": week, "item": item})


def hours_between(start: float | None, end: float | None) -> float | None:
    """Hours from a clock time to a later clock time (wrapping past midnight)."""
    if start is None or end is None:
        return None
    d = end - start
    return d + 24.0 if d < 0 else d


def decay(hours: float | None, full_hours: float, half_life: float) -> float:
    """1 up to ``full_hours`` after a dose, then exponential decay with ``half_life``."""
    if hours is None or hours <= full_hours:
        return 1.0
    return math.exp(-math.log(2) * (hours - full_hours) / half_life)
