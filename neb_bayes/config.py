"""Settings neb_bayes pins itself, never taken from a library's global defaults.

ArviZ changed its default interval between releases (0.94 HDI -> 0.89 ETI); a clinical report
must not change with a dependency upgrade, so the interval kind and probability live here.
"""

from __future__ import annotations

from functools import cache

INTERVAL_PROB: float = 0.9
"""Probability mass of every credible interval neb_bayes reports."""

INTERVAL_KIND: str = "equal-tailed"
"""Kind of every credible interval neb_bayes reports."""

REPORT_FORMAT: int = 1
"""Version of the JSON report layout (shared/spec/conditions.md)."""

LEADING_THRESHOLD: float = 0.05
"""Conditions at or above this probability get an evidence breakdown in reports."""

SUSPECT_RESULT_THRESHOLD: float = 0.1
"""Results at or above this posterior probability of being a gross error (a sample mix-up or
other wrong result, prior set ``gross_error``) are listed under ``suspect_results``."""

BEYOND_STATES_Z: float = 4.0
"""An observed result further than this many standard deviations from its expected level in
every state the patient can be in (beyond ~99.99 % of each state's range) is listed under
``suspect_results`` as lying beyond every state of the model, whatever its probability of
being a gross error: the probabilities read it as the nearest state, and a value that far out
may have a cause the model does not include (e.g. a woman's testosterone of 15 nmol/L)."""

OTHER_STATE_THRESHOLD: float = 0.2
"""An axis state that is neither normal nor a condition (e.g. macroprolactinaemia, low T3
without thyroid disease) is named in the report's "other readings" from this posterior
probability."""

NUTS_RHAT_MAX: float = 1.01
"""``--method nuts``: a state combination whose chains have a larger R-hat is flagged as weak
(its latent draws are not to be trusted) in every report format."""

NUTS_ESS_MIN: float = 100.0
"""``--method nuts``: a state combination whose smallest bulk effective sample size is below
this is flagged as weak."""

REPORT_DRAW_THREADS: int = 2
"""Threads one report uses for its parameter draws (each computes a share of the draws; the
probabilities do not depend on it): lower latency for a clinician's single report on a
machine with cores to spare (never more than ``os.cpu_count()``).  Batch workers use one."""

ADULT_AGE_YEARS: float = 18.0
"""The youngest age the model is for: its reference intervals, priors and prevalences are
for adults (prior set ``description``; shared/clinical/facts.md §1 "Adult reference
intervals").  A younger patient's case is read, with a warning in every report and in
``check`` that its results are not valid for children."""

RAISED_ODDS_RATIO: float = 10.0
"""``next-test``: a condition whose posterior odds are at least this many times its prior odds
(the patient's prior: sex, age and context included) is a target, "suspicion raised", even
below the 1 % at which a condition counts as uncertain and on an axis without results.  Ten is
the weight of one positive high-accuracy test: the likelihood ratio from which evidence counts
as a large, often conclusive change (Jaeschke, Guyatt & Sackett, JAMA 1994;271:703, Users'
guides III B: LR > 10 or < 0.1), and about the positive likelihood ratio of each Cushing's
screening test (1 mg DST 10.5, UFC 13.3, late-night salivary cortisol 14.6; Galm 2020,
shared/clinical/facts.md §4a).  Findings that move a rare condition as far as a positive
screening test would are worth that test; the Cushing's guideline asks to test a patient with
several features of high discriminatory value (Nieman 2008), and Cushingoid signs alone take
Cushing's from ~0.006 % to ~1 % in the model.  A
lower ratio lets nonspecific symptoms make targets of rare conditions: at 10 the one
borderline case among the shipped examples is nausea and fatigue in early pregnancy raising
secondary adrenal insufficiency 10.5-fold to 0.2 %.  The other examples it adds targets to are
mostly another pituitary axis in pituitary disease (secondary adrenal insufficiency or central
hypothyroidism beside hyperprolactinaemia, secondary hypogonadism or central hypothyroidism),
whose assessment in pituitary disease the hypopituitarism guideline sets out (Fleseriu 2016,
facts §4b)."""

RAISED_MIN_PROBABILITY: float = 0.001
"""``next-test``: a raised-suspicion target (:data:`RAISED_ODDS_RATIO`) must also have at least
this probability.  Below 1 in 1,000 a condition is negligible in absolute terms even after a
large rise, and the reports print it as "<0.1 %" (:func:`neb_bayes.report.format.pct`): a
target would name a condition the same report shows as not there.  Both subtypes of a
condition count separately, so the floor is well below the 1 % of "uncertain": with
Cushingoid signs the ACTH-independent subtype is ~0.3 %."""

ESTABLISHED_PROBABILITY: float = 0.9
"""``next-test``: a condition family (``neb_bayes/vocab/condition_families.yaml``: Cushing's,
adrenal insufficiency, male hypogonadism) counts as established at this probability or more;
below it next-test asks only whether the disease is present, not which subtype (presence
before subtype: Nieman 2008 measures ACTH once hypercortisolism is established, after two
concordant abnormal screening tests, which with Cushingoid signs read it ~95 %; one abnormal
test reads it ~60 %)."""

DISCLAIMER: str = (
    "Decision support only: these probabilities come from a statistical model of population "
    "data and the results given. They are not a diagnosis. Treatment decisions need a "
    "clinician who knows the patient."
)


@cache
def package_version() -> str:
    """The installed neb_bayes version (``0+unknown`` when run from a source tree that is not
    installed).  Here, not in :mod:`neb_bayes.api`, so that asking needs no engine import
    (the batch driver records it in its manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neb_bayes")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"
