"""Profile-likelihood interval of N for a table without covariates (docs/engine.md).

The multinomial likelihood of N, maximised over the log-linear model for fixed N,

    llf(N) = lgamma(N+1) - lgamma(N-n+1) + sum_h n_h log(mu_h/N) + (N-n) log(mu_0/N),

where ``mu`` is the Poisson fit of the model to the complete table with the
unobserved cell's count set to ``N - n`` (the intercept makes ``sum mu = N``).
The interval is ``{N >= n : 2 (max llf - llf(N)) <= chi2_1(level)}``, as
Rcapture's ``closedpCI.t`` computes it (``profile-multinomial-95``); its centre
is the multinomial MLE, slightly different from the Poisson N-hat.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize
from scipy.special import gammaln, ndtri

from .fit import Fit

#: Largest N searched, as a multiple of n_obs: a bound beyond it is reported as open.
MAX_FACTOR = 1000.0


@dataclasses.dataclass(frozen=True)
class ProfileInterval:
    """A profile-likelihood interval of N.

    Attributes
    ----------
    lower, upper : float or None
        The bounds; None when the bound does not exist (open).
    lower_open, upper_open : bool
        True when the profile deviance stays below the critical value up to
        the end of the search (``n_obs`` never is: N cannot be below it).
    n_hat_multinomial : float
        The multinomial MLE of N (the profile's maximum).
    level : float
        Confidence level.
    search_limit : float
        The largest N searched (the number after ">" of an open upper bound).
    """

    lower: float | None
    upper: float | None
    lower_open: bool
    upper_open: bool
    n_hat_multinomial: float
    level: float
    search_limit: float


class _Profile:
    """llf(N) for one model, each fit warm-started from the previous one."""

    def __init__(self, fit: Fit, stirling: bool = False):
        self.stirling = stirling
        design = fit.design
        if design.n_strata != 1:
            raise ValueError("profile interval: only for tables without covariates (one unobserved cell)")
        if not fit.ok:
            raise ValueError(f"profile interval: the model has no fit ({fit.status}): {fit.message}")
        self.X = np.vstack([design.X_obs[:, fit.cols], design.X_unobs[:, fit.cols]])
        self.y_obs = fit.y
        self.n = float(fit.y.sum())
        self.beta = fit.beta.copy()

    def fit(self, N: float) -> np.ndarray:
        """Fitted values of the complete table with the unobserved cell at ``N - n``."""
        X, y = self.X, np.append(self.y_obs, N - self.n)
        beta = self.beta
        eta = X @ beta
        mu = np.exp(eta)
        ll = float(y @ eta - mu.sum())
        for _ in range(200):
            score = X.T @ (y - mu)
            H = (X * mu[:, None]).T @ X
            try:
                step = np.linalg.solve(H, score)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H, score, rcond=None)[0]
            t, moved = 1.0, False
            while t >= 1e-12:
                b_new = beta + t * step
                eta_new = X @ b_new
                if eta_new.max() < 700:
                    mu_new = np.exp(eta_new)
                    ll_new = float(y @ eta_new - mu_new.sum())
                    if ll_new >= ll - 1e-12 * abs(ll):
                        moved = True
                        break
                t *= 0.5
            if not moved:  # no step improves: at the maximum to rounding
                break
            beta, mu, ll = b_new, mu_new, ll_new
            if np.max(np.abs(t * step)) < 1e-11:
                break
        else:
            raise RuntimeError(f"profile interval: the fit with N = {N:,.1f} did not converge")
        self.beta = beta
        return mu

    def llf(self, N: float) -> float:
        """The multinomial profile log-likelihood at ``N`` (constants in the counts dropped)."""
        mu = self.fit(N)
        m = N - self.n
        obs = self.y_obs
        mu_obs, mu0 = mu[:-1], mu[-1]
        # the intercept makes sum(mu) = N; dividing by the fitted total keeps rounding out
        total = mu.sum()
        ll = _rcapture_constant(N, m) if self.stirling else float(gammaln(N + 1.0) - gammaln(m + 1.0))
        pos = obs > 0
        ll += float(obs[pos] @ np.log(mu_obs[pos] / total))
        if m > 0:
            ll += m * float(np.log(mu0 / total))
        return ll


def _rcapture_constant(N: float, m: float) -> float:
    """``log N! - log m!`` as Rcapture 1.4 computes it (its "Cormack 1992" term).

    For N > 100 Rcapture uses Stirling's formula without its ``1/(12 N) - 1/(12 m)``
    term (and ``m! ~ 1`` for m = 0, 1). That shifts the bounds of small tables whose
    dark number at a bound is small (Korea: 131.42 instead of the exact 131.47); only
    for the comparison with Rcapture (tests), never the default.
    """
    if N <= 100:
        return float(gammaln(N + 1.0) - gammaln(m + 1.0))
    if m in (0.0, 1.0):
        ct = -N + 0.5 * np.log(2.0 * np.pi * N)
    else:
        ct = m - N - 0.5 * np.log(m / N)
    # Rcapture's ct is log(m^m N! / (N^N m!)); add back N log N - m log m
    return float(ct + N * np.log(N) - (m * np.log(m) if m > 0 else 0.0))


def profile_interval(
    fit: Fit, level: float = 0.95, max_factor: float = MAX_FACTOR, *, stirling: bool = False
) -> ProfileInterval:
    """The profile-likelihood interval of N for a fitted model of a table without covariates.

    Parameters
    ----------
    fit : Fit
        An ok fit of a design without factors (one unobserved cell).
    level : float
        Confidence level (0.95: critical value 3.84 of chi-square with 1 df).
    max_factor : float
        The search for the upper bound stops at ``max_factor * n_obs``; a bound
        beyond is returned open (None, ``upper_open``), never as a number.
    stirling : bool
        Use Rcapture's Stirling approximation of ``log N! - log (N-n)!`` for
        N > 100 (:func:`_rcapture_constant`) instead of the exact value: only to
        reproduce Rcapture's numbers (tests).

    Returns
    -------
    ProfileInterval

    Raises
    ------
    ValueError
        The design has covariates or the fit is not ok.
    """
    prof = _Profile(fit, stirling=stirling)
    n = prof.n
    # chi-square(1) quantile as a squared normal one: scipy.stats costs ~0.3 s to import
    crit = float(ndtri(0.5 + level / 2.0) ** 2)
    limit = max_factor * n
    start = prof.beta.copy()
    n_hat = float(fit.n_hat)

    # the maximum: llf is unimodal in N; the Poisson N-hat is close to it
    def neg(N: float) -> float:
        return -prof.llf(N)

    lo_b, hi_b = n, min(limit, max(2.0 * n_hat, n_hat + 10.0))
    res = optimize.minimize_scalar(neg, bounds=(lo_b, hi_b), method="bounded", options={"xatol": 1e-10 * n_hat})
    n_mult, ll_max = float(res.x), -float(res.fun)
    if neg(n_hat) < -ll_max:
        n_mult, ll_max = n_hat, prof.llf(n_hat)

    def dev(N: float) -> float:
        return 2.0 * (ll_max - prof.llf(N)) - crit

    # lower bound: between n and the maximum (N = n itself when inside)
    prof.beta = start.copy()
    if dev(n) <= 0:
        lower = n
    else:
        prof.beta = start.copy()
        lower = optimize.brentq(dev, n, n_mult, xtol=1e-10 * n, rtol=1e-14)
    # upper bound: bracket by doubling the distance from the maximum
    prof.beta = start.copy()
    a, b, upper = n_mult, n_mult + max(n_mult - n, 1.0), None
    while True:
        b = min(b, limit)
        if dev(b) > 0:
            upper = optimize.brentq(dev, a, b, xtol=1e-10 * n, rtol=1e-14)
            break
        if b >= limit:
            break
        a, b = b, n_mult + 2.0 * (b - n_mult)
    return ProfileInterval(
        lower=float(lower),
        upper=None if upper is None else float(upper),
        lower_open=False,
        upper_open=upper is None,
        n_hat_multinomial=n_mult,
        level=level,
        search_limit=limit,
    )
