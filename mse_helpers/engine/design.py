"""Terms and the design: the model matrix of every candidate term of one table.

- :func:`parse_terms`: term specifications -> canonical interaction-term names;
- :class:`Design`: the model matrix of every candidate term, built once per
  table, so that a model is just a selection of term blocks (model selection
  fits tens of thousands of models on one table);
- the model matrix of one model and the plan for its information matrix,
  used by :mod:`.fit`.
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln

from .cells import _check_columns, cell_codes, check_on_a_list, factor_levels

#: Name of the intercept column.
INTERCEPT = "(Intercept)"

#: Whether a Design uses the lattice path when not told (``lattice=None``) and
#: the table allows it (docs/engine.md 3: 4-6x faster per fit, numbers equal to about 1e-12,
#: but unchecked fits of models without an MLE drift differently, so searches keep
#: the dense path; the bootstrap stage asks for the lattice explicitly).
LATTICE_DEFAULT = False


# --- terms ---------------------------------------------------------------------


def parse_terms(
    spec: str | Sequence[str] | None, variables: Sequence[str], candidates: Sequence[str] | None = None
) -> tuple[str, ...]:
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
            raise ValueError(
                f"term(s) {missing} are not in the design; build the Design with "
                "three_factor=... to include three-factor terms"
            )
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
    lattice : bool or None
        Fit through subset sums over the binary lattice (:class:`_LatticeModel`)
        instead of products with the design matrix, when the table allows it
        (every variable has two levels except at most one factor); see
        :attr:`uses_lattice`. None (the default): :data:`LATTICE_DEFAULT`.
        The two paths agree to about 1e-12, not bit for bit; False gives the
        dense path, the tested reference.

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

    def __init__(
        self,
        table: pd.DataFrame,
        lists: Sequence[str],
        factors: Sequence[str] = (),
        three_factor: None | str | Sequence[str] = None,
        count: str = "count",
        lattice: bool | None = None,
    ):
        self.lists = tuple(lists)
        self.factors = tuple(factors)
        self.variables = self.lists + self.factors
        if len(self.lists) < 2:
            raise ValueError(f"Design: MSE needs at least two lists, got {list(self.lists)}")
        _check_columns(table, list(self.variables) + [count, "observed"], "Design table")
        self.levels: dict[str, tuple] = {v: (0, 1) for v in self.lists}
        for f in self.factors:
            self.levels[f] = factor_levels(f, table[f])
            if len(self.levels[f]) < 2:
                raise ValueError(f"Design: factor {f!r} has a single level {self.levels[f]}; drop it")
        n_cells = int(np.prod([len(self.levels[v]) for v in self.variables]))
        if len(table) != n_cells or table.duplicated(subset=list(self.variables)).any():
            raise ValueError(
                f"Design: the table must hold every cell exactly once ({n_cells} cells), "
                f"got {len(table)} rows; build it with complete_table or count_table"
            )
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
        # cell codes with the lists fastest (as the grid): a code % 2^lists of 0 is a row on no list
        self._code_order = self.factors + self.lists
        self._cell_code = cell_codes(self.table, self._code_order, self.levels, source="Design table")
        self.y = self.table[count].to_numpy()[self.observed].astype(float)
        # strata: one per factor combination, in the order of the unobserved rows
        unobs_idx = np.flatnonzero(~self.observed)
        if self.factors:
            self.strata = self.table[list(self.factors)].iloc[unobs_idx].reset_index(drop=True)
            # a stratum is a combination of factor levels: its cell code over the factors
            code = cell_codes(self.table, self.factors, self.levels, source="Design table")
            stratum_of_code = np.full(int(np.prod([len(self.levels[f]) for f in self.factors])), -1)
            stratum_of_code[code[unobs_idx]] = np.arange(unobs_idx.size)
            stratum = stratum_of_code[code]
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
        self._lattice = self._setup_lattice() if (LATTICE_DEFAULT if lattice is None else lattice) else None
        self._lcache: dict[bytes, _LatticeModel] = {}
        # object dtype: taking from it is a plain numpy take (the default
        # string dtype goes through pyarrow, slow for a per-fit index)
        self._name_index = pd.Index(np.array(self.column_names, dtype=object), dtype=object)
        self._col_of = {name: c for c, name in enumerate(self.column_names)}
        self._xcache: dict[bytes, _ModelMatrix] = {}
        self._lf: float | None = None
        self._lf_table = np.zeros(0)  # gammaln(k + 1) for k = 0, 1, ... (see log_factorial)
        self._cols_of: dict[tuple, np.ndarray] = {}
        self._start_match: tuple | None = None  # (start Series, its index, values, coefficients on every column)

    def clear_caches(self) -> None:
        """Forget cached model matrices and information plans (for honest timing)."""
        self._plans.clear()
        self._xcache.clear()
        self._lcache.clear()

    @property
    def uses_lattice(self) -> bool:
        """Whether fits go through the binary lattice (:class:`_LatticeModel`)."""
        return self._lattice is not None

    def _setup_lattice(self) -> dict | None:
        """Each cell as (level k of the one many-level factor, bit mask b of the binary variables);
        each column as (mask S of its binary variables, level g of that factor or 0).

        A column is then the indicator ``[S subset of b] [k == g]`` (``g = 0``: every
        k). None when the table has two factors with more than two levels.
        """
        multi = [v for v in self.variables if len(self.levels[v]) > 2]
        if len(multi) > 1:
            return None
        binary = [v for v in self.variables if v not in multi]
        bit = {v: 1 << j for j, v in enumerate(binary)}
        K = len(self.levels[multi[0]]) if multi else 1
        cell_k = np.zeros(len(self.table), dtype=np.int64)
        if multi:
            cell_k = (
                self.table[multi[0]].map({lv: i for i, lv in enumerate(self.levels[multi[0]])}).to_numpy(dtype=np.int64)
            )
        cell_b = np.zeros(len(self.table), dtype=np.int64)
        for v in binary:
            cell_b |= np.where(self.table[v].to_numpy() == self.levels[v][1], bit[v], 0)
        mask = np.zeros(len(self._col_parts), dtype=np.int64)
        level = np.zeros(len(self._col_parts), dtype=np.int64)
        for c, parts in enumerate(self._col_parts):
            for v, i in parts:
                if v in bit:
                    mask[c] |= bit[v]
                else:
                    level[c] = i + 1  # dummy i is level i + 1 (level 0 is the baseline)
        obs = self.observed
        n_bits = len(binary)
        hbits, lbits = n_bits // 2, n_bits - n_bits // 2
        Zh, Zl = _zeta_matrix(hbits), _zeta_matrix(lbits)
        flat = _lattice_place(cell_k, cell_b, K, lbits)
        return dict(
            K=K,
            N=1 << n_bits,
            Nh=1 << hbits,
            Nl=1 << lbits,
            flat_obs=flat[obs],
            flat_unobs=flat[~obs],
            mask=mask,
            level=level,
            # (left, right) of _lattice_sums: Zh A Zl' (subset sums), Zh' A Zl (superset sums)
            sub=(Zh, np.ascontiguousarray(Zl.T)),
            sup=(np.ascontiguousarray(Zh.T), Zl),
            pair=None,  # (see _lattice_pairs) made when first asked for
            own_counts=None,  # (see _LatticeModel.lattice_counts)
            # each column's entry in _LatticeModel._extended: at its level and mask, or
            # (no level) its mask among the sums over the levels; and (no level) its
            # place at its mask in every level, for X beta
            at_sum=np.where(level > 0, _lattice_place(level, mask, K, lbits), K * (1 << n_bits) + mask),
            at_levels=_lattice_place(np.arange(K)[None, :], mask[:, None], K, lbits),
        )

    def _lattice_pairs(self) -> np.ndarray | None:
        """For every two candidate columns, where their information entry is (see
        :meth:`_LatticeModel._information_of`).

        The superset sum at the union of their masks at their level, or (neither has a
        level) that summed over the levels, and a slot that holds 0 for two columns of
        different levels of the many-level factor. Made once per design, so that a
        model's is a gather (:class:`_LatticeModel`); None (each model makes its own)
        above 1,024 columns.
        """
        lat = self._lattice
        if lat["pair"] is None and lat["mask"].size <= 1024:
            lat["pair"] = _lattice_pair_index(lat, lat["mask"], lat["level"])
        return lat["pair"]

    def lattice_model(self, cols: np.ndarray) -> "_LatticeModel":
        """The lattice form of a model (cached, like :meth:`model_matrices`)."""
        key = cols.tobytes()
        hit = self._lcache.get(key)
        if hit is None:
            if len(self._lcache) >= 64:
                self._lcache.pop(next(iter(self._lcache)))
            hit = self._lcache[key] = _LatticeModel(self, cols)
        return hit

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
        self._split = dict(
            J=J,
            K=K,
            nb=nb,
            k_obs=k_cell[obs],
            b_obs=b_cell[obs],
            F=np.asarray(self.X[base_rows], dtype=np.float32),
            f_of_col=f_of_col,
            g_of_col=g_of_col,
        )

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
        """Column indices of the model: intercept, every main effect, then ``terms``.

        Cached per tuple of terms (read-only array): searches ask for the same models often.
        """
        key = terms if isinstance(terms, tuple) else None
        if key is not None and key in self._cols_of:
            return self._cols_of[key]
        blocks = [self.blocks[INTERCEPT]] + [self.blocks[v] for v in self.variables]
        for t in terms:
            if t not in self.blocks:
                raise ValueError(
                    f"term {t!r} is not in the design (candidates: two-factor terms"
                    f"{' and the three-factor terms asked for' if len(self.candidate_terms) else ''})"
                )
            blocks.append(self.blocks[t])
        cols = np.concatenate(blocks)
        if key is not None:
            if len(self._cols_of) > 4096:
                self._cols_of.clear()
            cols.flags.writeable = False
            self._cols_of[key] = cols
        return cols

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
        k = y.astype(np.int64)
        if k.size and k.max() < 1_000_000 and np.array_equal(k, y):
            # whole counts (bootstrap draws): the same gammaln values, from a table
            if self._lf_table.size <= k.max():
                self._lf_table = gammaln(np.arange(2 * int(k.max()) + 2, dtype=float) + 1.0)
            return float(self._lf_table[k].sum())
        return float(gammaln(y + 1.0).sum())

    def observed_counts(
        self, persons: pd.DataFrame, *, source: str = "persons", columns: dict[str, str] | None = None
    ) -> np.ndarray:
        """Observed-cell counts of person-level rows, in this design's cell order.

        The same numbers as building the rows' own table with
        :func:`~.cells.count_table` (with this design's levels), without
        building it: every completed data set has the same cells, so each
        brings only its counts (:func:`~.cells.cell_codes` and one ``bincount``).

        Parameters
        ----------
        persons : DataFrame
            One row per person: the design's lists (0/1) and factors, nothing missing.
        source : str
            Name of the file, for error messages (which name the data row).
        columns : dict, optional
            Variable -> the column holding it, e.g. ``{"J": "year"}``.

        Returns
        -------
        ndarray
            Counts of the observed cells (float).

        Raises
        ------
        ValueError
            A missing value, a value that is not a level, or a row on no list.
        """
        codes = cell_codes(persons, self._code_order, self.levels, source=source, columns=columns)
        size = int(np.prod([len(self.levels[v]) for v in self.variables]))
        check_on_a_list(codes % 2 ** len(self.lists) == 0, source)  # the lists are the fastest digits
        per_code = np.bincount(codes, minlength=size)
        return per_code[self._cell_code][self.observed].astype(float)

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


class _ModelMatrix:
    """The design restricted to one model's columns, for the Newton iterations.

    When the model uses most of the candidate columns (as in backward
    elimination from all two-factor terms) the products are formed with the
    full observed-cell design and a zero-padded coefficient vector, which is
    cheaper than copying the sub-matrix; otherwise the columns are copied
    once. The single-precision copy is made only if the information matrix
    has to be formed directly (no split plan).
    """

    #: Newton keeps the information factor (chord steps) while the decrement falls
    #: by this factor per step (see ``fit._newton``).
    chord_ratio = 0.1

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
        idx = np.where(
            (a_g == 0) & (c_g == 0), a_f * q + c_f, size_s + m_row * (self.K - 1) * qj + (lvl - 1) * qj + m_col
        )
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


def _zeta_matrix(n_bits: int) -> np.ndarray:
    """``Z[b, S] = 1`` when the bits of S are a subset of those of b (``n_bits`` bits)."""
    idx = np.arange(1 << n_bits)
    return ((idx[None, :] & ~idx[:, None]) == 0).astype(float)


def _lattice_place(k: np.ndarray, mask: np.ndarray, K: int, lbits: int) -> np.ndarray:
    """Position of (level k, bit mask) in the lattice layout: high bits, level, low bits.

    With the level between the two halves of the mask, both products of
    :func:`_lattice_sums` are single two-dimensional matrix products.
    """
    return (mask >> lbits) * (K << lbits) + (k << lbits) + (mask & ((1 << lbits) - 1))


def _lattice_pair_index(lat: dict, S: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Where the information entry of every two of the columns (masks ``S``, levels ``g``)
    is in :meth:`_LatticeModel._information_of`'s vector (superset sums of the K levels,
    then their sum over the levels, then 0)."""
    KN = lat["K"] * lat["N"]
    union = S[:, None] | S[None, :]
    lvl = np.maximum(g[:, None], g[None, :])
    other = (g[:, None] > 0) & (g[None, :] > 0) & (g[:, None] != g[None, :])
    at = np.where(lvl > 0, _lattice_place(lvl, union, lat["K"], lat["Nl"].bit_length() - 1), KN + union)
    return np.where(other, KN + lat["N"], at)


def _lattice_sums(
    A: np.ndarray, left: np.ndarray, right: np.ndarray, rows: int = 1, out: np.ndarray | None = None
) -> np.ndarray:
    """``left A_k right`` for every level k, with ``A_k`` the level's 2^h x 2^l matrix of masks.

    ``A`` holds ``rows`` lattices of K 2^n values in the layout of :func:`_lattice_place`
    (high bits, level, low bits). The zeta matrix of n bits is the Kronecker product
    of those of its high and low bits, so two small products (32 x 32 on the study
    table, for all levels at once) replace n passes over the lattice. With the zeta
    matrices (``Zh``, ``Zl'``) this is the subset-sum transform, with
    (``Zh'``, ``Zl``) the superset-sum transform. Returns the shape of ``A`` (or
    writes into ``out``, a vector of its size).
    """
    nh = left.shape[0]
    B = left @ A.reshape(nh, -1) if rows == 1 else np.matmul(left, A.reshape(rows, nh, -1))
    if out is not None:  # a contiguous vector of A's size
        return np.matmul(B.reshape(-1, right.shape[0]), right, out=out.reshape(-1, right.shape[0]))
    return (B.reshape(-1, right.shape[0]) @ right).reshape(A.shape)


class _LatticeModel:
    """One model's products with the design as sums over the binary lattice (issue 14 item 1).

    Every column is the indicator that a set S of binary variables is 1 (and,
    for a term with the many-level factor, that it has level g), so with the
    cells as (level k, bit mask b) (stored as high bits of b, k, low bits of b:
    :func:`_lattice_place`):

    - the linear predictor ``X beta`` is, per level, the subset-sum (zeta)
      transform of the coefficients placed at their masks;
    - the score ``X' r`` and the information ``X' diag(mu) X`` come from the
      superset-sum transforms of ``r`` and ``mu`` per level: the entry of two
      columns is the transform at the union of their masks, at their level
      (summed over the levels when neither has one; 0 for two different levels).

    Each costs ``O(K n 2^n)`` (the study: 4 x 10 x 1,024) plus a ``p x p``
    gather, and no design columns are copied per model. Same interface as
    :class:`_ModelMatrix` plus :meth:`information` (it is its own plan), and the
    lattice-wide vectors of ``fit._LatticeNewton``.
    """

    #: Chord steps only when the decrement falls 10,000-fold per step: a fresh
    #: factor costs about half an iteration here, so Newton's fewer iterations win
    #: (5 instead of 8 per bootstrap refit; see ``fit._newton``).
    chord_ratio = 1e-4

    def __init__(self, design: "Design", cols: np.ndarray):
        lat = design._lattice
        self.design, self.cols = design, cols
        self.K, self.N, self.flat_obs = lat["K"], lat["N"], lat["flat_obs"]
        self.Nh, self.Nl = lat["Nh"], lat["Nl"]
        self.flat_unobs = lat["flat_unobs"]
        self.sub, self.sup = lat["sub"], lat["sup"]
        g = lat["level"][cols]
        self.pos0, self.pos1 = np.flatnonzero(g == 0), np.flatnonzero(g > 0)
        # each column's entry of X'r in the superset sums (see _extended); X beta as one
        # bincount, with a column without a level at its mask in every level
        self.at_sum = lat["at_sum"][cols]
        self.flat1 = self.at_sum[self.pos1]
        self._at0 = lat["at_levels"][cols[self.pos0]].ravel()
        self._at = np.concatenate([self._at0, self.flat1])
        self._take0 = np.repeat(self.pos0, self.K)
        self._take = np.concatenate([self._take0, self.pos1])
        pair = design._lattice_pairs()
        # two row/column gathers of the design's table: cheaper than np.ix_ or building it
        self.flat = (
            pair[cols][:, cols] if pair is not None else _lattice_pair_index(lat, lat["mask"][cols], lat["level"][cols])
        )

    def _extended(self, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Superset sums of lattice values ``A``, extended by their sums over the levels (by
        mask) and a 0: every entry of ``X' r`` and of ``X' diag(mu) X`` is one of these
        ``K 2^n + 2^n + 1`` numbers (:meth:`tdot`, :meth:`_information_of`)."""
        KN = self.K * self.N
        ext = np.empty(KN + self.N + 1) if out is None else out
        Z = _lattice_sums(A, *self.sup, out=ext[:KN])
        Z.reshape(self.Nh, self.K, self.Nl).sum(axis=1, out=ext[KN:-1].reshape(self.Nh, self.Nl))
        ext[-1] = 0.0
        return ext

    def _superset(self, values: np.ndarray) -> np.ndarray:
        """:meth:`_extended` of observed-cell values (0 on the unobserved cells)."""
        A = np.zeros(self.K * self.N)
        A[self.flat_obs] = values
        return self._extended(A)

    def _coefficients(self, beta: np.ndarray) -> np.ndarray:
        """The coefficients placed on the lattice (a level-free column at every level)."""
        return np.bincount(self._at, weights=beta[self._take], minlength=self.K * self.N)

    def dot(self, beta: np.ndarray) -> np.ndarray:
        """``X beta`` on the observed cells."""
        return _lattice_sums(self._coefficients(beta), *self.sub)[self.flat_obs]

    def dot_many(self, B: np.ndarray) -> np.ndarray:
        """``X B`` on the observed cells for a matrix of coefficients (columns of B), in one pass."""
        c = B.shape[1]
        A = np.zeros((c, self.K * self.N))
        A[:, self._at0] = B[self._take0].T
        A[:, self.flat1] += B[self.pos1].T  # (level, mask) differs between columns: no repeats
        return _lattice_sums(A, *self.sub, rows=c)[:, self.flat_obs].T

    def tdot(self, r: np.ndarray) -> np.ndarray:
        """``X' r``."""
        return self._superset(r)[self.at_sum]

    def information(self, mu: np.ndarray) -> np.ndarray:
        """``X' diag(mu) X`` (double precision)."""
        return self._information_of(self._superset(mu))

    def _information_of(self, ext: np.ndarray) -> np.ndarray:
        """The information from :meth:`_extended` of ``mu``.

        Entry of two columns: the superset sum at the union of their masks at their
        level, or summed over the levels when neither has a level, or 0 for two
        different levels.
        """
        return ext[self.flat]

    # -- Newton on the lattice (fit._newton): vectors over all K 2^n cells, not gathered --
    def lattice_counts(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed-cell counts on the lattice (0 on the unobserved cells) and ``X' y``:
        the score is then ``X'y - X'mu``, one superset-sum pass per iteration for
        the score and the information.

        The table's own counts' superset sums are kept with the design (as its
        ``log_factorial``): every model fitted to them shares them.
        """
        lat = self.design._lattice
        if y is self.design.y and lat.get("own_counts") is not None:
            yl, ext = lat["own_counts"]
        else:
            yl = np.zeros(self.K * self.N)
            yl[self.flat_obs] = y
            ext = self._extended(yl)
            if y is self.design.y:
                lat["own_counts"] = (yl, ext)
        return yl, ext[self.at_sum]

    def eta_lattice(self, beta: np.ndarray) -> np.ndarray:
        """``X beta`` on every cell of the lattice, 0 on the unobserved cells (see :meth:`mu_lattice`)."""
        eta = _lattice_sums(self._coefficients(beta), *self.sub)
        eta[self.flat_unobs] = 0.0
        return eta

    def mu_lattice(self, eta: np.ndarray) -> np.ndarray:
        """``exp(eta)`` with 0 on the unobserved cells: ready for the superset sums (the
        score and information of the observed cells), no scatter per iteration."""
        mu = np.exp(eta)
        mu[self.flat_unobs] = 0.0
        return mu

    def dense(self) -> np.ndarray:
        """The sub-matrix itself (double precision), for the rare fallbacks."""
        return np.take(self.design.X_obs, self.cols, axis=1)

    def x32(self) -> np.ndarray:
        """The sub-matrix in single precision."""
        return self.dense().astype(np.float32)
