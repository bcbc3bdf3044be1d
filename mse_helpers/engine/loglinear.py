"""Poisson log-linear models for Multiple Systems Estimation (method.md 5).

The engine works on a *complete* cross-classification: one row per cell of
lists (0/1) x categorical factors (covariates, year), zeros included. The cells
in which every list is 0 are unobserved: their counts are what MSE estimates.

Building blocks, in the order a caller uses them:

- :func:`count_table` (person-level rows -> full table) or
  :func:`complete_table` (an aggregated table of histories -> full table);
- :class:`Design`: the model matrix of *every* candidate term, built once per
  table, so that a model is just a selection of term blocks (model selection
  fits tens of thousands of models on one table);
- :func:`fit_model`: existence/identifiability check, then Newton-Raphson
  (= IRLS for the canonical log link) with a Cholesky solve on the observed
  cells; warm starts from a neighbouring model's coefficients; new counts on
  the same design for the parametric bootstrap (:func:`refit`);
- :func:`n_hat_by` / :func:`n_hat_groups`: N-hat for any grouping;
- :func:`parametric_bootstrap`: method.md 7 step 1 for one model.

Log-likelihood, deviance, AIC and BIC follow statsmodels' GLM Poisson
(``llf`` includes the ``-log(y!)`` term, BIC is ``-2 llf + log(n) k`` with n the
number of observed cells), so that numbers are directly comparable.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import linalg
from scipy.linalg import lapack
from scipy.special import gammaln

from ..codes import COVARIATES, YEAR, group_label

#: Name of the intercept column.
INTERCEPT = "(Intercept)"

#: Fit statuses. "ok" fits give numbers; every other status gives NaN.
STATUS_OK = "ok"
STATUS_NO_MLE = "mle_does_not_exist"
STATUS_NOT_IDENTIFIABLE = "not_identifiable"
#: Newton did not converge although the checks passed (should not happen;
#: reported rather than returning a number that may have drifted).
STATUS_NOT_CONVERGED = "not_converged"


# --- tables --------------------------------------------------------------------

def _factor_levels(name: str, values: pd.Series) -> tuple:
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
                f"data row {row + 1} has {values.iloc[row]!r} ({int(bad.sum())} bad row(s))")


def _check_no_missing(frame: pd.DataFrame, factors: Sequence[str], what: str) -> None:
    for col in factors:
        bad = frame[col].isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{what}: factor column {col!r} is missing in {int(bad.sum())} row(s), first data row {row + 1}; "
                "the log-linear model needs completed data (impute first)")


def _full_grid(lists: Sequence[str], factors: Sequence[str],
               levels: dict[str, tuple]) -> pd.DataFrame:
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


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One text key per row (columns joined by a separator), built column-wise.

    A row-wise ``agg("".join, axis=1)`` is ~50x slower and made building a
    count table the slow part of every completed data set.
    """
    keys = None
    for col in frame.columns:
        part = frame[col].astype(str).to_numpy(dtype=object)
        keys = part if keys is None else keys + "\x1f" + part
    return keys if keys is not None else np.full(len(frame), "", dtype=object)


def complete_table(counts: pd.DataFrame, lists: Sequence[str], factors: Sequence[str] = (),
                   count: str = "count", levels: dict[str, Sequence] | None = None,
                   source: str = "count table") -> pd.DataFrame:
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
        raise ValueError(f"{source}: column {count!r} must be a whole number >= 0; "
                         f"data row {row + 1} has {counts[count].iloc[row]!r}")
    listsum = counts[lists].astype(np.int64).sum(axis=1).to_numpy()
    zero_rows = np.flatnonzero(listsum == 0)
    if zero_rows.size:
        raise ValueError(f"{source}: data row(s) {(zero_rows + 1).tolist()[:10]} have every list 0; "
                         "that history is unobserved by definition (it is what MSE estimates)")
    key = lists + factors
    dup = counts.duplicated(subset=key, keep=False).to_numpy()
    if dup.any():
        raise ValueError(f"{source}: history repeated in data rows {(np.flatnonzero(dup) + 1).tolist()[:10]}; "
                         "give each combination of lists and factors once")
    lv = {f: tuple(levels[f]) if levels and f in levels else _factor_levels(f, counts[f]) for f in factors}
    for f in factors:
        extra = set(pd.unique(counts[f])) - set(lv[f])
        if extra:
            raise ValueError(f"{source}: factor {f!r} has value(s) {sorted(map(str, extra))} not in levels {lv[f]}")
    grid = _full_grid(lists, factors, lv)
    src = counts[key].copy()
    for col in lists:
        src[col] = src[col].astype(np.int64)
    src[count] = y.astype(np.int64).to_numpy()
    # merge on stringified factor keys so that 2016 and "2016" cannot silently miss
    gk = _row_keys(grid[key])
    sk = _row_keys(src[key])
    lookup = pd.Series(src[count].to_numpy(), index=sk)
    out = grid.copy()
    out[count] = lookup.reindex(gk).fillna(0).astype(np.int64).to_numpy()
    if int(out[count].sum()) != int(src[count].sum()):  # pragma: no cover - guarded above
        raise ValueError(f"{source}: {int(src[count].sum() - out[count].sum())} counts did not match a cell")
    out["observed"] = out[lists].sum(axis=1).to_numpy() > 0
    return out


def count_table(persons: pd.DataFrame, lists: Sequence[str], factors: Sequence[str] = (),
                levels: dict[str, Sequence] | None = None) -> pd.DataFrame:
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
    nolist = persons[lists].astype(np.int64).sum(axis=1).to_numpy() == 0
    if nolist.any():
        raise ValueError(f"persons: {int(nolist.sum())} row(s) are on no list (first data row "
                         f"{int(np.flatnonzero(nolist)[0]) + 1}); every registered person is on at least one")
    frame = persons[lists + factors].copy()
    for col in lists:
        frame[col] = frame[col].astype(np.int64)
    agg = frame.groupby(lists + factors, sort=False, dropna=False).size().rename("count").reset_index()
    if levels is None:
        levels = {f: _factor_levels(f, persons[f]) for f in factors}
    return complete_table(agg, lists, factors, levels=levels, source="persons")


def dataset_table(persons: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str],
                  years: Sequence[int]) -> pd.DataFrame:
    """The count table of one completed person-level data set (method.md 5).

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


# --- terms ---------------------------------------------------------------------

def parse_terms(spec: str | Sequence[str] | None, variables: Sequence[str],
                candidates: Sequence[str] | None = None) -> tuple[str, ...]:
    """Turn a term specification into canonical interaction-term names.

    Parameters
    ----------
    spec : str or sequence of str or None
        ``"A:B,B:C"`` or ``"A:B + B:C"`` (names), a formula such as
        ``"A*B + C:D"`` (``*`` expands to every interaction of its variables),
        the keywords ``"all2"`` / ``"all3"`` (all two- / two- and three-factor
        terms), or a list of names. Main effects are always in the model, so
        single variables (and ``"1"``, ``"~"``) are ignored. None or "" gives
        the main-effects model.
    variables : sequence of str
        The design's variables, in design order (lists first, then factors).
    candidates : sequence of str, optional
        Terms the design holds; a term outside them is an error.

    Returns
    -------
    tuple of str
        Unique interaction terms, variables in design order, in design order.
    """
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, str) else list(spec)
    order = {v: i for i, v in enumerate(variables)}
    found: set[tuple[str, ...]] = set()
    for item in items:
        text = str(item).replace("~", " ").strip()
        for part in re.split(r"[,+]", text):
            part = part.strip()
            if not part or part == "1":
                continue
            if part.lower() in ("all2", "all3"):
                k = int(part[-1])
                for r in range(2, k + 1):
                    found.update(itertools.combinations(variables, r))
                continue
            if "*" in part:
                vs = [v.strip() for v in part.split("*")]
                _unknown(vs, order, part)
                for r in range(2, len(vs) + 1):
                    found.update(tuple(sorted(c, key=order.get)) for c in itertools.combinations(vs, r))
                continue
            vs = [v.strip() for v in part.split(":")]
            _unknown(vs, order, part)
            if len(set(vs)) != len(vs):
                raise ValueError(f"term {part!r}: a variable is repeated")
            if len(vs) >= 2:
                found.add(tuple(sorted(vs, key=order.get)))
    names = sorted(found, key=lambda t: (len(t), [order[v] for v in t]))
    out = tuple(":".join(t) for t in names)
    if candidates is not None:
        cand = set(candidates)
        missing = [t for t in out if t not in cand]
        if missing:
            raise ValueError(f"term(s) {missing} are not in the design; build the Design with "
                             "three_factor=... to include three-factor terms")
    return out


def _unknown(vs: list[str], order: dict[str, int], part: str) -> None:
    bad = [v for v in vs if v not in order]
    if bad:
        raise ValueError(f"term {part!r}: unknown variable(s) {bad}; variables are {list(order)}")


# --- design --------------------------------------------------------------------

class Design:
    """The model matrix of every candidate term for one complete table.

    Build it once per table; a model is then a selection of term blocks
    (:meth:`columns`). Lists enter as one 0/1 column each; a factor with k
    levels as k-1 dummy columns (first level is the baseline: ``J[2017]``,
    ``S[M]``; a 0/1 factor is one column named as the factor); an interaction
    term holds the products of its variables' columns.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`complete_table` / :func:`count_table`: every cell once,
        with ``count`` and ``observed``.
    lists : sequence of str
        The list columns.
    factors : sequence of str
        The factor columns.
    three_factor : None, "all" or sequence of str
        Three-factor candidate terms to include besides all two-factor terms
        ("all": every one of them).
    count : str
        Name of the count column.

    Attributes
    ----------
    variables : tuple of str
        Lists then factors.
    levels : dict
        Variable -> levels (lists: ``(0, 1)``).
    blocks : dict
        Term name (``"(Intercept)"``, a variable, ``"P:R"``) -> column indices.
    column_names : list of str
    X : ndarray
        All cells x all candidate columns.
    observed : ndarray of bool
    y : ndarray
        Observed-cell counts (float).
    X_obs, X_unobs : ndarray
        Rows of ``X`` for observed / unobserved cells (unobserved in stratum order).
    strata : DataFrame
        One row per stratum (combination of factor levels) with ``n_obs``.
    cell_stratum : ndarray of int
        Stratum of each observed cell.
    """

    def __init__(self, table: pd.DataFrame, lists: Sequence[str], factors: Sequence[str] = (),
                 three_factor: None | str | Sequence[str] = None, count: str = "count"):
        self.lists = tuple(lists)
        self.factors = tuple(factors)
        self.variables = self.lists + self.factors
        if len(self.lists) < 2:
            raise ValueError(f"Design: MSE needs at least two lists, got {list(self.lists)}")
        _check_columns(table, list(self.variables) + [count, "observed"], "Design table")
        self.levels: dict[str, tuple] = {v: (0, 1) for v in self.lists}
        for f in self.factors:
            self.levels[f] = _factor_levels(f, table[f])
            if len(self.levels[f]) < 2:
                raise ValueError(f"Design: factor {f!r} has a single level {self.levels[f]}; drop it")
        n_cells = int(np.prod([len(self.levels[v]) for v in self.variables]))
        if len(table) != n_cells or table.duplicated(subset=list(self.variables)).any():
            raise ValueError(f"Design: the table must hold every cell exactly once ({n_cells} cells), "
                             f"got {len(table)} rows; build it with complete_table or count_table")
        self.table = table.reset_index(drop=True)
        self.count = count
        # one indicator matrix per variable (cells x (levels-1)); products make terms
        self._var_cols: dict[str, tuple[np.ndarray, list[str]]] = {}
        for v in self.variables:
            lv = self.levels[v]
            vals = self.table[v].to_numpy()
            if lv == (0, 1):
                mats, names = [(vals == 1).astype(float)], [v]
            else:
                mats = [(vals == level).astype(float) for level in lv[1:]]
                names = [f"{v}[{level}]" for level in lv[1:]]
            self._var_cols[v] = (np.column_stack(mats), names)
        self.candidate_terms: tuple[str, ...] = parse_terms("all2", self.variables)
        if three_factor is not None:
            extra = parse_terms("all3" if three_factor == "all" else three_factor, self.variables)
            self.candidate_terms = tuple(dict.fromkeys(self.candidate_terms + extra))
        mats, names = [np.ones((n_cells, 1))], [INTERCEPT]
        parts: list[tuple] = [()]
        self.blocks: dict[str, np.ndarray] = {INTERCEPT: np.array([0])}
        pos = 1
        for term in self.variables + self.candidate_terms:
            m, nm, pt = self._term_matrix(term)
            mats.append(m)
            names.extend(nm)
            parts.extend(pt)
            self.blocks[term] = np.arange(pos, pos + m.shape[1])
            pos += m.shape[1]
        self.X = np.ascontiguousarray(np.column_stack(mats))
        self.column_names = names
        self._col_parts = parts
        self.observed = self.table["observed"].to_numpy().astype(bool)
        self.y = self.table[count].to_numpy()[self.observed].astype(float)
        # strata: one per factor combination, in the order of the unobserved rows
        unobs_idx = np.flatnonzero(~self.observed)
        if self.factors:
            sf = self.table[list(self.factors)]
            self.strata = sf.iloc[unobs_idx].reset_index(drop=True)
            key_all = sf.astype(str).agg("\x1f".join, axis=1).to_numpy()
            pos_of = {k: i for i, k in enumerate(key_all[unobs_idx])}
            stratum = np.array([pos_of[k] for k in key_all])
        else:
            self.strata = pd.DataFrame(index=[0])
            stratum = np.zeros(n_cells, dtype=int)
        self.cell_stratum = stratum[self.observed]
        self.n_strata = len(unobs_idx)
        self.X_obs = np.ascontiguousarray(self.X[self.observed])
        self.X_unobs = np.ascontiguousarray(self.X[unobs_idx])
        # single-precision copy for the information matrix (see _hessian_factor)
        self.X_obs32 = self.X_obs.astype(np.float32)
        self.strata["n_obs"] = self.n_obs_by_stratum(self.y)
        self._setup_split()
        self._plans: dict[bytes, _InfoPlan] = {}
        # object dtype: taking from it is a plain numpy take (the default
        # string dtype goes through pyarrow, slow for a per-fit index)
        self._name_index = pd.Index(np.array(self.column_names, dtype=object), dtype=object)
        self._xcache: dict[bytes, _ModelMatrix] = {}
        self._lf: float | None = None

    def clear_caches(self) -> None:
        """Forget cached model matrices and information plans (for honest timing)."""
        self._plans.clear()
        self._xcache.clear()

    def model_matrices(self, cols: np.ndarray) -> "_ModelMatrix":
        """The observed-cell model matrix of a model (see :class:`_ModelMatrix`).

        The last few are cached: the bootstrap and warm-started neighbours
        refit the same model many times in a row.
        """
        key = cols.tobytes()
        hit = self._xcache.get(key)
        if hit is None:
            if len(self._xcache) >= 4:
                self._xcache.pop(next(iter(self._xcache)))
            hit = self._xcache[key] = _ModelMatrix(self, cols)
        return hit

    def _term_matrix(self, term: str) -> tuple[np.ndarray, list[str], list[tuple]]:
        vs = term.split(":")
        mat, names = self._var_cols[vs[0]]
        parts = [((vs[0], i),) for i in range(mat.shape[1])]
        for v in vs[1:]:
            m2, n2 = self._var_cols[v]
            mat = (mat[:, :, None] * m2[:, None, :]).reshape(mat.shape[0], -1)
            names = [f"{a}:{b}" for a in names for b in n2]
            parts = [a + ((v, i),) for a in parts for i in range(m2.shape[1])]
        return mat, names, parts

    def _setup_split(self) -> None:
        """Prepare the fast information matrix for a factor with > 2 levels.

        Every cell is (level k of the split factor, cell b of the other
        variables), and every column is f(b) g(k) with g = 1 or a level
        dummy. Then ``X' W X`` needs ``F' diag(sum_k mu_k) F`` and, per
        non-baseline level, ``F' diag(mu_k) F_j`` over the ``n_cells / K``
        rest-cells only: about a third of the work of the direct product for
        the study's four years (see :class:`_InfoPlan`).
        """
        self._split = None
        multi = [f for f in self.factors if len(self.levels[f]) > 2]
        if not multi:
            return
        J = max(multi, key=lambda f: len(self.levels[f]))
        K = len(self.levels[J])
        level_pos = {lv: i for i, lv in enumerate(self.levels[J])}
        k_cell = self.table[J].map(level_pos).to_numpy().astype(int)
        b_cell = np.empty_like(k_cell)
        for k in range(K):
            idx = np.flatnonzero(k_cell == k)
            b_cell[idx] = np.arange(idx.size)
        nb = len(self.table) // K
        # column -> (index of its J-free part among all columns, level of J or 0)
        by_parts = {pt: c for c, pt in enumerate(self._col_parts) if all(v != J for v, _ in pt)}
        f_of_col = np.empty(len(self._col_parts), dtype=int)
        g_of_col = np.zeros(len(self._col_parts), dtype=int)
        for c, pt in enumerate(self._col_parts):
            rest = tuple(x for x in pt if x[0] != J)
            jl = [i for v, i in pt if v == J]
            if rest not in by_parts:  # a J-free part outside the candidates: no fast path
                return
            f_of_col[c] = by_parts[rest]
            g_of_col[c] = jl[0] + 1 if jl else 0
        base_rows = np.flatnonzero(k_cell == 0)[np.argsort(b_cell[k_cell == 0])]
        obs = self.observed
        self._split = dict(J=J, K=K, nb=nb, k_obs=k_cell[obs], b_obs=b_cell[obs],
                           F=np.asarray(self.X[base_rows], dtype=np.float32),
                           f_of_col=f_of_col, g_of_col=g_of_col)

    def info_plan(self, cols: np.ndarray) -> "_InfoPlan | None":
        """Cached plan for the fast information matrix of a model (or None)."""
        if self._split is None:
            return None
        key = cols.tobytes()
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 4096:  # bound memory in long searches
                self._plans.clear()
            plan = self._plans[key] = _InfoPlan(self._split, cols)
        return plan

    # -- model selection helpers --
    def terms(self, spec: str | Sequence[str] | None) -> tuple[str, ...]:
        """Canonical interaction-term names for ``spec`` (see :func:`parse_terms`)."""
        return parse_terms(spec, self.variables, self.candidate_terms)

    def canonical(self, terms: str | Sequence[str] | None) -> tuple[str, ...]:
        """Like :meth:`terms`, with a fast path for a tuple of canonical names
        (model selection passes the same names back thousands of times)."""
        if isinstance(terms, tuple) and all(t in self.blocks and ":" in t for t in terms):
            return terms
        return self.terms(terms if isinstance(terms, str) or terms is None else list(terms))

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        """Column indices of the model: intercept, every main effect, then ``terms``."""
        blocks = [self.blocks[INTERCEPT]] + [self.blocks[v] for v in self.variables]
        for t in terms:
            if t not in self.blocks:
                raise ValueError(f"term {t!r} is not in the design (candidates: two-factor terms"
                                 f"{' and the three-factor terms asked for' if len(self.candidate_terms) else ''})")
            blocks.append(self.blocks[t])
        return np.concatenate(blocks)

    def n_params(self, terms: Sequence[str]) -> int:
        """Number of parameters of the model (year terms count k-1 each)."""
        return int(self.columns(terms).size)

    @property
    def n_cells(self) -> int:
        """Number of observed cells (the n of BIC)."""
        return int(self.observed.sum())

    def n_obs_by_stratum(self, y: np.ndarray) -> np.ndarray:
        """Observed persons per stratum for observed-cell counts ``y``."""
        return np.bincount(self.cell_stratum, weights=y, minlength=self.n_strata)

    def log_factorial(self, y: np.ndarray) -> float:
        """``sum(log(y!))``, cached for the table's own counts."""
        if y is self.y:
            if self._lf is None:
                self._lf = float(gammaln(self.y + 1.0).sum())
            return self._lf
        return float(gammaln(y + 1.0).sum())

    def check_counts(self, counts: np.ndarray | None) -> np.ndarray:
        """Return observed-cell counts as float (the design's own when None)."""
        if counts is None:
            return self.y
        y = np.asarray(counts, dtype=float)
        if y.shape != self.y.shape:
            raise ValueError(f"counts: expected {self.y.size} observed-cell counts, got shape {y.shape}")
        if (y < 0).any() or not np.isfinite(y).all():
            raise ValueError("counts: must be finite and >= 0")
        return y


# --- fitting -------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class Fit:
    """One fitted log-linear model (or the reason it was not fitted).

    Attributes
    ----------
    terms : tuple of str
        Interaction terms (main effects are always included).
    status : str
        "ok", "mle_does_not_exist", "not_identifiable" or "not_converged".
        Only "ok" fits carry numbers; the others have NaN.
    message : str
        Why the status is not ok, naming the responsible terms.
    responsible : tuple of str
        Terms the existence / rank checks blame.
    coef : Series
        Coefficients by column name (empty when not ok).
    fitted : ndarray
        Fitted values of the observed cells.
    m0 : ndarray
        Fitted unobserved-cell value (dark number) per stratum.
    loglik, deviance, aic, bic : float
        As statsmodels GLM Poisson (``llf``, ``deviance``, ``aic``, ``bic_llf``).
    n_params, df_resid, n_cells : int
    n_iter : int
        Newton iterations used.
    """

    design: Design
    terms: tuple[str, ...]
    y: np.ndarray
    status: str
    message: str = ""
    responsible: tuple[str, ...] = ()
    coef: pd.Series = dataclasses.field(default_factory=lambda: pd.Series(dtype=float))
    fitted: np.ndarray | None = None
    m0: np.ndarray | None = None
    loglik: float = float("nan")
    deviance: float = float("nan")
    aic: float = float("nan")
    bic: float = float("nan")
    n_params: int = 0
    df_resid: int = 0
    n_cells: int = 0
    n_iter: int = 0
    _cols: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the fit has usable numbers."""
        return self.status == STATUS_OK

    @property
    def n_obs(self) -> float:
        """Observed persons in the table."""
        return float(self.y.sum())

    @property
    def n_hat(self) -> float:
        """Estimated population size (NaN when the fit is not ok)."""
        return float(self.y.sum() + self.m0.sum()) if self.ok else float("nan")

    def summary(self) -> dict:
        """Plain-value summary: n_obs, n_hat, terms, loglik, aic, bic, deviance, df, status."""
        return {"n_obs": self.n_obs, "n_hat": self.n_hat, "terms": list(self.terms),
                "loglik": self.loglik, "aic": self.aic, "bic": self.bic,
                "deviance": self.deviance, "df": self.df_resid, "status": self.status,
                "n_params": self.n_params}


def poisson_loglik(y: np.ndarray, mu: np.ndarray, log_factorial: float | None = None) -> float:
    """Poisson log-likelihood as statsmodels ``llf`` (with the ``-log(y!)`` term).

    ``log_factorial`` is ``sum(log(y!))`` when already known.
    """
    lf = float(gammaln(y + 1.0).sum()) if log_factorial is None else log_factorial
    return float(np.sum(_xlogy(y, mu)) - mu.sum() - lf)


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Poisson deviance ``2 sum(y log(y/mu) - (y - mu))`` with 0 log 0 = 0."""
    pos = y > 0
    return float(2.0 * (np.sum(y[pos] * np.log(y[pos] / mu[pos])) - np.sum(y - mu)))


def _xlogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mu)
    pos = y > 0
    out[pos] = y[pos] * np.log(mu[pos])
    return out


class _ModelMatrix:
    """The design restricted to one model's columns, for the Newton iterations.

    When the model uses most of the candidate columns (as in backward
    elimination from all two-factor terms) the products are formed with the
    full observed-cell design and a zero-padded coefficient vector, which is
    cheaper than copying the sub-matrix; otherwise the columns are copied
    once. The single-precision copy is made only if the information matrix
    has to be formed directly (no split plan).
    """

    def __init__(self, design: "Design", cols: np.ndarray):
        self.design, self.cols = design, cols
        self.p_all = design.X_obs.shape[1]
        self.padded = cols.size * 4 >= self.p_all * 3
        self.X = None if self.padded else np.take(design.X_obs, cols, axis=1)
        self._x32: np.ndarray | None = None

    def dot(self, beta: np.ndarray) -> np.ndarray:
        """``X beta``."""
        if self.padded:
            b = np.zeros(self.p_all)
            b[self.cols] = beta
            return self.design.X_obs @ b
        return self.X @ beta

    def tdot(self, r: np.ndarray) -> np.ndarray:
        """``X' r``."""
        if self.padded:
            return (r @ self.design.X_obs)[self.cols]
        return r @ self.X

    def dense(self) -> np.ndarray:
        """The sub-matrix itself (double precision)."""
        return np.take(self.design.X_obs, self.cols, axis=1) if self.padded else self.X

    def x32(self) -> np.ndarray:
        """The sub-matrix in single precision (for the information matrix)."""
        if self._x32 is None:
            self._x32 = np.take(self.design.X_obs32, self.cols, axis=1)
        return self._x32


def _start_values(M: _ModelMatrix, y: np.ndarray, plan: "_InfoPlan | None" = None) -> np.ndarray:
    """Cold start: one weighted least-squares step from ``mu = y + 0.1``.

    statsmodels starts IRLS from ``mu = (y + mean y) / 2``; on sparse MSE
    tables (most cells 0, fitted values of the zero cells far below 1) the
    small offset starts much closer to the MLE, so Newton needs about half as
    many iterations. The start only affects the path, not the estimate.
    """
    mu = y + 0.1
    z = np.log(mu) + (y - mu) / mu
    rhs = M.tdot(mu * z)
    try:
        factor = _hessian_factor(M, mu, plan)
    except (linalg.LinAlgError, ValueError):
        X = M.dense()
        A = X * np.sqrt(mu)[:, None]
        return np.linalg.lstsq(A.T @ A, rhs, rcond=None)[0]
    beta = _chol_solve(factor, rhs)
    # one refinement in double precision, so single-precision rounding in the
    # factor does not leave a poor start
    return beta + _chol_solve(factor, M.tdot(mu * (z - M.dot(beta))))


class _InfoPlan:
    """How to assemble ``X' diag(mu) X`` of one model from small products.

    See :meth:`Design._setup_split`. ``H[a, c]`` is an entry of
    ``S = F' diag(sum_k mu_k) F`` when neither column involves the split
    factor, of ``M_l = F' diag(mu_l) F_j`` when one or both involve its level
    l, and 0 when they involve different levels.
    """

    def __init__(self, split: dict, cols: np.ndarray):
        f = split["f_of_col"][cols]
        g = split["g_of_col"][cols]
        self.K, self.nb = split["K"], split["nb"]
        self.k_obs, self.b_obs = split["k_obs"], split["b_obs"]
        fu, fi = np.unique(f, return_inverse=True)
        fj = np.unique(f[g > 0])
        self.F = split["F"][:, fu]  # fancy indexing copies: contiguous already
        self.Fj = split["F"][:, fj]
        q, qj = fu.size, max(fj.size, 1)
        jpos = np.full(int(f.max()) + 1, -1)
        jpos[fj] = np.arange(fj.size)
        jf = jpos[f]  # position of each column's J-free part among F_j (-1: none)
        size_s = q * q
        zero = size_s + (self.K - 1) * q * qj
        a_f, c_f = fi[:, None], fi[None, :]
        a_g, c_g = g[:, None], g[None, :]
        # entry of S for two J-free columns, of M_l for level l, else the zero slot
        m_row = np.where(c_g > 0, a_f, c_f)  # the F row: the other column's part
        m_col = np.where(c_g > 0, jf[None, :], jf[:, None])
        lvl = np.maximum(a_g, c_g)
        idx = np.where((a_g == 0) & (c_g == 0), a_f * q + c_f,
                       size_s + m_row * (self.K - 1) * qj + (lvl - 1) * qj + m_col)
        self.idx = np.where((a_g > 0) & (c_g > 0) & (a_g != c_g), zero, idx)
        self.has_j = fj.size > 0

    def information(self, mu: np.ndarray) -> np.ndarray:
        """``X' diag(mu) X`` (single-precision products, double result)."""
        m = np.zeros((self.K, self.nb), dtype=np.float32)
        m[self.k_obs, self.b_obs] = mu
        A = self.F * np.sqrt(m.sum(axis=0))[:, None]
        pieces = [(A.T @ A).ravel()]
        if self.has_j:
            # one product for all levels: F' [F_j mu_1 | F_j mu_2 | ...]
            R = (m[1:].T[:, :, None] * self.Fj[:, None, :]).reshape(self.nb, -1)
            pieces.append((self.F.T @ R).ravel())
        else:
            pieces.append(np.zeros((self.K - 1) * self.F.shape[1], dtype=np.float32))
        pieces.append(np.zeros(1, dtype=np.float32))
        return np.concatenate(pieces)[self.idx].astype(np.float64)


def _chol(H: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor via LAPACK directly (scipy's wrappers cost more
    than the 90 x 90 factorisation itself)."""
    c, info = lapack.dpotrf(H, lower=1, clean=0, overwrite_a=0)
    if info != 0:
        raise linalg.LinAlgError(f"information matrix not positive definite (dpotrf info {info})")
    return c


def _chol_solve(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``H x = b`` from the factor of :func:`_chol`."""
    x, info = lapack.dpotrs(c, b, lower=1)
    if info != 0:  # pragma: no cover - only for malformed input
        raise linalg.LinAlgError(f"dpotrs info {info}")
    return x


def _hessian_factor(M: _ModelMatrix, mu: np.ndarray, plan: "_InfoPlan | None" = None):
    """Cholesky factor of the Fisher information ``X' diag(mu) X``.

    The product is formed in single precision (twice as fast as double, and
    it is the cost of an iteration); it only steers the Newton steps, while
    the score that decides where the iteration stops is in double precision,
    so the estimate is not affected. Falls back to double precision if the
    single-precision matrix is not numerically positive definite.
    """
    w = np.sqrt(mu)
    if plan is not None:
        H = plan.information(mu)
    else:
        A = M.x32() * w.astype(np.float32)[:, None]
        H = (A.T @ A).astype(np.float64)
    try:
        return _chol(H)
    except linalg.LinAlgError:
        A64 = M.dense() * w[:, None]
        return _chol(A64.T @ A64)


def _newton(M: _ModelMatrix, y: np.ndarray, beta: np.ndarray, tol: float, max_iter: int,
            plan: "_InfoPlan | None" = None) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Newton-Raphson on the Poisson log-likelihood with step halving.

    Stops when the largest change of a coefficient in the Newton step is below
    ``tol`` (coefficients are on the log scale, so fitted values, and the
    unobserved cells, are then exact to about ``tol`` relative), or when the
    Newton decrement ``g' H^-1 g`` stalls at rounding level with a fresh
    information matrix. Once close, the factor of the information matrix is
    kept (chord steps: a matrix-vector product each instead of a new
    ``X' W X``) as long as the decrement keeps falling tenfold per step;
    otherwise it is refreshed.
    """
    eta = M.dot(beta)
    if not np.all(np.isfinite(eta)) or eta.max() > 700:
        beta = _start_values(M, y, plan)
        eta = M.dot(beta)
    mu = np.exp(eta)
    ll = float(y @ eta - mu.sum())
    factor, prev_dec, fresh = None, np.inf, False
    for it in range(1, max_iter + 1):
        score = M.tdot(y - mu)
        if factor is None:
            try:
                factor = _hessian_factor(M, mu, plan)
            except (linalg.LinAlgError, ValueError):
                return beta, mu, it, False
            fresh = True
        step = _chol_solve(factor, score)
        decrement = float(score @ step)
        at_noise = fresh and decrement < 1e-20 * max(1.0, abs(ll)) and decrement > 0.25 * prev_dec
        if np.max(np.abs(step)) < tol or decrement <= 0.0 or at_noise:
            beta = beta + step  # the last, tiny step is free
            eta = M.dot(beta)
            return beta, np.exp(eta), it, True
        t = 1.0
        while True:
            b_new = beta + t * step
            eta_new = M.dot(b_new)
            if eta_new.max() < 700:
                mu_new = np.exp(eta_new)
                ll_new = float(y @ eta_new - mu_new.sum())
                if ll_new >= ll - 1e-12 * abs(ll):
                    break
            t *= 0.5
            if t < 1e-10:
                return beta, mu, it, False
        beta, mu, ll = b_new, mu_new, ll_new
        # keep the factor only when close and converging fast with it
        if t < 1.0 or decrement > 1.0 or decrement > 0.1 * prev_dec:
            factor = None
        prev_dec, fresh = decrement, False
    return beta, mu, max_iter, False


def fit_model(design: Design, terms: str | Sequence[str] | None = None, counts: np.ndarray | None = None,
              start: pd.Series | dict | None = None, check: bool = True, explain: bool = True,
              tol: float = 1e-10, max_iter: int = 100) -> Fit:
    """Fit one log-linear model: main effects plus ``terms``.

    Parameters
    ----------
    design : Design
        The table's design.
    terms : str or sequence of str, optional
        Interaction terms (see :func:`parse_terms`); None: main effects only.
    counts : ndarray, optional
        Observed-cell counts to use instead of the table's (bootstrap refits).
    start : Series or dict, optional
        Coefficients of a neighbouring model (warm start), matched by column
        name; columns it lacks start at 0.
    check : bool
        Run the existence and rank checks first (:func:`existence.check_existence`).
        A model that fails is returned with its status and no numbers. Both
        properties are inherited by sub-models, so a step that only drops
        terms from a model that passed may skip the check (docs/engine.md 4).
    explain : bool
        When a check fails, find the responsible terms (extra linear programs).
    tol : float
        Convergence threshold on the largest coefficient change of a Newton
        step (log scale: fitted values are then exact to about ``tol``).
    max_iter : int
        Newton iteration limit.

    Returns
    -------
    Fit
    """
    from .existence import check_existence  # local: existence imports this module

    terms = design.canonical(terms)
    y = design.check_counts(counts)
    cols = design.columns(terms)
    fit = Fit(design=design, terms=terms, y=y, status=STATUS_OK, n_params=int(cols.size),
              n_cells=int(y.size), df_resid=int(y.size - cols.size), _cols=cols)
    if check:
        ex = check_existence(design, terms, counts=y, explain=explain)
        if ex.status != STATUS_OK:
            fit.status, fit.message, fit.responsible = ex.status, ex.message, ex.responsible
            return fit
    M = design.model_matrices(cols)
    plan = design.info_plan(cols)
    if start is None:
        beta0 = _start_values(M, y, plan)
    else:
        beta0 = _match_start(design, cols, start)
    beta, mu, n_iter, converged = _newton(M, y, beta0, tol, max_iter, plan)
    fit.n_iter = n_iter
    if not converged:
        fit.status = STATUS_NOT_CONVERGED
        fit.message = (f"Newton-Raphson did not converge in {n_iter} iterations; "
                       "no estimate is reported (check the existence of the MLE)")
        return fit
    _fill(fit, beta, mu)
    return fit


def _match_start(design: Design, cols: np.ndarray, start: pd.Series | dict) -> np.ndarray:
    """Start coefficients for ``cols`` from a neighbour's, by column name (0 if absent)."""
    if isinstance(start, pd.Series):
        pos = start.index.get_indexer(design._name_index[cols])
        vals = start.to_numpy(dtype=float)
        return np.where(pos >= 0, vals[pos], 0.0)
    names = [design.column_names[c] for c in cols]
    return np.array([float(start.get(n, 0.0)) for n in names])


def _fill(fit: Fit, beta: np.ndarray, mu: np.ndarray) -> None:
    d = fit.design
    fit.coef = pd.Series(beta, index=d._name_index[fit._cols], copy=False)
    fit.fitted = mu
    fit.m0 = np.exp(d.X_unobs[:, fit._cols] @ beta)
    fit.loglik = poisson_loglik(fit.y, mu, d.log_factorial(fit.y))
    fit.deviance = poisson_deviance(fit.y, mu)
    fit.aic = -2.0 * fit.loglik + 2.0 * fit.n_params
    fit.bic = -2.0 * fit.loglik + np.log(fit.n_cells) * fit.n_params


def refit(fit: Fit, counts: np.ndarray, check: bool = True, explain: bool = False) -> Fit:
    """Refit the same model on new observed-cell counts, warm-started from ``fit``.

    Parameters
    ----------
    fit : Fit
        A fitted model (its coefficients are the start when it is ok).
    counts : ndarray
        New observed-cell counts, in the design's observed-cell order.
    check, explain : bool
        As in :func:`fit_model`.

    Returns
    -------
    Fit
    """
    start = fit.coef if fit.ok else None
    return fit_model(fit.design, fit.terms, counts=counts, start=start, check=check, explain=explain)


# --- N-hat ---------------------------------------------------------------------

def stratum_estimates(fit: Fit) -> pd.DataFrame:
    """Per stratum: factor levels, n_obs, m0 (fitted unobserved cell), n_hat.

    Parameters
    ----------
    fit : Fit

    Returns
    -------
    DataFrame
        NaN estimates when the fit is not ok.
    """
    d = fit.design
    out = d.strata[list(d.factors)].copy()
    out["n_obs"] = d.n_obs_by_stratum(fit.y)
    out["m0"] = fit.m0 if fit.ok else np.nan
    out["n_hat"] = out["n_obs"] + out["m0"]
    return out


def n_hat_by(fit: Fit, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """N-hat for a grouping: the sum over the strata in each group.

    Parameters
    ----------
    fit : Fit
    by : str or sequence of str, optional
        Factor columns to group by (``"J"``, ``["J", "S"]``); None: the total.

    Returns
    -------
    DataFrame
        Grouping columns, ``n_obs``, ``n_hat``, ``dark`` (= n_hat - n_obs).
    """
    by = [by] if isinstance(by, str) else list(by or [])
    bad = [b for b in by if b not in fit.design.factors]
    if bad:
        raise ValueError(f"by: {bad} are not factors of the table; factors are {list(fit.design.factors)}")
    st = stratum_estimates(fit)
    if by:
        g = st.groupby(by, sort=True)[["n_obs", "n_hat"]].sum(min_count=1).reset_index()
    else:
        g = pd.DataFrame({"n_obs": [st["n_obs"].sum()], "n_hat": [st["n_hat"].sum(min_count=1)]})
    g["dark"] = g["n_hat"] - g["n_obs"]
    return g


def n_hat_groups(fit: Fit, year: str | None = YEAR, covariates: Sequence[str] | None = None,
                 pairs: bool = True) -> pd.DataFrame:
    """N-hat for every reporting group: total, per year, per covariate level and
    per pair of covariate levels within year (method.md 5, 8).

    Parameters
    ----------
    fit : Fit
    year : str or None
        The year factor (None or absent from the table: no per-year split).
    covariates : sequence of str, optional
        Covariates to split by (default: every factor except the year).
    pairs : bool
        Also every pair of covariates.

    Returns
    -------
    DataFrame
        Columns ``year`` ("all" for the total over years), ``group``
        (``total``, ``S=M``, ``S=M&L=M``), ``n_obs``, ``n_hat``, ``dark``.
    """
    d = fit.design
    year = year if year in d.factors else None
    covs = [f for f in (covariates if covariates is not None else d.factors) if f != year]
    frames = []
    groupings: list[list[str]] = [[]] + [[c] for c in covs]
    if pairs:
        groupings += [list(p) for p in itertools.combinations(covs, 2)]
    year_keys = [[]] + ([[year]] if year else [])
    for yk in year_keys:
        for g in groupings:
            t = n_hat_by(fit, yk + g)
            t["year"] = t[year].astype(str) if yk else "all"
            # records keep each column's type (iterrows would turn 0/1 levels into 0.0/1.0)
            t["group"] = [group_label(**{c: str(row[c]) for c in g}) for row in t[g].to_dict("records")] \
                if g else "total"
            frames.append(t[["year", "group", "n_obs", "n_hat", "dark"]])
    return pd.concat(frames, ignore_index=True)


# --- bootstrap -----------------------------------------------------------------

@dataclasses.dataclass
class Bootstrap:
    """Parametric bootstrap of one model.

    Attributes
    ----------
    n_hat : dict
        Grouping key (``"total"`` or the factor names joined by ``,``, e.g.
        ``"J,S"``) -> DataFrame with one row per successful replicate and
        group: ``replicate``, the grouping columns, ``n_hat``.
    n_boot : int
        Replicates drawn.
    n_failed : int
        Replicates whose refit failed the existence / rank check or did not
        converge (never averaged in).
    failed_status : dict
        Status -> number of failed replicates.
    """

    n_hat: dict
    n_boot: int
    n_failed: int
    failed_status: dict

    @staticmethod
    def key(by: Sequence[str] | None) -> str:
        """Key of a grouping in :attr:`n_hat`."""
        return ",".join(by) if by else "total"

    def interval(self, by: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
        """Percentile interval of the bootstrap N-hats (per group when ``by``).

        Returns
        -------
        DataFrame
            Grouping columns, ``lower``, ``upper``, ``n_boot_ok`` (replicates used).
        """
        by = list(by or [])
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        frame = self.n_hat.get(self.key(by))
        if frame is None:
            raise KeyError(f"grouping {by} was not bootstrapped; have {sorted(self.n_hat)}")
        if not len(frame):
            return pd.DataFrame(columns=by + ["lower", "upper", "n_boot_ok"])
        if by:
            g = frame.groupby(by, sort=True)["n_hat"]
            out = pd.DataFrame({"lower": g.quantile(lo), "upper": g.quantile(hi), "n_boot_ok": g.size()})
            return out.reset_index()
        v = frame["n_hat"]
        return pd.DataFrame({"lower": [v.quantile(lo)], "upper": [v.quantile(hi)], "n_boot_ok": [v.size]})


def parametric_bootstrap(fit: Fit, n_boot: int, rng: np.random.Generator,
                         by: Sequence[Sequence[str]] = ((),), check: bool = True) -> Bootstrap:
    """Parametric bootstrap of one model (method.md 7 step 1).

    For each replicate: draw Poisson counts for every cell from the fitted
    model (observed cells from ``fit.fitted``, unobserved cells from ``m0``),
    drop the unobserved cells, refit the same model warm-started from ``fit``,
    and recompute N-hat for each grouping in ``by``. A replicate whose refit
    fails the existence / rank check is counted in ``n_failed`` and left out.

    Parameters
    ----------
    fit : Fit
        An ok fit.
    n_boot : int
        Number of replicates.
    rng : numpy.random.Generator
        E.g. ``seeds.rng(seed, "bootstrap", k)``.
    by : sequence of groupings
        Each a sequence of factor names; ``()`` is the total.
    check : bool
        Check existence of every refit (recommended).

    Returns
    -------
    Bootstrap
    """
    if not fit.ok:
        raise ValueError(f"parametric_bootstrap: the model is not usable (status {fit.status})")
    if n_boot < 1:
        raise ValueError(f"n_boot: must be at least 1, got {n_boot}")
    rows: dict[str, list] = {Bootstrap.key(g): [] for g in by}
    failed: dict[str, int] = {}
    for b in range(n_boot):
        # draw every cell, unobserved included, as the method says; the
        # unobserved draws are dropped (they are what is unknown)
        y_obs = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)
        rf = refit(fit, y_obs, check=check, explain=False)
        if not rf.ok:
            failed[rf.status] = failed.get(rf.status, 0) + 1
            continue
        for g in by:
            t = n_hat_by(rf, list(g))[list(g) + ["n_hat"]]
            t.insert(0, "replicate", b)
            rows[Bootstrap.key(g)].append(t)
    frames = {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame(columns=["replicate", "n_hat"]))
              for k, v in rows.items()}
    return Bootstrap(n_hat=frames, n_boot=n_boot, n_failed=sum(failed.values()), failed_status=failed)
