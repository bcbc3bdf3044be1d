"""Result files a user takes away: ``results/sensitivity.csv`` and ``results/tables.xlsx``.

Counts and estimates only (never a person-level row). ``tables.xlsx`` holds
the publication tables (Tables 6-10 and the Annex G tables) as formatted
sheets, rounded by :data:`.tables.ROUNDING_RULE`; the exact values stay in
``results/estimates.csv``. ``sensitivity.csv`` summarises the sensitivity
analyses of the model selection over the completed data sets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import tables
from .format import header

#: Columns of ``results/sensitivity.csv``.
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "analysis",
    "type",
    "year",
    "n_datasets",
    "n_obs_mean",
    "n_hat_mean",
    "n_hat_min",
    "n_hat_max",
)

#: Excel number formats of the published columns.
_COUNT_FORMAT = "#,##0"
_RATIO_FORMAT = "0.0"


def sensitivity_summary(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity analyses per analysis, model type and year, over the completed data sets.

    Parameters
    ----------
    sensitivity : DataFrame
        One row per analysis, data set, model type and year with ``n_obs`` and
        ``n_hat`` (the selection stage's ``sensitivity`` frame; ``main`` is the
        main analysis).

    Returns
    -------
    DataFrame
        :data:`SENSITIVITY_COLUMNS`; ``main`` first, the years in their order
        with ``total`` last; exact values.
    """
    need = {"analysis", "dataset", "type", "year", "n_obs", "n_hat"}
    missing = sorted(need - set(sensitivity.columns))
    if missing:
        raise ValueError(f"sensitivity: missing column(s) {', '.join(missing)}")
    s = sensitivity.assign(year=sensitivity["year"].astype(str))
    g = s.groupby(["analysis", "type", "year"], sort=False)
    out = g.agg(
        n_datasets=("dataset", "nunique"),
        n_obs_mean=("n_obs", "mean"),
        n_hat_mean=("n_hat", "mean"),
        n_hat_min=("n_hat", "min"),
        n_hat_max=("n_hat", "max"),
    ).reset_index()
    analyses = ["main"] + [a for a in dict.fromkeys(out["analysis"]) if a != "main"]
    out["_a"] = out["analysis"].map(analyses.index)
    out["_y"] = [(y == "total", y) for y in out["year"]]
    return (
        out.sort_values(["_a", "type", "_y"])
        .drop(columns=["_a", "_y"])
        .reset_index(drop=True)[list(SENSITIVITY_COLUMNS)]
    )


def write_sensitivity(sensitivity: pd.DataFrame, results_dir: Path) -> Path:
    """Write :func:`sensitivity_summary` to ``results_dir/sensitivity.csv`` (atomically)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / "sensitivity.csv"
    tmp = out.with_suffix(".csv.tmp")
    sensitivity_summary(sensitivity).to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out


def _sheet_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A rounded results table (``rounded=True``) with its labels as columns and human headers."""
    flat = table.reset_index()
    flat.columns = [header(c) for c in flat.columns]
    return flat


def publication_sheets(estimates: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    """The sheets of ``tables.xlsx``: sheet name -> (title, table), Table 6 first.

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv`` (exact values; rounded here).

    Returns
    -------
    dict
        ``"Table 6"``, ``"Table 7"`` ... ``"Annex G 1"`` ...; each table rounded
        for publication with columns year (and levels), registered, estimated,
        lower 95%, upper 95%, ratio.
    """
    from ..codes import COVARIATE_NAMES

    sheets = {
        "Table 6": (
            "Table 6: observed and estimated number of victims per year",
            _sheet_frame(tables.table6(estimates)),
        )
    }
    for c in tables.result_covariates(estimates):
        k = tables.STUDY_TABLE[c]
        sheets[f"Table {k}"] = (
            f"Table {k}: by {COVARIATE_NAMES[c]}",
            _sheet_frame(tables.covariate_table(estimates, c)),
        )
    for k, (title, table) in enumerate(tables.annex_g_tables(estimates).items(), 1):
        sheets[f"Annex G {k}"] = (title, _sheet_frame(table))
    return sheets


def write_tables_xlsx(estimates: pd.DataFrame, path: Path) -> Path:
    """Write the publication tables to an Excel workbook, one formatted sheet per table.

    Each sheet: the table's title (row 1), the rounding rule (row 2), the
    headers in bold (row 4) and the rows below, counts with thousands
    separators and the ratio with one decimal; the header row is frozen.

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv``.
    path : Path
        The workbook to write (``results/tables.xlsx``); written to a
        temporary file first, so a reader never sees half a workbook.

    Returns
    -------
    Path
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    path = Path(path)
    wb = Workbook()
    wb.remove(wb.active)
    for name, (title, frame) in publication_sheets(estimates).items():
        ws = wb.create_sheet(name)
        ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=12)
        ws.cell(
            row=2, column=1, value=tables.ROUNDING_RULE.replace("results/estimates.csv", "estimates.csv")
        ).font = Font(italic=True, size=9)
        for j, col in enumerate(frame.columns, 1):
            cell = ws.cell(row=4, column=j, value=str(col))
            cell.font = Font(bold=True)
            cell.alignment = Alignment(horizontal="left" if frame[col].dtype == object else "right")
        for i, row in enumerate(frame.itertuples(index=False), 5):
            for j, (col, value) in enumerate(zip(frame.columns, row), 1):
                if isinstance(value, (np.integer, np.floating)):
                    value = value.item()
                cell = ws.cell(row=i, column=j, value=value)
                if col == "ratio":
                    cell.number_format = _RATIO_FORMAT
                elif isinstance(value, (int, float)):
                    cell.number_format = _COUNT_FORMAT
        for j, col in enumerate(frame.columns, 1):
            width = max(
                [len(str(col))] + [len(f"{v:,}" if isinstance(v, (int, np.integer)) else str(v)) for v in frame[col]]
            )
            ws.column_dimensions[get_column_letter(j)].width = min(60, width + 3)
        ws.freeze_panes = "A5"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    wb.save(tmp)
    os.replace(tmp, path)
    return path
