"""Cheap, exact bounds of the log-likelihood of every one-term-smaller model (docs/engine.md 3).

Backward elimination refits every droppable term at every step, but only the
best one or two can win. From the current model's MLE (coefficients
``beta``, fitted values ``mu``, information ``H = X' diag(mu) X``) the
log-likelihood ``L_t`` of the model without term t (columns r) is bracketed
without fitting it:

- **lower bound** (a point of the sub-model): the one-step direction
  ``d = H^-1[:, r] (H^-1[r, r])^-1 beta_r`` (``d_r = beta_r``, the other
  coefficients move as the information predicts) gives the sub-model point
  ``beta - s d`` at ``s = 1``; any point's log-likelihood is at most the
  maximum ``L_t``, and a 1-D line search along that path in the sub-model
  (two Newton steps in s) keeps the best value seen;
- **upper bound** (weak duality, Haberman 1974): for every ``m > 0`` with
  the sub-model's sufficient statistics ``X_t' m = X_t' y``,
  ``L_t <= sum(m log m - m) - sum(log y!)``. The fitted values
  ``mu (1 - a e)``, ``e = X d``, satisfy the constraints for every a
  (``X_t' diag(mu) e = 0`` by the choice of d, and ``X' mu = X' y`` at the MLE),
  so a 1-D search over a (two Newton steps) gives the bound.

Both agree with ``L_t`` to second order in the dropped coefficients
(``L - L_t ~ beta_r' (H^-1[r, r])^-1 beta_r / 2``, the Wald statistic), so
the interval is narrow for the terms that matter and wide only for terms far
from being dropped. The constraints hold up to rounding and to the current
fit's convergence (its score ``X'(y - mu)`` is about 1e-10 of the counts):
:data:`SLACK` widens every interval to cover that.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from scipy import linalg

from .fit import Fit

#: Relative widening of each bound (times ``1 + |llf|``): covers rounding in the
#: constraints ``X_t' m = X_t' y`` and the current fit's remaining score.
SLACK = 1e-8
#: Candidates bracketed together (memory: observed cells x CHUNK doubles).
CHUNK = 64


@dataclasses.dataclass(frozen=True)
class DropBounds:
    """Brackets of the log-likelihood of each one-term-smaller model of a fit.

    Attributes
    ----------
    terms : tuple of str
        The dropped term of each sub-model.
    llf_lower, llf_upper : ndarray
        ``llf_lower[i] <= llf(fit without terms[i]) <= llf_upper[i]``.
    n_params : ndarray of int
        Parameters of each sub-model.
    """

    terms: tuple[str, ...]
    llf_lower: np.ndarray
    llf_upper: np.ndarray
    n_params: np.ndarray

    def criterion(self, penalty: float) -> tuple[np.ndarray, np.ndarray]:
        """Brackets of ``-2 llf + penalty k`` (AIC: penalty 2, BIC: log n): (lower, upper)."""
        pen = penalty * self.n_params
        return -2.0 * self.llf_upper + pen, -2.0 * self.llf_lower + pen


def drop_bounds(fit: Fit, drops: Sequence[str], steps: int = 0) -> DropBounds:
    """Bracket the log-likelihood of ``fit`` without each term of ``drops``, without fitting.

    Parameters
    ----------
    fit : Fit
        A converged fit (status ok).
    drops : sequence of str
        Interaction terms of the fit, each dropped alone.
    steps : int
        Newton steps of the 1-D searches beyond the first point (0: the
        one-step point ``beta - d`` and the dual point ``a = 1``; more give
        narrower brackets at one pass over the cells each).

    Returns
    -------
    DropBounds
    """
    if not fit.ok:
        raise ValueError("drop_bounds: the fit has no MLE")
    design = fit.design
    cols, beta, mu, y = fit.cols, fit.beta, fit.fitted, fit.y
    pos = np.full(len(design.column_names), -1)
    pos[cols] = np.arange(cols.size)
    blocks = [pos[design.blocks[t]] for t in drops]
    if design.uses_lattice:  # products with X as lattice sums: no design matrix at all
        lat = design.lattice_model(cols)
        H, prod = lat.information(mu), lat.dot_many
    else:
        X = design.model_matrices(cols).dense()
        H, prod = (X.T * mu) @ X, X.__matmul__
    G = linalg.cho_solve(linalg.cho_factor(H, lower=True), np.eye(cols.size))
    p, n = cols.size, len(drops)
    D = np.zeros((p, n))
    single = np.array([i for i, r in enumerate(blocks) if r.size == 1], dtype=int)
    if single.size:  # one column: d = G[:, r] beta_r / G[r, r]
        r1 = np.array([blocks[i][0] for i in single])
        D[:, single] = G[:, r1] * (beta[r1] / G[r1, r1])
    for i, r in enumerate(blocks):
        if r.size > 1:
            D[:, i] = G[:, r] @ np.linalg.solve(G[np.ix_(r, r)], beta[r])
        D[r, i] = beta[r]  # exactly: the sub-model has these coefficients at 0
    eta = np.log(mu)
    lf = design.log_factorial(y)
    lower, upper = np.empty(n), np.empty(n)
    for a in range(0, n, CHUNK):  # candidates in chunks: memory cells x CHUNK, not cells x candidates
        c = slice(a, min(a + CHUNK, n))
        E = prod(D[:, c])  # e = X d, one column per candidate
        lower[c] = _primal(y, eta, E, prod, D[:, c], blocks[c], beta, steps) - lf
        upper[c] = _dual(mu, E, fit.llf + lf, steps) - lf
    slack = SLACK * (1.0 + abs(fit.llf))
    return DropBounds(
        terms=tuple(drops),
        llf_lower=lower - slack,
        llf_upper=np.maximum(upper, lower) + slack,
        n_params=np.array([p - r.size for r in blocks], dtype=int),
    )


def _primal(y, eta, E, prod, D, blocks, beta, steps: int) -> np.ndarray:
    """Best ``sum(y eta - exp eta)`` seen on the sub-model path ``eta - X_r beta_r - s X_t d_t``, from s = 1.

    Every s is a point of the sub-model, so every value is a lower bound of
    its maximum; Newton steps in s (concave) move towards the best one.
    """
    e = eta[:, None] - E  # s = 1
    best = y @ e - np.exp(np.minimum(e, 700.0)).sum(axis=0)
    best = np.where(np.isfinite(best), best, -np.inf)
    if steps == 0:
        return best
    B = np.zeros_like(D)
    for i, r in enumerate(blocks):
        B[r, i] = beta[r]
    b = prod(D - B)  # X_t d_t
    a = eta[:, None] - prod(B)
    s = np.ones(E.shape[1])
    for _ in range(steps):
        m = np.exp(np.minimum(a - s * b, 700.0))
        d1 = ((m - y[:, None]) * b).sum(axis=0)
        d2 = -(m * b * b).sum(axis=0)
        s = s - np.where(d2 < 0, d1 / np.where(d2 < 0, d2, -1.0), 0.0)
        e = a - s * b
        val = y @ e - np.exp(np.minimum(e, 700.0)).sum(axis=0)
        best = np.maximum(best, np.where(np.isfinite(val), val, -np.inf))
    return best


def _dual(mu: np.ndarray, E: np.ndarray, at_zero: float, steps: int) -> np.ndarray:
    """Smallest ``sum(m log m - m)`` seen along ``m = mu (1 - a e)`` (each column of E).

    Every ``a`` with ``m >= 0`` satisfies the sub-model's constraints, so
    every value bounds its log-likelihood from above (plus ``sum log y!``).
    At ``a = 0`` the value is the current model's (``at_zero``); the Newton
    step from there is ``a = 1`` (the derivatives at 0 are ``-e'We`` and
    ``e'We``), kept at most halfway to where some ``m`` would reach 0;
    further Newton steps (convex in a) move towards the smallest value.
    """
    emax = E.max(axis=0)
    a_max = np.where(emax > 0, 1.0 / np.where(emax > 0, emax, 1.0), np.inf)
    a = np.minimum(1.0, 0.5 * a_max)
    best = np.full(E.shape[1], at_zero)
    for it in range(steps + 1):
        f = 1.0 - a * E  # m = mu f
        logm = np.log(mu)[:, None] + np.log(f)
        m = mu[:, None] * f
        val = (m * logm).sum(axis=0) - m.sum(axis=0)
        best = np.minimum(best, np.where(np.isfinite(val), val, np.inf))
        if it == steps:
            break
        w = mu[:, None] * E  # d m / d a = -w
        d1 = -(w * logm).sum(axis=0)
        d2 = (w * E / f).sum(axis=0)
        a_new = a - np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 0.0)
        a = np.clip(a_new, 0.0, a + 0.5 * (a_max - a))
    return best


def pick_bracketed(
    order: Sequence[str],
    brackets: dict[str, tuple[float, float]],
    exact: Callable[[str], float | None],
    current: float,
    tol: float,
) -> str | None:
    """The stepwise rule of R's ``step()`` on candidates known exactly or by a bracket.

    The rule (``stages.selection._pick``): visit the candidates in order; one
    becomes the running best when its criterion is below the running best's
    (initially ``current``) by more than ``tol``. Here a candidate in
    ``brackets`` is known only to lie in ``[lower, upper]``; each comparison is
    decided from the brackets when they decide it, and from exact values
    (``exact(t)``, e.g. a fit, cached by the caller) when they do not. So the
    outcome is the rule's on the exact values, whatever the brackets.

    Parameters
    ----------
    order : sequence of str
        Candidates in the order of the rule.
    brackets : dict
        Candidate -> (lower, upper) of its criterion; candidates not in it are asked for ``exact``.
    exact : callable
        Candidate -> its exact criterion, or None when it cannot be chosen (refused).
    current : float
        The current model's criterion.
    tol : float
        Minimum improvement.

    Returns
    -------
    str or None
        The chosen candidate; None when none improves.
    """
    best, b_lo, b_hi = None, current, current
    for t in order:
        if t in brackets:
            lo, hi = brackets[t]
        else:
            v = exact(t)
            if v is None:
                continue
            lo = hi = v
        if hi < b_lo - tol:  # surely replaces the running best
            best, b_lo, b_hi = t, lo, hi
            continue
        if lo >= b_hi - tol:  # surely does not
            continue
        v = exact(t)  # the brackets do not decide: exact values
        if v is None:
            continue
        if b_lo != b_hi:  # the running best is a candidate known by its bracket
            b_lo = b_hi = exact(best)
        if v < b_lo - tol:
            best, b_lo, b_hi = t, v, v
    return best
