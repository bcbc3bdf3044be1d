"""The revision section of the results page: tables and plain words (docs/report.md).

Built from :class:`mse_helpers.stages.revisions.RevisionResult` (the numbers of
``results/revisions.csv``); nothing here computes an estimate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from . import format as fmt
from . import tables

#: Columns of the shown table -> header.
HEADERS = {
    "year": "year",
    "group": "group",
    "n_hat_previous": "previous estimate",
    "interval_previous": "previous 95% interval",
    "n_hat_new": "new estimate",
    "change": "change (persons)",
    "change_percent": "change (%)",
    "in_previous_interval": "new estimate in previous interval",
    "change_new_data": "of which: new data, same models",
    "change_reselection": "of which: models selected anew",
}


def _signed(value) -> str:
    """A change rounded by the publication rule, with its sign: ``-130.4`` -> ``"-130"``, ``+1,200``."""
    if value is None or pd.isna(value):
        return fmt.estimate_text(value)
    text = fmt.estimate_text(abs(float(value)))
    return "0" if text == "0" else ("+" if value > 0 else "-") + text


def _percent(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):+.1f}%"


def revision_frame(table: pd.DataFrame, *, pairs: bool = False) -> pd.DataFrame:
    """The rows of the revision table as shown: the total and covariate levels, or (``pairs``) pairs of levels.

    Parameters
    ----------
    table : DataFrame
        ``results/revisions.csv`` (:attr:`RevisionResult.table`).
    pairs : bool
        Pairs of covariate levels (Annex G groups) instead of the total and single levels.

    Returns
    -------
    DataFrame
        Exact values; groups named in words, ``interval_previous`` as text,
        ordered by group then year.
    """
    is_pair = table["group"].str.contains("&", regex=False)
    rows = table[is_pair] if pairs else table[~is_pair]
    rows = rows.assign(
        _key=rows["group"].map(tables.group_sort_key),
        interval_previous=[fmt.interval_text(lo, up) for lo, up in zip(rows["lower_previous"], rows["upper_previous"])],
    ).sort_values(["_key", "year"], kind="stable")
    out = rows[list(HEADERS)].copy()
    out["group"] = [tables.group_name(g) for g in out["group"]]
    return out.reset_index(drop=True)


def revision_table(table: pd.DataFrame, *, pairs: bool = False, caption: str | None = None) -> Styler:
    """The revision table for publication (estimates and changes rounded by the publication rule)."""
    frame = revision_frame(table, pairs=pairs)
    styler = fmt.publish(
        frame,
        index=False,
        caption=caption,
        estimates=["n_hat_previous", "n_hat_new"],
        decimals={"change_percent": 1},
        headers=HEADERS,
    )
    # one column at a time: a dict of formatters would reset the formats publish() set
    for col in ("change", "change_new_data", "change_reselection"):
        styler = styler.format(_signed, subset=[col])
    # group names ("minor (<18) (L=M)") on one line on screen; the print CSS lets them wrap
    styler = styler.set_properties(subset=["group"], **{"white-space": "nowrap"})
    return styler.format(_percent, subset=["change_percent"])


def _year_sentence(row) -> str:
    inside = "lies within" if row.in_previous_interval else "lies outside"
    text = (
        f"**{row.year}**: {fmt.estimate_text(row.n_hat_previous)} before, {fmt.estimate_text(row.n_hat_new)} now "
        f"({_signed(row.change)}, {_percent(row.change_percent)}); the new estimate {inside} the previous 95% "
        f"interval ({fmt.interval_text(row.lower_previous, row.upper_previous)})."
    )
    if np.isfinite(row.change_new_data):
        text += (
            f" New data with the previous models: {_signed(row.change_new_data)}; models selected anew: "
            f"{_signed(row.change_reselection)}."
        )
    return text


def revision_text(result) -> str:
    """The revision section in plain words (markdown), for the publication.

    Parameters
    ----------
    result : RevisionResult

    Returns
    -------
    str
    """
    table = result.table
    prev_years = _years_text(result.previous_years)
    head = (
        f"This run revises the estimates of the previous run **{result.previous_run}** (years {prev_years}). "
        f"These are not corrections of mistakes: each run estimates every year again from all the data it has."
    )
    if table.empty:
        return head + " The two runs have no year and group in common, so there is nothing to compare."
    years = sorted(table["year"].unique())
    total = table[table["group"] == "total"].sort_values("year")
    parts = [head, f"For the years in both runs ({_years_text(years)}), all victims:"]
    parts.append("\n".join(f"- {_year_sentence(r)}" for r in total.itertuples()))
    groups = table[table["group"] != "total"]
    if len(groups):
        pct = groups["change_percent"].abs()
        big = groups.loc[pct.sort_values(ascending=False).index[:3]]
        largest = "; ".join(
            f"{tables.group_name(r.group)} {r.year} ({_percent(r.change_percent)})" for r in big.itertuples()
        )
        inside = int(groups["in_previous_interval"].sum())
        parts.append(
            f"Over the {len(groups)} estimates by group and year, the median change is "
            f"{pct.median():.1f}% (either way); the largest are {largest}. {inside} of the {len(groups)} new "
            f"estimates lie within the previous 95% interval."
        )
    if result.pinned is not None:
        parts.append(
            "**Why the estimates changed.** The change is split in two steps that add up to it. *New data, "
            "same models*: the model terms the previous run selected are fitted on this run's completed data "
            "sets and pooled as usual. This part is what the new data did: the missing covariates are imputed "
            "and the aggregate records linked using all analysed years, so the completed data of the earlier "
            "years change too, and the models' coefficients are estimated from all years. *Models selected "
            "anew*: the rest, the effect of choosing the models again on the new data."
        )
    parts += list(result.notes)
    parts.append(
        "The table below shows every year and group of both runs; exact values are in "
        "`results/revisions.csv`. Estimates and changes are rounded as elsewhere in this report; each "
        "change is computed from the unrounded estimates and then rounded, so it can differ from the "
        "difference of the two rounded estimates shown beside it."
    )
    return "\n\n".join(parts)


def no_revision_text(value, reason: str = "") -> str:
    """What the section says when there is nothing to compare (``previous_run`` null, or none found)."""
    if value is None:
        return "No comparison with a previous run (parameter previous_run is null)."
    return (
        "No previous run to compare with: no earlier run in this reports folder has status ok and shares a "
        "year with this run (parameter previous_run: auto)." + (f" {reason}" if reason else "")
    )


def _years_text(years) -> str:
    years = sorted(int(y) for y in years)
    if not years:
        return "none"
    if len(years) > 2 and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def pinned_models_text(models, models_from, m: int) -> str:
    """Notebook 03 with ``models_from``: where the models come from, and which have no usable fit here.

    Parameters
    ----------
    models : sequence of SelectedModel
        The models of this run's models.json.
    models_from : Path or str
        The run folder the terms come from.
    m : int

    Returns
    -------
    str
        Markdown.
    """
    from pathlib import Path

    name = Path(models_from).name
    bad = [mdl for mdl in models if mdl.status != "ok"]
    text = (
        f"**The models were not selected in this run** (parameter models_from): completed data set k was "
        f"fitted with the interaction terms of both model types of run **{name}**'s data set k, for k = 0 to "
        f"{m - 1}. The screening and the sensitivity analyses below still select (they are not the published "
        f"models); the searches described above did not run for the main models."
    )
    if not bad:
        return text + f" All {len(models)} pinned models have a maximum likelihood estimate on this run's data."
    listed = "; ".join(f"data set {mdl.dataset} {mdl.type} ({mdl.status})" for mdl in bad)
    return (
        text + f" **{len(bad)} of the {len(models)} pinned models have no usable fit on this run's data**: "
        f"{listed}. They stay in models.json with that status and are not pooled; notebook 04 lists them."
    )
