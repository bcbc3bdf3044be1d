"""Profile-likelihood interval of N for a table without covariates (docs/engine.md).

The multinomial likelihood of N, maximised over the log-linear model for fixed N,

    llf(N) = lgamma(N+1) - lgamma(N-n+1) + sum_h n_h log(mu_h/N) + (N-n) log(mu_0/N),

where ``mu`` is the Poisson fit of the model to the complete table with the
unobserved cell's count set to ``N - n`` (the intercept makes ``sum mu = N``).
The interval is ``{N >= n : 2 (max llf - llf(N)) <= chi2_1(level)}``, as
Rcapture's ``closedpCI.t`` computes it (``profile-multinomial-95``); its centre
is the multinomial MLE, slightly different from the Poisson N-hat.

For tables with covariates, :func:`group_profile_intervals` gives the profile
interval of a group of strata's ``N_g = n_obs_g + dark_g`` under the Poisson
likelihood of the observed cells (the model's own, centred on its N-hat):
the multinomial needs the table's N as a parameter, and for a group of strata
the other strata's dark numbers would be nuisance counts (docs/engine.md 6a).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import linalg
from scipy.special import gammaln, ndtri

from .fit import Fit
from .scalar import bounded_minimum, brent_root

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
    # Brent's searches of engine/scalar.py, not scipy.optimize (its import alone is 0.1 s of
    # the 0.5 s start-up of `mse estimate`); they give scipy's numbers
    x_max, neg_max = bounded_minimum(neg, lo_b, hi_b, xatol=1e-10 * n_hat)
    n_mult, ll_max = float(x_max), -float(neg_max)
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
        lower = brent_root(dev, n, n_mult, xtol=1e-10 * n, rtol=1e-14)
    # upper bound: bracket by doubling the distance from the maximum
    prof.beta = start.copy()
    a, b, upper = n_mult, n_mult + max(n_mult - n, 1.0), None
    while True:
        b = min(b, limit)
        if dev(b) > 0:
            upper = brent_root(dev, a, b, xtol=1e-10 * n, rtol=1e-14)
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


# --- the grouped (Poisson) profile: tables with covariates ---------------------------------


@dataclasses.dataclass(frozen=True)
class GroupProfile:
    """The Poisson profile-likelihood interval of a group's N on a table with covariates.

    Attributes
    ----------
    lower, upper : float or None
        The bounds of ``N_g = n_obs_g + dark_g``; ``upper`` None when open.
    lower_open, upper_open : bool
        ``lower_open`` is always False (the lower bound of the dark number is
        never below 0, so ``lower >= n_obs``); ``upper_open`` when the bound
        lies beyond ``search_limit`` (not searched further).
    n_obs : float
        Observed persons in the group.
    n_hat : float
        The Poisson N-hat of the group (the profile's maximum).
    level : float
        Confidence level.
    search_limit : float
        ``max_factor * max(n_obs, 1)``: the number after ">" of an open upper bound.
    n_iter : int
        Newton iterations for both bounds (for the benchmark).
    message : str
        Why there is no interval (a bound did not converge; ``lower`` and
        ``upper`` are then None); "" when there is one.
    """

    lower: float | None
    upper: float | None
    lower_open: bool
    upper_open: bool
    n_obs: float
    n_hat: float
    level: float
    search_limit: float
    n_iter: int
    message: str = ""


class _GroupedProfile:
    """The likelihood region ``{beta: 2 (l_hat - l(beta)) <= crit}`` of one fitted model.

    The profile interval of ``dark_g = G(beta) = sum_{s in g} exp(x0_s beta)`` is the
    image of that region under G: the region is convex (the Poisson log-likelihood
    is concave) and G continuous, so the bounds are ``min G`` and ``max G`` over it,
    both on its boundary ``l(beta) = l_hat - crit/2``. Each is one small KKT system
    (``+-grad log G + kappa grad l = 0``, ``l = l_t``, unknowns beta and kappa > 0)
    solved by Newton from the Wald point, instead of maximising the likelihood at
    each dark number of a root search: one solve of a few iterations per bound.
    The information matrix ``X' diag(mu) X`` in the Newton matrix is the MLE's
    (formed and factored once per model, shared by all groups) and is
    recomputed at the current point only when convergence slows; the
    residual, which decides where the iteration stops, is always exact.
    """

    def __init__(self, fit: Fit):
        if not fit.ok:
            raise ValueError(f"profile interval: the model has no fit ({fit.status}): {fit.message}")
        design = fit.design
        cols = fit.cols
        if design.uses_lattice:
            self.M = self.plan = design.lattice_model(cols)
        else:
            self.M = design.model_matrices(cols)
            self.plan = design.info_plan(cols)
        self.y = fit.y
        self.beta_hat = fit.beta.copy()
        self.X0 = np.ascontiguousarray(design.X_unobs[:, cols])
        self.m0 = fit.m0
        self.n_obs_s = design.n_obs_by_stratum(fit.y)
        eta = self.M.dot(self.beta_hat)
        mu = np.exp(eta)
        self.l_hat = float(self.y @ eta - mu.sum())
        self.J_hat = self.information(mu)
        self.J_hat_factor = linalg.cho_factor(self.J_hat, lower=True)

    def information(self, mu: np.ndarray) -> np.ndarray:
        """``X' diag(mu) X`` of the model (double precision result)."""
        if self.plan is not None:
            return self.plan.information(mu)
        X = self.M.dense()
        A = X * np.sqrt(mu)[:, None]
        return A.T @ A

    def _parts(self, beta: np.ndarray, X0g: np.ndarray):
        """l, its gradient, log G, the gradient of log G and the strata weights at ``beta``."""
        eta = self.M.dot(beta)
        if not np.all(np.isfinite(eta)) or eta.max() > 700:
            return None
        mu = np.exp(eta)
        e0 = X0g @ beta
        top = e0.max()
        m = np.exp(e0 - top)
        total = m.sum()
        w = m / total
        return {
            "mu": mu,
            "l": float(self.y @ eta - mu.sum()),
            "g": self.M.tdot(self.y - mu),
            "log_g": float(top + np.log(total)),
            "w": w,
            "a": w @ X0g,
        }

    def _solve(self, X0g, sign, beta, kappa, l_t, log_limit, tol=1e-9, max_iter=60):
        """Newton on the KKT system of one bound; returns (beta, kappa, log G, iterations, open)."""
        J, fresh = self.J_hat, False
        cur = self._parts(beta, X0g)
        if cur is None:
            raise RuntimeError("profile interval: the start of a bound overflows")

        def resid(c, k):
            return np.append(sign * c["a"] + k * c["g"], c["l"] - l_t)

        F = resid(cur, kappa)
        p = beta.size
        for it in range(1, max_iter + 1):
            w, a = cur["w"], cur["a"]
            Hg = (X0g * w[:, None]).T @ X0g - np.outer(a, a)
            K = np.empty((p + 1, p + 1))
            K[:p, :p] = sign * Hg - kappa * J
            K[:p, p] = cur["g"]
            K[p, :p] = cur["g"]
            K[p, p] = 0.0
            try:
                step = np.linalg.solve(K, -F)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(K, -F, rcond=None)[0]
            nF = float(np.linalg.norm(F))
            t, new = 1.0, None
            while t >= 1.0 / 64:
                b_new, k_new = beta + t * step[:p], kappa + t * step[p]
                c = self._parts(b_new, X0g)
                if c is not None and k_new > 0:
                    F_new = resid(c, k_new)
                    if np.linalg.norm(F_new) <= (1.0 - 1e-4 * t) * nF:
                        new = (b_new, k_new, c, F_new)
                        break
                t *= 0.5
            if new is None:
                if fresh:  # the exact Newton direction does not reduce the residual either
                    raise RuntimeError("profile interval: the Newton iteration of a bound stalled")
                J, fresh = self.information(cur["mu"]), True
                continue
            # converged when the step moves log G (the bound) by less than tol and beta
            # only a little: log G is stationary along the boundary, so what is left is second order
            moved = new[0] - beta
            small = abs(float(cur["a"] @ moved)) < tol and np.max(np.abs(moved)) < 1e-5
            beta, kappa, cur, F_new = new
            if sign > 0 and cur["l"] >= l_t and cur["log_g"] > log_limit:
                # a point inside the region beyond the limit: the bound is beyond it too
                return beta, kappa, cur["log_g"], it, True
            if small and abs(cur["l"] - l_t) < 1e-9 * max(1.0, abs(l_t)):
                return beta, kappa, cur["log_g"], it, False
            # chord steps (the MLE's information) while they converge fast; else refresh
            slow = np.linalg.norm(F_new) > 0.25 * nF
            fresh = False
            if slow:
                J, fresh = self.information(cur["mu"]), True
            F = F_new
        raise RuntimeError(f"profile interval: the Newton iteration of a bound did not converge in {max_iter} steps")

    def bound(self, mask: np.ndarray, sign: int, crit: float, log_limit: float) -> tuple[float, int, bool]:
        """The dark number at one bound of group ``mask`` (``sign`` +1 upper, -1 lower).

        Starts from the Wald point of the quadratic approximation; if Newton
        fails from there, walks to it through smaller regions (critical values
        crit/256, crit/64, ..., crit), each warm-started from the last.
        Returns (dark number, iterations, open).
        """
        X0g = self.X0[mask]
        w = self.m0[mask] / self.m0[mask].sum()
        a = w @ X0g  # the gradient of log G at the MLE
        v = linalg.cho_solve(self.J_hat_factor, a)
        q = float(a @ v)
        if not q > 0:
            raise RuntimeError("profile interval: the group's dark number does not depend on the parameters")
        total_it = 0
        try:
            beta0 = self.beta_hat + sign * np.sqrt(crit / q) * v
            beta, _, log_g, it, is_open = self._solve(
                X0g, sign, beta0, np.sqrt(q / crit), self.l_hat - crit / 2, log_limit
            )
            return float(np.exp(log_g)), it, is_open
        except RuntimeError:
            pass
        beta, kappa = None, None
        for c in crit * 4.0 ** -np.arange(4, -1, -1):
            if beta is None:
                beta, kappa = self.beta_hat + sign * np.sqrt(c / q) * v, np.sqrt(q / c)
            beta, kappa, log_g, it, is_open = self._solve(X0g, sign, beta, kappa, self.l_hat - c / 2, log_limit)
            total_it += it
            if is_open:
                break
        return float(np.exp(log_g)), total_it, is_open


def group_profile_intervals(
    fit: Fit, groups: np.ndarray, level: float = 0.95, max_factor: float = MAX_FACTOR, *, errors: str = "raise"
) -> list[GroupProfile]:
    """Poisson profile-likelihood intervals of the N of groups of strata (docs/engine.md 6a).

    For a group g, ``N_g = n_obs_g + sum_{s in g} m0_s(beta)``; the interval is
    ``{N_g : 2 (l_hat - max_{beta: N_g(beta) = N_g} l(beta)) <= chi2_1(level)}``
    with ``l`` the Poisson log-likelihood of the observed cells (the model's own
    likelihood, whose maximum is the Poisson N-hat), computed as the smallest and
    largest ``N_g(beta)`` over the likelihood region (:class:`_GroupedProfile`).

    Parameters
    ----------
    fit : Fit
        An ok fit (any design, with or without covariates).
    groups : ndarray
        Groups x strata 0/1 matrix (``GroupMatrix.matrix``), or one 0/1 row.
    level : float
        Confidence level.
    max_factor : float
        An upper bound beyond ``max_factor * max(n_obs_g, 1)`` is returned open.
    errors : {"raise", "keep"}
        When a bound does not converge: raise, or keep going and return that
        group without bounds (``lower``/``upper`` None, ``message`` saying why).

    Returns
    -------
    list of GroupProfile
        One per row of ``groups``.

    Raises
    ------
    ValueError
        The fit is not ok, or ``groups`` does not have one column per stratum.
    RuntimeError
        A bound's Newton iteration did not converge (even through smaller
        regions) and ``errors="raise"``.
    """
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    groups = np.atleast_2d(np.asarray(groups))
    prof = _GroupedProfile(fit)
    if groups.shape[1] != prof.X0.shape[0]:
        raise ValueError(f"profile interval: groups need {prof.X0.shape[0]} columns (strata), got {groups.shape[1]}")
    crit = float(ndtri(0.5 + level / 2.0) ** 2)
    out = []
    for row in groups:
        mask = row > 0
        n_obs = float(prof.n_obs_s[mask].sum())
        dark_hat = float(prof.m0[mask].sum())
        limit = max_factor * max(n_obs, 1.0)
        if not mask.any():
            raise ValueError("profile interval: a group without strata")
        try:
            lo, it_lo, _ = prof.bound(mask, -1, crit, np.inf)
            hi, it_hi, is_open = prof.bound(mask, +1, crit, np.log(max(limit - n_obs, 1e-300)))
        except RuntimeError as exc:
            if errors == "raise":
                raise
            out.append(GroupProfile(None, None, False, False, n_obs, n_obs + dark_hat, level, limit, 0, str(exc)))
            continue
        is_open = is_open or n_obs + hi > limit
        out.append(
            GroupProfile(
                lower=n_obs + min(lo, dark_hat),
                upper=None if is_open else n_obs + max(hi, dark_hat),
                lower_open=False,
                upper_open=is_open,
                n_obs=n_obs,
                n_hat=n_obs + dark_hat,
                level=level,
                search_limit=limit,
                n_iter=it_lo + it_hi,
            )
        )
    return out
