"""Bias-corrected estimate of N for the independence model Mt (docs/engine.md 7).

Rivest and Levesque (2001, "Improved log-linear model estimators of abundance
in capture-recapture experiments", Canadian Journal of Statistics 29, 555-572)
correct the small-sample bias of the log-linear estimators of the classical
closed-population models by adding small constants to the frequencies. The R
package Rcapture implements them in ``closedp.bc``. Of its models only Mt, the
model in which the lists are independent (main effects only), is a model of
this project's log-linear family; for it ``closedp.bc`` uses the exact form:

* two lists: the Chapman estimator ``(n1 + 1)(n2 + 1) / (m + 1) - 1`` (m the
  persons on both lists), standard error
  ``sqrt((n1 + 1)(n2 + 1)(n1 - m)(n2 - m) / ((m + 2)(m + 1)^2))``;
* t >= 3 lists: Darroch's equation for the MLE of Mt, ``prod(1 - n_i / N) =
  1 - n / N``, solved with the corrected counts ``n_i + (t + 2) / (2t)`` and
  ``n + t / 2``; the root ``N_c`` gives ``N = N_c - t / 2`` and the standard
  error ``(1 / (N_c - n_c) + (t - 1) / N_c - sum 1 / (N_c - n_ic))^(-1/2)``.

Models with interaction terms between lists have no such correction in
Rcapture (its other corrected models, M0, Mh, Mth, Mb and Mbh, are not
log-linear models of lists and covariates), so :func:`bias_corrected`
refuses them with the reason (:class:`NotApplicable`). With covariates, the
correction applies when the lists interact with no covariate (the table is
then collapsed over the covariates: the fit's N-hat is the Mt estimate of
the collapsed table) or when every list interacts with the same single
covariate G and with nothing else (Mt within each level of G: the fit's
N-hat per level of G is the Mt estimate of that level's table, and the
corrected estimates are summed, their variances added).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from .fit import Fit

#: Largest N tried when bracketing the root of Darroch's equation, as a multiple of n.
MAX_RATIO = 1e12


class NotApplicable(ValueError):
    """The model has no bias-corrected estimate (the message says why)."""


@dataclasses.dataclass(frozen=True)
class BiasCorrected:
    """A bias-corrected estimate of N.

    Attributes
    ----------
    n_hat : float
        Bias-corrected estimate of the population size.
    stderr : float
        Its standard error (Rcapture's formula).
    model : str
        ``"Mt"``, or ``"Mt by G"`` when stratified by the covariate G.
    n_hat_uncorrected : float
        The fit's own N-hat (the MLE of the same model).
    by : DataFrame or None
        Per level of G (stratified only): ``G``, ``n_obs``, ``n_hat``, ``stderr``.
    """

    n_hat: float
    stderr: float
    model: str
    n_hat_uncorrected: float
    by: pd.DataFrame | None = None


def mt_bias_corrected(n_i: Sequence[float], n: float) -> tuple[float, float]:
    """Rcapture's bias-corrected Mt estimate from the list sizes and the number observed.

    Parameters
    ----------
    n_i : sequence of float
        Persons on each list (t >= 2 lists).
    n : float
        Persons on at least one list.

    Returns
    -------
    n_hat, stderr : float

    Raises
    ------
    NotApplicable
        Fewer than two lists, or no finite estimate (the lists do not overlap).
    """
    n_i = np.asarray(n_i, dtype=float)
    t = n_i.size
    if t < 2:
        raise NotApplicable(f"Mt needs at least two lists, got {t}")
    if n_i.sum() <= n:
        raise NotApplicable("no finite estimate: nobody is on more than one list")
    if t == 2:  # Chapman; Seber (1982) p. 60
        m2 = n_i[0] + n_i[1] - n
        n_hat = (n_i[0] + 1) * (n_i[1] + 1) / (m2 + 1) - 1
        var = (n_i[0] + 1) * (n_i[1] + 1) * (n_i[0] - m2) * (n_i[1] - m2) / ((m2 + 2) * (m2 + 1) ** 2)
        return float(n_hat), float(math.sqrt(var))
    a = n_i + (t + 2) / (2 * t)
    b = n + t / 2

    def darroch(big_n: float) -> float:
        return float(np.prod(1 - a / big_n) - (1 - b / big_n))

    # Rcapture brackets the root by (n, 2 N-hat of M0); the root is the same, found here by doubling
    lo, hi = float(n), 2.0 * float(n)
    if darroch(lo) <= 0:
        raise NotApplicable(f"no bias-corrected estimate: Darroch's equation has no root above n = {n:g}")
    while darroch(hi) > 0:
        hi *= 2
        if hi > MAX_RATIO * n:
            raise NotApplicable("no finite bias-corrected estimate: the lists hardly overlap")
    root = optimize.brentq(darroch, lo, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps)
    info = 1 / (root - b) + (t - 1) / root - float(np.sum(1 / (root - a)))
    if info <= 0:
        raise NotApplicable("no standard error: the information of the corrected equation is not positive")
    return float(root - t / 2), float(info**-0.5)


def stratifying_covariate(fit: Fit) -> str | None:
    """The covariate G for which the model is Mt within each level of G, or None for plain Mt.

    Raises
    ------
    NotApplicable
        A term between lists, or lists interacting with covariates otherwise
        than all of them with one covariate and nothing else.
    """
    lists = set(fit.design.lists)
    with_lists = [t for t in fit.terms if lists & set(t.split(":"))]
    between = [t for t in with_lists if len(lists & set(t.split(":"))) > 1]
    if between:
        raise NotApplicable(
            f"the bias correction (Rivest and Levesque 2001, Rcapture closedp.bc) is for the model Mt "
            f"(main effects only); this model has term(s) between lists {between}"
        )
    if not with_lists:
        return None
    others = {":".join(v for v in t.split(":") if v not in lists) for t in with_lists}
    if len(others) == 1 and ":" not in (g := others.pop()):
        wanted = {
            f"{a}:{g}" if fit.design.variables.index(a) < fit.design.variables.index(g) else f"{g}:{a}"
            for a in fit.design.lists
        }
        if set(with_lists) == wanted:
            return g
    raise NotApplicable(
        f"the bias correction applies to Mt, or to Mt within the levels of one covariate (every list "
        f"interacting with that covariate and nothing else); this model's list terms are {with_lists}"
    )


def _table_sizes(design, y: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Persons on each list, and in total, over the observed cells (those in ``mask``)."""
    keep = np.ones(y.size, dtype=bool) if mask is None else mask
    n_i = np.array([design.X_obs[keep, design.blocks[v][0]] @ y[keep] for v in design.lists])
    return n_i, float(y[keep].sum())


def bias_corrected(fit: Fit) -> BiasCorrected:
    """The bias-corrected estimate of N for a fitted model Mt (see the module docstring).

    Parameters
    ----------
    fit : Fit
        A fit (status ok) of main effects, possibly with covariates (see
        :func:`stratifying_covariate`).

    Returns
    -------
    BiasCorrected

    Raises
    ------
    NotApplicable
        The fit is not ok, or its model has no bias correction (the reason is the message).
    """
    if not fit.ok:
        raise NotApplicable(f"no estimate to correct: the model's status is {fit.status}")
    design = fit.design
    g = stratifying_covariate(fit)
    if g is None:
        n_hat, se = mt_bias_corrected(*_table_sizes(design, fit.y))
        return BiasCorrected(n_hat, se, "Mt", fit.n_hat)
    level = design.table[g].to_numpy()[design.observed]
    rows = []
    for value in design.levels[g]:
        n_i, n = _table_sizes(design, fit.y, level == value)
        try:
            n_hat, se = mt_bias_corrected(n_i, n)
        except NotApplicable as exc:
            raise NotApplicable(f"{g} = {value}: {exc}") from None
        rows.append({g: value, "n_obs": n, "n_hat": n_hat, "stderr": se})
    by = pd.DataFrame(rows)
    return BiasCorrected(
        float(by["n_hat"].sum()), float(math.sqrt((by["stderr"] ** 2).sum())), f"Mt by {g}", fit.n_hat, by
    )
