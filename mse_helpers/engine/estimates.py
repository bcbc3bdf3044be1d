"""N-hat by group: the sum of observed persons and fitted unobserved cells over strata (docs/method.md 5, 8)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np
import pandas as pd

from ..codes import YEAR, group_label
from .cells import factor_levels
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


@dataclasses.dataclass(frozen=True)
class GroupMatrix:
    """Groups of strata as a 0/1 matrix: THE group-by-stratum sum of the package.

    Attributes
    ----------
    year : tuple of str
        Per group: the year as text (``"2018"``) or ``"all"``.
    group : tuple of str
        Per group: ``total``, ``S=M`` or ``S=M&L=M`` (:func:`codes.group_label`).
    matrix : ndarray
        Groups x strata, 1 where the stratum belongs to the group.
    """

    year: tuple[str, ...]
    group: tuple[str, ...]
    matrix: np.ndarray

    def frame(self) -> pd.DataFrame:
        """``year`` and ``group`` columns, one row per group."""
        return pd.DataFrame({"year": list(self.year), "group": list(self.group)})

    def sums(self, by_stratum: np.ndarray) -> np.ndarray:
        """Per group, the sum of a per-stratum quantity (or of each row of a replicates x strata array)."""
        if by_stratum.ndim == 1:
            return self.matrix @ by_stratum
        return by_stratum @ self.matrix.T


def _stratum_levels(strata: pd.DataFrame, name: str) -> tuple[str, ...]:
    """A factor's levels in the strata, as text, in the engine's order (:func:`cells.factor_levels`)."""
    return tuple(str(v) for v in factor_levels(name, strata[name]))


def _group_rows(
    strata: pd.DataFrame, year_levels: list[tuple[str, np.ndarray]], groupings: Sequence[Sequence[str]]
) -> GroupMatrix:
    """Every (year label, grouping, combination of the grouping's levels) as a row."""
    columns = sorted({c for g in groupings for c in g})
    values = {c: strata[c].astype(str).to_numpy() for c in columns}
    levels = {c: _stratum_levels(strata, c) for c in columns}
    years_out, groups_out, rows = [], [], []
    for label, in_year in year_levels:
        for g in groupings:
            for combo in itertools.product(*(levels[c] for c in g)):
                mask = in_year.copy()
                for c, lv in zip(g, combo):
                    mask &= values[c] == lv
                years_out.append(label)
                groups_out.append(group_label(**dict(zip(g, combo))) if g else "total")
                rows.append(mask.astype(float))
    return GroupMatrix(year=tuple(years_out), group=tuple(groups_out), matrix=np.vstack(rows))


def group_matrix(
    strata: pd.DataFrame,
    covariates: Sequence[str],
    year: str | None = YEAR,
    pairs: bool = True,
    single_year: str | None = None,
) -> GroupMatrix:
    """Every report group (docs/method.md 5, 8) as rows of a group-by-stratum matrix.

    Order: all years together first, then each year; within each, the total,
    each level of each covariate, then each level pair of each covariate pair.

    Parameters
    ----------
    strata : DataFrame
        One row per stratum with the factor columns (``Design.strata``).
    covariates : sequence of str
        Covariate columns to split by.
    year : str or None
        The year column; None or absent when one year is analysed (the year
        is then not a factor of the table).
    pairs : bool
        Include the pairs of covariates.
    single_year : str, optional
        With no year column: the analysed year, whose groups repeat those of
        ``all`` (so that per-year tables still find their year).

    Returns
    -------
    GroupMatrix
    """
    year = year if year is not None and year in strata.columns else None
    covs = [c for c in covariates if c in strata.columns and c != year]
    groupings: list[list[str]] = [[]] + [[c] for c in covs]
    if pairs:
        groupings += [list(p) for p in itertools.combinations(covs, 2)]
    n = len(strata)
    year_levels: list[tuple[str, np.ndarray]] = [("all", np.ones(n, dtype=bool))]
    if year:
        values = strata[year].astype(str).to_numpy()
        year_levels += [(y, values == y) for y in _stratum_levels(strata, year)]
    elif single_year is not None:
        year_levels.append((str(single_year), np.ones(n, dtype=bool)))
    return _group_rows(strata, year_levels, groupings)


def by_groups(strata: pd.DataFrame, by: Sequence[str]) -> GroupMatrix:
    """The total and every combination of the levels of ``by`` (e.g. ``J=2018&S=F``), year ``"all"``."""
    bad = [b for b in by if b not in strata.columns]
    if bad:
        raise ValueError(f"by: {bad} are not factors of the table; factors are {list(strata.columns)}")
    groupings = [[]] + ([list(by)] if by else [])
    return _group_rows(strata, [("all", np.ones(len(strata), dtype=bool))], groupings)


def n_hat_groups(
    fit: Fit, year: str | None = YEAR, covariates: Sequence[str] | None = None, pairs: bool = True
) -> pd.DataFrame:
    """N-hat for every reporting group: total, per year, per covariate level and
    per pair of covariate levels within year (docs/method.md 5, 8; :func:`group_matrix`).

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
    groups = group_matrix(d.strata[list(d.factors)], covs, year, pairs=pairs)
    out = groups.frame()
    out["n_obs"] = groups.sums(d.n_obs_by_stratum(fit.y))
    out["dark"] = groups.sums(fit.m0) if fit.ok else np.nan
    out["n_hat"] = out["n_obs"] + out["dark"]
    return out[["year", "group", "n_obs", "n_hat", "dark"]]
