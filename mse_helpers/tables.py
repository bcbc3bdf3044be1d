"""Tables of the report as DataFrames (counts only: never person-level rows).

Notebook 01 (data preparation) uses the ``reports_*``, ``register_*``,
``victims_*`` and ``partial_*`` tables; later stages add their results tables
here.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .codes import COVARIATE_NAMES, COVARIATES, LEVEL_NAMES, REGISTERS

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
    return (pd.DataFrame(rows).pivot_table(index="organisation", columns="year", values="reports",
                                           aggfunc="sum", fill_value=0).astype(int))


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
    return shown.groupby(cols).size().rename("records").reset_index().sort_values(
        ["year", "records"], ascending=[True, False]).reset_index(drop=True)


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
