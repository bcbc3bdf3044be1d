"""Tables and figures of notebook 03 (model selection): counts and estimates only.

Inputs are the outputs of :func:`mse_helpers.stages.selection.run_stage` (or the
files it writes): the list of model objects of ``models.json``, and the
screening, refused and sensitivity frames.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

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
        row = {
            "dataset": mdl.dataset,
            "type": mdl.type,
            "terms": ";".join(mdl.terms),
            "n_terms": len(mdl.terms),
            "aic": mdl.aic,
            "bic": mdl.bic,
            "deviance": mdl.deviance,
            "df": mdl.df_resid,
        }
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


def figure2(models: Sequence[SelectedModel], years: Sequence[int]) -> Figure:
    """Study Figure 2: N-hat per completed data set for both model types, total and per year.

    One panel for the total over all years and one per year; in each, a
    boxplot per model type over the completed data sets.
    """
    frame = annex_f(models, years)
    keys = ["total"] + [str(y) for y in years]
    fig = Figure(figsize=(2.3 * len(keys) + 1, 3.6))
    axes = fig.subplots(1, len(keys), squeeze=False)
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


def sensitivity_figure(sensitivity: pd.DataFrame) -> Figure:
    """N-hat per year for each analysis and model type, as boxplots over the data sets."""
    s = sensitivity[sensitivity["year"] != "total"]
    analyses = ["main"] + [a for a in dict.fromkeys(s["analysis"]) if a != "main"]
    years = list(dict.fromkeys(s["year"]))
    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(analyses)
    for ax, t in zip(axes, TYPES):
        for j, a in enumerate(analyses):
            data = [s[(s["type"] == t) & (s["analysis"] == a) & (s["year"] == y)]["n_hat"].to_numpy() for y in years]
            pos = [i + (j - (len(analyses) - 1) / 2) * width for i in range(len(years))]
            bp = ax.boxplot(
                data,
                positions=pos,
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
                medianprops={"color": "black"},
            )
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


#: Refusal statuses in words (the codes stay in ``work/refused.csv`` and the review pages).
STATUS_WORDS: dict[str, str] = {
    "mle_does_not_exist": "its maximum likelihood estimate does not exist",
    "not_converged": "its fit did not converge",
    "did_not_converge": "its fit did not converge",
}


def term_words(term: str) -> str:
    """An interaction term in words: ``"I:L"`` -> ``"the interaction of registers I and L"``.

    Registers are named by their code, covariates by name and code, the year as such.
    """
    from ..codes import COVARIATE_NAMES, REGISTERS
    from .format import words

    parts = [t.strip() for t in str(term).split(":") if t.strip()]
    regs = [t for t in parts if t in REGISTERS]
    if len(regs) > 1 and len(regs) < len(parts):  # registers and covariates: name each
        names = [f"register {g}" for g in regs]
    else:
        names = [("register " if len(regs) == 1 else "registers ") + words(regs)] if regs else []
    for c in parts:
        if c in REGISTERS:
            continue
        names.append("the year" if c == "J" else f"{COVARIATE_NAMES.get(c, c)} ({c})")
    kind = {1: "main effect", 2: "interaction", 3: "three-factor interaction"}.get(
        len(parts), f"{len(parts)}-factor interaction"
    )
    return f"the {kind} of {words(names)}"


def reason_words(term: str, reason: str) -> str:
    """Why a term was refused, in words, from the existence check's reason text."""
    from ..codes import REGISTERS

    parts = str(term).split(":")
    text = str(reason)
    if "zero sufficient statistic" in text:
        if len(parts) == 2 and all(p in REGISTERS for p in parts):
            return "because the two registers never overlap"
        return "because no registered person has that combination (its count is zero)"
    if "recession" in text or "infinity" in text:
        return (
            "because the counts cannot pin it down: together with a term it needs, its coefficient runs off to infinity"
        )
    if "converge" in text:
        return "because the fit did not converge"
    return ""


def refused_text(refused: pd.DataFrame, m: int, sensitivity_m: int | None = None) -> str:
    """The terms refused by the existence check, in words (one Markdown bullet per term and model).

    Parameters
    ----------
    refused : DataFrame
        ``type, term, status, dataset, reason`` (one row per refusal; ``step``
        0 is the starting model).
    m : int
        Completed data sets of the main selections.
    sensitivity_m : int, optional
        Data sets of the sensitivity analyses (default ``m``).

    Returns
    -------
    str
        Markdown, e.g. "- the interaction of registers K and Z: refused in 2 of 2
        data sets (two-factor model, removed from the starting model) because
        the two registers never overlap."
    """
    if refused.empty:
        return "No term was refused: every candidate model had a maximum likelihood estimate."
    lines = []
    start = refused["step"].eq(0) if "step" in refused.columns else pd.Series(False, index=refused.index)
    frame = refused.assign(_start=start)
    for (kind, term, status, first), g in frame.groupby(["type", "term", "status", "_start"], sort=True):
        n = g["dataset"].nunique()
        if kind == "screening":
            where = "in the screening of the three-factor terms (data set 0)"
        else:
            total = sensitivity_m if ("(" in kind and sensitivity_m) else m
            model = (
                kind.replace("(", "model, sensitivity analysis ").replace(")", "") if "(" in kind else f"{kind} model"
            )
            where = f"in {n} of {total} data sets ({model}{', removed from the starting model' if first else ''})"
        why = reason_words(term, g["reason"].iloc[0]) or f"because {STATUS_WORDS.get(status, 'its fit failed')}"
        lines.append(f"- {term_words(term)} ({term.replace(':', '×')}): refused {where} {why}.")
    return "\n".join(lines)
