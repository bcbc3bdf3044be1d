"""Tables and figures of notebook 03 (model selection): counts and estimates only.

Inputs are the outputs of :func:`mse_helpers.stages.selection.run_stage` (or the
files it writes): the list of model objects of ``models.json``, and the
screening, refused and sensitivity frames.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from ..stages.selection import THREE_FACTOR, TWO_FACTOR, SelectedModel

TYPES = (TWO_FACTOR, THREE_FACTOR)


def annex_f(models: Sequence[SelectedModel], years: Sequence[int]) -> pd.DataFrame:
    """The study's Annex F as a table: every selected model with its fit and N-hat.

    Parameters
    ----------
    models : sequence of SelectedModel
        The models of ``models.json``.
    years : sequence of int

    Returns
    -------
    DataFrame
        ``dataset, type, terms`` (";"-joined), ``n_terms, aic, bic, deviance, df``,
        ``n_hat_<year>`` per year and ``n_hat_total`` (the columns of results/models.csv,
        which the bootstrap stage publishes, plus ``n_terms``).
    """
    rows = []
    for mdl in models:
        row = {"dataset": mdl.dataset, "type": mdl.type, "terms": ";".join(mdl.terms),
               "n_terms": len(mdl.terms), "aic": mdl.aic, "bic": mdl.bic,
               "deviance": mdl.deviance, "df": mdl.df_resid}
        row.update({f"n_hat_{y}": mdl.n_hat[str(y)] for y in years})
        row["n_hat_total"] = mdl.n_hat["total"]
        rows.append(row)
    return pd.DataFrame(rows)


def screening_table(screening: pd.DataFrame) -> pd.DataFrame:
    """The kept three-factor terms, best first, and how many terms were ranked / not eligible."""
    kept = screening[screening["kept"]].sort_values("rank")[["rank", "term", "bic_gain"]]
    return kept.reset_index(drop=True)


def term_frequency(models: Sequence[SelectedModel]) -> pd.DataFrame:
    """In how many data sets each interaction term was selected, per model type."""
    rows = [{"type": mdl.type, "term": t} for mdl in models for t in mdl.terms]
    if not rows:
        return pd.DataFrame(columns=["term", *TYPES])
    freq = pd.DataFrame(rows).value_counts().unstack("type", fill_value=0)
    freq = freq.reindex(columns=list(TYPES), fill_value=0)
    return freq.sort_values(list(TYPES), ascending=False).reset_index()


def refused_summary(refused: pd.DataFrame) -> pd.DataFrame:
    """Refused terms: per model type, term and status, in how many data sets, with the reason given."""
    if refused.empty:
        return pd.DataFrame(columns=["type", "term", "status", "n_datasets", "reason"])
    g = refused.groupby(["type", "term", "status"], sort=True)
    return g.agg(n_datasets=("dataset", "nunique"), reason=("reason", "first")).reset_index()


def figure2(models: Sequence[SelectedModel], years: Sequence[int]) -> plt.Figure:
    """Study Figure 2: N-hat per completed data set for both model types, total and per year.

    One panel for the total over all years and one per year; in each, a
    boxplot per model type over the completed data sets.
    """
    frame = annex_f(models, years)
    keys = ["total"] + [str(y) for y in years]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.3 * len(keys) + 1, 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        data = [frame.loc[frame["type"] == t, f"n_hat_{key}"].to_numpy() for t in TYPES]
        ax.boxplot(data, tick_labels=["2-factor", "3-factor"], widths=0.6)
        ax.set_title("all years" if key == "total" else key)
        ax.tick_params(axis="x", labelsize=8)
    axes[0][0].set_ylabel("N-hat per completed data set")
    fig.suptitle(f"Estimated number of victims per completed data set (m = {frame['dataset'].nunique()})")
    fig.tight_layout()
    return fig


def sensitivity_table(sensitivity: pd.DataFrame, model_type: str = TWO_FACTOR) -> pd.DataFrame:
    """Mean N-hat over the data sets per analysis (columns) and year (rows), for one model type.

    Means are over the data sets each analysis ran on (the main analysis:
    all m; a sensitivity analysis may run on fewer); ``n_datasets`` says how many.
    """
    s = sensitivity[sensitivity["type"] == model_type]
    mean = s.pivot_table(index="year", columns="analysis", values="n_hat", aggfunc="mean", sort=False)
    obs = s.pivot_table(index="year", columns="analysis", values="n_obs", aggfunc="mean", sort=False)
    order = ["main"] + [a for a in mean.columns if a != "main"]
    out = mean[order].add_prefix("n_hat ").join(obs[order].add_prefix("n_obs "))
    n = s.groupby("analysis")["dataset"].nunique()
    out.loc["n_datasets"] = [n[c.split(" ", 1)[1]] for c in out.columns]
    return out


def sensitivity_figure(sensitivity: pd.DataFrame) -> plt.Figure:
    """N-hat per year for each analysis and model type, as boxplots over the data sets."""
    s = sensitivity[sensitivity["year"] != "total"]
    analyses = ["main"] + [a for a in dict.fromkeys(s["analysis"]) if a != "main"]
    years = list(dict.fromkeys(s["year"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    width = 0.8 / len(analyses)
    for ax, t in zip(axes, TYPES):
        for j, a in enumerate(analyses):
            data = [s[(s["type"] == t) & (s["analysis"] == a) & (s["year"] == y)]["n_hat"].to_numpy()
                    for y in years]
            pos = [i + (j - (len(analyses) - 1) / 2) * width for i in range(len(years))]
            bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, manage_ticks=False,
                            medianprops={"color": "black"})
            for box in bp["boxes"]:
                box.set_facecolor(f"C{j}")
            ax.plot([], [], color=f"C{j}", lw=6, label=a)
        ax.set_xticks(range(len(years)), years)
        ax.set_title(f"{t} model")
    axes[0].set_ylabel("N-hat")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def added_terms(models: Sequence[SelectedModel]) -> pd.DataFrame:
    """Per data set, the terms the three-factor model adds to the two-factor model."""
    by = {(mdl.dataset, mdl.type): mdl.terms for mdl in models}
    rows = []
    for ds in sorted({d for d, _ in by}):
        two, three = by.get((ds, TWO_FACTOR), []), by.get((ds, THREE_FACTOR), [])
        added = [t for t in three if t not in set(two)]
        rows.append({"dataset": ds, "n_added": len(added), "added": ";".join(added) or "(none)"})
    return pd.DataFrame(rows)
