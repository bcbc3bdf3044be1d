"""The parametric bootstrap of one model (docs/method.md 7 step 1): THE one implementation.

Each replicate draws Poisson counts for every cell of the fitted model
(observed cells from ``fit.fitted``, then the unobserved cells from
``fit.m0``), drops the unobserved cells, decides exactly whether the MLE
exists for the new counts (:func:`existence.mle_exists`, about 1 ms instead
of the full check's linear program), refits the model warm-started from the
original fit (:func:`refit_replicate`) and keeps its stratum estimates; the
groups follow from one matrix product with a :class:`~.estimates.GroupMatrix`.

Used by the bootstrap stage of ``mse run`` (every report group) and by
``mse estimate --bootstrap`` (the total and the ``--by`` groups).
"""

from __future__ import annotations

import dataclasses

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
    """

    groups: GroupMatrix
    n_obs: np.ndarray
    n_hat: np.ndarray
    replicates: np.ndarray
    dark: np.ndarray
    n_boot: int
    failed_status: dict
    n_lp_checks: int

    @property
    def n_failed(self) -> int:
        """Replicates left out."""
        return int(sum(self.failed_status.values()))

    @property
    def n_ok(self) -> int:
        """Usable replicates."""
        return self.n_boot - self.n_failed

    @property
    def var_within(self) -> np.ndarray:
        """Per group: variance (ddof 1) of the usable replicates' N-hat (NaN with fewer than two)."""
        if self.n_ok < MIN_REPLICATES:
            return np.full(len(self.groups.group), np.nan)
        return self.replicates.var(axis=0, ddof=1)

    @property
    def var_within_log(self) -> np.ndarray:
        """Per group: variance of the replicates' log(N-hat - n_obs), for the log-scale interval."""
        if self.n_ok < MIN_REPLICATES:
            return np.full(len(self.groups.group), np.nan)
        return np.log(self.dark).var(axis=0, ddof=1)

    def interval(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile interval of the replicates' N-hat per group.

        Returns
        -------
        DataFrame
            ``year``, ``group``, ``lower``, ``upper`` (NaN with no usable
            replicate), ``n_boot_ok``.
        """
        out = self.groups.frame()
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        if self.n_ok:
            out["lower"] = np.quantile(self.replicates, lo, axis=0)
            out["upper"] = np.quantile(self.replicates, hi, axis=0)
        else:
            out["lower"] = out["upper"] = np.nan
        out["n_boot_ok"] = self.n_ok
        return out


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


def parametric_bootstrap(fit: Fit, n_boot: int, rng: np.random.Generator, groups: GroupMatrix) -> Bootstrap:
    """Parametric bootstrap of one model for the given groups (docs/method.md 7 step 1).

    Parameters
    ----------
    fit : Fit
        A fitted model with status ok.
    n_boot : int
        Replicates (at least :data:`MIN_REPLICATES`).
    rng : numpy.random.Generator
        The model's stream, e.g. ``seeds.rng(seed, "bootstrap", k)``.
    groups : GroupMatrix
        From :func:`estimates.group_matrix` or :func:`estimates.by_groups` on
        ``fit.design.strata``.

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
    obs_s = np.empty((n_boot, design.n_strata))
    dark_s = np.empty((n_boot, design.n_strata))
    ok = np.zeros(n_boot, dtype=bool)
    X = design.X_obs[:, fit.cols]
    failed: dict[str, int] = {}
    n_lp = 0
    for b in range(n_boot):
        y = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)  # the unobserved cells are drawn too, then dropped (docs/method.md 7)
        rf, status, lp = refit_replicate(fit, y, X)
        n_lp += lp
        if rf is None:
            failed[status] = failed.get(status, 0) + 1
            continue
        ok[b] = True
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
    )
