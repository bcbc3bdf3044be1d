"""Existence and identifiability of the log-linear MLE (docs/method.md 5).

Two checks run before a model is fitted, as in the R package SparseMSE
(``checkident``, Chan, Silverman and Vincent 2021):

1. **Rank test** (identifiability): the design restricted to the observed
   cells must have full column rank. A column that is a linear combination of
   earlier ones (e.g. the three-list term of a three-list table, where the
   all-zero cell is unobserved) makes its term *not identifiable*.
2. **Fienberg-Rinaldo linear program** (existence): the MLE exists iff there
   is a table ``x`` with every observed cell strictly positive and the same
   sufficient statistics as the data, ``X' x = X' y``. The LP maximises ``t``
   subject to ``X' x = X' y``, ``x_i >= t``, ``x >= 0``; the MLE exists iff the
   optimum is > 0 (Fienberg and Rinaldo 2012, Ann. Statist. 40, 996-1023, p. 3
   of the supplement, with the typo corrected as in SparseMSE).

   By LP duality the same question is answered by a much smaller LP over
   the p coefficients (Haberman 1974, Thm 2.3; Geyer 2009): the MLE fails to
   exist iff there is a *direction of recession* ``d`` with ``x_i'd = 0`` on
   every cell with a positive count, ``x_i'd <= 0`` on the zero cells and
   ``x_i'd < 0`` on at least one of them (moving the coefficients along ``d``
   never lowers the likelihood and drives those fitted cells to 0). We solve
   ``max sum_{y_i = 0} -x_i'd`` subject to those constraints and
   ``x_i'd >= -1``; the optimum is 0 iff the MLE exists. This is the default
   (``method="direction"``, about ten times faster on the study-size table);
   ``method="fienberg-rinaldo"`` solves the LP as SparseMSE does; the tests
   check that both agree.

When all observed counts are positive the MLE exists trivially (``x = y``) and
no LP is solved.

Responsible terms: a term with a column whose sufficient statistic is 0 (two
lists that never overlap, a stratum with nobody in it) is named directly;
otherwise the terms with a non-zero coefficient in the direction of recession
found by the LP (the terms whose estimates run off to minus infinity).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from .design import INTERCEPT, Design
from .status import FitStatus

#: LP optimum below this counts as 0 (the counts are whole numbers, so a
#: feasible strictly positive table has a minimum far above solver noise).
LP_TOL = 1e-7
#: Relative residual norm below which a column counts as dependent.
RANK_TOL = 1e-9
#: Direction LP (:func:`recession_direction_lp`): a direction of recession
#: scaled so that its most negative cell is -1 scores at least 1, and the MLE
#: exists iff the optimum is 0; an optimum below this half-way mark is 0 up to
#: solver noise.
DIRECTION_TOL = 0.5
#: Null-space check (:func:`existence_screen`): eigenvalues of ``X_P' X_P``
#: below NULL_TOL x the largest are zero, above GAP_TOL x the largest are not;
#: one in between leaves the decision to the direction LP.
NULL_TOL = 1e-11
GAP_TOL = 1e-7


@dataclasses.dataclass(frozen=True)
class Existence:
    """Outcome of the checks for one model and one set of counts.

    Attributes
    ----------
    status : FitStatus
        OK, NOT_IDENTIFIABLE (rank test failed; reported first) or
        NO_MLE (LP optimum 0).
    lp_value : float
        Optimum of the LP solved (``inf`` when skipped because every
        observed count is positive, NaN when skipped for rank deficiency or
        because a zero sufficient statistic decides; 0 when the null-space
        check finds the MLE exists, the direction LP's optimum then).
    rank_deficiency : int
        Number of design columns that depend on earlier ones.
    responsible : tuple of str
        Terms blamed (empty when ok or when no single term could be blamed).
    message : str
        One sentence for the user.
    """

    status: FitStatus
    lp_value: float
    rank_deficiency: int
    responsible: tuple[str, ...]
    message: str


def linprog(*args, **kwargs):
    """``scipy.optimize.linprog``, imported on first use.

    Most fits never need a linear programme (no zero cells, or the fast screen
    decides), and importing ``scipy.optimize`` costs about 0.1 s, a fifth of the
    start-up budget of ``mse estimate`` (docs/engine.md 7a).
    """
    from scipy.optimize import linprog as _linprog

    return _linprog(*args, **kwargs)


def _column_terms(design: Design, terms: Sequence[str]) -> list[str]:
    """Term name of each model column, in model column order."""
    out = [INTERCEPT]
    for t in list(design.variables) + list(terms):
        out += [t] * design.blocks[t].size
    return out


def dependent_columns(X: np.ndarray) -> np.ndarray:
    """Indices of columns that are linear combinations of earlier columns.

    Column j is dependent when its residual after projection on the columns
    before it is at most ``RANK_TOL * |x_j| * max(1, sqrt(p))``, so the
    *later* term of a dependent set is blamed: main effects come first. The
    residual norms are the diagonal of R in the Householder QR of X without
    pivoting (LAPACK, numerically as stable as Gram-Schmidt done twice, and
    one call instead of p).

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns.

    Returns
    -------
    ndarray of int
    """
    n, p = X.shape
    if p == 0:
        return np.zeros(0, dtype=int)
    norms = np.linalg.norm(X, axis=0)
    R = linalg.qr(np.asarray(X, dtype=float), mode="r", check_finite=False)[0]
    resid = np.zeros(p)
    k = min(n, p)
    resid[:k] = np.abs(np.diag(R)[:k])  # columns beyond n are dependent (residual 0)
    return np.flatnonzero((norms == 0) | (resid <= RANK_TOL * norms * max(1.0, np.sqrt(p))))


def fienberg_rinaldo_lp(X: np.ndarray, y: np.ndarray) -> float:
    """Optimum of the Fienberg-Rinaldo LP: max t s.t. X'x = X'y, x >= t, x >= 0.

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns.
    y : ndarray
        Observed counts.

    Returns
    -------
    float
        The optimum; the MLE exists iff it is > 0.
    """
    from scipy import sparse  # only this programme needs it (start-up time, see linprog)

    n, p = X.shape
    c = np.zeros(n + 1)
    c[-1] = -1.0  # linprog minimises
    a_eq = sparse.hstack([sparse.csr_matrix(X.T), sparse.csr_matrix((p, 1))]).tocsr()
    b_eq = X.T @ y
    a_ub = sparse.hstack([-sparse.identity(n, format="csr"), sparse.csr_matrix(np.ones((n, 1)))]).tocsr()
    b_ub = np.zeros(n)
    # t cannot exceed the mean count (the intercept fixes sum x); the bound
    # keeps the LP bounded even if a design lacks an intercept
    bounds = [(0, None)] * n + [(0, float(y.sum()) / max(n, 1) + 1.0)]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        # infeasible cannot happen (x = y is feasible); treat solver trouble as
        # "cannot certify existence"
        return 0.0
    return float(-res.fun)


def recession_direction_lp(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest direction of recession of the Poisson log-likelihood.

    Solves ``max sum_{y_i=0} -x_i'd`` s.t. ``x_i'd = 0`` where ``y_i > 0`` and
    ``-1 <= x_i'd <= 0`` where ``y_i = 0``.

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns.
    y : ndarray
        Observed counts.

    Returns
    -------
    value : float
        The optimum: 0 iff the MLE exists.
    d : ndarray
        The direction found (zeros when the MLE exists).
    """
    zero = y == 0
    p = X.shape[1]
    if not zero.any():
        return 0.0, np.zeros(p)
    Xz, Xp = X[zero], X[~zero]
    nz = Xz.shape[0]
    res = linprog(
        Xz.sum(axis=0),
        A_ub=np.vstack([Xz, -Xz]),
        b_ub=np.r_[np.zeros(nz), np.ones(nz)],
        A_eq=Xp if Xp.shape[0] else None,
        b_eq=np.zeros(Xp.shape[0]) if Xp.shape[0] else None,
        bounds=[(None, None)] * p,
        method="highs",
    )
    if res.status != 0:  # d = 0 is always feasible and the objective bounded
        raise RuntimeError(f"existence LP failed: {res.message}")
    return float(-res.fun), np.asarray(res.x)


def check_existence(
    design: Design,
    terms: Sequence[str],
    counts: np.ndarray | None = None,
    explain: bool = True,
    method: str = "direction",
) -> Existence:
    """Rank test and Fienberg-Rinaldo LP for one model.

    Parameters
    ----------
    design : Design
    terms : sequence of str
        Interaction terms of the model (canonical names).
    counts : ndarray, optional
        Observed-cell counts (default: the design's).
    explain : bool
        Name the responsible terms when the LP fails.
    method : {"direction", "fienberg-rinaldo"}
        Which of the two equivalent LPs to solve (see the module docstring).

    Returns
    -------
    Existence
    """
    terms = tuple(terms)
    y = design.check_counts(counts)
    cols = design.columns(terms)
    X = design.X_obs[:, cols]
    col_terms = _column_terms(design, terms)
    dep = dependent_columns(X)
    if dep.size:
        blamed = tuple(dict.fromkeys(col_terms[j] for j in dep))
        names = [design.column_names[cols[j]] for j in dep]
        return Existence(
            FitStatus.NOT_IDENTIFIABLE,
            float("nan"),
            int(dep.size),
            blamed,
            f"not identifiable: design column(s) {names} of term(s) {list(blamed)} are linear "
            "combinations of earlier columns on the observed cells",
        )
    if np.all(y > 0):
        return Existence(FitStatus.OK, float("inf"), 0, (), "")
    if explain:
        # a term with a zero sufficient statistic has no MLE whatever the LP says: no LP needed
        blamed = _zero_statistic_terms(X, y, col_terms)
        if blamed:
            msg = f"MLE does not exist: term(s) {list(blamed)} (zero sufficient statistic)"
            return Existence(FitStatus.NO_MLE, float("nan"), 0, blamed, msg)
    if method == "direction":
        # the same LP in the null space of the positive cells' rows (ms, not 0.1 s); when it
        # finds the MLE exists the answer is that of the full LP (optimum 0); otherwise the
        # full LP runs, for its optimum and the direction that names the terms
        model = design.lattice_model(cols) if design.uses_lattice else None
        if existence_screen(X, y, gram=None if model is None else model.information):
            return Existence(FitStatus.OK, 0.0, 0, (), "")
    if method == "fienberg-rinaldo":
        value = fienberg_rinaldo_lp(X, y)
        exists, direction = value > LP_TOL, None
    elif method == "direction":
        value, direction = recession_direction_lp(X, y)
        exists = value < DIRECTION_TOL
    else:
        raise ValueError(f"method: must be 'direction' or 'fienberg-rinaldo', got {method!r}")
    if exists:
        return Existence(FitStatus.OK, value, 0, (), "")
    blamed: tuple[str, ...] = ()
    how = ""
    if explain:
        blamed, how = _zero_statistic_terms(X, y, col_terms), "zero sufficient statistic"
        if not blamed:  # always so with method "direction" (a zero statistic returned above)
            if direction is None:
                direction = recession_direction_lp(X, y)[1]
            blamed = _direction_terms(direction, col_terms)
            how = "their coefficients run off to -infinity along the direction of recession"
    if blamed:
        msg = f"MLE does not exist: term(s) {list(blamed)} ({how})"
    else:
        msg = "MLE does not exist: some fitted cells are forced to 0 by the sampling zeros" + (
            "" if explain else " (responsible terms not searched)"
        )
    return Existence(FitStatus.NO_MLE, value, 0, blamed, msg)


def existence_screen(X: np.ndarray, y: np.ndarray, gram=None) -> bool | None:
    """Does the MLE exist for counts ``y``? The direction LP of
    :func:`recession_direction_lp`, solved in the null space.

    A direction of recession ``d`` must satisfy ``x_i'd = 0`` on every cell with
    a positive count, so it lies in the null space of ``X_P`` (the rows of
    those cells). ``X_P' X_P`` has integer entries (0/1 design), so it is
    formed exactly and its eigen-decomposition (p x p, about 1 ms) separates
    the null space cleanly:

    - null space {0}: no direction of recession, the MLE exists (the usual
      case: no linear program at all);
    - null space of dimension q > 0 with basis N: the same LP as
      :func:`recession_direction_lp`, ``max sum_{y_i=0} -x_i'd`` with
      ``-1 <= x_i'd <= 0`` on the zero cells, but over ``d = N z`` (q variables
      instead of p, the equality rows gone);
    - no clear gap between zero and non-zero eigenvalues (:data:`NULL_TOL`,
      :data:`GAP_TOL`): undecided (None).

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns (0/1, full column rank).
    y : ndarray
        Observed-cell counts.
    gram : callable, optional
        ``gram(w)`` returns ``X' diag(w) X`` (e.g. the lattice path's
        information matrix); with 0/1 weights its entries are whole numbers,
        exact in any summation order, so the decision is the same.

    Returns
    -------
    bool or None
        True: the MLE exists; False: it does not; None: undecided.
    """
    pos = y > 0
    if pos.all():
        return True
    if gram is None:
        Xp = X[pos]
        G = Xp.T @ Xp
    else:
        G = gram(pos.astype(float))
    # the usual case first: G - s I positive definite for s = GAP_TOL x (trace >= the largest
    # eigenvalue) means every eigenvalue is above the gap, so the null space is {0}
    # (a Cholesky factorisation instead of the eigen-decomposition)
    shift = GAP_TOL * max(float(np.trace(G)), 1.0)
    if lapack.dpotrf(G - shift * np.eye(G.shape[0]), lower=1, clean=0)[1] == 0:
        return True
    w, V = np.linalg.eigh(G)
    top = max(float(w[-1]), 1.0)
    null = w <= NULL_TOL * top
    if np.any((w > NULL_TOL * top) & (w < GAP_TOL * top)):
        return None
    if not null.any():
        return True
    A = X[~pos] @ V[:, null]  # x_i'd for the zero cells, d = N z
    res = linprog(
        A.sum(axis=0),
        A_ub=np.vstack([A, -A]),
        b_ub=np.r_[np.zeros(len(A)), np.ones(len(A))],
        bounds=[(None, None)] * A.shape[1],
        method="highs",
    )
    if res.status != 0:
        return None
    return bool(-res.fun < DIRECTION_TOL)


def mle_exists(X: np.ndarray, y: np.ndarray, model=None) -> tuple[bool, bool]:
    """Does the MLE exist for new counts on a model whose design passed the rank test?

    The cheap exact decision for many count vectors on one model (bootstrap
    replicates), in three steps:

    1. **zero sufficient statistic** (free): every model column is a 0/1
       indicator, so a column whose cells all have count 0 is a direction of
       recession: no MLE;
    2. **null-space check** (:func:`existence_screen`, about 1 ms);
    3. when that is undecided, the direction LP over all observed cells
       (:func:`recession_direction_lp`, tens of ms).

    Identifiability needs no new check: the rank test is on the model's
    observed-cell columns, which do not depend on the counts.

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns.
    y : ndarray
        Observed-cell counts.
    model : optional
        The lattice form of the model (``Design.lattice_model``): the
        sufficient statistics and the Gram matrix then come from lattice sums
        (whole numbers: the same decision, without products with ``X``).

    Returns
    -------
    exists : bool
    lp_checked : bool
        Whether step 3 ran.
    """
    stats = y @ X if model is None else model.tdot(y)  # sufficient statistics X'y
    if np.any(stats <= 0):
        return False, False
    exists = existence_screen(X, y, gram=None if model is None else model.information)
    if exists is not None:
        return exists, False
    value, _ = recession_direction_lp(X, y)
    return value < DIRECTION_TOL, True


def _direction_terms(d: np.ndarray, col_terms: list[str]) -> tuple[str, ...]:
    """Terms with a non-zero coefficient in the direction of recession;
    interaction terms when there are any (main effects only shift to
    compensate), else main effects."""
    scale = max(np.abs(d).max(), 1e-300)
    hit = [col_terms[j] for j in np.flatnonzero(np.abs(d) > 1e-7 * scale) if col_terms[j] != INTERCEPT]
    inter = [t for t in hit if ":" in t]
    return tuple(dict.fromkeys(inter or hit))


def _zero_statistic_terms(X: np.ndarray, y: np.ndarray, col_terms: list[str]) -> tuple[str, ...]:
    """Terms with a column that is non-zero on some observed cell but has
    sufficient statistic 0 (e.g. two lists that never overlap)."""
    stat = X.T @ y
    support = (X != 0).any(axis=0)
    bad = np.flatnonzero((stat == 0) & support)
    return tuple(dict.fromkeys(col_terms[j] for j in bad))
