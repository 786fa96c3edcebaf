"""When the draws path uses its numba-compiled kernels, and when their numpy counterparts.

The compiled kernels (:mod:`neb_bayes.tensor_kernels`, :mod:`neb_bayes.inference.draws_kernels`)
make each report with parameter draws 2-3x faster, but loading numba and its cached machine
code costs about 0.6-0.8 s once per process: more than a whole single-case report on the
numpy path.  So a process uses them once numba is loaded anyway (batch workers: the
vectorised engine needs it) or from its second report on (a service, a notebook); a one-shot
``neb-bayes report`` stays on numpy and starts fast.  Both paths give the same probabilities
(to the float32 contraction's ~1e-6; tested).  ``NEB_BAYES_COMPILED=1`` or ``0`` forces
either.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

_reports = 0

#: the decision held by :func:`decided` (None: decide at each call)
_held: bool | None = None


def use_compiled() -> bool:
    """Whether to run the draws path's compiled kernels now (see the module docstring)."""
    if _held is not None:
        return _held
    return _decide()


def _decide() -> bool:
    forced = os.environ.get("NEB_BAYES_COMPILED", "").strip().lower()
    if forced:
        return forced not in ("0", "false", "no", "off")
    return "numba" in sys.modules or _reports > 0


@contextlib.contextmanager
def decided() -> Iterator[bool]:
    """Hold :func:`use_compiled`'s answer, as it is on entry, until the block ends: one case's
    draws are computed by one path throughout, and the environment is read once, not at each
    of the path's ~200 questions per case (~0.8 us each: ~1 % of a case with 1,000 draws).
    Within an outer block the outer decision holds."""
    global _held
    outer = _held
    _held = _decide() if outer is None else outer
    try:
        yield _held
    finally:
        _held = outer


def report_done() -> None:
    """Count a finished report: from the next one on, loading numba pays for itself."""
    global _reports
    _reports += 1
