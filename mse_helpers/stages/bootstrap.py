"""Parametric bootstrap per model and Rubin pooling over the 2m models (method.md 7).

The stage of ``mse run`` that turns the selected models into the published
estimates:

1. for every model k of ``work/models.json`` (a completed data set and a
   model type) whose status is "ok": rebuild the data set's count table
   (:func:`loglinear.dataset_table`), fit the model's terms, and run a
   parametric bootstrap with ``B = p.bootstrap`` replicates drawn from
   ``seeds.rng(p.seed, "bootstrap", k)`` (:func:`bootstrap_model`);
2. for every report group (per year and over all years: the total, each
   covariate level, each pair of covariate levels) the model's point estimate
   N-hat and its within variances: of N-hat and of log(N-hat - n_obs), the
   log of the dark number (:func:`group_matrix`);
3. Rubin's rules over the models per group (:func:`pooling.pool_estimates`)
   with the interval of ``p.interval``;
4. ``work/bootstrap.parquet`` (per model and group), ``results/estimates.csv``
   (per group, published) and ``results/models.csv`` (per model, published).

Why it is fast (docs/estimation.md 2): the design is built once per worker
(every completed data set has the same cells; each brings only its counts);
every replicate is a warm-started Newton refit (about 2-6 ms); its existence
is decided exactly by a null-space check of about 1 ms instead of the
engine's linear program of about 90 ms (:func:`classify_refit`); and the
groups are one matrix product of the replicates' stratum estimates with a 0/1
group-by-stratum matrix.

Results do not depend on the number of workers: model k always draws from its
own stream, and each model is computed the same way whichever process runs it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.optimize import linprog

from ..engine import loglinear
from .. import runfolder, seeds
from ..codes import COVARIATES, YEAR, group_label, model_factors, uses_year_factor
from ..engine.existence import recession_direction_lp
from ..engine.pooling import pool_estimates

log = logging.getLogger(__name__)

MODEL_TYPES = ("two-factor", "three-factor")
#: Status of a replicate whose refit had a zero sufficient statistic: no MLE,
#: proven without a linear program (see :func:`classify_refit`).
STATUS_NO_MLE = loglinear.STATUS_NO_MLE
#: A model kept out of the pooling because fewer than two replicates were usable.
STATUS_TOO_FEW_REPLICATES = "too_few_bootstrap_replicates"
#: Confidence level of the published intervals (method.md 7).
LEVEL = 0.95

#: Guard on a warm refit whose MLE exists: a fitted cell below this fraction
#: of its value in the original fit means the refit drifted; it is redone cold.
DRIFT_RATIO = 1e-6
#: Null-space check (:func:`existence_screen`): eigenvalues of ``X_P' X_P``
#: below NULL_TOL x the largest are zero, above GAP_TOL x the largest are not;
#: one in between leaves the decision to the engine's LP.
NULL_TOL = 1e-11
GAP_TOL = 1e-7

#: Columns of ``results/estimates.csv`` (the schema is defined in :mod:`mse_helpers.runfolder`).
ESTIMATE_COLUMNS = list(runfolder.ESTIMATE_COLUMNS)
PER_MODEL_COLUMNS = ["model", "dataset", "type", "year", "group", "n_obs", "n_hat", "var_within",
                     "var_within_log", "n_boot_ok", "n_boot_failed"]


class BootstrapInputError(ValueError):
    """An input of the bootstrap stage breaks a rule; the message names the file and entry."""


# --- groups ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GroupMatrix:
    """The report groups of a table as a 0/1 matrix over its strata.

    Attributes
    ----------
    year : tuple of str
        Per group: the year as text (``"2018"``) or ``"all"``.
    group : tuple of str
        Per group: ``total``, ``S=M`` or ``S=M&L=M`` (:func:`codes.group_label`).
    matrix : ndarray
        Groups x strata, 1 where the stratum belongs to the group; N-hat of the
        groups is ``matrix @ n_hat_by_stratum``.
    """

    year: tuple[str, ...]
    group: tuple[str, ...]
    matrix: np.ndarray

    def frame(self) -> pd.DataFrame:
        """``year`` and ``group`` columns, one row per group."""
        return pd.DataFrame({"year": list(self.year), "group": list(self.group)})


def group_matrix(strata: pd.DataFrame, covariates: Sequence[str], year: str | None = YEAR,
                 pairs: bool = True, single_year: str | None = None) -> GroupMatrix:
    """Every report group (method.md 5, 8) as rows of a group-by-stratum matrix.

    Order: all years together first, then each year; within each, the total,
    each level of each covariate, then each level pair of each covariate pair
    (the order of :func:`loglinear.n_hat_groups`).

    Parameters
    ----------
    strata : DataFrame
        One row per stratum with the factor columns (``Design.strata``).
    covariates : sequence of str
        Covariate columns to split by.
    year : str or None
        The year column; None or absent when one year is analysed (the year
        is then not a factor of the table).
    pairs : bool
        Include the pairs of covariates.
    single_year : str, optional
        With no year column: the analysed year, whose groups repeat those of
        ``all`` (so that per-year tables still find their year).

    Returns
    -------
    GroupMatrix
    """
    year = year if year is not None and year in strata.columns else None
    covs = [c for c in covariates if c in strata.columns and c != year]
    groupings: list[list[str]] = [[]] + [[c] for c in covs]
    if pairs:
        groupings += [list(p) for p in itertools.combinations(covs, 2)]
    values = {c: strata[c].astype(str).to_numpy() for c in covs + ([year] if year else [])}
    levels = {c: _levels(strata[c], c) for c in covs}
    n = len(strata)
    year_levels: list[tuple[str, np.ndarray]] = [("all", np.ones(n, dtype=bool))]
    if year:
        year_levels += [(y, values[year] == y) for y in sorted(set(values[year]), key=lambda v: (len(v), v))]
    elif single_year is not None:
        year_levels.append((str(single_year), np.ones(n, dtype=bool)))
    years_out, groups_out, rows = [], [], []
    for label, in_year in year_levels:
        for g in groupings:
            for combo in itertools.product(*(levels[c] for c in g)):
                mask = in_year.copy()
                for c, lv in zip(g, combo):
                    mask &= values[c] == lv
                years_out.append(label)
                groups_out.append(group_label(**dict(zip(g, combo))) if g else "total")
                rows.append(mask.astype(float))
    return GroupMatrix(year=tuple(years_out), group=tuple(groups_out), matrix=np.vstack(rows))


def _levels(values: pd.Series, name: str) -> tuple[str, ...]:
    """A covariate's levels as text: the codes' order for the study's covariates
    (as the engine), otherwise sorted."""
    present = set(values.astype(str))
    if name in COVARIATES and present <= set(COVARIATES[name]):
        return tuple(lv for lv in COVARIATES[name] if lv in present)
    return tuple(sorted(present))


# --- one model -------------------------------------------------------------------

@dataclasses.dataclass
class ModelBootstrap:
    """Parametric bootstrap of one model, summarised per group.

    Attributes
    ----------
    n_obs, n_hat : ndarray
        Per group: observed persons and the model's N-hat (the original fit).
    var_within : ndarray
        Per group: variance (ddof 1) of the usable replicates' N-hat.
    var_within_log : ndarray
        Per group: variance of the replicates' log(N-hat - n_obs), the log of
        the dark number (for the log-scale interval).
    replicates : ndarray
        Usable replicates x groups: N-hat of each.
    n_boot : int
        Replicates drawn.
    failed_status : dict
        Status -> number of replicates whose refit had no MLE (or did not
        converge); never averaged in.
    n_lp_checks : int
        Replicates that needed the engine's full existence LP (the
        null-space check of :func:`existence_screen` was undecided).
    """

    n_obs: np.ndarray
    n_hat: np.ndarray
    var_within: np.ndarray
    var_within_log: np.ndarray
    replicates: np.ndarray
    n_boot: int
    failed_status: dict
    n_lp_checks: int

    @property
    def n_failed(self) -> int:
        """Replicates left out."""
        return int(sum(self.failed_status.values()))

    @property
    def n_ok(self) -> int:
        """Usable replicates."""
        return self.n_boot - self.n_failed


def existence_screen(X: np.ndarray, y: np.ndarray) -> bool | None:
    """Does the MLE exist for counts ``y``? The direction LP of
    :func:`existence.recession_direction_lp`, solved in the null space.

    A direction of recession ``d`` must satisfy ``x_i'd = 0`` on every cell with
    a positive count, so it lies in the null space of ``X_P`` (the rows of
    those cells). ``X_P' X_P`` has integer entries (0/1 design), so it is
    formed exactly and its eigen-decomposition (p x p, about 1 ms) separates
    the null space cleanly:

    - null space {0}: no direction of recession, the MLE exists (the usual
      case: no linear program at all);
    - null space of dimension q > 0 with basis N: the same LP as the engine's,
      ``max sum_{y_i=0} -x_i'd`` with ``-1 <= x_i'd <= 0`` on the zero cells, but
      over ``d = N z`` (q variables instead of p, the equality rows gone);
    - no clear gap between zero and non-zero eigenvalues: undecided (None),
      the caller runs the engine's LP.

    Parameters
    ----------
    X : ndarray
        Observed cells x model columns (0/1, full column rank).
    y : ndarray
        Observed-cell counts.

    Returns
    -------
    bool or None
        True: the MLE exists; False: it does not; None: undecided.
    """
    pos = y > 0
    if pos.all():
        return True
    Xp = X[pos]
    w, V = np.linalg.eigh(Xp.T @ Xp)
    top = max(float(w[-1]), 1.0)
    null = w <= NULL_TOL * top
    if np.any((w > NULL_TOL * top) & (w < GAP_TOL * top)):
        return None
    if not null.any():
        return True
    A = X[~pos] @ V[:, null]  # x_i'd for the zero cells, d = N z
    res = linprog(A.sum(axis=0), A_ub=np.vstack([A, -A]), b_ub=np.r_[np.zeros(len(A)), np.ones(len(A))],
                  bounds=[(None, None)] * A.shape[1], method="highs")
    if res.status != 0:
        return None
    # as existence.check_existence: a direction whose most negative cell is -1 scores >= 1
    return bool(-res.fun < 0.5)


def classify_refit(fit: loglinear.Fit, counts: np.ndarray,
                   X: np.ndarray | None = None) -> tuple[loglinear.Fit | None, str, bool]:
    """Refit ``fit``'s model on bootstrap counts, after an exact existence check.

    The engine's check (:func:`existence.check_existence`: rank test and a
    linear program over all observed cells, about 90 ms on the study's table,
    20-40 refits' worth) is replaced by cheaper steps that decide the same
    question:

    1. **Zero sufficient statistic** (free): every model column is a 0/1
       indicator, so a column whose cells all have count 0 is a direction of
       recession: no MLE, no fit.
    2. **Null-space check** (:func:`existence_screen`, about 1 ms): decides
       existence exactly unless the eigenvalues show no clear gap; then the
       engine's LP (:func:`existence.recession_direction_lp`) decides.
       Identifiability needs no new check: the rank test is on the model's
       observed-cell columns, which do not depend on the counts and passed
       for the original fit.
    3. **Warm refit** without the engine's check. As a guard, a refit that
       does not converge or whose fitted cells collapse (a cell below
       :data:`DRIFT_RATIO` of its value in the original fit: the mark of a
       likelihood without maximum) is redone from cold start values; if that
       fails too, the replicate fails as ``not_converged``.

    Parameters
    ----------
    fit : loglinear.Fit
        The model fitted to the data set (status ok).
    counts : ndarray
        Bootstrap counts of the observed cells.
    X : ndarray, optional
        ``fit.design.X_obs[:, fit._cols]`` (pass it when classifying many
        replicates of one model).

    Returns
    -------
    refit : Fit or None
        The usable refit, or None.
    status : str
        "ok" or why the replicate failed.
    lp_checked : bool
        Whether the engine's full LP ran.
    """
    design = fit.design
    if X is None:
        X = design.X_obs[:, fit._cols]
    if np.any(counts @ X <= 0):  # sufficient statistics X'y
        return None, STATUS_NO_MLE, False
    exists, lp = existence_screen(X, counts), False
    if exists is None:
        value, _ = recession_direction_lp(X, counts)
        exists, lp = value < 0.5, True
    if not exists:
        return None, STATUS_NO_MLE, lp
    rf = loglinear.fit_model(design, fit.terms, counts=counts, start=fit.coef, check=False)
    if rf.ok and np.min(rf.fitted / fit.fitted) >= DRIFT_RATIO:
        return rf, loglinear.STATUS_OK, lp
    rf = loglinear.fit_model(design, fit.terms, counts=counts, check=False)
    return (rf, loglinear.STATUS_OK, lp) if rf.ok else (None, rf.status, lp)


def bootstrap_model(fit: loglinear.Fit, n_boot: int, rng: np.random.Generator,
                    groups: GroupMatrix) -> ModelBootstrap:
    """Parametric bootstrap of one model with every report group (method.md 7 step 1).

    Each replicate draws Poisson counts for every cell of the fitted model
    (observed cells from ``fit.fitted``, then the unobserved cells from
    ``fit.m0``, as :func:`loglinear.parametric_bootstrap` does, so both give the
    same replicates from the same generator), drops the unobserved cells,
    refits the model warm-started from ``fit`` (:func:`classify_refit`) and
    keeps the stratum estimates; the groups follow from one matrix product.

    Parameters
    ----------
    fit : loglinear.Fit
        A fitted model with status ok.
    n_boot : int
        Replicates (at least 2).
    rng : numpy.random.Generator
        The model's stream, e.g. ``seeds.rng(seed, "bootstrap", k)``.
    groups : GroupMatrix
        From :func:`group_matrix` on ``fit.design.strata``.

    Returns
    -------
    ModelBootstrap
        Variances are NaN when fewer than two replicates are usable.
    """
    if not fit.ok:
        raise ValueError(f"bootstrap_model: the model is not usable (status {fit.status})")
    if n_boot < 2:
        raise ValueError(f"bootstrap: at least 2 replicates are needed for a variance, got {n_boot}")
    design = fit.design
    G = groups.matrix
    if G.shape[1] != design.n_strata:
        raise ValueError(f"groups: matrix has {G.shape[1]} strata columns, the table has {design.n_strata}")
    obs_s = np.empty((n_boot, design.n_strata))
    dark_s = np.empty((n_boot, design.n_strata))
    ok = np.zeros(n_boot, dtype=bool)
    X = design.X_obs[:, fit._cols]
    failed: dict[str, int] = {}
    n_lp = 0
    for b in range(n_boot):
        y = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)  # the unobserved cells are drawn too, then dropped (method.md 7)
        rf, status, lp = classify_refit(fit, y, X)
        n_lp += lp
        if rf is None:
            failed[status] = failed.get(status, 0) + 1
            continue
        ok[b] = True
        obs_s[b] = design.n_obs_by_stratum(y)
        dark_s[b] = rf.m0
    dark_g = dark_s[ok] @ G.T
    n_hat_g = obs_s[ok] @ G.T + dark_g
    n_ok = int(ok.sum())
    n_obs = G @ design.n_obs_by_stratum(fit.y)
    n_hat = n_obs + G @ fit.m0
    if n_ok >= 2:
        var, var_log = n_hat_g.var(axis=0, ddof=1), np.log(dark_g).var(axis=0, ddof=1)
    else:
        var = var_log = np.full(G.shape[0], np.nan)
    return ModelBootstrap(n_obs=n_obs, n_hat=n_hat, var_within=var, var_within_log=var_log,
                          replicates=n_hat_g, n_boot=n_boot, failed_status=failed, n_lp_checks=n_lp)


# --- inputs ----------------------------------------------------------------------

def read_models(work_dir: Path) -> list[dict]:
    """Read and check ``work/models.json`` (the contract of model selection).

    Parameters
    ----------
    work_dir : Path
        The run's work folder.

    Returns
    -------
    list of dict
        The model objects, in file order (a model's index is its position).

    Raises
    ------
    runfolder.WorkFileMissing
        When the file is missing (run model selection, notebook 03, first).
    runfolder.WorkFileError
        When it is not valid JSON.
    BootstrapInputError
        When an entry lacks a key or has a bad value; names the entry.
    """
    models = runfolder.read_models_json(work_dir)
    path = runfolder.MODELS.shown
    if not isinstance(models, list) or not models:
        raise BootstrapInputError(f"{path}: must be a non-empty JSON list of model objects")
    for k, mod in enumerate(models):
        where = f"{path}: model {k} (entry {k + 1} of the list)"
        if not isinstance(mod, dict):
            raise BootstrapInputError(f"{where}: must be an object")
        missing = [key for key in ("dataset", "type", "terms", "status") if key not in mod]
        if missing:
            raise BootstrapInputError(f"{where}: missing key(s) {missing}")
        if not isinstance(mod["dataset"], int) or isinstance(mod["dataset"], bool) or mod["dataset"] < 0:
            raise BootstrapInputError(f"{where}: 'dataset' must be an integer >= 0, got {mod['dataset']!r}")
        if mod["type"] not in MODEL_TYPES:
            raise BootstrapInputError(f"{where}: 'type' must be one of {MODEL_TYPES}, got {mod['type']!r}")
        if not isinstance(mod["terms"], list) or not all(isinstance(t, str) for t in mod["terms"]):
            raise BootstrapInputError(f"{where}: 'terms' must be a list of term names such as \"P:R\"")
    return models


# --- one data set (a worker's task) ------------------------------------------------

#: The design of the last table shape (per process): every completed data set
#: has the same cells, so the model matrix is built once and each data set
#: only brings its counts.
_DESIGN_CACHE: dict[tuple, loglinear.Design] = {}


def cell_counts(persons: pd.DataFrame, design: loglinear.Design, source: str = "persons") -> np.ndarray:
    """Observed-cell counts of a completed person-level file in ``design``'s cell order.

    The same numbers as ``dataset_table(persons, ...)["count"]`` on the observed
    cells (the tests check it), by integer cell codes and one ``bincount``
    instead of the engine's text keys, reusing the one design (the cells are
    the same for every data set); it also names the data row of a bad value.

    Parameters
    ----------
    persons : DataFrame
        ``year``, the design's lists (0/1) and covariates (level strings), nothing missing.
    design : loglinear.Design
        A design built from :func:`loglinear.dataset_table`.
    source : str
        Name of the file, for error messages.

    Returns
    -------
    ndarray
        Counts of the observed cells (float).
    """
    n_cells = len(design.table)
    code_table = np.zeros(n_cells, dtype=np.int64)
    code_persons = np.zeros(len(persons), dtype=np.int64)
    on_a_list = np.zeros(len(persons), dtype=bool)
    for v in design.variables:
        levels = design.levels[v]
        column = persons["year" if v == YEAR else v]
        if column.isna().any():
            row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
            raise BootstrapInputError(f"{source}: column {column.name!r} is missing in data row {row}; "
                                      "the completed data sets must have no missing values")
        values = column.astype(int) if v == YEAR or v in design.lists else column.astype(str)
        index = {lv if v == YEAR or v in design.lists else str(lv): i for i, lv in enumerate(levels)}
        idx = values.map(index)
        if idx.isna().any():
            row = int(np.flatnonzero(idx.isna().to_numpy())[0]) + 1
            raise BootstrapInputError(f"{source}: column {column.name!r} has {values.iloc[row - 1]!r} in data row "
                                      f"{row}, not one of {list(levels)}")
        idx = idx.to_numpy(dtype=np.int64)
        if v in design.lists:
            on_a_list |= idx == 1
        tab = design.table[v].map({lv: i for i, lv in enumerate(levels)}).to_numpy(dtype=np.int64)
        code_table = code_table * len(levels) + tab
        code_persons = code_persons * len(levels) + idx
    if not on_a_list.all():
        raise BootstrapInputError(f"{source}: {int((~on_a_list).sum())} row(s) are on no register")
    size = int(np.prod([len(design.levels[v]) for v in design.variables]))
    per_code = np.bincount(code_persons, minlength=size)
    return per_code[code_table][design.observed].astype(float)


def _dataset_task(path: Path, jobs: list[tuple[int, dict]], registers: Sequence[str],
                  covariates: Sequence[str], years: Sequence[int], three_factor: Sequence[str],
                  seed: int, n_boot: int) -> list[dict]:
    """Fit and bootstrap the models of one completed data set.

    The first data set a process sees builds the table with
    :func:`loglinear.dataset_table` and the design; the others reuse the
    design (same cells) and bring only their counts (:func:`cell_counts`).
    """
    persons = runfolder.read_imputed(path)
    factors = model_factors(covariates, years)
    key = (tuple(registers), tuple(factors), tuple(int(y) for y in years), tuple(three_factor))
    design = _DESIGN_CACHE.get(key)
    if design is None:
        table = loglinear.dataset_table(persons, registers, covariates, years)
        design = loglinear.Design(table, registers, factors, three_factor=list(three_factor) or None)
        _DESIGN_CACHE.clear()
        _DESIGN_CACHE[key] = design
    counts = cell_counts(persons, design, source=f"{runfolder.WORK_DIR}/{runfolder.IMPUTED_DIR}/{path.name}")
    one_year = not uses_year_factor(years)
    groups = group_matrix(design.strata, covariates, None if one_year else YEAR,
                          single_year=str(years[0]) if one_year else None)
    out = []
    for k, mod in jobs:
        where = f"models.json model {k} (data set {mod['dataset']}, {mod['type']})"
        try:
            terms = design.canonical(tuple(mod["terms"]))
        except ValueError as exc:
            raise BootstrapInputError(f"{where}: {exc}") from None
        fit = loglinear.fit_model(design, terms, counts=counts, explain=False)
        res = {"model": k, "dataset": mod["dataset"], "type": mod["type"], "terms": terms,
               "status": fit.status, "groups": groups.frame()}
        if not fit.ok:
            out.append(res)
            continue
        expected = (mod.get("n_hat") or {}).get("total")
        if expected is not None and not np.isclose(fit.n_hat, float(expected), rtol=1e-6):
            raise BootstrapInputError(
                f"{where}: refitted N-hat {fit.n_hat:.3f} differs from the {float(expected):.3f} recorded by "
                f"model selection; {path.name} or the parameters changed after selection: re-run notebook 03")
        boot = bootstrap_model(fit, n_boot, seeds.rng(seed, "bootstrap", k), groups)
        res.update(boot=boot, aic=fit.aic, bic=fit.bic, deviance=fit.deviance, df=fit.df_resid,
                   by_year=loglinear.n_hat_by(fit, YEAR) if YEAR in factors else None,
                   n_hat_total=fit.n_hat)
        out.append(res)
    return out


# --- the stage ---------------------------------------------------------------------

@dataclasses.dataclass
class BootstrapResult:
    """What the bootstrap stage computed (also written to files).

    Attributes
    ----------
    estimates : DataFrame
        ``results/estimates.csv``: one row per year and group (pooled).
    models : DataFrame
        ``results/models.csv``: one row per pooled model.
    per_model : DataFrame
        ``work/bootstrap.parquet``: one row per pooled model and group.
    failed : DataFrame
        One row per model of models.json: ``model``, ``dataset``, ``type``,
        ``status`` ("ok", or why the model was not pooled), ``n_boot``,
        ``n_boot_ok``, ``n_boot_failed``, ``failed_statuses`` (e.g.
        ``mle_does_not_exist:3``), ``n_lp_checks``.
    n_models_skipped : int
        Models of models.json not pooled (status not ok there, failed refit,
        or fewer than two usable replicates).
    """

    estimates: pd.DataFrame
    models: pd.DataFrame
    per_model: pd.DataFrame
    failed: pd.DataFrame
    n_models_skipped: int


def _per_model_frame(res: dict) -> pd.DataFrame:
    boot: ModelBootstrap = res["boot"]
    frame = res["groups"].copy()
    frame.insert(0, "type", res["type"])
    frame.insert(0, "dataset", res["dataset"])
    frame.insert(0, "model", res["model"])
    frame["n_obs"] = boot.n_obs
    frame["n_hat"] = boot.n_hat
    frame["var_within"] = boot.var_within
    frame["var_within_log"] = boot.var_within_log
    frame["n_boot_ok"] = boot.n_ok
    frame["n_boot_failed"] = boot.n_failed
    return frame[PER_MODEL_COLUMNS]


def _models_row(res: dict, years: Sequence[int]) -> dict:
    row = {"dataset": res["dataset"], "type": res["type"], "terms": ";".join(res["terms"]),
           "aic": res["aic"], "bic": res["bic"], "deviance": res["deviance"], "df": res["df"]}
    if res["by_year"] is not None:
        per_year = dict(zip(res["by_year"][YEAR].astype(int), res["by_year"]["n_hat"]))
    else:
        per_year = {int(years[0]): res["n_hat_total"]}
    for y in years:
        row[f"n_hat_{y}"] = per_year[int(y)]
    row["n_hat_total"] = res["n_hat_total"]
    return row


def _failed_row(k: int, mod: dict, status: str, n_boot: int, boot: ModelBootstrap | None) -> dict:
    statuses = ";".join(f"{s}:{n}" for s, n in sorted(boot.failed_status.items())) if boot else ""
    return {"model": k, "dataset": mod["dataset"], "type": mod["type"], "status": status,
            "n_boot": n_boot if boot else 0, "n_boot_ok": boot.n_ok if boot else 0,
            "n_boot_failed": boot.n_failed if boot else 0, "failed_statuses": statuses,
            "n_lp_checks": boot.n_lp_checks if boot else 0}


def run_stage(p, work_dir: Path, results_dir: Path) -> BootstrapResult:
    """Bootstrap and pooling stage of ``mse run`` (method.md 7).

    Parameters
    ----------
    p : Params
        Uses registers, covariates, bootstrap, interval, seed, n_jobs.
    work_dir : Path
        The run's work folder: ``models.json``, ``imputed/imp_*.parquet``,
        ``prep_summary.json``; receives ``bootstrap.parquet``.
    results_dir : Path
        The run's published results folder (created): receives
        ``estimates.csv`` and ``models.csv``.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    FileNotFoundError
        A missing input, naming the notebook to run first.
    BootstrapInputError
        A bad entry in models.json, or a model whose refit does not reproduce
        the N-hat recorded by model selection.
    ValueError
        Fewer than two models left to pool.
    """
    work_dir, results_dir = Path(work_dir), Path(results_dir)
    models = read_models(work_dir)
    years = runfolder.analysed_years(runfolder.read_prep_summary(work_dir))
    jobs: dict[int, list[tuple[int, dict]]] = {}
    failed_rows: dict[int, dict] = {}
    for k, mod in enumerate(models):
        if mod["status"] != loglinear.STATUS_OK:
            failed_rows[k] = _failed_row(k, mod, f"not used: status {mod['status']} in models.json", 0, None)
            continue
        jobs.setdefault(mod["dataset"], []).append((k, mod))
    datasets = sorted(jobs)
    files = dict(zip(datasets, runfolder.imputed_files(work_dir, datasets, detail="a data set of models.json")))
    # one design for every data set: it holds every three-factor term of any model
    three = tuple(sorted({t for js in jobs.values() for _, mod in js for t in mod["terms"] if t.count(":") >= 2}))
    args = [(files[i], jobs[i], tuple(p.registers), tuple(p.covariates), years, three,
             p.seed, p.bootstrap) for i in sorted(jobs)]
    if p.n_jobs == 1 or len(args) == 1:
        done = [_dataset_task(*a) for a in args]
    else:
        done = Parallel(n_jobs=min(p.n_jobs, len(args)))(delayed(_dataset_task)(*a) for a in args)
    results = sorted((r for rs in done for r in rs), key=lambda r: r["model"])
    pooled = []
    for res in results:
        mod = models[res["model"]]
        boot = res.get("boot")
        if boot is None:
            status = f"not used: refit status {res['status']}"
        elif boot.n_ok < 2:
            status = f"not used: {STATUS_TOO_FEW_REPLICATES} ({boot.n_ok} of {boot.n_boot})"
        else:
            status = loglinear.STATUS_OK
            pooled.append(res)
        failed_rows[res["model"]] = _failed_row(res["model"], mod, status, p.bootstrap, boot)
    failed = pd.DataFrame([failed_rows[k] for k in sorted(failed_rows)])
    if len(pooled) < 2:
        raise ValueError(f"bootstrap: {len(pooled)} usable model(s) of {len(models)} in models.json; "
                         f"Rubin's rules need at least two (see the statuses: {failed['status'].tolist()})")
    per_model = pd.concat([_per_model_frame(r) for r in pooled], ignore_index=True)
    estimates = pool_estimates(per_model, ["year", "group"], interval=p.interval, level=LEVEL)
    # publication order: the groups as built (total, covariates, pairs), years then "all"
    order = per_model.drop_duplicates(["year", "group"])[["year", "group"]]
    order = order.assign(_y=(order["year"] == "all"), _pos=np.arange(len(order)))
    estimates = (estimates.merge(order, on=["year", "group"], how="left")
                 .sort_values(["_y", "year", "_pos"], kind="stable")[ESTIMATE_COLUMNS].reset_index(drop=True))
    models_frame = pd.DataFrame([_models_row(r, years) for r in pooled])
    runfolder.write_bootstrap(work_dir, per_model)
    runfolder.write_results(results_dir, estimates, models_frame)
    log.info("bootstrap: %d models pooled (%d replicates each), %d not used", len(pooled), p.bootstrap,
             len(models) - len(pooled))
    return BootstrapResult(estimates=estimates, models=models_frame, per_model=per_model,
                           failed=failed, n_models_skipped=int((failed["status"] != loglinear.STATUS_OK).sum()))
