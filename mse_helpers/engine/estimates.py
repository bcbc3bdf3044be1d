"""N-hat by group: the sum of observed persons and fitted unobserved cells over strata (method.md 5, 8)."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import pandas as pd

from ..codes import YEAR, group_label
from .fit import Fit


def stratum_estimates(fit: Fit) -> pd.DataFrame:
    """Per stratum: factor levels, n_obs, m0 (fitted unobserved cell), n_hat.

    Parameters
    ----------
    fit : Fit

    Returns
    -------
    DataFrame
        NaN estimates when the fit is not ok.
    """
    d = fit.design
    out = d.strata[list(d.factors)].copy()
    out["n_obs"] = d.n_obs_by_stratum(fit.y)
    out["m0"] = fit.m0 if fit.ok else np.nan
    out["n_hat"] = out["n_obs"] + out["m0"]
    return out


def n_hat_by(fit: Fit, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """N-hat for a grouping: the sum over the strata in each group.

    Parameters
    ----------
    fit : Fit
    by : str or sequence of str, optional
        Factor columns to group by (``"J"``, ``["J", "S"]``); None: the total.

    Returns
    -------
    DataFrame
        Grouping columns, ``n_obs``, ``n_hat``, ``dark`` (= n_hat - n_obs).
    """
    by = [by] if isinstance(by, str) else list(by or [])
    bad = [b for b in by if b not in fit.design.factors]
    if bad:
        raise ValueError(f"by: {bad} are not factors of the table; factors are {list(fit.design.factors)}")
    st = stratum_estimates(fit)
    if by:
        g = st.groupby(by, sort=True)[["n_obs", "n_hat"]].sum(min_count=1).reset_index()
    else:
        g = pd.DataFrame({"n_obs": [st["n_obs"].sum()], "n_hat": [st["n_hat"].sum(min_count=1)]})
    g["dark"] = g["n_hat"] - g["n_obs"]
    return g


def n_hat_groups(fit: Fit, year: str | None = YEAR, covariates: Sequence[str] | None = None,
                 pairs: bool = True) -> pd.DataFrame:
    """N-hat for every reporting group: total, per year, per covariate level and
    per pair of covariate levels within year (method.md 5, 8).

    Parameters
    ----------
    fit : Fit
    year : str or None
        The year factor (None or absent from the table: no per-year split).
    covariates : sequence of str, optional
        Covariates to split by (default: every factor except the year).
    pairs : bool
        Also every pair of covariates.

    Returns
    -------
    DataFrame
        Columns ``year`` ("all" for the total over years), ``group``
        (``total``, ``S=M``, ``S=M&L=M``), ``n_obs``, ``n_hat``, ``dark``.
    """
    d = fit.design
    year = year if year in d.factors else None
    covs = [f for f in (covariates if covariates is not None else d.factors) if f != year]
    frames = []
    groupings: list[list[str]] = [[]] + [[c] for c in covs]
    if pairs:
        groupings += [list(p) for p in itertools.combinations(covs, 2)]
    year_keys = [[]] + ([[year]] if year else [])
    for yk in year_keys:
        for g in groupings:
            t = n_hat_by(fit, yk + g)
            t["year"] = t[year].astype(str) if yk else "all"
            # records keep each column's type (iterrows would turn 0/1 levels into 0.0/1.0)
            t["group"] = [group_label(**{c: str(row[c]) for c in g}) for row in t[g].to_dict("records")] \
                if g else "total"
            frames.append(t[["year", "group", "n_obs", "n_hat", "dark"]])
    return pd.concat(frames, ignore_index=True)
