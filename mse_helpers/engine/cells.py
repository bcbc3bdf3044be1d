"""Cell tables: every cell of lists (0/1) x categorical factors, zeros included (docs/method.md 5).

- :func:`complete_table`: an aggregated table of histories -> full table;
- :func:`count_table`: person-level rows -> full table;
- :func:`dataset_table`: one completed data set of the pipeline -> full table;
- :func:`factor_levels`: the levels of a factor, baseline first;
- :func:`cell_codes`: THE cell-key builder: one integer code per row for a set
  of variables and their levels (mixed radix, first variable slowest).

The cells in which every list is 0 are unobserved: their counts are what MSE
estimates.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..codes import COVARIATES, YEAR


def factor_levels(name: str, values: pd.Series) -> tuple:
    """Levels of one factor, in the order that makes the first one the baseline.

    A covariate known to :mod:`mse_helpers.codes` given as its level strings
    keeps the codes' order (first level coded 0); anything else (0/1 codes,
    years, other labels) is sorted.
    """
    uniq = pd.unique(values.dropna())
    if name in COVARIATES and set(map(str, uniq)) <= set(COVARIATES[name]):
        return tuple(COVARIATES[name])
    try:
        return tuple(sorted(uniq.tolist()))
    except TypeError:  # mixed types: sort by text, still deterministic
        return tuple(sorted(uniq.tolist(), key=str))


def _check_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found; columns are {list(frame.columns)}")


def _check_binary(frame: pd.DataFrame, lists: Sequence[str], what: str) -> None:
    for col in lists:
        values = frame[col]
        bad = values.isna() | ~values.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{what}: list column {col!r} must be 0 or 1 in every row; "
                f"data row {row + 1} has {values.iloc[row]!r} ({int(bad.sum())} bad row(s))"
            )


def _check_no_missing(frame: pd.DataFrame, factors: Sequence[str], what: str) -> None:
    for col in factors:
        bad = frame[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{what}: factor column {col!r} is missing in {int(bad.sum())} row(s), first data row {row + 1}; "
                "the log-linear model needs completed data (impute first)"
            )


def _full_grid(lists: Sequence[str], factors: Sequence[str], levels: dict[str, tuple]) -> pd.DataFrame:
    """Every cell: factors vary slowest, lists fastest (list 0 = all-zero first)."""
    names = list(factors) + list(lists)
    axes = [levels[f] for f in factors] + [(0, 1)] * len(lists)
    rows = list(itertools.product(*axes)) if names else [()]
    grid = pd.DataFrame(rows, columns=names)
    for f in factors:  # keep the data's types (int years stay int)
        grid[f] = pd.Series([r for r in grid[f]], dtype=object).infer_objects()
    for col in lists:
        grid[col] = grid[col].astype(np.int64)
    return grid[list(lists) + list(factors)]


def cell_codes(
    frame: pd.DataFrame,
    variables: Sequence[str],
    levels: dict[str, Sequence],
    *,
    source: str = "table",
    columns: dict[str, str] | None = None,
) -> np.ndarray:
    """One integer cell code per row: THE cell-key builder of the package.

    The code is the row's position in the product of the variables' levels
    (first variable slowest, each variable's levels in the order given), so
    the codes of :func:`complete_table`'s cells, which vary the factors
    slowest, count 0, 1, 2, ... Building integer codes column by column is
    about 50x faster than joining the values of a row into a text key.

    Parameters
    ----------
    frame : DataFrame
        One row per person or per cell.
    variables : sequence of str
        The variables, slowest first.
    levels : dict
        Variable -> its levels. A numeric column is matched by value (``1``
        and ``1.0`` are the same level), any other column by text (``2016``
        and ``"2016"`` too), so that no row can silently miss its cell.
    source : str
        Name used in error messages (e.g. the file name).
    columns : dict, optional
        Variable -> the frame's column holding it (default: the same name).

    Returns
    -------
    ndarray of int64

    Raises
    ------
    ValueError
        A missing value or a value that is not a level, naming the column and
        the data row (1 = the first data row).
    """
    codes = np.zeros(len(frame), dtype=np.int64)
    for v in variables:
        col = (columns or {}).get(v, v)
        values = frame[col]
        lv = tuple(levels[v])
        missing = values.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0]) + 1
            raise ValueError(
                f"{source}: column {col!r} is missing in data row {row} "
                f"({int(missing.sum())} row(s)); every row needs a value"
            )
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            idx = values.map({level: i for i, level in enumerate(lv)})
        else:
            idx = values.astype(str).map({str(level): i for i, level in enumerate(lv)})
        bad = idx.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise ValueError(
                f"{source}: column {col!r} has {values.iloc[row - 1]!r} in data row {row}, not one of {list(lv)}"
            )
        codes = codes * len(lv) + idx.to_numpy(dtype=np.int64)
    return codes


def check_on_a_list(on_no_list: np.ndarray, source: str) -> None:
    """Raise when a person-level row is on no list (it cannot be in registration data).

    Parameters
    ----------
    on_no_list : ndarray of bool
        Per row, whether every list is 0.
    source : str
        Name used in the message, which gives the first data row.
    """
    if on_no_list.any():
        raise ValueError(
            f"{source}: {int(on_no_list.sum())} row(s) are on no list (first data row "
            f"{int(np.flatnonzero(on_no_list)[0]) + 1}); every registered person is on at least one"
        )


def pattern_labels(n: int) -> np.ndarray:
    """Text label of every code of ``n`` 0/1 variables (:func:`cell_codes`): ``"00"``, ``"01"``, ...

    ``pattern_labels(n)[codes]`` turns the codes of ``n`` lists into their
    history as a string of 0/1, first list first.
    """
    return np.array(["".join(p) for p in itertools.product("01", repeat=n)], dtype=object)


def complete_table(
    counts: pd.DataFrame,
    lists: Sequence[str],
    factors: Sequence[str] = (),
    count: str = "count",
    levels: dict[str, Sequence] | None = None,
    source: str = "count table",
) -> pd.DataFrame:
    """Complete an aggregated table of histories to every cell, zeros included.

    Parameters
    ----------
    counts : DataFrame
        One row per observed history (and stratum): list columns 0/1, factor
        columns, and ``count``. Histories that are absent count 0.
    lists : sequence of str
        The list (register) columns.
    factors : sequence of str
        Categorical covariate / year columns (may be empty).
    count : str
        Name of the count column.
    levels : dict, optional
        Factor -> levels, to include levels that have no rows (first level is
        the baseline). Default: the levels present (codes' order for the
        study's covariates).
    source : str
        Name used in error messages (e.g. the file name); rows are counted
        from 1 = the first data row.

    Returns
    -------
    DataFrame
        Columns ``lists + factors + [count, "observed"]``, one row per cell;
        ``observed`` is False for the all-zero-list cells (count 0 there).

    Raises
    ------
    ValueError
        A row with every list 0, a duplicated history, a negative or
        non-integer count, a list value other than 0/1, a missing factor.
    """
    lists, factors = list(lists), list(factors)
    if not lists:
        raise ValueError(f"{source}: at least two list columns are needed, got none")
    _check_columns(counts, lists + factors + [count], source)
    _check_binary(counts, lists, source)
    _check_no_missing(counts, factors, source)
    y = pd.to_numeric(counts[count], errors="coerce")
    bad = y.isna() | (y < 0) | (y != np.floor(y))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{source}: column {count!r} must be a whole number >= 0; "
            f"data row {row + 1} has {counts[count].iloc[row]!r}"
        )
    listsum = counts[lists].astype(np.int64).sum(axis=1).to_numpy()
    zero_rows = np.flatnonzero(listsum == 0)
    if zero_rows.size:
        raise ValueError(
            f"{source}: data row(s) {(zero_rows + 1).tolist()[:10]} have every list 0; "
            "that history is unobserved by definition (it is what MSE estimates)"
        )
    key = lists + factors
    dup = counts.duplicated(subset=key, keep=False).to_numpy()
    if dup.any():
        raise ValueError(
            f"{source}: history repeated in data rows {(np.flatnonzero(dup) + 1).tolist()[:10]}; "
            "give each combination of lists and factors once"
        )
    lv = {f: tuple(levels[f]) if levels and f in levels else factor_levels(f, counts[f]) for f in factors}
    for f in factors:
        extra = set(pd.unique(counts[f])) - set(lv[f])
        if extra:
            raise ValueError(f"{source}: factor {f!r} has value(s) {sorted(map(str, extra))} not in levels {lv[f]}")
    grid = _full_grid(lists, factors, lv)
    src = counts[key].copy()
    for col in lists:
        src[col] = src[col].astype(np.int64)
    src[count] = y.astype(np.int64).to_numpy()
    # one integer code per cell: the grid holds each code once, the rows at most once (checked above)
    lv.update({col: (0, 1) for col in lists})
    order = factors + lists
    position = np.empty(len(grid), dtype=np.int64)
    position[cell_codes(grid, order, lv, source=source)] = np.arange(len(grid))
    out = grid.copy()
    cell_count = np.zeros(len(grid), dtype=np.int64)
    cell_count[position[cell_codes(src, order, lv, source=source)]] = src[count].to_numpy()
    out[count] = cell_count
    if int(out[count].sum()) != int(src[count].sum()):  # pragma: no cover - guarded above
        raise ValueError(f"{source}: {int(src[count].sum() - out[count].sum())} counts did not match a cell")
    out["observed"] = out[lists].sum(axis=1).to_numpy() > 0
    return out


def count_table(
    persons: pd.DataFrame, lists: Sequence[str], factors: Sequence[str] = (), levels: dict[str, Sequence] | None = None
) -> pd.DataFrame:
    """Cross-classify persons into the full table of lists x factors.

    Parameters
    ----------
    persons : DataFrame
        One row per person: list columns 0/1 (no missing), factor columns
        (covariate level strings or 0/1, year int; no missing).
    lists : sequence of str
        List (register) columns, e.g. ``codes.REGISTERS``.
    factors : sequence of str
        Covariate and year columns, e.g. ``["S", "L", "N", "U", "J"]``.
    levels : dict, optional
        Factor -> levels (see :func:`complete_table`).

    Returns
    -------
    DataFrame
        One row per cell with ``count`` and ``observed`` (see
        :func:`complete_table`). Persons on no list are an error: they cannot
        be in registration data.
    """
    lists, factors = list(lists), list(factors)
    _check_columns(persons, lists + factors, "persons")
    _check_binary(persons, lists, "persons")
    _check_no_missing(persons, factors, "persons")
    check_on_a_list(persons[lists].astype(np.int64).sum(axis=1).to_numpy() == 0, "persons")
    frame = persons[lists + factors].copy()
    for col in lists:
        frame[col] = frame[col].astype(np.int64)
    agg = frame.groupby(lists + factors, sort=False, dropna=False).size().rename("count").reset_index()
    if levels is None:
        levels = {f: factor_levels(f, persons[f]) for f in factors}
    return complete_table(agg, lists, factors, levels=levels, source="persons")


def dataset_table(
    persons: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str], years: Sequence[int]
) -> pd.DataFrame:
    """The count table of one completed person-level data set (docs/method.md 5).

    Lists are the registers, factors the covariates and the year as factor
    ``J``, with fixed levels (the covariates' two levels, every analysed
    year), so that every completed data set gives the same cells.

    Parameters
    ----------
    persons : DataFrame
        A completed person-level file: ``year``, registers 0/1, covariates as
        level strings, no missing values.
    registers, covariates : sequence of str
        Codes from ``codes.REGISTERS`` and ``codes.COVARIATES``.
    years : sequence of int
        The analysed years.

    Returns
    -------
    DataFrame
        See :func:`count_table`.
    """
    frame = persons.rename(columns={"year": YEAR})
    # A person on none of the registers in use is not in the data: data
    # preparation already dropped (and counted) them.
    levels = {c: COVARIATES[c] for c in covariates}
    levels[YEAR] = tuple(int(y) for y in years)
    frame = frame.assign(**{YEAR: frame[YEAR].astype(int)})
    return count_table(frame, list(registers), list(covariates) + [YEAR], levels=levels)
