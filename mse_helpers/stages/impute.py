"""Multiple imputation of missing registers and covariates by chained equations.

docs/method.md section 4. The study filled in the missing values of the person-level
file with R ``mice`` and its default method for binary variables, ``logreg``.
This module does the same in Python:

- every register and covariate with missing values is imputed, in turn, from all
  the other registers and covariates (their current values) and the year (a
  categorical predictor with one dummy per year after the first, never imputed);
- for one variable, :func:`draw_logreg` fits a logistic regression on the records
  where it is observed, draws the coefficients from N(beta_hat, V_hat), computes
  the probabilities of the missing records and draws 0/1 (``mice.impute.logreg``);
- perfect separation is prevented as mice does, by :func:`augment`: a few
  weighted pseudo-records with both outcomes per predictor keep every
  coefficient finite;
- the chain starts from random draws of the observed values and runs ``maxit``
  iterations (:func:`impute_chained`).

Speed comes from the data being all binary: the records of one fit are collapsed
into their distinct (predictors, outcome) patterns with frequency weights
(:func:`collapse_patterns`). The weighted fit has exactly the same likelihood,
estimate and covariance as the fit on the records, but has a few hundred rows
instead of thousands; the fit itself is statsmodels' GLM.

The stage (:func:`run_stage`) redoes the linking of the aggregate records with
each completed data set's own seed (docs/method.md 3.5), imputes, and writes the m
completed person-level files. Data sets run in parallel with joblib; each has
its own random streams (:func:`mse_helpers.seeds.rng`), so the results do not
depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.special import expit

from .. import runfolder, seeds
from ..codes import COVARIATES
from ..parallel import Workers

log = logging.getLogger(__name__)

#: Columns of a completed person-level file, before the registers and covariates.
YEAR = "year"
SOURCE = "source"

#: Name of the folder (inside the work folder) holding the completed files.
IMPUTED_DIR = runfolder.IMPUTED_DIR


class ImputeInputError(ValueError):
    """An input of the imputation stage breaks a rule; the message names it."""


# --- coding: levels <-> 0/1 ---------------------------------------------------------


def encode_binary(
    frame: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str], name: str = "person-level file"
) -> pd.DataFrame:
    """Code the registers and covariates of a person-level file as 0/1 floats.

    Parameters
    ----------
    frame : DataFrame
        Person-level records: registers 0/1/<NA>, covariates as level strings
        (``codes.COVARIATES``) or <NA>.
    registers, covariates : sequence of str
        The variables to code, in this order.
    name : str
        What ``frame`` is (a file name), for error messages.

    Returns
    -------
    DataFrame
        One float column per variable, 0.0/1.0 or NaN (missing); a covariate's
        first level is 0. Same index as ``frame``.

    Raises
    ------
    ImputeInputError
        A column is absent, a register is not 0/1, or a covariate level is unknown
        (the message names the column, the bad value and the first rows).
    """
    missing_cols = [c for c in (YEAR, *registers, *covariates) if c not in frame.columns]
    if missing_cols:
        raise ImputeInputError(f"{name}: missing column(s) {missing_cols}")
    out = {}
    for reg in registers:
        values = pd.to_numeric(frame[reg], errors="coerce").astype("Float64")
        bad = frame[reg].notna() & ~values.isin([0, 1]).fillna(False)
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
            raise ImputeInputError(
                f"{name}: column {reg} (register) must be 0, 1 or missing; "
                f"bad value {frame[reg][bad].iloc[0]!r} in row(s) {rows} (0-based)"
            )
        out[reg] = values.to_numpy(dtype=float, na_value=np.nan)
    for cov in covariates:
        levels = COVARIATES[cov]
        col = frame[cov].astype("string")
        bad = col.notna() & ~col.isin(levels).fillna(False)
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
            raise ImputeInputError(
                f"{name}: column {cov} (covariate) must be one of {levels} or missing; "
                f"bad value {col[bad].iloc[0]!r} in row(s) {rows} (0-based)"
            )
        coded = col.map({levels[0]: 0.0, levels[1]: 1.0})
        out[cov] = pd.to_numeric(coded).astype(float).to_numpy()
    return pd.DataFrame(out, index=frame.index)


def decode_binary(values: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str]) -> pd.DataFrame:
    """Turn completed 0/1 columns back into registers (Int8) and covariate levels.

    Parameters
    ----------
    values : DataFrame
        Float 0/1 columns named after the variables, no missing values.
    registers, covariates : sequence of str

    Returns
    -------
    DataFrame
        Registers as ``Int8`` 0/1, covariates as level strings.
    """
    out = {}
    for reg in registers:
        out[reg] = values[reg].round().astype("Int8")
    for cov in covariates:
        levels = np.array(COVARIATES[cov], dtype=object)
        out[cov] = pd.array(levels[values[cov].round().astype(int).to_numpy()], dtype="string")
    return pd.DataFrame(out, index=values.index)


def year_dummies(year: np.ndarray, years: Sequence[int]) -> np.ndarray:
    """One 0/1 column per year after the first of ``years`` (treatment coding).

    Parameters
    ----------
    year : ndarray of int
        The year of every record.
    years : sequence of int
        All categories, sorted; the first is the reference.

    Returns
    -------
    ndarray, shape (n, len(years) - 1)
    """
    years = list(years)
    unknown = sorted(set(np.unique(year).tolist()) - set(years))
    if unknown:
        raise ImputeInputError(f"year(s) {unknown} are not among the analysed years {years}")
    return (np.asarray(year)[:, None] == np.asarray(years[1:])[None, :]).astype(float)


# --- one logistic-regression draw (mice.impute.logreg) -----------------------------


def augment(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mice's ``augment()`` for a binary outcome: pseudo-records against separation.

    For every predictor j, four records sit at the means of all predictors
    except j, which is at its mean +/- half its standard deviation (kept within
    its range), once with outcome 0 and once with outcome 1. Together they weigh
    as (p + 1) records, so they hardly move a fit on thousands of records, but
    because both outcomes occur at the same points in every direction the
    likelihood has a finite maximum even under perfect separation, and the
    information matrix has full rank even when predictors are collinear.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Predictors of all records (observed and missing outcome), no intercept.

    Returns
    -------
    x_aug : ndarray, shape (4p, p)
    y_aug : ndarray, shape (4p,)
    w_aug : ndarray, shape (4p,)
        Weight of each pseudo-record, (p + 1) / (4p).
    """
    n, p = x.shape
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if n > 1 else np.zeros(p)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x_aug = np.repeat(mean[None, :], 4 * p, axis=0)
    y_aug = np.tile([0.0, 0.0, 1.0, 1.0], p)
    for j in range(p):
        shifted = mean[j] + np.array([0.5, -0.5, 0.5, -0.5]) * sd[j]
        x_aug[4 * j : 4 * j + 4, j] = np.clip(shifted, lo[j], hi[j])
    w_aug = np.full(4 * p, (p + 1) / (4 * p))
    return x_aug, y_aug, w_aug


def collapse_patterns(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse 0/1 records into distinct (predictors, outcome) patterns with counts.

    A logistic regression with frequency weights on the patterns has the same
    log-likelihood, estimate and covariance as on the records.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        0/1 predictors (no intercept); p + 1 must be at most 62.
    y : ndarray, shape (n,)
        0/1 outcome.

    Returns
    -------
    x_u : ndarray, shape (k, p)
    y_u : ndarray, shape (k,)
    n_u : ndarray, shape (k,)
        Number of records with each pattern.
    """
    if x.shape[1] + 1 > 62:
        raise ValueError(f"collapse_patterns: {x.shape[1]} predictors is too many to code in 62 bits")
    bits = np.left_shift(np.int64(1), np.arange(1, x.shape[1] + 1, dtype=np.int64))
    key = x.astype(np.int64) @ bits + y.astype(np.int64)
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    return x[first], y[first], counts.astype(float)


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression by statsmodels' GLM: estimate and covariance.

    Parameters
    ----------
    x : ndarray, shape (n, k)
        Design matrix including the intercept column.
    y : ndarray, shape (n,)
        0/1 outcome.
    weights : ndarray, shape (n,)
        Frequency weights.

    Returns
    -------
    beta_hat : ndarray, shape (k,)
    cov : ndarray, shape (k, k)
        The inverse information matrix (mice's ``cov.unscaled``; the binomial
        dispersion is 1).
    """
    model = sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=weights)
    with warnings.catch_warnings():
        # The augmented data cannot separate; any other warning is a real problem.
        warnings.simplefilter("error")
        result = model.fit()
    return np.asarray(result.params), np.asarray(result.cov_params())


def logreg_posterior(y: np.ndarray, observed: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate posterior N(beta_hat, V_hat) of mice's ``logreg`` model.

    Fits a logistic regression of ``y`` on ``x`` (plus an intercept) over the
    observed records and :func:`augment`'s pseudo-records, with the records
    collapsed into patterns (:func:`collapse_patterns`).

    Parameters
    ----------
    y : ndarray, shape (n,)
        0/1 outcome; values at missing records are ignored.
    observed : ndarray of bool, shape (n,)
        Where ``y`` is observed.
    x : ndarray, shape (n, p)
        Complete 0/1 predictors (no intercept).

    Returns
    -------
    beta_hat : ndarray, shape (1 + k,)
        Intercept first, then the k kept predictors.
    cov : ndarray, shape (1 + k, 1 + k)
    keep : ndarray of bool, shape (p,)
        The predictors used: one that is constant over all records carries
        nothing and cannot be identified even with augmentation (mice's
        ``remove.lindep`` drops these too).
    """
    keep = x.min(axis=0) != x.max(axis=0)
    x = x[:, keep]
    if x.shape[1]:
        x_aug, y_aug, w_aug = augment(x)
    else:
        x_aug, y_aug, w_aug = np.empty((0, 0)), np.empty(0), np.empty(0)
    x_u, y_u, n_u = collapse_patterns(x[observed], y[observed])
    design = np.column_stack([np.ones(len(y_u) + len(y_aug)), np.vstack([x_u, x_aug])])
    beta_hat, cov = fit_logistic(design, np.concatenate([y_u, y_aug]), np.concatenate([n_u, w_aug]))
    return beta_hat, cov, keep


def draw_logreg(y: np.ndarray, observed: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the missing values of one binary variable (mice's ``logreg`` method).

    Draws beta* ~ N(beta_hat, V_hat) (:func:`logreg_posterior`) through the
    Cholesky factor of V_hat, computes p = expit(x beta*) for the missing records
    and draws y = (u <= p) with u uniform, as ``mice.impute.logreg``.

    Parameters
    ----------
    y : ndarray, shape (n,)
        0/1 outcome; values at missing records are ignored.
    observed : ndarray of bool, shape (n,)
        Where ``y`` is observed.
    x : ndarray, shape (n, p)
        Complete 0/1 predictors (no intercept).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n_missing,)
        Draws 0.0/1.0 for the records where ``observed`` is False, in order.
    """
    beta_hat, cov, keep = logreg_posterior(y, observed, x)
    chol = np.linalg.cholesky((cov + cov.T) / 2)
    beta_star = beta_hat + chol @ rng.standard_normal(len(beta_hat))
    prob = expit(beta_star[0] + x[~observed][:, keep] @ beta_star[1:])
    return (rng.random(len(prob)) <= prob).astype(float)


# --- the chain -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChainResult:
    """One completed data set from :func:`impute_chained`.

    Attributes
    ----------
    values : DataFrame
        The variables, completed (0.0/1.0).
    missing : DataFrame
        True where a value was missing (and so imputed).
    trace : DataFrame
        Columns ``iteration`` (1..maxit), ``variable``, ``mean``: the mean of the
        imputed values of each variable after each iteration (mice's chainMean).
    """

    values: pd.DataFrame
    missing: pd.DataFrame
    trace: pd.DataFrame


def impute_chained(
    values: pd.DataFrame, year: np.ndarray, years: Sequence[int], rng: np.random.Generator, maxit: int = 10
) -> ChainResult:
    """Fill in 0/1 variables by chained equations with logistic regression.

    Parameters
    ----------
    values : DataFrame
        One float column per variable, 0.0/1.0 or NaN (missing). The column order
        is the visiting order (mice's default: left to right).
    year : ndarray of int
        Year of every record: a categorical predictor of every variable.
    years : sequence of int
        The year categories (sorted); the first is the reference.
    rng : numpy.random.Generator
        The only source of randomness: the same generator state gives the same
        result.
    maxit : int
        Iterations; each visits every variable with missing values once.

    Returns
    -------
    ChainResult

    Raises
    ------
    ImputeInputError
        A variable has no observed value, or ``maxit`` is below 1.
    RuntimeError
        A logistic regression warned or failed (names the variable and the
        iteration); with the augmented data this should not happen.
    """
    if maxit < 1:
        raise ImputeInputError(f"parameter maxit: must be at least 1, got {maxit}")
    names = list(values.columns)
    data = values.to_numpy(dtype=float, copy=True)
    missing = np.isnan(data)
    bad = set(np.unique(data[~missing]).tolist()) - {0.0, 1.0}
    if bad:
        raise ImputeInputError(f"impute_chained: values must be 0, 1 or missing, found {sorted(bad)}")
    n_obs = (~missing).sum(axis=0)
    to_impute = [j for j in range(len(names)) if missing[:, j].any()]
    empty = [names[j] for j in to_impute if n_obs[j] == 0]
    if empty:
        raise ImputeInputError(f"variable(s) {empty} have no observed value: nothing to impute from")
    dummies = year_dummies(np.asarray(year), years)
    # Starting values: random draws from the observed values (mice.impute.sample).
    for j in to_impute:
        data[missing[:, j], j] = rng.choice(data[~missing[:, j], j], size=missing[:, j].sum())
    trace = []
    for it in range(1, maxit + 1):
        for j in to_impute:
            others = np.column_stack([np.delete(data, j, axis=1), dummies])
            try:
                data[missing[:, j], j] = draw_logreg(data[:, j], ~missing[:, j], others, rng)
            except (Warning, np.linalg.LinAlgError) as exc:  # fit_logistic turns warnings into errors
                raise RuntimeError(
                    f"imputing {names[j]} in iteration {it}: the logistic regression "
                    f"failed ({type(exc).__name__}: {exc})"
                ) from exc
            trace.append((it, names[j], data[missing[:, j], j].mean()))
    trace_frame = pd.DataFrame(trace, columns=["iteration", "variable", "mean"])
    return ChainResult(
        values=pd.DataFrame(data, columns=names, index=values.index),
        missing=pd.DataFrame(missing, columns=names, index=values.index),
        trace=trace_frame,
    )


# --- one completed data set ---------------------------------------------------------

LinkFunction = Callable[[pd.DataFrame, pd.DataFrame, Sequence[int], np.random.Generator], pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class CompletedDataset:
    """One completed person-level file and its summaries (see :func:`complete_dataset`)."""

    index: int
    completed: pd.DataFrame
    trace: pd.DataFrame
    missing: pd.DataFrame
    proportions: pd.DataFrame


def missing_counts(frame: pd.DataFrame, variables: Sequence[str]) -> pd.DataFrame:
    """Records and missing values per year and variable.

    Parameters
    ----------
    frame : DataFrame
        Person-level file with ``year`` and the variables.
    variables : sequence of str

    Returns
    -------
    DataFrame
        Columns ``year``, ``variable``, ``n_records``, ``n_missing``.
    """
    long = frame[[YEAR, *variables]].melt(id_vars=YEAR, var_name="variable", value_name="value")
    long["is_missing"] = long["value"].isna()
    out = (
        long.groupby([YEAR, "variable"], sort=False)["is_missing"].agg(n_records="size", n_missing="sum").reset_index()
    )
    out["variable"] = pd.Categorical(out["variable"], categories=list(variables))
    out = out.sort_values([YEAR, "variable"]).reset_index(drop=True)
    out["variable"] = out["variable"].astype("string")
    return out


def imputed_proportions(chain: ChainResult, year: np.ndarray) -> pd.DataFrame:
    """Counts of 1s among the observed and among the imputed values, per year and variable.

    Parameters
    ----------
    chain : ChainResult
    year : ndarray of int

    Returns
    -------
    DataFrame
        Columns ``year``, ``variable``, ``n_observed``, ``n_observed_1``,
        ``n_imputed``, ``n_imputed_1`` (the level coded 1: a register's 1, a
        covariate's second level).
    """
    rows = []
    for var in chain.values.columns:
        val = chain.values[var].to_numpy()
        mis = chain.missing[var].to_numpy()
        for y in np.unique(year):
            in_year = year == y
            rows.append(
                (
                    int(y),
                    var,
                    int((in_year & ~mis).sum()),
                    int(val[in_year & ~mis].sum()),
                    int((in_year & mis).sum()),
                    int(val[in_year & mis].sum()),
                )
            )
    return pd.DataFrame(rows, columns=[YEAR, "variable", "n_observed", "n_observed_1", "n_imputed", "n_imputed_1"])


def complete_dataset(
    index: int,
    persons: pd.DataFrame,
    partial: pd.DataFrame,
    reference_years: Sequence[int] | None,
    years: Sequence[int],
    registers: Sequence[str],
    covariates: Sequence[str],
    seed: int,
    maxit: int,
    link: LinkFunction | None,
) -> CompletedDataset:
    """Make completed data set ``index``: link the aggregate records, then impute.

    Parameters
    ----------
    index : int
        Number of the data set (0-based); selects its random streams
        ``seeds.rng(seed, "link", index)`` and ``seeds.rng(seed, "impute", index)``.
    persons, partial : DataFrame
        The person-level records and the partial records (docs/input-formats.md 4).
    reference_years : sequence of int or None
        Passed to ``link``.
    years : sequence of int
        The analysed years (year categories).
    registers, covariates : sequence of str
    seed : int
        The master seed.
    maxit : int
    link : callable or None
        ``link(persons, partial, reference_years, rng) -> DataFrame``, normally
        :func:`mse_helpers.stages.prepare.link_partial_records`. Not called when there
        are no partial records (the person-level file is then used as it is).

    Returns
    -------
    CompletedDataset
    """
    if len(partial) and link is None:
        raise ImputeInputError("there are partial records but no linking function was given")
    linked = link(persons, partial, reference_years, seeds.rng(seed, "link", index)) if len(partial) else persons.copy()
    linked = linked.reset_index(drop=True)
    variables = [*registers, *covariates]
    values = encode_binary(linked, registers, covariates, name=f"linked person-level file {index}")
    year = linked[YEAR].to_numpy(dtype=np.int64)
    missing = missing_counts(pd.concat([linked[[YEAR]], values], axis=1), variables)
    chain = impute_chained(values, year, years, seeds.rng(seed, "impute", index), maxit)
    completed = pd.concat(
        [
            linked[[YEAR]].astype("int64"),
            decode_binary(chain.values, registers, covariates),
            linked[[SOURCE]].astype("string"),
        ],
        axis=1,
    )
    return CompletedDataset(
        index=index,
        completed=completed,
        trace=chain.trace.assign(dataset=index),
        missing=missing.assign(dataset=index),
        proportions=imputed_proportions(chain, year).assign(dataset=index),
    )


def impute_datasets(
    persons: pd.DataFrame,
    partial: pd.DataFrame,
    reference_years: Sequence[int] | None,
    years: Sequence[int],
    registers: Sequence[str],
    covariates: Sequence[str],
    seed: int,
    m: int = 25,
    maxit: int = 10,
    n_jobs: int = 1,
    link: LinkFunction | None = None,
    workers: Workers | None = None,
) -> list[CompletedDataset]:
    """Make the m completed data sets, in parallel; the result does not depend on ``n_jobs``.

    Parameters
    ----------
    persons, partial, reference_years, years, registers, covariates, seed, maxit, link
        As in :func:`complete_dataset`.
    m : int
        Number of completed data sets.
    n_jobs : int
        joblib workers on this machine (used when ``workers`` is None).
    workers : Workers, optional
        Where the data sets are made (:class:`mse_helpers.parallel.Workers`:
        this machine or a Dask cluster); default ``Workers(n_jobs)``.

    Returns
    -------
    list of CompletedDataset
        In the order 0..m-1.
    """
    if m < 1:
        raise ImputeInputError(f"parameter m: must be at least 1, got {m}")
    args = (persons, partial, reference_years, years, registers, covariates, seed, maxit, link)
    return (workers or Workers(n_jobs=n_jobs)).map(complete_dataset, [(i, *args) for i in range(m)])


# --- the stage ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImputeResult:
    """What notebook 02 shows; no person-level rows.

    Attributes
    ----------
    traces : DataFrame
        ``dataset``, ``iteration``, ``variable``, ``mean`` (also written to
        ``impute_traces.parquet``).
    missing : DataFrame
        ``dataset``, ``year``, ``variable``, ``n_records``, ``n_missing``: the
        linked file of each data set before imputation.
    proportions : DataFrame
        ``dataset``, ``year``, ``variable``, ``n_observed``, ``n_observed_1``,
        ``n_imputed``, ``n_imputed_1``.
    frequencies : DataFrame
        ``dataset``, ``year``, ``register``, ``n_obs``: persons on each register
        per year in each completed data set (study Figure 1).
    year_totals : DataFrame
        ``year``, ``n_persons`` (person-level file), ``n_partial`` (partial
        records), and ``n_completed_min``/``n_completed_max`` over the completed
        data sets (linking may merge partial records into persons).
    files : list of Path
        The completed files, ``imputed/imp_000.parquet`` ...
    """

    traces: pd.DataFrame
    missing: pd.DataFrame
    proportions: pd.DataFrame
    frequencies: pd.DataFrame
    year_totals: pd.DataFrame
    files: list[Path]


def read_stage_inputs(work_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read ``persons.parquet``, ``partial.parquet`` and ``prep_summary.json``.

    Parameters
    ----------
    work_dir : Path

    Returns
    -------
    persons, partial : DataFrame
    summary : dict

    Raises
    ------
    runfolder.WorkFileMissing
        Naming the missing file and saying to run notebook 01 first.
    runfolder.WorkFileError
        When ``prep_summary.json`` names no years.
    """
    for file in (runfolder.PERSONS, runfolder.PARTIAL, runfolder.PREP_SUMMARY):
        runfolder.require(work_dir, file)  # the first missing one is named, before any is read
    return runfolder.read_persons(work_dir), runfolder.read_partial(work_dir), runfolder.read_prep_summary(work_dir)


def register_frequencies(completed: pd.DataFrame, registers: Sequence[str]) -> pd.DataFrame:
    """Persons on each register per year in one completed data set.

    Parameters
    ----------
    completed : DataFrame
    registers : sequence of str

    Returns
    -------
    DataFrame
        ``year``, ``register``, ``n_obs``.
    """
    sums = completed.groupby(YEAR)[list(registers)].sum().astype("int64")
    return sums.reset_index().melt(id_vars=YEAR, var_name="register", value_name="n_obs")


def year_totals(persons: pd.DataFrame, partial: pd.DataFrame, completed: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Records per year: person-level file, partial records and completed data sets.

    Parameters
    ----------
    persons, partial : DataFrame
    completed : sequence of DataFrame

    Returns
    -------
    DataFrame
        ``year``, ``n_persons``, ``n_partial``, ``n_completed_min``, ``n_completed_max``.
    """
    counts = pd.concat([c[YEAR].value_counts() for c in completed], axis=1)
    out = (
        pd.DataFrame(
            {
                "n_persons": persons[YEAR].value_counts(),
                "n_partial": partial[YEAR].value_counts(),
                "n_completed_min": counts.min(axis=1),
                "n_completed_max": counts.max(axis=1),
            }
        )
        .fillna(0)
        .astype("int64")
    )
    out.index.name = YEAR
    return out.sort_index().reset_index()


def run_stage(p, work_dir: Path, link: LinkFunction | None = None) -> ImputeResult:
    """Imputation stage of ``mse run``: m completed person-level files.

    For data set i in range(p.m): link the partial records with
    ``seeds.rng(p.seed, "link", i)``, impute with ``seeds.rng(p.seed, "impute", i)``
    for ``p.maxit`` iterations; ``p.n_jobs`` workers.

    Parameters
    ----------
    p : Params
    work_dir : Path
        The run's work folder, holding data preparation's output.
    link : callable, optional
        The linking function; default :func:`mse_helpers.stages.prepare.link_partial_records`.

    Returns
    -------
    ImputeResult

    Notes
    -----
    Writes ``work_dir/imputed/imp_000.parquet`` ... (columns ``year``, the
    registers, the covariates as levels, ``source``; nothing missing; earlier
    ``imp_*.parquet`` files there are removed first so a smaller m leaves no stale
    files) and ``work_dir/impute_traces.parquet``.
    """
    work_dir = Path(work_dir)
    persons, partial, summary = read_stage_inputs(work_dir)
    if link is None and len(partial):
        from .prepare import link_partial_records  # imported late: another stage's module

        link = functools.partial(link_partial_records, targets=p.linking)
    years = runfolder.analysed_years(summary)
    reference_years = summary.get("reference_years")
    # Check the inputs here, so that a bad file is named as such (not as a worker's linked file).
    for file, frame in ((runfolder.PERSONS, persons), (runfolder.PARTIAL, partial)):
        if SOURCE not in frame.columns:
            raise ImputeInputError(f"{file.shown}: missing column {SOURCE!r}")
        encode_binary(frame, p.registers, p.covariates, name=file.shown)
        try:
            year_dummies(frame[YEAR].to_numpy(dtype=np.int64), years)
        except ImputeInputError as exc:
            raise ImputeInputError(f"{file.shown}: column {YEAR}: {exc} of {runfolder.PREP_SUMMARY.name}") from None
    datasets = impute_datasets(
        persons,
        partial,
        reference_years,
        years,
        p.registers,
        p.covariates,
        p.seed,
        m=p.m,
        maxit=p.maxit,
        link=link,
        workers=Workers.from_params(p),
    )
    files = runfolder.write_imputed(work_dir, [(ds.index, ds.completed) for ds in datasets])
    traces = pd.concat([d.trace for d in datasets], ignore_index=True)[["dataset", "iteration", "variable", "mean"]]
    runfolder.write_traces(work_dir, traces)
    log.info("imputation: %d completed data sets (%d iterations each) written", len(files), p.maxit)
    frequencies = pd.concat(
        [register_frequencies(d.completed, p.registers).assign(dataset=d.index) for d in datasets], ignore_index=True
    )
    return ImputeResult(
        traces=traces,
        missing=pd.concat([d.missing for d in datasets], ignore_index=True),
        proportions=pd.concat([d.proportions for d in datasets], ignore_index=True),
        frequencies=frequencies[["dataset", YEAR, "register", "n_obs"]],
        year_totals=year_totals(persons, partial, [d.completed for d in datasets]),
        files=files,
    )
