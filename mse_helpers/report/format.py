"""Publication formatting of the report's tables with pandas ``Styler``.

The table functions of :mod:`.tables`, :mod:`.selection` and
:mod:`.imputation` return plain DataFrames with exact values and
machine-friendly column names (they are also written to ``results/``). The
functions here turn such a frame into what a reader sees in the published
HTML: no 0..N index column, human headers ("registered", "estimated",
"95% interval", "ratio"), counts as whole numbers with thousands separators,
estimates rounded by :data:`.tables.ROUNDING_RULE`, terms as ``I×L`` instead of
a Python list. Nothing here changes a number; it only chooses how it is shown.

Why ``Styler`` (and not ``great_tables`` or hand-written HTML): it ships with
pandas (no new dependency to pin), renders to plain HTML with a small inline
``<style>`` block (self-contained, printable), keeps the DataFrame's values
intact (formatting is display-only), and hides the index with one call.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from . import tables

#: Column headers of the published tables (machine name -> what a reader sees).
HEADERS: dict[str, str] = {
    "year": "year",
    "n_obs": "registered",
    "N-hat": "estimated",
    "n_hat": "estimated",
    "lower 95%": "lower 95%",
    "upper 95%": "upper 95%",
    "interval": "95% interval",
    "ratio": "ratio",
    "dark": "not registered",
    "n_true": "true number",
    "n_registered": "registered (true)",
    "relative_error": "relative error",
    "mean_relative_error": "mean relative error",
    "mean_abs_relative_error": "mean absolute relative error",
    "total_covered": "total covered",
    "covered": "covered",
    "groups": "groups",
    "n_datasets": "data sets",
    "dataset": "data set",
    "n_terms": "terms (number)",
    "terms": "interaction terms",
    "aic": "AIC",
    "bic": "BIC",
    "bic_gain": "BIC gain",
    "deviance": "deviance",
    "df": "degrees of freedom",
    "n_added": "terms added",
    "added": "terms added by the BIC search",
    "term": "term",
    "type": "model",
    "rank": "rank",
    "level": "level",
    "group": "group",
    "name": "group",
    "mean": "mean",
}

#: Columns that are always counts of persons (a mean over the imputations is shown to whole persons).
COUNT_COLUMNS: tuple[str, ...] = (
    "n_obs",
    "n_true",
    "n_registered",
    "records",
    "persons",
    "n_persons",
    "n_partial",
    "n_datasets",
)

#: Columns that are labels or identifiers, never counts: shown without thousands separators (2016, not 2,016).
ID_COLUMNS: tuple[str, ...] = ("year", "dataset", "model", "rank", "step")

#: Separator shown between the variables of an interaction term (``I:L`` -> ``I×L``).
TERM_JOIN = "×"

_EN_DASH = "\u2013"


def header(name) -> str:
    """What a reader sees for a column name: :data:`HEADERS`, else the name with ``_`` as spaces.

    ``n_hat_2016`` becomes ``estimated 2016``, ``n_hat_total`` ``estimated, all years``.
    """
    text = str(name)
    if text in HEADERS:
        return HEADERS[text]
    m = re.fullmatch(r"(n_hat|n_obs)[ _](.+)", text)
    if m:
        rest = m.group(2)
        return f"{HEADERS[m.group(1)]}, all years" if rest == "total" else f"{HEADERS[m.group(1)]} {rest}"
    return text.replace("_", " ")


def term_text(term: str) -> str:
    """One interaction term for readers: ``"I:L:J"`` -> ``"I×L×J"``."""
    return TERM_JOIN.join(part.strip() for part in str(term).split(":"))


def terms_text(terms) -> str:
    """A list of terms (a list or a ``;``-joined string) as ``"I×L, I×J"``; empty: ``"none"``.

    The comma and space let a browser wrap a long list inside its table cell.
    """
    if isinstance(terms, str):
        items = [t for t in re.split(r"[;,]", terms) if t.strip() and t.strip() != "(none)"]
    elif terms is None or (isinstance(terms, float) and np.isnan(terms)):
        items = []
    else:
        items = list(terms)
    return ", ".join(term_text(t.strip()) for t in items) if items else "none"


def count_text(value) -> str:
    """A count (or a mean count over the imputations) to whole persons: ``1206.6`` -> ``"1,207"``."""
    if value is None or pd.isna(value):
        return _EN_DASH
    return f"{float(np.floor(float(value) + 0.5)):,.0f}"


def estimate_text(value) -> str:
    """An estimate rounded by :data:`.tables.ROUNDING_RULE`: ``4249.7`` -> ``"4,200"``."""
    if value is None or pd.isna(value):
        return _EN_DASH
    return f"{tables.publication_round(float(value)):,.0f}"


def interval_text(lower, upper) -> str:
    """``"4,000–7,000"``, both bounds rounded by the publication rule.

    An upper bound that does not exist (``inf``: an open profile interval) is
    said in words, ``"4,000 or more (no upper bound)"``, never printed as a number;
    a bound that is missing (None or NaN: no interval was computed, e.g. a group
    the previous year did not have) gives ``"no interval"``, never a lone dash.
    """
    if upper is not None and not pd.isna(upper) and np.isposinf(float(upper)) and not pd.isna(lower):
        return f"{estimate_text(lower)} or more (no upper bound)"
    if lower is None or upper is None or pd.isna(lower) or pd.isna(upper):
        return "no interval"
    return f"{estimate_text(lower)}{_EN_DASH}{estimate_text(upper)}"


def _is_whole(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return False
    values = series.dropna().to_numpy(dtype=float)
    return bool(len(values)) and bool(np.all(np.isfinite(values))) and bool(np.all(values == np.round(values)))


def _flat(frame: pd.DataFrame, index: bool) -> pd.DataFrame:
    """The frame with meaningful index levels as ordinary columns and a plain 0..N index."""
    out = frame.copy()
    out.columns = [" ".join(str(c) for c in col if str(c)) if isinstance(col, tuple) else col for col in out.columns]
    unnamed = all(n is None for n in out.index.names)
    if index and not (unnamed and isinstance(out.index, pd.RangeIndex)):
        names = [
            n if n is not None else ("" if out.index.nlevels == 1 else f"level {k}")
            for k, n in enumerate(out.index.names)
        ]
        out.index = out.index.set_names(names)
        out = out.reset_index()
    else:
        out = out.reset_index(drop=True)
    return out


def publish(
    frame: pd.DataFrame,
    *,
    caption: str | None = None,
    index: bool = True,
    counts: Sequence[str] = (),
    estimates: Sequence[str] = (),
    decimals: Mapping[str, int] | None = None,
    terms: Sequence[str] = ("terms", "added", "term"),
    percent: Sequence[str] = (),
    default_decimals: int = 1,
    headers: Mapping[str, str] | None = None,
) -> Styler:
    """A DataFrame as a publication table (a ``Styler``; the values are not changed).

    Parameters
    ----------
    frame : DataFrame
        Exact values, as returned by the table functions.
    caption : str, optional
        Shown above the table.
    index : bool
        Show the index levels as the first columns (labels such as year or
        level); a plain 0..N index is never shown.
    counts : sequence of str
        Columns shown to whole persons with thousands separators (e.g. a mean
        n_obs); columns whose values are all whole numbers are shown so anyway.
    estimates : sequence of str
        Columns rounded by the publication rule (:func:`estimate_text`).
    decimals : mapping, optional
        Decimals of other numeric columns (default ``default_decimals``).
    terms : sequence of str
        Columns holding interaction terms (shown by :func:`terms_text`).
    percent : sequence of str
        Columns of shares shown as percentages with one decimal.
    default_decimals : int
    headers : mapping, optional
        Extra or overriding column headers.

    Returns
    -------
    pandas.io.formats.style.Styler
        With the index hidden and class ``pub`` on the table.
    """
    flat = _flat(frame, index)
    decimals = dict(decimals or {})
    formats = {}
    for col in flat.columns:
        s = flat[col]
        if col in ID_COLUMNS:
            formats[col] = lambda v: (
                _EN_DASH
                if v is None or (not isinstance(v, str) and pd.isna(v))
                else (
                    f"{int(v)}"
                    if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer()
                    else str(v)
                )
            )
        elif col in terms:
            formats[col] = terms_text if col != "term" else (lambda v: term_text(v) if isinstance(v, str) else v)
        elif col in estimates:
            formats[col] = estimate_text
        elif col in percent:
            formats[col] = lambda v: _EN_DASH if pd.isna(v) else f"{100 * float(v):.1f}%"
        elif col in counts or col in COUNT_COLUMNS or (col not in decimals and _is_whole(s)):
            formats[col] = count_text
        elif pd.api.types.is_bool_dtype(s):
            formats[col] = lambda v: _EN_DASH if pd.isna(v) else ("yes" if v else "no")
        elif pd.api.types.is_numeric_dtype(s):
            k = decimals.get(col, default_decimals)
            formats[col] = (lambda k: lambda v: _EN_DASH if pd.isna(v) else f"{float(v):,.{k}f}")(k)
        else:
            formats[col] = lambda v: (
                _EN_DASH
                if v is None or (not isinstance(v, str) and pd.isna(v))
                else ("; ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
            )
    names = {**{c: header(c) for c in flat.columns}, **(headers or {})}
    styler = (
        flat.style.format(formats)
        .hide(axis="index")
        .relabel_index([names.get(c, header(c)) for c in flat.columns], axis="columns")
        .set_table_attributes('class="pub"')
    )
    numeric = [
        c
        for c in flat.columns
        if pd.api.types.is_numeric_dtype(flat[c])
        and not pd.api.types.is_bool_dtype(flat[c])
        and c not in terms
        and c not in ID_COLUMNS
    ]
    if numeric:
        styler = styler.set_properties(subset=numeric, **{"text-align": "right"})
    if caption:
        styler = styler.set_caption(caption)
    return styler


def estimate_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Table 6-10 / Annex G rows (exact, ``rounded=False``) as the published columns, as text.

    Parameters
    ----------
    table : DataFrame
        From :func:`.tables.table6`, :func:`.tables.covariate_table` or
        :func:`.tables.pair_table` with ``rounded=False``: columns ``n_obs``,
        ``N-hat``, ``lower 95%``, ``upper 95%``, ``ratio``.

    Returns
    -------
    DataFrame
        The index levels as columns, then ``registered`` (whole persons),
        ``estimated`` and ``95% interval`` (publication rounding),
        ``ratio`` (one decimal, from the exact values).
    """
    flat = _flat(table, index=True)
    values = ("n_obs", "N-hat", "lower 95%", "upper 95%", "ratio", "dark", "dark lower 95%", "dark upper 95%")
    labels = [c for c in flat.columns if c not in values]
    out = flat[labels].astype(str).rename(columns=header)
    if "year" in out.columns:
        out["year"] = out["year"].replace({tables.ALL_YEARS: "all years"})
    out["registered"] = [count_text(v) for v in flat["n_obs"]]
    out["estimated"] = [estimate_text(v) for v in flat["N-hat"]]
    out["95% interval"] = [interval_text(lo, up) for lo, up in zip(flat["lower 95%"], flat["upper 95%"])]
    out["ratio"] = [
        _EN_DASH if pd.isna(v) else f"{float(tables._round_half_away(np.array(v, dtype=float), 0.1)):.1f}"
        for v in flat["ratio"]
    ]
    if "dark" in flat.columns:  # the dark number N-hat - n_obs, when estimates.csv has it
        out["not registered"] = [estimate_text(v) for v in flat["dark"]]
        if {"dark lower 95%", "dark upper 95%"} <= set(flat.columns):
            out["95% interval (not registered)"] = [
                interval_text(lo, up) for lo, up in zip(flat["dark lower 95%"], flat["dark upper 95%"])
            ]
    return out


def estimate_table(table: pd.DataFrame, *, caption: str | None = None) -> Styler:
    """Table 6-10 / Annex G for publication: :func:`estimate_frame` as a ``Styler``.

    A label repeated on consecutive rows (the level of Tables 7-10) is shown
    once, on the first of its rows.
    """
    shown = estimate_frame(table)
    numbers = [
        c
        for c in ("registered", "estimated", "95% interval", "ratio", "not registered", "95% interval (not registered)")
        if c in shown.columns
    ]
    labels = [c for c in shown.columns if c not in numbers]
    for col in labels[:-1]:  # the last label (year) differs on every row
        repeat = shown[col].eq(shown[col].shift()) & shown[labels[: labels.index(col)]].eq(
            shown[labels[: labels.index(col)]].shift()
        ).all(axis=1)
        shown.loc[repeat, col] = ""
    styler = (
        shown.style.hide(axis="index")
        .set_table_attributes('class="pub estimates"')
        .set_properties(subset=numbers, **{"text-align": "right"})
    )
    if caption:
        styler = styler.set_caption(caption)
    return styler


def words(items: Iterable[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def rows_as_text(frame: pd.DataFrame, decimals: Mapping | None = None) -> pd.DataFrame:
    """A table whose rows differ in kind (counts, then a share) as text, row by row.

    Rows named in ``decimals`` get that many decimals; every other row is a
    count (whole persons, thousands separators). The index is kept.
    """
    decimals = dict(decimals or {})
    out = pd.DataFrame(index=frame.index, columns=frame.columns, dtype=object)
    for label, row in frame.iterrows():
        if label in decimals:
            k = decimals[label]
            out.loc[label] = [_EN_DASH if pd.isna(v) else f"{float(v):,.{k}f}" for v in row]
        else:
            out.loc[label] = [count_text(v) for v in row]
    out.columns = [str(c) for c in out.columns]
    return out


def details(summary: str, content: str, *, open_: bool = False) -> str:
    """HTML of a collapsed section (``<details>``): long annexes stay out of the reader's way.

    Parameters
    ----------
    summary : str
        The always-visible line (plain text; escaped here).
    content : str
        HTML shown when opened (e.g. ``Styler.to_html()``); a printed report opens it.
    open_ : bool
        Start opened.
    """
    import html as _html

    return (
        f'<details class="mse-annex"{" open" if open_ else ""}><summary>{_html.escape(summary)}</summary>'
        f"{content}</details>"
    )


def to_html(table) -> str:
    """A ``Styler`` (or DataFrame, published with :func:`publish`) as an HTML string."""
    styler = table if isinstance(table, Styler) else publish(table)
    return styler.to_html()
