"""The parametric bootstrap of one model (docs/method.md 7 step 1): THE one implementation.

Each replicate draws Poisson counts for every cell of the fitted model
(observed cells from ``fit.fitted``, then the unobserved cells from
``fit.m0``), drops the unobserved cells, decides exactly whether the MLE
exists for the new counts (:func:`existence.mle_exists`, about 1 ms instead
of the full check's linear program), refits the model warm-started from the
original fit (:func:`refit_replicate`) and keeps its stratum estimates; the
groups follow from one matrix product with a :class:`~.estimates.GroupMatrix`.
A caller may pass its own ``refit`` instead, e.g. one that repeats the whole
model selection on the replicate (``mse estimate --reselect``): the engine
does not know the selection methods.

Intervals (:meth:`Bootstrap.interval`, :func:`bca_interval`) are intervals of
the dark number (N-hat* - n_obs* of each replicate) added to the observed
count, so they never reach below n_obs.

Used by the bootstrap stage of ``mse run`` (every report group, variances
only) and by ``mse estimate --bootstrap`` (the total and the ``--by`` groups).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from .estimates import GroupMatrix
from .existence import mle_exists
from .fit import Fit, fit_model
from .status import FitStatus

#: Guard on a warm refit whose MLE exists: a fitted cell below this fraction
#: of its value in the original fit means the refit drifted; it is redone cold.
DRIFT_RATIO = 1e-6
#: Fewest replicates: a variance and a percentile interval need two.
MIN_REPLICATES = 2
#: Largest share of failed replicates for an interval to count as reliable:
#: above it the usable replicates are a selection of the tables (those where
#: the MLE exists), and their spread says little about the estimate's.
MAX_FAILED_SHARE = 0.10

#: A replicate's refit: observed-cell counts -> (usable Fit or None, status,
#: whether the direction LP ran). :func:`refit_replicate` of the original
#: model by default; ``mse estimate --reselect`` passes one that reselects.
Refit = Callable[[np.ndarray], tuple["Fit | None", str, bool]]
#: Replicate index -> its own random stream (order-free), e.g.
#: ``lambda b: seeds.rng(seed, "estimate", 1, b)``.
StreamOf = Callable[[int], np.random.Generator]


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """Parametric bootstrap of one model, per group.

    Attributes
    ----------
    groups : GroupMatrix
        The groups (rows of every per-group array).
    n_obs, n_hat : ndarray
        Per group: observed persons and the model's N-hat (the original fit).
    replicates : ndarray
        Usable replicates x groups: N-hat of each.
    dark : ndarray
        Usable replicates x groups: N-hat - n_obs of each (the dark number).
    n_boot : int
        Replicates drawn.
    failed_status : dict
        Status -> number of replicates whose refit had no MLE (or did not
        converge); never averaged in.
    n_lp_checks : int
        Replicates whose existence needed the direction LP (the null-space
        check was undecided).
    models : dict
        Terms (tuple) of the usable replicates' models -> replicates; one
        entry unless the refit reselects the model.
    """

    groups: GroupMatrix
    n_obs: np.ndarray
    n_hat: np.ndarray
    replicates: np.ndarray
    dark: np.ndarray
    n_boot: int
    failed_status: dict
    n_lp_checks: int
    models: dict = dataclasses.field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        """Replicates left out."""
        return int(sum(self.failed_status.values()))

    @property
    def n_ok(self) -> int:
        """Usable replicates."""
        return self.n_boot - self.n_failed

    @property
    def failed_share(self) -> float:
        """Share of the replicates drawn that were left out."""
        return self.n_failed / self.n_boot

    @property
    def reliable(self) -> bool:
        """At most :data:`MAX_FAILED_SHARE` of the replicates failed (and at least two are usable)."""
        return self.failed_share <= MAX_FAILED_SHARE and self.n_ok >= MIN_REPLICATES

    @property
    def var_within(self) -> np.ndarray:
        """Per group: variance (ddof 1) of the usable replicates' N-hat (NaN with fewer than two)."""
        if self.n_ok < MIN_REPLICATES:
            return np.full(len(self.groups.group), np.nan)
        return self.replicates.var(axis=0, ddof=1)

    @property
    def bias(self) -> np.ndarray:
        """Per group: the bootstrap estimate of N-hat's bias under the model, mean(N-hat*) - N-hat.

        The small-sample bias of the MLE that the fitted model itself implies
        (e.g. upwards in small strata); it says nothing about a bias from a
        wrong model. NaN with fewer than two usable replicates.
        """
        if self.n_ok < MIN_REPLICATES:
            return np.full(len(self.groups.group), np.nan)
        return self.replicates.mean(axis=0) - self.n_hat

    @property
    def var_within_log(self) -> np.ndarray:
        """Per group: variance of the replicates' log(N-hat - n_obs), for the log-scale interval."""
        if self.n_ok < MIN_REPLICATES:
            return np.full(len(self.groups.group), np.nan)
        return np.log(self.dark).var(axis=0, ddof=1)

    def interval(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile interval of the dark number per group, added to the observed count.

        ``n_obs + quantile(dark*)``: each replicate's N-hat* - n_obs*, so the
        spread of the replicates' own observed counts is not mixed into the
        interval and no bound is below n_obs (a percentile of N-hat* itself
        can be, when the dark number is small).

        Returns
        -------
        DataFrame
            ``year``, ``group``, ``lower``, ``upper`` (NaN with no usable
            replicate), ``n_boot_ok``.
        """
        out = self.groups.frame()
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        if self.n_ok:
            out["lower"] = self.n_obs + np.quantile(self.dark, lo, axis=0)
            out["upper"] = self.n_obs + np.quantile(self.dark, hi, axis=0)
        else:
            out["lower"] = out["upper"] = np.nan
        out["n_boot_ok"] = self.n_ok
        return out


@dataclasses.dataclass(frozen=True)
class Jackknife:
    """Delete-one-person jackknife of the dark number, for the BCa acceleration.

    One estimate per observed cell with a count above zero: the table with
    one person fewer in that cell, re-estimated (the same refit as the
    bootstrap's: the fixed model, or the whole selection).

    Attributes
    ----------
    weights : ndarray
        Per such cell: its count (the persons whose removal gives that table).
    dark : ndarray
        Cells x groups: the dark number of each table (NaN where it failed).
    n_failed : int
        Cells whose table had no usable estimate (left out of the acceleration).
    """

    weights: np.ndarray
    dark: np.ndarray
    n_failed: int

    @property
    def acceleration(self) -> np.ndarray:
        """Per group: ``sum w r^3 / (6 (sum w r^2)^1.5)``, r = weighted mean - jackknife value.

        SparseMSE's ``estimatepopulation`` (the residuals of the jackknife
        estimates, each counted as often as its cell's count); 0 where the
        jackknife values do not vary.
        """
        ok = np.isfinite(self.dark).all(axis=1)
        w, d = self.weights[ok], self.dark[ok]
        if not w.size:
            return np.full(self.dark.shape[1], np.nan)
        r = (w @ d) / w.sum() - d
        num, den = w @ r**3, w @ r**2
        # values equal up to rounding have residuals of rounding size, whose ratio is noise
        flat = np.sqrt(den / w.sum()) <= 1e-9 * np.maximum(np.abs(d).max(axis=0), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(flat, 0.0, num / (6 * den**1.5))


def refit_replicate(fit: Fit, counts: np.ndarray, X: np.ndarray | None = None) -> tuple[Fit | None, FitStatus, bool]:
    """Refit ``fit``'s model on replicate counts, after an exact existence decision.

    Existence is decided by :func:`existence.mle_exists`; then a warm refit
    without the full check. As a guard, a refit that does not converge or
    whose fitted cells collapse (a cell below :data:`DRIFT_RATIO` of its value
    in the original fit: the mark of a likelihood without maximum) is redone
    from cold start values; if that fails too, the replicate fails with the
    refit's status.

    Parameters
    ----------
    fit : Fit
        The model fitted to the data (status ok).
    counts : ndarray
        Replicate counts of the observed cells.
    X : ndarray, optional
        ``fit.design.X_obs[:, fit.cols]`` (pass it when refitting many
        replicates of one model).

    Returns
    -------
    refit : Fit or None
        The usable refit, or None.
    status : FitStatus
        OK or why the replicate failed.
    lp_checked : bool
        Whether the direction LP ran.
    """
    design = fit.design
    if X is None:
        X = design.X_obs[:, fit.cols]
    exists, lp = mle_exists(X, counts, design.lattice_model(fit.cols) if design.uses_lattice else None)
    if not exists:
        return None, FitStatus.NO_MLE, lp
    rf = fit_model(design, fit.terms, counts=counts, start=fit.params, check=False)
    if rf.ok and np.min(rf.fitted / fit.fitted) >= DRIFT_RATIO:
        return rf, FitStatus.OK, lp
    rf = fit_model(design, fit.terms, counts=counts, check=False)
    return (rf, FitStatus.OK, lp) if rf.ok else (None, rf.status, lp)


def _fixed_refit(fit: Fit) -> Refit:
    """The default refit: ``fit``'s own model (:func:`refit_replicate`)."""
    X = fit.design.X_obs[:, fit.cols]
    return lambda counts: refit_replicate(fit, counts, X)


def parametric_bootstrap(
    fit: Fit,
    n_boot: int,
    rng: np.random.Generator | StreamOf,
    groups: GroupMatrix,
    *,
    refit: Refit | None = None,
) -> Bootstrap:
    """Parametric bootstrap of one model for the given groups (docs/method.md 7 step 1).

    Parameters
    ----------
    fit : Fit
        A fitted model with status ok: the replicates are drawn from it.
    n_boot : int
        Replicates (at least :data:`MIN_REPLICATES`).
    rng : numpy.random.Generator or callable
        One stream for all replicates in turn (the pipeline: ``seeds.rng(seed,
        "bootstrap", k)``), or a function giving replicate ``b`` its own stream
        (``mse estimate``), so that a replicate's table does not depend on
        which replicates were drawn before it.
    groups : GroupMatrix
        From :func:`estimates.group_matrix` or :func:`estimates.by_groups` on
        ``fit.design.strata``.
    refit : callable, optional
        Replicate counts -> (Fit or None, status, LP ran); default the same
        model (:func:`refit_replicate`). Its Fit must have the strata of
        ``fit.design`` in the same order.

    Returns
    -------
    Bootstrap
        Variances are NaN when fewer than two replicates are usable.
    """
    if not fit.ok:
        raise ValueError(f"parametric bootstrap: the model is not usable (status {fit.status})")
    if n_boot < MIN_REPLICATES:
        raise ValueError(f"bootstrap: at least {MIN_REPLICATES} replicates are needed for a variance, got {n_boot}")
    design = fit.design
    if groups.matrix.shape[1] != design.n_strata:
        raise ValueError(f"groups: matrix has {groups.matrix.shape[1]} strata columns, the table has {design.n_strata}")
    refit = refit or _fixed_refit(fit)
    stream = rng if callable(rng) else (lambda b: rng)
    obs_s = np.empty((n_boot, design.n_strata))
    dark_s = np.empty((n_boot, design.n_strata))
    ok = np.zeros(n_boot, dtype=bool)
    failed: dict[str, int] = {}
    models: dict[tuple, int] = {}
    n_lp = 0
    for b in range(n_boot):
        g = stream(b)
        y = g.poisson(fit.fitted).astype(float)
        g.poisson(fit.m0)  # the unobserved cells are drawn too, then dropped (docs/method.md 7)
        rf, status, lp = refit(y)
        n_lp += lp
        if rf is None:
            failed[status] = failed.get(status, 0) + 1
            continue
        ok[b] = True
        models[tuple(rf.terms)] = models.get(tuple(rf.terms), 0) + 1
        obs_s[b] = design.n_obs_by_stratum(y)
        dark_s[b] = rf.m0
    dark_g = groups.sums(dark_s[ok])
    n_obs = groups.sums(design.n_obs_by_stratum(fit.y))
    return Bootstrap(
        groups=groups,
        n_obs=n_obs,
        n_hat=n_obs + groups.sums(fit.m0),
        replicates=groups.sums(obs_s[ok]) + dark_g,
        dark=dark_g,
        n_boot=n_boot,
        failed_status=failed,
        n_lp_checks=n_lp,
        models=models,
    )


def jackknife(fit: Fit, groups: GroupMatrix, *, refit: Refit | None = None) -> Jackknife:
    """Delete-one-person jackknife of the dark number (:class:`Jackknife`).

    Parameters
    ----------
    fit : Fit
        The model fitted to the data (status ok).
    groups : GroupMatrix
        As for :func:`parametric_bootstrap`.
    refit : callable, optional
        As for :func:`parametric_bootstrap` (default the same model).
    """
    refit = refit or _fixed_refit(fit)
    cells = np.flatnonzero(fit.y > 0)
    dark = np.full((cells.size, len(groups.group)), np.nan)
    n_failed = 0
    for i, c in enumerate(cells):
        y = fit.y.copy()
        y[c] -= 1
        rf, _, _ = refit(y)
        if rf is None:
            n_failed += 1
            continue
        dark[i] = groups.sums(rf.m0)
    return Jackknife(weights=fit.y[cells].astype(float), dark=dark, n_failed=n_failed)


def bca_bounds(values: np.ndarray, estimate: float, acceleration: float, level: float = 0.95) -> tuple[float, float]:
    """BCa bounds of one quantity from its bootstrap values: SparseMSE's ``bcaconfvalues``.

    ``z0 = Phi^-1(share of values strictly below the estimate)``; for alpha =
    (1 - level) / 2 and 1 - alpha, the quantile (type 8, R's ``type=8``:
    numpy's "median_unbiased") of the values at
    ``Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha)))``.

    Returns
    -------
    lower, upper : float
        NaN when z0 is infinite (every value on one side of the estimate) or
        there are no values.
    """
    from scipy.special import ndtr, ndtri

    values = np.asarray(values, dtype=float)
    if not values.size or not np.isfinite(acceleration):
        return float("nan"), float("nan")
    z0 = float(ndtri(np.mean(values < estimate)))
    if not np.isfinite(z0):
        return float("nan"), float("nan")
    za = ndtri(np.array([(1 - level) / 2, 1 - (1 - level) / 2])) + z0
    q = np.quantile(values, ndtr(z0 + za / (1 - acceleration * za)), method="median_unbiased")
    return float(q[0]), float(q[1])


def bca_interval(boot: Bootstrap, jack: Jackknife, level: float = 0.95) -> pd.DataFrame:
    """BCa interval of the dark number per group, added to the observed count.

    As SparseMSE's ``estimatepopulation`` (DiCiccio & Efron 1996), on the
    dark number: :func:`bca_bounds` of the replicates' dark numbers around the
    data's, with the jackknife's acceleration (:attr:`Jackknife.acceleration`).

    Returns
    -------
    DataFrame
        As :meth:`Bootstrap.interval`, plus ``z0`` and ``acceleration``;
        ``lower``/``upper`` NaN where the BCa is not defined (no usable
        replicate, or every replicate on one side of the estimate: z0 infinite).
    """
    from scipy.special import ndtri

    out = boot.groups.frame()
    dark_hat = boot.n_hat - boot.n_obs
    a = jack.acceleration
    n_groups = len(dark_hat)
    z0 = ndtri(np.mean(boot.dark < dark_hat, axis=0)) if boot.n_ok else np.full(n_groups, np.nan)
    bounds = np.array([bca_bounds(boot.dark[:, g], dark_hat[g], a[g], level) for g in range(n_groups)])
    out["lower"], out["upper"] = boot.n_obs + bounds[:, 0], boot.n_obs + bounds[:, 1]
    out["n_boot_ok"] = boot.n_ok
    out["z0"], out["acceleration"] = z0, a
    return out
