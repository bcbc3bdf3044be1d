"""Fitting one log-linear model: existence check, then Newton-Raphson (docs/method.md 5).

:func:`fit_model` runs the existence/identifiability check (:mod:`.existence`),
then Newton-Raphson (= IRLS for the canonical log link) with a Cholesky solve
on the observed cells; warm starts from a neighbouring model's coefficients;
new counts on the same design for the parametric bootstrap (:func:`refit`).

Log-likelihood, deviance, AIC and BIC follow statsmodels' GLM Poisson
(``llf`` includes the ``-log(y!)`` term, BIC is ``-2 llf + log(n) k`` with n the
number of observed cells), so that numbers are directly comparable.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.linalg import lapack
from scipy.special import gammaln

from .design import Design, _InfoPlan, _LatticeModel, _ModelMatrix
from .existence import check_existence
from .status import FitStatus


@dataclasses.dataclass(frozen=True, eq=False)
class Fit:
    """One fitted log-linear model (or the reason it was not fitted), built complete by :func:`fit_model`.

    Names follow statsmodels' GLM results where they exist (``params``,
    ``llf``, ``deviance``, ``aic``, ``nobs``, ``df_resid``); ``bic`` is
    statsmodels' ``bic_llf`` (``-2 llf + log(nobs) k``). ``nobs`` is the
    number of observed *cells* (the n of BIC, as in statsmodels), ``n_obs`` the
    number of observed *persons*.

    Attributes
    ----------
    design : Design
        The table's design.
    terms : tuple of str
        Interaction terms (main effects are always included).
    y : ndarray
        Observed-cell counts the model was fitted to.
    cols : ndarray of int
        The model's columns of the design.
    status : FitStatus
        Only ``FitStatus.OK`` fits carry numbers; the others have NaN.
    message : str
        Why the status is not ok, naming the responsible terms ("" when ok).
    responsible : tuple of str
        Terms the existence / rank checks blame.
    params : Series
        Coefficients by column name (empty when not ok); made from ``beta`` when first used.
    beta : ndarray or None
        The coefficients as an array, in the order of ``cols``.
    fitted : ndarray or None
        Fitted values of the observed cells.
    m0 : ndarray or None
        Fitted unobserved-cell value (dark number) per stratum.
    llf, deviance : float
        Log-likelihood (with the ``-log(y!)`` term) and deviance (computed on first use).
    n_iter : int
        Newton iterations used.
    """

    design: Design
    terms: tuple[str, ...]
    y: np.ndarray
    cols: np.ndarray = dataclasses.field(repr=False)
    status: FitStatus
    message: str = ""
    responsible: tuple[str, ...] = ()
    beta: np.ndarray | None = dataclasses.field(default=None, repr=False)
    fitted: np.ndarray | None = None
    m0: np.ndarray | None = None
    n_iter: int = 0

    @functools.cached_property
    def llf(self) -> float:
        """Log-likelihood with the ``-log(y!)`` term (NaN when not ok). Computed on first use:
        bootstrap refits need only ``m0``."""
        if self.fitted is None:
            return float("nan")
        return poisson_loglik(self.y, self.fitted, self.design.log_factorial(self.y))

    @functools.cached_property
    def deviance(self) -> float:
        """Deviance ``2 sum(y log(y/mu) - (y - mu))`` (NaN when not ok); computed on first use."""
        return float("nan") if self.fitted is None else poisson_deviance(self.y, self.fitted)

    @functools.cached_property
    def params(self) -> pd.Series:
        """Coefficients by column name (empty when not ok). Built on first use: most
        candidate fits of a model search are only compared, never started from."""
        if self.beta is None:
            return pd.Series(dtype=float)
        return pd.Series(self.beta, index=self.design._name_index[self.cols], copy=False)

    @property
    def ok(self) -> bool:
        """True when the fit has usable numbers."""
        return self.status == FitStatus.OK

    @property
    def n_params(self) -> int:
        """Number of parameters (intercept, main effects, term columns; year terms count k-1 each)."""
        return int(self.cols.size)

    @property
    def nobs(self) -> int:
        """Number of observed cells (statsmodels' ``nobs``; the n of BIC)."""
        return int(self.y.size)

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom: observed cells minus parameters."""
        return self.nobs - self.n_params

    @property
    def aic(self) -> float:
        """``-2 llf + 2 k`` (NaN when not ok)."""
        return -2.0 * self.llf + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """``-2 llf + log(nobs) k``, statsmodels' ``bic_llf`` (NaN when not ok)."""
        return -2.0 * self.llf + np.log(self.nobs) * self.n_params

    @property
    def n_obs(self) -> float:
        """Observed persons in the table."""
        return float(self.y.sum())

    @property
    def n_hat(self) -> float:
        """Estimated population size (NaN when the fit is not ok)."""
        return float(self.y.sum() + self.m0.sum()) if self.ok else float("nan")


def poisson_loglik(y: np.ndarray, mu: np.ndarray, log_factorial: float | None = None) -> float:
    """Poisson log-likelihood as statsmodels ``llf`` (with the ``-log(y!)`` term).

    ``log_factorial`` is ``sum(log(y!))`` when already known.
    """
    lf = float(gammaln(y + 1.0).sum()) if log_factorial is None else log_factorial
    return float(np.sum(_xlogy(y, mu)) - mu.sum() - lf)


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Poisson deviance ``2 sum(y log(y/mu) - (y - mu))`` with 0 log 0 = 0."""
    pos = y > 0
    return float(2.0 * (np.sum(y[pos] * np.log(y[pos] / mu[pos])) - np.sum(y - mu)))


def _xlogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mu)
    pos = y > 0
    out[pos] = y[pos] * np.log(mu[pos])
    return out


def _start_values(M: _ModelMatrix, y: np.ndarray, plan: "_InfoPlan | None" = None) -> np.ndarray:
    """Cold start: one weighted least-squares step from ``mu = y + 0.1``.

    statsmodels starts IRLS from ``mu = (y + mean y) / 2``; on sparse MSE
    tables (most cells 0, fitted values of the zero cells far below 1) the
    small offset starts much closer to the MLE, so Newton needs about half as
    many iterations. The start only affects the path, not the estimate.
    """
    mu = y + 0.1
    z = np.log(mu) + (y - mu) / mu
    rhs = M.tdot(mu * z)
    try:
        factor = _hessian_factor(M, mu, plan)
    except (linalg.LinAlgError, ValueError):
        X = M.dense()
        A = X * np.sqrt(mu)[:, None]
        return np.linalg.lstsq(A.T @ A, rhs, rcond=None)[0]
    beta = _chol_solve(factor, rhs)
    # one refinement in double precision, so single-precision rounding in the
    # factor does not leave a poor start
    return beta + _chol_solve(factor, M.tdot(mu * (z - M.dot(beta))))


def _chol(H: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Lower Cholesky factor via LAPACK directly (scipy's wrappers cost more
    than the 90 x 90 factorisation itself); ``overwrite``: ``H`` may be overwritten."""
    c, info = lapack.dpotrf(H, lower=1, clean=0, overwrite_a=int(overwrite))
    if info != 0:
        raise linalg.LinAlgError(f"information matrix not positive definite (dpotrf info {info})")
    return c


def _chol_solve(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``H x = b`` from the factor of :func:`_chol`."""
    x, info = lapack.dpotrs(c, b, lower=1)
    if info != 0:  # pragma: no cover - only for malformed input
        raise linalg.LinAlgError(f"dpotrs info {info}")
    return x


def _hessian_factor(M: _ModelMatrix, mu: np.ndarray, plan: "_InfoPlan | None" = None):
    """Cholesky factor of the Fisher information ``X' diag(mu) X``.

    The product is formed in single precision (twice as fast as double, and
    it is the cost of an iteration); it only steers the Newton steps, while
    the score that decides where the iteration stops is in double precision,
    so the estimate is not affected. Falls back to double precision if the
    single-precision matrix is not numerically positive definite.
    """
    w = np.sqrt(mu)
    if plan is not None:
        H = plan.information(mu)
    else:
        A = M.x32() * w.astype(np.float32)[:, None]
        H = (A.T @ A).astype(np.float64)
    try:
        return _chol(H)
    except linalg.LinAlgError:
        A64 = M.dense() * w[:, None]
        return _chol(A64.T @ A64)


class _DenseNewton:
    """The products of a Newton iteration on the observed cells (the dense path)."""

    def __init__(self, M: _ModelMatrix, y: np.ndarray, plan: "_InfoPlan | None"):
        self.M, self.y, self.plan = M, y, plan

    def eta(self, beta: np.ndarray) -> np.ndarray:
        return self.M.dot(beta)

    def loglik(self, beta: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> float:
        return float(self.y @ eta - mu.sum())

    def mu(self, eta: np.ndarray) -> np.ndarray:
        return np.exp(eta)

    def score(self, mu: np.ndarray) -> np.ndarray:
        return self.M.tdot(self.y - mu)

    def factor(self, mu: np.ndarray) -> np.ndarray:
        return _hessian_factor(self.M, mu, self.plan)

    def fitted(self, mu: np.ndarray) -> np.ndarray:
        return mu


class _LatticeNewton:
    """The products of a Newton iteration on the binary lattice (:class:`~.design._LatticeModel`).

    The vectors live on all cells of the lattice (``mu`` exactly 0 on the unobserved
    ones), so no scatter or gather per iteration. The score is ``X'y - X'mu`` (``X'y``
    once per fit), and the superset sums of ``mu`` serve both the score and, when it
    is refreshed, the information at the same point: one superset-sum pass per
    iteration instead of two, written into one buffer.
    """

    def __init__(self, L: _LatticeModel, y: np.ndarray):
        self.L = L
        self.yl, self.xty = L.lattice_counts(y)
        self._ext = np.empty(L.K * L.N + L.N + 1)
        self._at: np.ndarray | None = None  # the mu whose superset sums _ext holds

    def eta(self, beta: np.ndarray) -> np.ndarray:
        return self.L.eta_lattice(beta)

    def mu(self, eta: np.ndarray) -> np.ndarray:
        return self.L.mu_lattice(eta)

    def loglik(self, beta: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> float:
        # y' X beta as (X'y)' beta: p products instead of one per cell
        return float(self.xty @ beta - mu.sum())

    def score(self, mu: np.ndarray) -> np.ndarray:
        self.L._extended(mu, out=self._ext)
        self._at = mu
        return self.xty - self._ext[self.L.at_sum]

    def factor(self, mu: np.ndarray) -> np.ndarray:
        if self._at is not mu:
            self.score(mu)
        try:
            # the information is exactly symmetric: its transpose is the Fortran-order
            # matrix LAPACK wants, so it is factored in place, without a copy
            return _chol(self.L._information_of(self._ext).T, overwrite=True)
        except linalg.LinAlgError:  # as _hessian_factor: the direct product in double precision
            A64 = self.L.dense() * np.sqrt(self.fitted(mu))[:, None]
            return _chol(A64.T @ A64)

    def fitted(self, mu: np.ndarray) -> np.ndarray:
        return mu[self.L.flat_obs]


def _newton(
    M: _ModelMatrix | _LatticeModel,
    y: np.ndarray,
    beta: np.ndarray,
    tol: float,
    max_iter: int,
    plan: "_InfoPlan | _LatticeModel | None" = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Newton-Raphson on the Poisson log-likelihood with step halving.

    Stops when the largest change of a coefficient in the Newton step is below
    ``tol`` (coefficients are on the log scale, so fitted values, and the
    unobserved cells, are then exact to about ``tol`` relative), or when the
    Newton decrement ``g' H^-1 g`` stalls at rounding level with a fresh
    information matrix. Once close, the factor of the information matrix is
    kept (chord steps: a matrix-vector product each instead of a new
    ``X' W X``) as long as the decrement keeps falling by ``M.chord_ratio`` per step (tenfold on the dense path);
    otherwise it is refreshed. A :class:`~.design._LatticeModel` iterates on the
    lattice (:class:`_LatticeNewton`), a model matrix on the observed cells.
    Returns the coefficients, the fitted values of the observed cells, the
    iterations and whether it converged.
    """
    kernel = _LatticeNewton(M, y) if isinstance(M, _LatticeModel) else _DenseNewton(M, y, plan)
    # the bootstrap refits one model from the same start many times: the linear
    # predictor and the information factor at the start depend only on the start
    # (not on the counts), so they are kept with the model (the same numbers)
    key = beta.tobytes()
    cached = getattr(M, "_start_cache", None)
    if cached is not None and cached[0] == key:
        eta, mu, first_factor = cached[1], cached[2], cached[3]
    else:
        eta = kernel.eta(beta)
        if not np.all(np.isfinite(eta)) or eta.max() > 700:
            beta = _start_values(M, y, plan)
            eta = kernel.eta(beta)
            key = None  # a cold start from these counts: nothing to keep
        mu = kernel.mu(eta)
        first_factor = None
    ll = kernel.loglik(beta, eta, mu)
    factor, prev_dec, fresh = None, np.inf, False
    for it in range(1, max_iter + 1):
        score = kernel.score(mu)
        if factor is None:
            if it == 1 and first_factor is not None:
                factor = first_factor
            else:
                try:
                    factor = kernel.factor(mu)
                except (linalg.LinAlgError, ValueError):
                    return beta, kernel.fitted(mu), it, False
                if it == 1 and key is not None:
                    M._start_cache = (key, eta, mu, factor)
            fresh = True
        step = _chol_solve(factor, score)
        decrement = float(score @ step)
        at_noise = fresh and decrement < 1e-20 * max(1.0, abs(ll)) and decrement > 0.25 * prev_dec
        if np.abs(step).max() < tol or decrement <= 0.0 or at_noise:
            beta = beta + step  # the last, tiny step is free
            return beta, kernel.fitted(kernel.mu(kernel.eta(beta))), it, True
        t = 1.0
        while True:
            b_new = beta + t * step
            eta_new = kernel.eta(b_new)
            if eta_new.max() < 700:
                mu_new = kernel.mu(eta_new)
                ll_new = kernel.loglik(b_new, eta_new, mu_new)
                if ll_new >= ll - 1e-12 * abs(ll):
                    break
            t *= 0.5
            if t < 1e-10:
                return beta, kernel.fitted(mu), it, False
        beta, mu, ll = b_new, mu_new, ll_new
        # keep the factor only when close and converging fast with it
        if t < 1.0 or decrement > 1.0 or decrement > M.chord_ratio * prev_dec:
            factor = None
        prev_dec, fresh = decrement, False
    return beta, kernel.fitted(mu), max_iter, False


def fit_model(
    design: Design,
    terms: str | Sequence[str] | None = None,
    counts: np.ndarray | None = None,
    start: pd.Series | dict | None = None,
    check: bool = True,
    explain: bool = True,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> Fit:
    """Fit one log-linear model: main effects plus ``terms``.

    Parameters
    ----------
    design : Design
        The table's design.
    terms : str or sequence of str, optional
        Interaction terms (see :func:`parse_terms`); None: main effects only.
    counts : ndarray, optional
        Observed-cell counts to use instead of the table's (bootstrap refits).
    start : Series or dict, optional
        Coefficients of a neighbouring model (warm start), matched by column
        name; columns it lacks start at 0.
    check : bool
        Run the existence and rank checks first (:func:`existence.check_existence`).
        A model that fails is returned with its status and no numbers. Both
        properties are inherited by sub-models, so a step that only drops
        terms from a model that passed may skip the check (docs/engine.md 4).
    explain : bool
        When a check fails, find the responsible terms (extra linear programs).
    tol : float
        Convergence threshold on the largest coefficient change of a Newton
        step (log scale: fitted values are then exact to about ``tol``).
    max_iter : int
        Newton iteration limit.

    Returns
    -------
    Fit
    """
    terms = design.canonical(terms)
    y = design.check_counts(counts)
    cols = design.columns(terms)
    if check:
        ex = check_existence(design, terms, counts=y, explain=explain)
        if ex.status != FitStatus.OK:
            return Fit(
                design=design,
                terms=terms,
                y=y,
                cols=cols,
                status=ex.status,
                message=ex.message,
                responsible=ex.responsible,
            )
    if design.uses_lattice:
        M = plan = design.lattice_model(cols)
    else:
        M = design.model_matrices(cols)
        plan = design.info_plan(cols)
    if start is None:
        beta0 = _start_values(M, y, plan)
    else:
        beta0 = _match_start(design, cols, start)
    beta, mu, n_iter, converged = _newton(M, y, beta0, tol, max_iter, plan)
    if not converged:
        return Fit(
            design=design,
            terms=terms,
            y=y,
            cols=cols,
            status=FitStatus.NOT_CONVERGED,
            n_iter=n_iter,
            message=(
                f"Newton-Raphson did not converge in {n_iter} iterations; "
                "no estimate is reported (check the existence of the MLE)"
            ),
        )
    return Fit(
        design=design,
        terms=terms,
        y=y,
        cols=cols,
        status=FitStatus.OK,
        beta=beta,
        fitted=mu,
        m0=np.exp(design.X_unobs[:, cols] @ beta),
        n_iter=n_iter,
    )


def _match_start(design: Design, cols: np.ndarray, start: pd.Series | dict) -> np.ndarray:
    """Start coefficients for ``cols`` from a neighbour's, by column name (0 if absent)."""
    if isinstance(start, pd.Series):
        # the bootstrap and a search step start many fits from one Series: match it once
        hit = design._start_match
        values = start.to_numpy(dtype=float)
        # the same Series object with the same index object and the same values (a Series
        # changed in place since is matched again)
        if hit is not None and hit[0] is start and hit[1] is start.index and np.array_equal(hit[2], values):
            every = hit[3]
        else:
            # by the design's name -> column dict: a pandas index lookup per fit costs more than the match
            col_of = design._col_of
            where = np.fromiter((col_of.get(n, -1) for n in start.index), dtype=np.int64, count=len(start))
            known = where >= 0
            every = np.zeros(len(design.column_names))
            every[where[known]] = values[known]
            # holds the Series, so its id cannot be reused meanwhile
            design._start_match = (start, start.index, values.copy(), every)
        return every[cols]
    names = [design.column_names[c] for c in cols]
    return np.array([float(start.get(n, 0.0)) for n in names])


def refit(fit: Fit, counts: np.ndarray, check: bool = True, explain: bool = False) -> Fit:
    """Refit the same model on new observed-cell counts, warm-started from ``fit``.

    Parameters
    ----------
    fit : Fit
        A fitted model (its coefficients are the start when it is ok).
    counts : ndarray
        New observed-cell counts, in the design's observed-cell order.
    check, explain : bool
        As in :func:`fit_model`.

    Returns
    -------
    Fit
    """
    start = fit.params if fit.ok else None
    return fit_model(fit.design, fit.terms, counts=counts, start=start, check=check, explain=explain)
