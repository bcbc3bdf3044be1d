"""Tables and figures of notebook 02 (multiple imputation), docs/method.md section 4.

Every function takes the summary frames of :class:`mse_helpers.stages.impute.ImputeResult`
(counts and means, never person-level rows) and returns a DataFrame or a
matplotlib Figure, so the notebook only displays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..codes import COVARIATE_NAMES, COVARIATES, LEVEL_NAMES, REGISTER_NAMES


def variable_label(variable: str) -> str:
    """``"P (Police)"`` or ``"S (sex)"``."""
    name = REGISTER_NAMES.get(variable) or COVARIATE_NAMES.get(variable, "")
    return f"{variable} ({name})" if name else variable


def coded_one_label(variable: str) -> str:
    """What a 1 means: ``"on register"`` for a register, the second level for a covariate."""
    if variable in COVARIATES:
        level = COVARIATES[variable][1]
        return f"{level} ({LEVEL_NAMES[variable][level]})"
    return "on register"


def missing_shares(missing: pd.DataFrame) -> pd.DataFrame:
    """Share of missing values per variable and year before imputation.

    Parameters
    ----------
    missing : DataFrame
        ``ImputeResult.missing``: ``dataset``, ``year``, ``variable``,
        ``n_records``, ``n_missing`` of each data set's linked file.

    Returns
    -------
    DataFrame
        Rows: variables (in file order); columns: the years and ``all years``;
        values: missing share, pooled over the data sets (linking differs per
        data set, so the shares can too).
    """
    order = list(dict.fromkeys(missing["variable"]))
    by_year = missing.groupby(["variable", "year"])[["n_records", "n_missing"]].sum()
    share = (by_year["n_missing"] / by_year["n_records"]).unstack("year")
    total = missing.groupby("variable")[["n_records", "n_missing"]].sum()
    share["all years"] = total["n_missing"] / total["n_records"]
    share = share.loc[order]
    share.index = [variable_label(v) for v in order]
    share.index.name = "variable"
    share.columns.name = None
    return share


def trace_plot(traces: pd.DataFrame, ncols: int = 3) -> Figure:
    """Convergence traces as mice plots them: one panel per imputed variable.

    Parameters
    ----------
    traces : DataFrame
        ``dataset``, ``iteration``, ``variable``, ``mean``: the mean of the
        imputed values after each iteration.
    ncols : int
        Panels per row.

    Returns
    -------
    Figure
        One line per data set; chains that mix and show no trend have converged.
    """
    variables = list(dict.fromkeys(traces["variable"]))
    nrows = max(1, int(np.ceil(len(variables) / ncols)))
    fig = Figure(figsize=(4 * ncols, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, var in zip(axes, variables):
        one = traces[traces["variable"] == var].pivot(index="iteration", columns="dataset", values="mean")
        ax.plot(one.index, one.to_numpy(), linewidth=0.8, alpha=0.8)
        ax.set_title(variable_label(var), fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"share {coded_one_label(var)}", fontsize=8)
        ax.set_xticks(one.index)
    for ax in axes[len(variables) :]:
        ax.set_visible(False)
    if not variables:
        axes[0].text(0.5, 0.5, "no missing values: nothing imputed", ha="center", va="center")
    fig.suptitle("Mean of the imputed values per iteration, one line per completed data set")
    return fig


def trace_stability(traces: pd.DataFrame) -> pd.DataFrame:
    """A numeric convergence check of the traces: Gelman-Rubin R-hat of the second half.

    Parameters
    ----------
    traces : DataFrame
        As in :func:`trace_plot`.

    Returns
    -------
    DataFrame
        Per variable: ``first_iteration_mean`` and ``last_iteration_mean``
        (averaged over data sets), ``drift`` (mean of the second half of the
        iterations minus the first half, after the first iteration) and
        ``r_hat`` (potential scale reduction over the second half of the
        iterations; near 1 when the chains mix, NaN with one data set or a
        chain that never varies).
    """
    rows = []
    for var, one in traces.groupby("variable", sort=False):
        wide = one.pivot(index="iteration", columns="dataset", values="mean").sort_index()
        n_it = len(wide)
        half = wide.iloc[n_it // 2 :]
        first = wide.iloc[1 : max(2, n_it // 2)]
        r_hat = np.nan
        n, m = half.shape
        if m > 1 and n > 1:
            within = half.var(axis=0, ddof=1).mean()
            between = n * half.mean(axis=0).var(ddof=1)
            if within > 0:
                r_hat = float(np.sqrt(((n - 1) / n * within + between / n) / within))
        rows.append(
            (
                variable_label(var),
                wide.iloc[0].mean(),
                wide.iloc[-1].mean(),
                half.to_numpy().mean() - first.to_numpy().mean(),
                r_hat,
            )
        )
    return pd.DataFrame(
        rows, columns=["variable", "first_iteration_mean", "last_iteration_mean", "drift", "r_hat"]
    ).set_index("variable")


def register_frequency_table(frequencies: pd.DataFrame) -> pd.DataFrame:
    """Study Figure 1 as a table: persons per register and year, mean over the data sets.

    Parameters
    ----------
    frequencies : DataFrame
        ``ImputeResult.frequencies``: ``dataset``, ``year``, ``register``, ``n_obs``.

    Returns
    -------
    DataFrame
        Rows: years; columns: registers; values: mean n_obs over the completed
        data sets (rounded to 0.1).
    """
    order = list(dict.fromkeys(frequencies["register"]))
    table = frequencies.groupby(["year", "register"])["n_obs"].mean().unstack("register")[order]
    table.columns.name = None
    return table.round(1)


def register_frequency_plot(frequencies: pd.DataFrame) -> Figure:
    """Study Figure 1: observed register frequencies per year, averaged over the data sets.

    Parameters
    ----------
    frequencies : DataFrame
        As in :func:`register_frequency_table`.

    Returns
    -------
    Figure
        One line per register over the years; the band shows the range over the
        data sets (it is wide only where linking or imputation varies).
    """
    table = register_frequency_table(frequencies)
    lo = frequencies.groupby(["year", "register"])["n_obs"].min().unstack("register")
    hi = frequencies.groupby(["year", "register"])["n_obs"].max().unstack("register")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for reg in table.columns:
        (line,) = ax.plot(table.index, table[reg], marker="o", label=variable_label(reg))
        ax.fill_between(table.index, lo[reg], hi[reg], color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xticks(table.index)
    ax.set_xlabel("year")
    ax.set_ylabel("persons on the register")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, ncols=2)
    ax.set_title("Persons per register after imputation (mean over the completed data sets)", fontsize=10)
    return fig


def observed_vs_imputed(proportions: pd.DataFrame) -> pd.DataFrame:
    """Observed versus imputed proportions per variable.

    Parameters
    ----------
    proportions : DataFrame
        ``ImputeResult.proportions``: ``dataset``, ``year``, ``variable``,
        ``n_observed``, ``n_observed_1``, ``n_imputed``, ``n_imputed_1``.

    Returns
    -------
    DataFrame
        Per imputed variable: what 1 means, ``n_observed`` (per data set, mean),
        ``observed_share`` of 1s among observed values, ``n_imputed`` (per data
        set, mean), ``imputed_share`` of 1s among imputed values (pooled over the
        data sets), ``imputed_share_min``/``max`` over the data sets. Differences
        between the shares are expected when values are missing at random (the
        records with missing values differ), not a fault in themselves.
    """
    per_set = proportions.groupby(["variable", "dataset"], sort=False)[
        ["n_observed", "n_observed_1", "n_imputed", "n_imputed_1"]
    ].sum()
    per_set = per_set[per_set["n_imputed"] > 0]
    rows = []
    for var, one in per_set.groupby(level="variable", sort=False):
        share_each = one["n_imputed_1"] / one["n_imputed"]
        rows.append(
            (
                variable_label(var),
                coded_one_label(var),
                one["n_observed"].mean(),
                one["n_observed_1"].sum() / one["n_observed"].sum(),
                one["n_imputed"].mean(),
                one["n_imputed_1"].sum() / one["n_imputed"].sum(),
                share_each.min(),
                share_each.max(),
            )
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "variable",
            "share of",
            "n_observed",
            "observed_share",
            "n_imputed",
            "imputed_share",
            "imputed_share_min",
            "imputed_share_max",
        ],
    )
    return out.set_index("variable").round(
        {
            "n_observed": 1,
            "n_imputed": 1,
            "observed_share": 3,
            "imputed_share": 3,
            "imputed_share_min": 3,
            "imputed_share_max": 3,
        }
    )


def year_totals_table(year_totals: pd.DataFrame) -> pd.DataFrame:
    """Records per year: person-level file, partial records, completed data sets.

    Parameters
    ----------
    year_totals : DataFrame
        ``ImputeResult.year_totals``.

    Returns
    -------
    DataFrame
        Indexed by year, with a column ``linked_away``: partial records that
        linking merged into existing persons (range over the data sets).
    """
    out = year_totals.set_index("year").copy()
    upper = out["n_persons"] + out["n_partial"]
    out["linked_away"] = [
        f"{a}-{b}" if a != b else f"{a}" for a, b in zip(upper - out["n_completed_max"], upper - out["n_completed_min"])
    ]
    return out
