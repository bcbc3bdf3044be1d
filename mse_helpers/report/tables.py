"""Tables of the report as DataFrames (counts only: never person-level rows).

Notebook 01 (data preparation) uses the ``reports_*``, ``register_*``,
``victims_*`` and ``partial_*`` tables; later stages add their results tables
here: Table 6, Tables 7-10 and the Annex G tables of the estimates (rounded
for publication by :func:`publication_round`), the ratios N-hat / n_obs and
the validation against a truth file.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import runfolder
from ..codes import COVARIATE_NAMES, COVARIATES, LEVEL_NAMES, REGISTERS, group_label
from ..runfolder import ESTIMATE_TABLE_COLUMNS, bundled_dir

UNKNOWN = "unknown"


def _registers(frame: pd.DataFrame) -> list[str]:
    return [g for g in REGISTERS if g in frame.columns]


def reports_per_organisation(reports: pd.DataFrame) -> pd.DataFrame:
    """Table 1: reports per reporting organisation and year (raw, before mapping).

    Parameters
    ----------
    reports : DataFrame
        Reports with ``organisation``, ``register`` and ``report_date``
        (``PrepResult.reports``).

    Returns
    -------
    DataFrame
        Index (register, organisation), one column per year of the report
        date, and a ``total`` row.
    """
    year = reports["report_date"].dt.year.rename("year")
    table = reports.groupby(["register", "organisation", year]).size().unstack("year", fill_value=0)
    table.loc[("", "total"), :] = table.sum()
    return table.astype(int)


def data_quality(quality: pd.DataFrame, years: Sequence[int] | None = None) -> pd.DataFrame:
    """Data-quality table: what was read, dropped, missing and conflicting.

    Parameters
    ----------
    quality : DataFrame
        ``PrepResult.quality`` (one row per year).
    years : sequence of int, optional
        Columns to show (default all).

    Returns
    -------
    DataFrame
        One row per count, one column per year.
    """
    labels = {
        "reports_read": "reports read (by report date)",
        "reports_excluded": "reports of excluded organisations",
        "reports_outside_years": "reports of persons outside the analysed years",
        "reports_outside_window": "reports after the linkage window, same year",
        "persons_in_reports": "persons in the reports (analysed years)",
        "persons_dropped_registers": "persons only on left-out registers (dropped)",
        "persons": "persons in the person-level file",
    }
    for c in COVARIATES:
        labels[f"missing_{c}"] = f"{COVARIATE_NAMES[c]}: missing"
        labels[f"conflicts_{c}"] = f"{COVARIATE_NAMES[c]}: conflicting reports"
    table = quality.T.rename(index=labels)
    if years is not None:
        table = table.reindex(columns=list(years), fill_value=0)
    return table


def excluded_reports(summary: dict) -> pd.DataFrame:
    """Reports of excluded organisations per organisation and year."""
    rows = summary.get("excluded_reports_per_organisation", [])
    if not rows:
        return pd.DataFrame(columns=["organisation"]).set_index("organisation")
    return (
        pd.DataFrame(rows)
        .pivot_table(index="organisation", columns="year", values="reports", aggfunc="sum", fill_value=0)
        .astype(int)
    )


def register_sizes(persons: pd.DataFrame) -> pd.DataFrame:
    """Persons per register and year, the total, and how many are on more than one.

    Parameters
    ----------
    persons : DataFrame
        Person-level file (registers 0/1).

    Returns
    -------
    DataFrame
        Rows: registers, ``persons``, ``on 2+ registers``, ``share on 2+ (%)``;
        columns: years.
    """
    regs = _registers(persons)
    on = persons[regs].fillna(0).astype(int)
    table = on.groupby(persons["year"]).sum().T
    n_on = on.sum(axis=1)
    table.loc["persons"] = persons.groupby("year").size()
    table.loc["on 2+ registers"] = (n_on > 1).groupby(persons["year"]).sum()
    table = table.astype(int)
    share = (100 * table.loc["on 2+ registers"] / table.loc["persons"]).round(1)
    table = table.astype(float)
    table.loc["share on 2+ (%)"] = share
    return table


def register_overlap_matrix(persons: pd.DataFrame, year: int) -> pd.DataFrame:
    """Persons on both registers of each pair in one year (diagonal: register size)."""
    regs = _registers(persons)
    on = persons.loc[persons["year"] == year, regs].fillna(0).astype(int)
    return (on.T @ on).astype(int)


def register_combinations(persons: pd.DataFrame, year: int) -> pd.Series:
    """Persons per register combination in one year (e.g. ``P+R``), largest first."""
    regs = _registers(persons)
    on = persons.loc[persons["year"] == year, regs].fillna(0).astype(int)
    labels = on.apply(lambda r: "+".join(g for g in regs if r[g] == 1) or "none", axis=1)
    return labels.value_counts().rename("persons")


def victims_by_covariate(persons: pd.DataFrame) -> pd.DataFrame:
    """The national monitor's descriptive tables: persons by covariate level per year.

    Returns
    -------
    DataFrame
        Index (covariate, level) with an ``unknown`` level; columns years.
    """
    rows = {}
    for c in [c for c in COVARIATES if c in persons.columns]:
        values = persons[c].astype("string").fillna(UNKNOWN)
        counts = values.groupby(persons["year"]).value_counts().unstack("year", fill_value=0)
        for level in list(COVARIATES[c]) + [UNKNOWN]:
            name = LEVEL_NAMES[c].get(level, level)
            rows[(COVARIATE_NAMES[c], name)] = counts.loc[level] if level in counts.index else 0
    table = pd.DataFrame(rows).T.fillna(0).astype(int)
    table.index.names = ["covariate", "level"]
    return table


def partial_records_table(partial: pd.DataFrame) -> pd.DataFrame:
    """Table 2: the partial records made from the aggregates, by pattern.

    Returns
    -------
    DataFrame
        One row per year, register and covariate pattern (``NA`` where
        unknown) with the number of records.
    """
    cols = ["year"] + _registers(partial) + [c for c in COVARIATES if c in partial.columns]
    if partial.empty:
        return pd.DataFrame(columns=cols + ["records"])
    shown = partial[cols].astype("string").fillna("NA")
    return (
        shown.groupby(cols)
        .size()
        .rename("records")
        .reset_index()
        .sort_values(["year", "records"], ascending=[True, False])
        .reset_index(drop=True)
    )


def register_overlap_table(persons: pd.DataFrame, register: str, years: Sequence[int] | None = None) -> pd.DataFrame:
    """Tables 3-4: persons on ``register`` by the other registers they are on.

    Parameters
    ----------
    persons : DataFrame
        Person-level file, before (Table 3) or after (Table 4) linking.
    register : str
    years : sequence of int, optional

    Returns
    -------
    DataFrame
        Rows: combinations like ``O only``, ``O+P``; columns: years; a
        ``total`` row.
    """
    regs = _registers(persons)
    on_x = persons[persons[register] == 1]
    others = on_x[[g for g in regs if g != register]].fillna(0).astype(int)
    labels = others.apply(lambda r: "+".join([register] + [g for g in others.columns if r[g] == 1]), axis=1)
    labels = labels.where(labels != register, f"{register} only")
    table = labels.groupby(on_x["year"]).value_counts().unstack("year", fill_value=0) if len(on_x) else pd.DataFrame()
    if years is not None:
        table = table.reindex(columns=list(years), fill_value=0)
    table = table.fillna(0).astype(int)
    table.loc["total"] = table.sum()
    return table


# --- results tables (notebook 04): Table 6, Tables 7-10, Annex G, validation ---------------

#: Columns of ``results/estimates.csv`` the results tables need (the file's schema: :mod:`mse_helpers.runfolder`).
ESTIMATE_COLUMNS: tuple[str, ...] = ESTIMATE_TABLE_COLUMNS

#: Label of the all-years row (``year == "all"`` in ``estimates.csv``).
ALL_YEARS = "all"

#: The publication rounding rule, as stated in the report.
ROUNDING_RULE = (
    "Estimates (N-hat and the interval bounds) are rounded to the nearest 10 below 1,000 and to the "
    "nearest 100 from 1,000 on (halves away from zero); the observed numbers n_obs to whole persons "
    "(in years with imputed records n_obs is the mean over the completed data sets); the ratio "
    "N-hat / n_obs to one decimal, computed from the exact values. The exact values are in "
    "results/estimates.csv."
)

#: Study table number of the by-covariate tables (Tables 7-10).
STUDY_TABLE: dict[str, int] = {"S": 7, "L": 8, "N": 9, "U": 10}

#: Columns of a truth file (synthetic data only).
TRUTH_COLUMNS: tuple[str, ...] = ("year", "group", "n_true", "n_registered")

#: Columns of an earlier-estimates file (Figure 6).
EARLIER_COLUMNS: tuple[str, ...] = ("year", "group", "n_hat", "lower", "upper", "source")


def _round_half_away(x: np.ndarray, step: float) -> np.ndarray:
    # np.round rounds halves to even (4,250 -> 4,200); publication tables round halves away from zero.
    return np.sign(x) * np.floor(np.abs(x) / step + 0.5) * step


def publication_round(values) -> np.ndarray | float:
    """Round estimates for publication (:data:`ROUNDING_RULE`).

    Nearest 10 below 1,000 and nearest 100 from 1,000 on (by the absolute
    unrounded value), halves away from zero; NaN stays NaN.

    Parameters
    ----------
    values : float or array-like
        Estimates (N-hat, interval bounds).

    Returns
    -------
    float or ndarray
        Same shape as ``values``.
    """
    x = np.asarray(values, dtype=float)
    out = np.where(np.abs(x) < 1000, _round_half_away(x, 10.0), _round_half_away(x, 100.0))
    return float(out) if out.ndim == 0 else out


def _year_label(value) -> str:
    """``2016``, ``2016.0`` or ``"2016"`` -> ``"2016"``; anything else as text (``"all"``)."""
    text = str(value).strip()
    if re.fullmatch(r"\d{4}(\.0+)?", text):
        return text[:4]
    return text


def check_estimates(estimates: pd.DataFrame, name: str = "estimates") -> pd.DataFrame:
    """Check the columns of an estimates frame and normalise ``year`` to text.

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv`` as read, or ``BootstrapResult.estimates``.
    name : str
        Where it came from, for the error message.

    Returns
    -------
    DataFrame
        A copy with ``year`` as text (``"2016"``, ``"all"``) and ``group`` as text.

    Raises
    ------
    ValueError
        Naming the missing columns.
    """
    missing = [c for c in ESTIMATE_COLUMNS if c not in estimates.columns]
    if missing:
        raise ValueError(
            f"{name}: missing column(s) {', '.join(missing)}; the results tables need {', '.join(ESTIMATE_COLUMNS)}"
        )
    out = estimates.copy()
    out["year"] = [_year_label(v) for v in out["year"]]
    out["group"] = out["group"].astype(str)
    return out


def result_years(estimates: pd.DataFrame) -> list[str]:
    """The single years (4-digit labels) in an estimates frame, in order."""
    est = check_estimates(estimates)
    return sorted({y for y in est["year"] if re.fullmatch(r"\d{4}", y)})


def parse_group(label: str) -> dict[str, str]:
    """``"S=M&L=M"`` -> ``{"S": "M", "L": "M"}``; ``"total"`` -> ``{}``.

    Raises
    ------
    ValueError
        For a label that is not ``total`` or ``CODE=LEVEL`` parts joined by ``&``
        with the codes and levels of :mod:`codes`.
    """
    if label == "total":
        return {}
    out = {}
    for part in label.split("&"):
        code, sep, level = part.partition("=")
        if not sep or code not in COVARIATES or level not in COVARIATES[code]:
            raise ValueError(
                f"group {label!r}: expected 'total' or CODE=LEVEL parts joined by '&' "
                f"with codes and levels {COVARIATES}"
            )
        out[code] = level
    return out


def group_name(label: str, codes: bool = True) -> str:
    """A readable name for a group label: ``"S=M&L=M"`` -> ``"male (M), minor (<18) (M)"``."""
    levels = parse_group(label)
    if not levels:
        return "total"
    parts = [LEVEL_NAMES[c][v] + (f" ({c}={v})" if codes else "") for c, v in levels.items()]
    return ", ".join(parts)


def _level_name(covariate: str, level: str) -> str:
    return f"{level}: {LEVEL_NAMES[covariate][level]}"


def group_sort_key(label: str) -> tuple:
    """Sort key for group labels: ``total``, then single levels, then pairs, in code order."""
    levels = parse_group(label)
    order = list(COVARIATES)
    return (len(levels),) + tuple((order.index(c), COVARIATES[c].index(v)) for c, v in levels.items())


def result_covariates(estimates: pd.DataFrame) -> list[str]:
    """Covariates with single-level groups in the estimates, in canonical order."""
    est = check_estimates(estimates)
    found = {c for g in est["group"].unique() for c in parse_group(g) if "&" not in g}
    return [c for c in COVARIATES if c in found]


#: Optional dark-number columns of ``estimates.csv`` (N-hat - n_obs with its interval), shown when present.
DARK_NAMES: tuple[str, ...] = ("dark", "n_dark", "dark_number")


def dark_columns(columns) -> tuple[str, str | None, str | None] | None:
    """The dark-number column and its interval bounds among ``columns``, or None.

    Accepts ``<name>``, ``<name>_lower`` and ``<name>_upper`` for a name of
    :data:`DARK_NAMES`; the bounds may be missing (None).
    """
    cols = set(columns)
    for name in DARK_NAMES:
        if name in cols:
            lo, up = f"{name}_lower", f"{name}_upper"
            return name, lo if lo in cols else None, up if up in cols else None
    return None


def _display(rows: pd.DataFrame, rounded: bool) -> pd.DataFrame:
    """The published columns of estimate rows, rounded or exact (plus the dark number when present)."""
    out = pd.DataFrame(index=rows.index)
    if rounded:
        out["n_obs"] = _round_half_away(rows["n_obs"].to_numpy(dtype=float), 1.0).astype(int)
        for col, name in (("n_hat", "N-hat"), ("lower", "lower 95%"), ("upper", "upper 95%")):
            out[name] = publication_round(rows[col].to_numpy(dtype=float)).astype(int)
        out["ratio"] = _round_half_away(rows["ratio"].to_numpy(dtype=float), 0.1).round(1)
    else:
        out["n_obs"] = rows["n_obs"].astype(float)
        for col, name in (("n_hat", "N-hat"), ("lower", "lower 95%"), ("upper", "upper 95%")):
            out[name] = rows[col].astype(float)
        out["ratio"] = rows["ratio"].astype(float)
    dark = dark_columns(rows.columns)
    if dark:
        for col, name in zip(dark, ("dark", "dark lower 95%", "dark upper 95%")):
            if col is not None:
                values = rows[col].to_numpy(dtype=float)
                out[name] = publication_round(values) if rounded else values
    return out


def _year_order(years: pd.Series) -> list:
    return sorted(years.unique(), key=lambda y: (not re.fullmatch(r"\d{4}", y), y))


def _rows(est: pd.DataFrame, group: str, all_years: bool) -> pd.DataFrame:
    rows = est[est["group"] == group]
    if not all_years:
        rows = rows[rows["year"] != ALL_YEARS]
    rows = rows.set_index("year").loc[_year_order(rows["year"])]
    return rows


def table6(estimates: pd.DataFrame, rounded: bool = True, all_years: bool = True) -> pd.DataFrame:
    """Table 6: per year n_obs, N-hat, 95% interval and the ratio N-hat / n_obs.

    Parameters
    ----------
    estimates : DataFrame
        With :data:`ESTIMATE_COLUMNS` (``results/estimates.csv``).
    rounded : bool
        Round for publication (:data:`ROUNDING_RULE`) or show exact values.
    all_years : bool
        Add the row for all years together (``year == "all"``) when present.

    Returns
    -------
    DataFrame
        Index ``year`` (the all-years row last), columns ``n_obs``, ``N-hat``,
        ``lower 95%``, ``upper 95%``, ``ratio``.
    """
    est = check_estimates(estimates)
    rows = _rows(est, "total", all_years)
    if rows.empty:
        raise ValueError("estimates: no rows with group 'total'")
    return _display(rows, rounded)


def covariate_table(
    estimates: pd.DataFrame, covariate: str, rounded: bool = True, all_years: bool = False
) -> pd.DataFrame:
    """Tables 7-10: the Table 6 columns per year for each level of one covariate.

    Parameters
    ----------
    estimates : DataFrame
        With :data:`ESTIMATE_COLUMNS`.
    covariate : str
        ``S`` (Table 7), ``L`` (8), ``N`` (9) or ``U`` (10).
    rounded, all_years : bool
        As in :func:`table6`.

    Returns
    -------
    DataFrame
        Index (``level``, ``year``); levels in the order of :data:`codes.COVARIATES`.
    """
    est = check_estimates(estimates)
    if covariate not in COVARIATES:
        raise ValueError(f"covariate {covariate!r}: not one of {', '.join(COVARIATES)}")
    parts = {}
    for level in COVARIATES[covariate]:
        rows = _rows(est, group_label(**{covariate: level}), all_years)
        if rows.empty:
            raise ValueError(f"estimates: no rows for group {covariate}={level}")
        parts[_level_name(covariate, level)] = _display(rows, rounded)
    return pd.concat(parts, names=["level", "year"])


def pair_table(
    estimates: pd.DataFrame, first: str, second: str, rounded: bool = True, all_years: bool = False
) -> pd.DataFrame:
    """One Annex G table: the Table 6 columns per year for each pair of levels of two covariates.

    Parameters
    ----------
    estimates : DataFrame
    first, second : str
        Covariate codes in canonical order (``S`` before ``L`` before ``N`` before ``U``),
        as in the group labels (``S=M&L=M``).
    rounded, all_years : bool
        As in :func:`table6`.

    Returns
    -------
    DataFrame
        Index (``first`` level, ``second`` level, ``year``).
    """
    est = check_estimates(estimates)
    order = list(COVARIATES)
    if first not in COVARIATES or second not in COVARIATES or order.index(first) >= order.index(second):
        raise ValueError(f"pair ({first!r}, {second!r}): two different covariate codes in the order {' '.join(order)}")
    parts = {}
    for a in COVARIATES[first]:
        for b in COVARIATES[second]:
            label = group_label(**{first: a, second: b})
            rows = _rows(est, label, all_years)
            if rows.empty:
                raise ValueError(f"estimates: no rows for group {label}")
            parts[(_level_name(first, a), _level_name(second, b))] = _display(rows, rounded)
    table = pd.concat(parts, names=[COVARIATE_NAMES[first], COVARIATE_NAMES[second], "year"])
    return table


def annex_g_tables(estimates: pd.DataFrame, rounded: bool = True) -> dict[str, pd.DataFrame]:
    """Annex G tables 1-6: :func:`pair_table` for every pair of the run's covariates.

    Returns
    -------
    dict
        Title (``"Annex G table 1: sex by age group"``) -> table, in canonical pair order.
    """
    covs = result_covariates(estimates)
    out = {}
    for k, (a, b) in enumerate(itertools.combinations(covs, 2), 1):
        out[f"Annex G table {k}: {COVARIATE_NAMES[a]} by {COVARIATE_NAMES[b]}"] = pair_table(estimates, a, b, rounded)
    return out


def ratio_table(estimates: pd.DataFrame, pairs: bool = True) -> pd.DataFrame:
    """Ratios N-hat / n_obs per group (rows) and year (columns), most hidden group first.

    Parameters
    ----------
    estimates : DataFrame
    pairs : bool
        Include the pairs of covariate levels (Annex G groups).

    Returns
    -------
    DataFrame
        Index ``group`` (the label, e.g. ``S=M``), a column ``name`` (readable),
        one column per year and ``mean`` (mean over the years), sorted by
        ``mean`` descending; the ``total`` row is included for reference.
    """
    est = check_estimates(estimates)
    est = est[est["year"] != ALL_YEARS]
    keep = est["group"].map(lambda g: g == "total" or pairs or "&" not in g)
    wide = est[keep].pivot_table(index="group", columns="year", values="ratio", aggfunc="first")
    wide = wide[sorted(wide.columns)]
    wide.columns = [str(c) for c in wide.columns]
    wide["mean"] = wide.mean(axis=1)
    wide.insert(0, "name", [group_name(g) for g in wide.index])
    return wide.sort_values("mean", ascending=False)


def read_truth(path) -> pd.DataFrame:
    """Read a truth file (synthetic data: ``year, group, n_true, n_registered``).

    Read with :func:`mse_helpers.stages.inputs.read_table` (encoding and
    separator detected, spreadsheet rows). ``mse run`` calls it in its
    pre-flight check (``cli.run.check_inputs``), which also checks that every
    analysed year has rows.

    Raises
    ------
    ValueError
        Naming the file and the missing column, or the row and column of a
        bad value.
    """
    from ..stages.inputs import read_table

    truth = read_table(path)
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"truth file {path}: missing column(s) {', '.join(missing)}; needs {', '.join(TRUTH_COLUMNS)}")
    for col in ("year", "n_true", "n_registered"):
        bad = pd.to_numeric(truth[col], errors="coerce").isna()
        if bad.any():
            row = int(truth.index[bad.to_numpy()][0])
            raise ValueError(f"truth file {path}: row {row}, column {col}: must be a whole number")
    for row, g in zip(truth.index, truth["group"]):
        try:
            parse_group(str(g))
        except ValueError as exc:
            raise ValueError(f"truth file {path}: row {int(row)}, column group: {exc}") from None
    truth = truth.reset_index(drop=True)
    for col in ("n_true", "n_registered"):
        truth[col] = pd.to_numeric(truth[col])
    truth["group"] = truth["group"].astype("string")
    truth["year"] = [_year_label(v) for v in truth["year"]]
    return truth


def validation_table(estimates: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """True number versus estimate and interval per year and group (synthetic data).

    The all-years row of a group compares with the sum of its yearly true
    numbers (the yearly populations are disjoint: a person counts in one year).

    Parameters
    ----------
    estimates : DataFrame
        With :data:`ESTIMATE_COLUMNS` (exact values).
    truth : DataFrame
        From :func:`read_truth`.

    Returns
    -------
    DataFrame
        One row per truth group in the analysed years (plus ``all``): ``year``,
        ``group``, ``n_true``, ``n_registered``, ``n_obs``, ``n_hat``,
        ``lower``, ``upper``, ``covered`` (the interval contains n_true),
        ``relative_error`` ((n_hat - n_true) / n_true). Truth groups that the
        run did not estimate are kept with empty estimates (``covered`` NA).
    """
    est = check_estimates(estimates)
    years = result_years(est)
    truth = truth.assign(year=[_year_label(v) for v in truth["year"]])
    truth = truth[truth["year"].isin(years)]
    if truth.empty:
        raise ValueError(f"truth: no rows for the analysed years {', '.join(years)}")
    cols = ["year", "group", "n_true", "n_registered"]
    truth = truth[cols].astype({"n_true": float, "n_registered": float})
    if ALL_YEARS in set(est["year"]):
        # only groups present in every year sum to a total over the years
        per = truth.groupby("group")
        full = per["year"].nunique() == len(years)
        sums = per[["n_true", "n_registered"]].sum()[full].reset_index().assign(year=ALL_YEARS)
        truth = pd.concat([truth, sums[cols]], ignore_index=True)
    out = truth.merge(est[["year", "group", "n_obs", "n_hat", "lower", "upper"]], on=["year", "group"], how="left")
    has = out["n_hat"].notna()
    out["covered"] = pd.array(
        [bool(lo <= t <= up) if h else pd.NA for lo, t, up, h in zip(out["lower"], out["n_true"], out["upper"], has)],
        dtype="boolean",
    )
    out["relative_error"] = (out["n_hat"] - out["n_true"]) / out["n_true"]
    out["_y"] = [(y == ALL_YEARS, y) for y in out["year"]]
    out["_g"] = out["group"].map(group_sort_key)
    return out.sort_values(["_y", "_g"]).drop(columns=["_y", "_g"]).reset_index(drop=True)


def validation_summary(validation: pd.DataFrame) -> pd.DataFrame:
    """Per year: intervals that contain the true number and the mean relative error.

    Returns
    -------
    DataFrame
        Index ``year``; ``groups`` (with an estimate), ``covered``,
        ``total_covered`` (the year's total), ``mean_relative_error``,
        ``mean_abs_relative_error``.
    """
    v = validation[validation["n_hat"].notna()]
    rows = []
    for year, g in v.groupby("year", sort=False):
        tot = g.loc[g["group"] == "total", "covered"]
        rows.append(
            {
                "year": year,
                "groups": len(g),
                "covered": int(g["covered"].sum()),
                "total_covered": bool(tot.iloc[0]) if len(tot) else pd.NA,
                "mean_relative_error": g["relative_error"].mean(),
                "mean_abs_relative_error": g["relative_error"].abs().mean(),
            }
        )
    return pd.DataFrame(rows).set_index("year")


# --- earlier (published) estimates for the long series (Figure 6) --------------------------

#: The published figures of docs/method.md section 10 (default of ``earlier_estimates``).
PUBLISHED_ESTIMATES = bundled_dir("data") / "published_estimates.csv"


#: ``kind`` of an earlier estimate: a published figure, or an earlier run of this tool.
PUBLISHED, EARLIER_RUN = "published", "run"


def earlier_run_folder(path) -> Path | None:
    """The run folder meant by ``path`` when it names an earlier run (the folder, or its
    ``results/estimates.csv``), else None (a CSV of published figures)."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.name == runfolder.ESTIMATES_FILE and path.parent.name == runfolder.RESULTS_DIR:
        return path.parent.parent
    return None


def run_label(run_dir: Path) -> str:
    """How Figure 6 names an earlier run: ``run 2026-12-03`` (the folder name, which is its date), with the
    date it started when the name does not begin with it."""
    run_dir = Path(run_dir)
    started = str((runfolder.read_run_manifest(run_dir) or {}).get("started") or "")[:10]
    return f"run {run_dir.name}" + (f" of {started}" if started and not run_dir.name.startswith(started) else "")


def read_run_estimates(run_dir) -> pd.DataFrame:
    """An earlier run's ``results/estimates.csv`` as earlier estimates (:func:`read_earlier_estimates` columns).

    The yearly rows of every group; the ``all`` rows (a sum over that run's
    years, not a yearly figure) are left out. ``source`` names the run and
    the file, ``kind`` is :data:`EARLIER_RUN`, ``label`` :func:`run_label`.

    Raises
    ------
    ValueError
        The folder has no estimates file, its run did not finish with status
        ok, or the file lacks columns.
    """
    run_dir = Path(run_dir)
    path = runfolder.run_estimates_path(run_dir)
    if not path.is_file():
        raise ValueError(
            f"earlier estimates: run folder {run_dir} has no {runfolder.RESULTS_DIR}/{runfolder.ESTIMATES_FILE}"
        )
    manifest = runfolder.read_run_manifest(run_dir)
    if manifest is not None and manifest.get("status") != "ok":
        raise ValueError(
            f"earlier estimates: run folder {run_dir} has status {manifest.get('status')!r}; only a finished run "
            f"(status ok) has estimates to show"
        )
    est = check_estimates(pd.read_csv(path, dtype={"year": str}), name=f"earlier estimates file {path}")
    est = est[est["year"].str.fullmatch(r"\d{4}")]
    label = run_label(run_dir)
    return pd.DataFrame(
        {
            "year": est["year"],
            "group": est["group"],
            "n_hat": est["n_hat"].astype(float),
            "lower": est["lower"].astype(float),
            "upper": est["upper"].astype(float),
            "source": f"{label}: {runfolder.RESULTS_DIR}/{runfolder.ESTIMATES_FILE}",
            "first_year": est["year"].astype(int),
            "last_year": est["year"].astype(int),
            "kind": EARLIER_RUN,
            "label": label,
        }
    ).reset_index(drop=True)


def read_earlier_estimates(path=None) -> pd.DataFrame:
    """Read and check earlier estimates: a CSV of published figures, or an earlier run folder.

    Rules for a CSV: columns :data:`EARLIER_COLUMNS`; ``year`` a year (``2016``) or a
    period (``2010-2015``: a yearly average over the period); ``group`` a
    group label (``total``, ``U=S``); ``n_hat`` a positive number; ``lower``
    and ``upper`` empty or numbers with lower <= n_hat <= upper; ``source``
    non-empty. A run folder (or its ``results/estimates.csv``) is read with
    :func:`read_run_estimates`.

    Parameters
    ----------
    path : str or Path, optional
        The file or run folder (``p.earlier_estimates``); None: :data:`PUBLISHED_ESTIMATES`.

    Returns
    -------
    DataFrame
        The columns above plus ``first_year`` and ``last_year`` (int; equal for
        a single year), ``kind`` (:data:`PUBLISHED` or :data:`EARLIER_RUN`) and
        ``label`` (how Figure 6 names the source: ``published`` or ``run 2026-12-03``).

    Raises
    ------
    ValueError
        Naming the file, and the row and column of the first bad value.
    """
    from ..stages.inputs import read_table

    path = Path(path) if path is not None else PUBLISHED_ESTIMATES
    run_dir = earlier_run_folder(path)
    if run_dir is not None:
        return read_run_estimates(run_dir)
    if not path.is_file():
        raise ValueError(f"earlier estimates file {path}: no such file")
    frame = read_table(path)  # encoding and separator detected; index = spreadsheet row
    missing = [c for c in EARLIER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"earlier estimates file {path}: missing column(s) {', '.join(missing)}; needs {', '.join(EARLIER_COLUMNS)}"
        )
    first, last, num = [], [], {c: [] for c in ("n_hat", "lower", "upper")}
    for r, row in zip(frame.index, frame.itertuples(index=False)):
        where = f"earlier estimates file {path}: row {int(r)}, column"
        m = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?", row.year)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"{where} year: {row.year!r} is not a year (2016) or a period (2010-2015)")
        first.append(int(m.group(1)))
        last.append(int(m.group(2) or m.group(1)))
        try:
            parse_group(row.group.strip())
        except ValueError as exc:
            raise ValueError(f"{where} group: {exc}") from None
        for col in num:
            text = getattr(row, col).strip()
            if text == "" and col != "n_hat":
                num[col].append(np.nan)
                continue
            try:
                value = float(text)
            except ValueError:
                value = np.nan
            if not np.isfinite(value) or value <= 0:
                raise ValueError(
                    f"{where} {col}: {text!r} is not a positive number"
                    + (" (required)" if col == "n_hat" else " (or leave it empty)")
                )
            num[col].append(value)
        lo, n, up = num["lower"][-1], num["n_hat"][-1], num["upper"][-1]
        if (np.isfinite(lo) and lo > n) or (np.isfinite(up) and up < n):
            raise ValueError(f"{where} lower/upper: the interval {lo:g}-{up:g} does not contain n_hat {n:g}")
        if not row.source.strip():
            raise ValueError(f"{where} source: must name where the figure was published")
    out = pd.DataFrame(
        {
            "year": frame["year"].str.strip(),
            "group": frame["group"].str.strip(),
            **num,
            "source": frame["source"].str.strip(),
            "first_year": first,
            "last_year": last,
            "kind": PUBLISHED,
            "label": PUBLISHED,
        }
    ).reset_index(drop=True)
    return out
