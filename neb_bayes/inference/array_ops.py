"""Array operations shared by the PyMC formulation's factors, in numpy or in pytensor.

One formula serves both: a factor whose parameters are all fixed is computed in numpy, a
factor with a free parameter becomes pytensor graph (or runs inside a compiled Op).
"""

from __future__ import annotations

import math

import numpy as np


class Ops:
    """The array operations the log-density uses, in numpy or in pytensor.

    A factor whose parameters are all fixed (numpy arrays) is computed once in numpy and
    enters the graph as a constant; a factor with a free parameter becomes pytensor graph.
    One formula serves both.
    """

    def __init__(self, symbolic: bool):
        self.symbolic = symbolic
        if symbolic:
            import pytensor.tensor as pt

            self.m = pt
            self.normal_lcdf = pt_log_ndtr
        else:
            from scipy.special import log_ndtr

            self.m = np
            self.normal_lcdf = log_ndtr

    def logsumexp(self, x, axis):
        if self.symbolic:
            return self.m.logsumexp(x, axis=axis, keepdims=True)
        from scipy.special import logsumexp

        return logsumexp(x, axis=axis, keepdims=True)


def pt_log_ndtr(t):
    """log Phi(t) in pytensor, to double precision: PyMC's ``normal_lcdf`` divides by
    ``sqrt(2.0)`` computed in float32 (pytensor's constant 2.0), an error of ~1e-8."""
    import pytensor.tensor as pt

    r2 = math.sqrt(2.0)
    return pt.switch(t < -1.0, pt.log(pt.erfcx(-t / r2) / 2.0) - t**2 / 2.0,
                     pt.log1p(-pt.erfc(t / r2) / 2.0))


def is_free(*xs) -> bool:
    """Whether any of these is pytensor graph (a free parameter) rather than numpy."""
    return any(not isinstance(x, np.ndarray | float | int) for x in xs)
