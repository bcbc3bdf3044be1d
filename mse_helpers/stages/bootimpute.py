"""Bootstrap-then-impute: an interval that repeats linking, imputation and model selection.

The candidate that issue 15 asked to compare with ``uncertainty: reselect``
(docs/estimation.md 6, "Bootstrap-then-impute"). Following Bartlett and
Hughes (2020) and von Hippel and Bartlett (2021), the *input data* are
resampled and the whole analysis is repeated on each resample:

1. resample ``b`` (its own stream ``seeds.rng(seed, "resample", b)``) is a
   Poisson bootstrap of the persons: every person key of the reports is taken
   w ~ Poisson(1) times with all its reports (so the number registered varies
   as under the Poisson model), and every person counted by an aggregate
   record likewise (:func:`resample_aggregates`: the record's total and its
   margins are the sums of the same persons' weights);
2. on each resample: data preparation, linking and imputation of
   ``n_imputations`` completed data sets (few: the analysis of variance below
   separates the imputation noise), the study's selection of both model types
   on each, and the selected models' estimates of every report group;
3. per group, the estimates theta_bd (the mean of the two model types, as the
   study's point estimate is the mean over all its models) are split by a
   one-way analysis of variance into the variance between resamples and the
   imputation noise within them; the variance of the analysis is
   ``sigma2_b = (MSB - MSW) / D`` (the variance of an analysis with infinitely
   many imputations), plus the study's own ``B / M`` for its finite M
   (:func:`pool_boot_impute`); Satterthwaite's degrees of freedom.

The interval is centred on the study's point estimate, like ``reselect``'s:
only the variance comes from the resamples (the mean of bootstrap estimates
would add the estimator's bias a second time). On the log scale of the dark
number it is ``n_obs + exp(mean log dark +- t sqrt(V_log))``, never below
n_obs.

A resample whose preparation, selection or a model's fit fails is left out
and counted (:attr:`BootImputeResult.failed`), never dropped silently. The
results do not depend on the number of workers: every resample draws from its
own streams.

References: Bartlett JW, Hughes RA (2020), Bootstrap inference for multiple
imputation under uncongeniality and misspecification, Stat Methods Med Res
29:3533-3546; von Hippel PT, Bartlett JW (2021), Maximum likelihood multiple
imputation: faster imputations and consistent standard errors without
posterior draws, Statistical Science 36:400-420.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import runfolder, seeds
from ..engine.fit import fit_model
from ..engine.pooling import pool_estimates
from ..engine.status import FitStatus
from ..parallel import Workers
from . import impute, inputs, prepare, selection
from .uncertainty import BOOT_IMPUTE, POOLED_INTERVALS, dataset_design

log = logging.getLogger(__name__)

#: Name of the random step (:data:`mse_helpers.seeds.STAGES`).
STREAM = "resample"
#: Second index of a resample's stream that seeds its inner analysis (linking, imputation).
INNER_STREAM = 1
#: Separator between a person key (or report id) and its copy number in a resample.
COPY_SEP = "~"


# --- resampling the inputs ------------------------------------------------------------


def resample_reports(reports: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Poisson bootstrap of the persons of a reports table.

    Each distinct ``person_key`` is taken w ~ Poisson(1) times with all its
    rows; copy j of a person gets the key ``key~j`` and its reports the ids
    ``report_id~j``, so the copies are different persons to the linkage.

    Parameters
    ----------
    reports : DataFrame
        The reports as read (text columns ``report_id``, ``person_key`` ...).
    rng : numpy.random.Generator

    Returns
    -------
    DataFrame
        The resampled rows, a fresh index.
    """
    keys, inverse = np.unique(reports["person_key"].to_numpy(dtype=str), return_inverse=True)
    weights = rng.poisson(1.0, size=len(keys))
    copies = weights[inverse]
    rows = np.repeat(np.arange(len(reports)), copies)
    starts = np.repeat(np.cumsum(copies) - copies, copies)
    copy = (np.arange(len(rows)) - starts).astype(str)
    out = reports.iloc[rows].reset_index(drop=True)
    out["person_key"] = out["person_key"].astype(str) + COPY_SEP + copy
    out["report_id"] = out["report_id"].astype(str) + COPY_SEP + copy
    return out


def resample_aggregate_row(
    total: int, margins: Sequence[tuple[int, int]], rng: np.random.Generator
) -> tuple[int, list[tuple[int, int]]]:
    """Poisson bootstrap of the persons one aggregate record counts.

    Each of the ``total`` persons gets a weight w ~ Poisson(1); the new total
    is the sum of the weights, and each pair of margins (e.g. ``sex_F``,
    ``sex_M``, whose sum may be less than the total) the sums of the weights
    of the persons in its levels, the persons assigned to levels at random
    (the record does not say who is who). So every margin stays at most the
    new total.

    Returns
    -------
    total : int
    margins : list of (int, int)
    """
    w = rng.poisson(1.0, size=int(total))
    out = []
    for a, b in margins:
        if a + b > total:
            raise ValueError(f"aggregate margins {a} + {b} exceed the total {total}")
        perm = rng.permutation(int(total))
        out.append((int(w[perm[:a]].sum()), int(w[perm[a : a + b]].sum())))
    return int(w.sum()), out


def resample_aggregates(aggregates: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Every row of an aggregates table (text, as read) resampled by :func:`resample_aggregate_row`."""
    out = aggregates.copy()
    for i in range(len(out)):
        margins = [(int(out[a].iat[i]), int(out[b].iat[i])) for a, b in inputs.AGGREGATE_PAIRS]
        total, new = resample_aggregate_row(int(out["total"].iat[i]), margins, rng)
        out.iloc[i, out.columns.get_loc("total")] = str(total)
        for (a, b), (na, nb) in zip(inputs.AGGREGATE_PAIRS, new):
            out.iloc[i, out.columns.get_loc(a)] = str(na)
            out.iloc[i, out.columns.get_loc(b)] = str(nb)
    return out


def read_raw(value, name: str, p) -> pd.DataFrame:
    """All files of input ``name`` as one text table (:func:`inputs.read_table`), data rows only."""
    opts = prepare.read_options(p)
    frames = [
        inputs.read_table(path, encoding=opts.encoding, separator=opts.separator)
        for path in inputs.input_paths(value, name)
    ]
    return pd.concat(frames, ignore_index=True)


# --- one resample -----------------------------------------------------------------------


def inner_seed(seed: int, b: int) -> int:
    """Master seed of resample ``b``'s own analysis (its linking and imputation streams)."""
    return int(seeds.seed_sequence(seed, STREAM, b, INNER_STREAM).generate_state(1)[0])


def model_estimates(work_dir: Path, p, years: Sequence[int]) -> pd.DataFrame:
    """Per selected model of a work folder and report group: ``n_obs`` and ``n_hat``.

    Returns
    -------
    DataFrame
        ``imputation`` (the data set), ``type``, ``status``, ``year``, ``group``,
        ``n_obs``, ``n_hat`` (NaN where the model is not usable).
    """
    models = runfolder.read_models_json(work_dir)
    rows = []
    for d in sorted({mod["dataset"] for mod in models}):
        mods = [mod for mod in models if mod["dataset"] == d]
        three = sorted({t for mod in mods for t in mod["terms"] if t.count(":") >= 2})
        (path,) = runfolder.imputed_files(work_dir, [d])
        design, counts, groups = dataset_design(runfolder.read_imputed(path), p.registers, p.covariates, years, three)
        for mod in mods:
            frame = groups.frame()
            frame.insert(0, "status", str(mod["status"]))
            frame.insert(0, "type", mod["type"])
            frame.insert(0, "imputation", d)
            frame["n_obs"] = frame["n_hat"] = np.nan
            if mod["status"] == FitStatus.OK:
                fit = fit_model(design, design.canonical(tuple(mod["terms"])), counts=counts, explain=False)
                frame["status"] = str(fit.status)
                if fit.ok:
                    n_obs = groups.sums(design.n_obs_by_stratum(fit.y))
                    frame["n_obs"], frame["n_hat"] = n_obs, n_obs + groups.sums(fit.m0)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def resample_task(
    p,
    b: int,
    n_imputations: int,
    years: Sequence[int],
    reference_years,
    raw: tuple[pd.DataFrame, pd.DataFrame | None],
    scratch: Path | None = None,
) -> pd.DataFrame:
    """Resample the inputs (stream ``b``), run preparation to model selection on them, estimate.

    Parameters
    ----------
    p : Params
        The run's parameters (inputs, registers, covariates, linking, maxit,
        three_factor_candidates, seed ...).
    b : int
        The resample.
    n_imputations : int
        Completed data sets of the resample (D).
    years, reference_years : sequence of int
        Those of the run (a resample must not choose other years).
    raw : (DataFrame, DataFrame or None)
        The reports and aggregates as read (:func:`read_raw`, once for all resamples).
    scratch : Path, optional
        Where the resample's files (person-level, like the run's work folder)
        are written while it runs and removed after; the run's work folder in
        ``mse run``, the system's temporary folder if None.

    Returns
    -------
    DataFrame
        :func:`model_estimates` with ``resample`` first; one row with status
        ``failed: <reason>`` and no groups when a stage refused the resample.
    """
    rng = seeds.rng(p.seed, STREAM, b)
    reports = resample_reports(raw[0], rng)
    aggregates = resample_aggregates(raw[1], rng) if raw[1] is not None else None
    with tempfile.TemporaryDirectory(prefix=f"resample_{b:04d}_", dir=scratch) as tmp:
        tmp = Path(tmp)
        reports.to_csv(tmp / "reports.csv", index=False)
        if aggregates is not None:
            aggregates.to_csv(tmp / "aggregates.csv", index=False)
        q = dataclasses.replace(
            p,
            reports=tmp / "reports.csv",
            aggregates=tmp / "aggregates.csv" if aggregates is not None else None,
            encoding="utf-8",
            separator=",",
            years=tuple(years),
            reference_years=tuple(reference_years) if reference_years else None,
            m=n_imputations,
            seed=inner_seed(p.seed, b),
            n_jobs=1,
            backend="loky",
            scheduler=None,
            sensitivity=(),
            models_from=None,
        )
        work = tmp / "work"
        try:
            prepare.run_stage(q, work)
            impute.run_stage(q, work)
            selection.run_stage(q, work)
        except ValueError as exc:  # a stage's own refusal (e.g. no model with an MLE): counted
            return pd.DataFrame({"resample": [b], "status": [f"failed: {type(exc).__name__}: {exc}"[:200]]})
        out = model_estimates(work, q, years)
    out.insert(0, "resample", b)
    return out


# --- all resamples and the interval ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BootImputeResult:
    """The analyses of every resample.

    Attributes
    ----------
    estimates : DataFrame
        Per resample, imputation, model type and group: ``status``,
        ``n_obs``, ``n_hat`` (:func:`resample_task`).
    n_resamples, n_imputations : int
    seconds : float
    """

    estimates: pd.DataFrame
    n_resamples: int
    n_imputations: int
    seconds: float = dataclasses.field(default=0.0, compare=False)

    @property
    def usable(self) -> pd.DataFrame:
        """Per resample, imputation and group: the mean of the model types' n_obs and n_hat,
        for the resamples whose every model is usable."""
        est = self.estimates
        bad = set(est.loc[est["status"] != str(FitStatus.OK), "resample"])
        ok = est[~est["resample"].isin(bad)]
        return ok.groupby(["resample", "imputation", "year", "group"], as_index=False)[["n_obs", "n_hat"]].mean()

    @property
    def failed(self) -> dict[str, int]:
        """Status -> resamples left out (a resample counts once, under its first failure)."""
        est = self.estimates[self.estimates["status"] != str(FitStatus.OK)]
        first = est.drop_duplicates("resample")
        return {str(k): int(v) for k, v in first["status"].value_counts().items()}

    @property
    def n_usable(self) -> int:
        """Resamples whose every model is usable."""
        return int(self.usable["resample"].nunique())


def run_resamples(
    p,
    years: Sequence[int],
    reference_years=None,
    *,
    n_resamples: int,
    n_imputations: int = 2,
    scratch: Path | None = None,
) -> BootImputeResult:
    """Bootstrap-then-impute: :func:`resample_task` for resamples 0 .. n_resamples - 1.

    Parameters
    ----------
    p : Params
        Uses the inputs and every parameter of preparation, imputation and
        selection; ``seed``; ``n_jobs`` and ``backend`` (resamples run in
        parallel, each in one process).
    years, reference_years : sequence of int
        The run's analysed and reference years.
    n_resamples : int
        B, at least 2.
    n_imputations : int
        D completed data sets per resample, at least 2.
    scratch : Path, optional
        Folder for each resample's files while it runs (:func:`resample_task`).

    Returns
    -------
    BootImputeResult
    """
    if n_resamples < 2 or n_imputations < 2:
        raise ValueError(
            f"bootstrap-then-impute: at least 2 resamples and 2 imputations each, got {n_resamples} and {n_imputations}"
        )
    t0 = time.perf_counter()
    raw = (read_raw(p.reports, "reports", p), read_raw(p.aggregates, "aggregates", p) if p.aggregates else None)
    args = [(p, b, n_imputations, tuple(years), reference_years, raw, scratch) for b in range(n_resamples)]
    done = Workers.from_params(p).map(resample_task, args)
    result = BootImputeResult(pd.concat(done, ignore_index=True), n_resamples, n_imputations, time.perf_counter() - t0)
    log.info(
        "bootstrap-then-impute: %d resamples x %d imputations, %d usable, left out %s",
        n_resamples,
        n_imputations,
        result.n_usable,
        result.failed or "none",
    )
    return result


def anova(theta: np.ndarray) -> tuple[float, float]:
    """One-way analysis of variance of a resamples x imputations array: (MSB, MSW)."""
    n_b, n_d = theta.shape
    row = theta.mean(axis=1)
    msb = n_d * float(np.sum((row - row.mean()) ** 2)) / (n_b - 1)
    msw = float(np.sum((theta - row[:, None]) ** 2)) / (n_b * (n_d - 1))
    return msb, msw


def boot_impute_variance(theta: np.ndarray, var_between: float, n_models: int) -> tuple[float, float]:
    """Variance of the study's point estimate and its degrees of freedom from the resamples.

    ``V = (MSB - MSW) / D + B / M``: the variance between resamples of an
    analysis with infinitely many imputations (``sigma2_b``, not below 0), and
    the study's own Monte Carlo variance for its M models (``B``: their
    between variance). Satterthwaite's degrees of freedom of that sum.

    Parameters
    ----------
    theta : ndarray
        Resamples x imputations: each analysis' estimate.
    var_between : float
        The study's between-model variance B.
    n_models : int
        The study's M.

    Returns
    -------
    var, df : float
    """
    n_b, n_d = theta.shape
    msb, msw = anova(theta)
    mc = var_between / n_models
    var = max(msb - msw, 0.0) / n_d + mc
    parts = (msb / n_d) ** 2 / (n_b - 1) + (msw / n_d) ** 2 / (n_b * (n_d - 1))
    parts += mc**2 / (n_models - 1) if n_models > 1 else 0.0
    df = var**2 / parts if parts > 0 else np.inf
    return var, df


#: Values of ``interval`` that bootstrap-then-impute gives (variances, no profile likelihood).
INTERVALS = POOLED_INTERVALS
#: Value of the parameter ``uncertainty`` and the start of the ``interval`` column.
NAME = BOOT_IMPUTE


def pool_boot_impute(
    per_model: pd.DataFrame,
    result: BootImputeResult,
    by: Sequence[str] = ("year", "group"),
    *,
    interval: str = "log-scale",
    level: float = 0.95,
) -> pd.DataFrame:
    """The estimates of the study's models with the bootstrap-then-impute intervals.

    The point estimate, n_obs, the dark number and the between-model
    variance B are Rubin's over the study's models
    (:func:`engine.pooling.pool_estimates`); ``var_within`` becomes the
    variance between resamples of an analysis (sigma2_b), ``var_total``
    ``sigma2_b + B / M`` and ``df`` Satterthwaite's (:func:`boot_impute_variance`).

    - ``rubin-t``: ``n_hat -+ t sqrt(var_total)``, the lower end not below n_obs;
    - ``log-scale``: the same on the log of the dark number around the mean of
      the models' log dark numbers, ``n_obs + exp(...)``, so above n_obs.

    ``dark_lower`` and ``dark_upper`` are the log-scale interval of the dark
    number whichever ``interval`` is used.

    Parameters
    ----------
    per_model : DataFrame
        The study's per-model frame (``work/bootstrap.parquet``).
    result : BootImputeResult
    by : sequence of str
    interval : {"rubin-t", "log-scale"}
    level : float

    Returns
    -------
    DataFrame
        The columns of :func:`engine.pooling.pool_estimates` (``interval``
        ``boot-impute log-scale`` or ``boot-impute rubin-t``), and
        ``n_resamples`` (usable resamples; the interval is NaN with fewer than two).
    """
    if interval not in INTERVALS:
        raise ValueError(f"uncertainty {NAME}: interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    by = list(by)
    out = pool_estimates(per_model, by, interval="rubin-t", level=level)
    usable = result.usable.assign(log_dark=lambda f: np.log(f["n_hat"] - f["n_obs"]))
    boot = {key if isinstance(key, tuple) else (key,): g for key, g in usable.groupby(by)}
    models = {key if isinstance(key, tuple) else (key,): g for key, g in per_model.groupby(by)}
    columns = ("var_within", "var_total", "df", "lower", "upper", "dark_lower", "dark_upper", "n_resamples")
    values = {c: [] for c in columns}
    for key in out[by].itertuples(index=False, name=None):
        g, r = models[key], boot.get(key)
        n_obs, n_hat = float(g["n_obs"].mean()), float(g["n_hat"].mean())
        if r is None or r["resample"].nunique() < 2:
            for c in columns:
                values[c].append(np.nan if c != "n_resamples" else 0 if r is None else r["resample"].nunique())
            continue
        m = len(g)
        log_dark = np.log(g["n_hat"].to_numpy(dtype=float) - g["n_obs"].to_numpy(dtype=float))
        res = {}
        for name, col, spread in (("n", "n_hat", g["n_hat"]), ("log", "log_dark", log_dark)):
            theta = r.pivot(index="resample", columns="imputation", values=col).to_numpy(dtype=float)
            between = float(np.var(spread, ddof=1)) if m > 1 else 0.0
            var, df = boot_impute_variance(theta, between, m)
            res[name] = (var, df, stats.t.ppf(0.5 + level / 2, df) * np.sqrt(var), between)
        var, df, half, between = res["n"]
        var_log, df_log, half_log, between_log = res["log"]
        centre = float(np.mean(log_dark))
        with np.errstate(over="ignore"):  # few resamples, few degrees of freedom: an open upper end
            dark_lower, dark_upper = np.exp(centre - half_log), np.exp(centre + half_log)
        if interval == "log-scale":
            lower, upper = n_obs + dark_lower, n_obs + dark_upper
            var_within, var_total, df = var_log - between_log / m, var_log, df_log
        else:
            lower, upper = max(n_hat - half, n_obs), n_hat + half
            var_within, var_total = var - between / m, var
        for c, v in zip(columns, (var_within, var_total, df, lower, upper, dark_lower, dark_upper)):
            values[c].append(v)
        values["n_resamples"].append(int(r["resample"].nunique()))
    for c in columns:
        out[c] = values[c]
    out["interval"] = f"{NAME} {interval}"
    return out
