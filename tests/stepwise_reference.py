"""A slow, obviously correct stepwise search, the test oracle for model selection.

It refits every candidate with statsmodels GLM (Poisson) from a patsy formula,
exactly as R's ``step()`` does with ``glm(family = poisson)``: at each step it
evaluates every allowed single-term change and takes the one that lowers the
criterion most; it stops when no change lowers it. Nothing here is fast or
clever on purpose: it shares no code with ``mse_helpers``.

Tables: a DataFrame of the *observed* cells with 0/1 list columns, factor
columns (binary 0/1 covariates, or a year column treated as categorical) and
``count``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf


def _var(name: str, categorical: set[str]) -> str:
    return f"C({name})" if name in categorical else name


def formula(variables, terms, categorical=()) -> str:
    """``count ~ A + B + ... + A:B + ...`` with categorical factors wrapped in C()."""
    cat = set(categorical)
    parts = [_var(v, cat) for v in variables]
    parts += [":".join(_var(v, cat) for v in t.split(":")) for t in terms]
    return "count ~ " + " + ".join(parts)


def fit(table: pd.DataFrame, variables, terms, categorical=()) -> dict:
    """Fit one model with statsmodels; return loglik, number of parameters, AIC, BIC."""
    res = smf.glm(formula(variables, terms, categorical), data=table, family=sm.families.Poisson()).fit(
        tol=1e-12, maxiter=200
    )
    k = int(res.df_model) + 1
    n = len(table)
    return {
        "loglik": res.llf,
        "k": k,
        "aic": -2 * res.llf + 2 * k,
        "bic": -2 * res.llf + math.log(n) * k,
        "result": res,
    }


def _canon(term: str) -> str:
    return ":".join(sorted(term.split(":")))


def backward(table, variables, start_terms, criterion="aic", categorical=()) -> list[str]:
    """Backward elimination of interaction terms from ``start_terms``.

    A term may be dropped only when no remaining higher-order term contains it
    (R's ``drop1`` respects marginality in the same way).
    """
    terms = [_canon(t) for t in start_terms]
    current = fit(table, variables, terms, categorical)[criterion]
    while True:
        best, best_val = None, current
        for t in terms:
            parts = set(t.split(":"))
            if any(u != t and parts < set(u.split(":")) for u in terms):
                continue
            val = fit(table, variables, [u for u in terms if u != t], categorical)[criterion]
            if val < best_val - 1e-9:
                best, best_val = t, val
        if best is None:
            return sorted(terms)
        terms.remove(best)
        current = best_val


def forward(table, variables, base_terms, candidates, criterion="bic", categorical=()) -> list[str]:
    """Forward selection from ``base_terms`` over ``candidates``.

    A candidate is eligible only when all its lower-order margins (two-factor
    terms of a three-factor term) are in the model.
    """
    terms = [_canon(t) for t in base_terms]
    pool = [_canon(t) for t in candidates]
    current = fit(table, variables, terms, categorical)[criterion]
    while True:
        best, best_val = None, current
        for t in pool:
            if t in terms:
                continue
            parts = t.split(":")
            margins = [":".join(c) for c in itertools.combinations(parts, len(parts) - 1)] if len(parts) > 2 else []
            if any(_canon(mg) not in terms for mg in margins):
                continue
            val = fit(table, variables, terms + [t], categorical)[criterion]
            if val < best_val - 1e-9:
                best, best_val = t, val
        if best is None:
            return sorted(terms)
        terms.append(best)
        current = best_val


def all_two_factor(variables) -> list[str]:
    """Every two-factor term of ``variables``."""
    return [f"{a}:{b}" for a, b in itertools.combinations(variables, 2)]


def random_table(rng: np.random.Generator, lists, factors, year_levels=None, scale=30.0, effects=None) -> pd.DataFrame:
    """A dense random table of observed cells from a known log-linear model.

    Parameters
    ----------
    rng : numpy.random.Generator
    lists : list of str
        0/1 list columns.
    factors : list of str
        Binary covariates (0/1).
    year_levels : list of int, optional
        Levels of a categorical column ``J``.
    scale : float
        Baseline expected count.
    effects : dict, optional
        Interaction effects ``{"A:B": 0.8}`` added to the linear predictor.
    """
    cols = list(lists) + list(factors)
    grid = pd.DataFrame(list(itertools.product([0, 1], repeat=len(cols))), columns=cols)
    if year_levels:
        grid = grid.merge(pd.DataFrame({"J": year_levels}), how="cross")
    eta = np.full(len(grid), math.log(scale))
    for c in cols:
        eta += rng.normal(-0.3, 0.3) * grid[c]
    for term, beta in (effects or {}).items():
        eta += beta * grid[term.split(":")].prod(axis=1)
    grid["count"] = rng.poisson(np.exp(eta))
    return grid[grid[list(lists)].sum(axis=1) > 0].reset_index(drop=True)


def n_hat(table: pd.DataFrame, lists, factors, terms, categorical=()) -> float:
    """N-hat of a model: observed total plus the fitted all-zero-list cell of every
    stratum (every combination of ``factors`` in the table), predicted by statsmodels."""
    variables = list(lists) + list(factors)
    res = fit(table, variables, terms, categorical)["result"]
    if factors:
        strata = table[list(factors)].drop_duplicates().reset_index(drop=True)
    else:
        strata = pd.DataFrame(index=[0])
    for lst in lists:
        strata[lst] = 0
    return float(table["count"].sum() + np.asarray(res.predict(strata)).sum())
