"""The laboratory factor of evidence the fit's information form does not cover, from the
exact engine, with its gradient by finite differences.

The information form (:mod:`neb_bayes.inference.lab_block`) covers a person's results on an
axis when at most two of them are censored (a daily-rhythm result without a collection time
included: :func:`~neb_bayes.inference.pymc_model._per_own_state`).  For the others (three or
more censored results on the axis: a suppressed TSH three times; oestradiol below its limit
twice and progesterone once) the exact engine's
:func:`~neb_bayes.inference.exact.block_loglik` gives the person's factor on that axis
(covariance form: trivariate and higher normal CDFs).  With the analyte levels free,
:class:`ExactLabBlock` is what the fit's
:func:`~neb_bayes.inference.lab_block.LabFactors` Op evaluates for these people, its
vector-Jacobian product by second-order central differences, every perturbed parameter
vector one "draw" of one vectorised ``block_loglik`` call per person.

Two facts keep that cheap and accurate:

* a grid point's factor depends on the latent parameters of its own state only, so one
  perturbation of latent ``k``'s mean (or spread) in *every* state at once gives all the
  states' partial derivatives (each with its own step);
* the gross-error density is fixed per prior set (not a fitted quantity), so nothing else
  moves with the parameters.

The step is :data:`REL_STEP` of the latent's spread (or of the channel's total noise sd for
its log median): truncation error ~ step^2, rounding ~ 1e-16 |factor| / step, both far below
what NUTS notices: on covered people the result is within 5e-9 of the kernel's analytic
gradient, relative to its largest entry (tests hold 1e-7).  Measured on ``test_gradient_
equals_the_kernels_where_both_apply``'s people (2026-12-06): fourth-order differences with
a step of 1e-3 came within 1.8e-10, but their four points per direction cost ~1.5x the two
points' time (2.0 against 1.3 ms per person with two censored adrenal results, then beyond
the information form, one
evaluation with derivatives, after the first few; a step only for the latents a person's
results load on saved nothing measurable: the engine's call, not its points, costs most);
two points with steps of 1e-4 and 1e-6 came within 1.1e-7
and 4e-8.
The sampler stays exact whatever the gradient's error: leapfrog with any deterministic
gradient is reversible and volume-preserving, and NUTS weighs its proposals by the exact
log density.
"""

from __future__ import annotations

import numpy as np

from neb_bayes.inference.lab_block import params_key
from neb_bayes.model.compiled import CompiledModel
from neb_bayes.model.params import latent_cov

#: second-order central differences: (offset in steps, weight per step)
STENCIL = ((-1, -1 / 2), (1, 1 / 2))
#: the step, as a fraction of the latent's spread (its mean and its spread) or of the
#: channel's total noise sd (its log median)
REL_STEP = 1e-5


class ExactLabBlock:
    """The factors of some people of a group on one axis, from the exact engine.

    Parameters
    ----------
    model : CompiledModel
        The group's model view.
    axis : int
        The axis.
    evidences : list of Evidence
        The group's evidences.
    people : array of int
        The people (indices into ``evidences``) whose factor on ``axis`` this computes.

    The interface is :class:`~neb_bayes.inference.lab_block.LabBlock`'s as the
    ``LabFactors`` Op uses it: ``grid_shape``, ``rows``, :meth:`people_values`,
    :meth:`gradient` (and :meth:`fixed_people_values` for fixed parameters); parameters
    are ``(lat_mean (S, K), lat_sd (S, K), log_median (C,))``
    of the view's states and every channel, before the context's latent shifts (each
    evidence applies its own, :meth:`~neb_bayes.evidence.Evidence.latent_params`).
    """

    def __init__(self, model: CompiledModel, axis: int, evidences, people):
        self.model = model
        self.axis = axis
        self.rows = np.asarray(people, dtype=np.int64)
        self.evidences = [evidences[p] for p in self.rows]
        self.blocks = [next(b for b in ev.blocks if b.axis == axis) for ev in self.evidences]
        self.scope = tuple(sorted(set().union(*(b.deps for b in self.blocks))))
        sizes = [ax.n_states for ax in model.axes]
        self.grid_shape = tuple(sizes[d] for d in self.scope)
        # each flat grid point's own state (the latent parameters it depends on)
        self.own = np.indices(self.grid_shape)[self.scope.index(axis)].reshape(-1)
        ch = model.channels
        self.noise_sd = np.array([np.sqrt(c.tau**2 + c.cvi**2 + c.cva**2) for c in ch])
        #: (parameters, per person (factor, derivatives)) of the last evaluation with
        #: derivatives (its pullback comes next; replaced whole, so threads cannot mix them)
        self._last: tuple[bytes, list] | None = None

    def _loglik(self, i: int, lat_mean: np.ndarray, lat_sd: np.ndarray,
                log_median: np.ndarray) -> np.ndarray:
        """Person ``i``'s factor under ``D`` parameter vectors (leading dimension of each):
        ``(D, G)`` over the flat grid of :attr:`scope`."""
        from neb_bayes.inference.exact import block_loglik

        m, b = self.model, self.blocks[i]
        cov = latent_cov(m.axes[self.axis].lat_cov, lat_sd)
        latent = self.evidences[i].latent_params(m, self.axis, lat_mean, cov)
        ll = block_loglik(m, b, latent=latent, log_median=log_median)
        d = ll.shape[0]
        # the block's dependency axes are among the scope's; the others have size 1 here
        ll = ll.reshape((d,) + tuple(ll.shape[1 + a] for a in self.scope))
        return np.broadcast_to(ll, (d,) + self.grid_shape).reshape(d, -1)

    def values(self, params) -> np.ndarray:
        """The factor ``(R, G)`` of :attr:`rows` at ``params``."""
        lat_mean, lat_sd, log_median = (np.asarray(p, float) for p in params)
        g = int(np.prod(self.grid_shape))
        return np.concatenate([self._loglik(i, lat_mean[None], lat_sd[None], log_median[None])
                               for i in range(len(self.blocks))]) if self.blocks else \
            np.zeros((0, g))

    def people_values(self, params, n: int, derivatives: bool = True) -> np.ndarray:
        """Every person's factor of the group, ``(n, *grid_shape)`` (0 for the others).

        With ``derivatives`` (the fit's Op: its pullback follows at the same parameters) the
        perturbed parameter vectors are evaluated in the same calls and the derivatives kept
        for :meth:`gradient` (one exact-engine call per person and logp+grad, not two)."""
        out = np.zeros((n, int(np.prod(self.grid_shape))))
        if derivatives:
            per = [self._stencil(i, params) for i in range(len(self.blocks))]
            self._last = (params_key(params), per)
            if per:
                out[self.rows] = np.stack([v for v, _ in per])
        else:
            out[self.rows] = self.values(params)
        return out.reshape((n,) + self.grid_shape)

    def fixed_people_values(self, params, n: int) -> np.ndarray:
        """:meth:`people_values` without derivatives: a model whose analyte levels are not
        fitted."""
        return self.people_values(params, n, derivatives=False)

    @property
    def expand(self) -> np.ndarray:
        """The grid's map to its distinct points (:class:`LabBlock`'s interface): every grid
        point is its own."""
        return np.arange(int(np.prod(self.grid_shape)))

    def distinct_people_values(self, params, n: int) -> np.ndarray:
        """:meth:`people_values` as ``(n, G)``: the fit's Op's layout."""
        return self.people_values(params, n).reshape(n, -1)

    def distinct_gradient(self, params, cotangent: np.ndarray) -> list[np.ndarray]:
        """:meth:`gradient` (the cotangent per grid point is per distinct point here)."""
        return self.gradient(params, cotangent)

    def gradient(self, params, cotangent: np.ndarray) -> list[np.ndarray]:
        """d(sum(cotangent * factor))/d(lat_mean, lat_sd, log_median), ``cotangent`` ``(R,
        G)`` for :attr:`rows`, by central differences (module docstring); the derivatives of
        the last :meth:`people_values` call when it was at these parameters."""
        lat_mean, lat_sd, log_median = (np.asarray(p, float) for p in params)
        grads = [np.zeros_like(lat_mean), np.zeros_like(lat_sd), np.zeros_like(log_median)]
        k = lat_mean.shape[1]
        last = self._last
        per = (last[1] if last is not None and last[0] == params_key(params)
               else [self._stencil(i, params) for i in range(len(self.blocks))])
        for i, (_, deriv) in enumerate(per):
            chans = np.unique(self.blocks[i].channel)
            ct = np.asarray(cotangent[i], float)
            for j in range(k):
                for out, row in ((grads[0], j), (grads[1], k + j)):
                    out[:, j] += np.bincount(self.own, weights=ct * deriv[row],
                                             minlength=lat_mean.shape[0])
            grads[2][chans] += deriv[2 * k:] @ ct
        return grads

    def _stencil(self, i: int, params) -> tuple[np.ndarray, np.ndarray]:
        """Person ``i``'s factor ``(G,)`` and its derivatives ``(directions, G)`` (each
        latent's mean, each latent's spread, each of the block's channels' log median, in
        that order) from one exact-engine call over the centre and the stencil's points."""
        lat_mean, lat_sd, log_median = (np.asarray(p, float) for p in params)
        n_states, k = lat_mean.shape
        offsets = np.array([o for o, _ in STENCIL], dtype=float)
        weights = np.array([w for _, w in STENCIL])
        chans = np.unique(self.blocks[i].channel)
        # a step per direction and state (the latents': all states at once)
        n_dir = 2 * k + chans.size
        steps = np.empty((n_dir, n_states))
        steps[:k] = steps[k:2 * k] = REL_STEP * lat_sd.T
        steps[2 * k:] = REL_STEP * self.noise_sd[chans][:, None]
        d = 1 + n_dir * len(STENCIL)                   # the centre, then the stencil's points
        mean = np.repeat(lat_mean[None], d, axis=0)
        sd = np.repeat(lat_sd[None], d, axis=0)
        med = np.repeat(log_median[None], d, axis=0)
        move = offsets[:, None] * steps[:, None, :]                       # (dir, stencil, S)
        pm, ps = mean[1:].reshape(n_dir, len(STENCIL), n_states, k), sd[1:].reshape(
            n_dir, len(STENCIL), n_states, k)
        for j in range(k):
            pm[j, :, :, j] += move[j]
            ps[k + j, :, :, j] += move[k + j]
        pmed = med[1:].reshape(n_dir, len(STENCIL), -1)
        for j, c in enumerate(chans):
            pmed[2 * k + j, :, c] += move[2 * k + j, :, 0]
        ll = self._loglik(i, mean, sd, med)
        diff = np.einsum("o,dog->dg", weights, ll[1:].reshape(n_dir, len(STENCIL), -1))
        return ll[0], diff / steps[:, self.own]
