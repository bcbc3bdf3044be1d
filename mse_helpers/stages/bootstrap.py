"""Parametric bootstrap per model and Rubin pooling over the 2m models (docs/method.md 7).

The stage of ``mse run`` that turns the selected models into the published
estimates:

1. for every model k of ``work/models.json`` (a completed data set and a
   model type) whose status is "ok": rebuild the data set's count table
   (:func:`engine.cells.dataset_table`), fit the model's terms, and run a
   parametric bootstrap with ``B = p.bootstrap`` replicates drawn from
   ``seeds.rng(p.seed, "bootstrap", k)`` (:func:`engine.resample.parametric_bootstrap`);
2. for every report group (per year and over all years: the total, each
   covariate level, each pair of covariate levels) the model's point estimate
   N-hat and its within variances: of N-hat and of log(N-hat - n_obs), the
   log of the dark number (:func:`engine.estimates.group_matrix`);
3. Rubin's rules over the models per group (:func:`pooling.pool_estimates`)
   with the interval of ``p.interval``; for ``profile``, step 2 also gives each
   model's profile-likelihood interval of every group
   (:func:`engine.profile.group_profile_intervals`, about 3.6 ms per group and model);
   with ``uncertainty: reselect`` the within variances come instead from
   replicates on which the model selection is repeated (:mod:`.uncertainty`),
   with ``uncertainty: boot-impute`` the variances from resamples of the input
   files on which the whole analysis is repeated (:mod:`.bootimpute`);
4. ``work/bootstrap.parquet`` (per model and group), ``results/estimates.csv``
   (per group, published) and ``results/models.csv`` (per model, published).

Why it is fast (docs/estimation.md 2): the design is built once per worker
(every completed data set has the same cells; each brings only its counts);
every replicate is a warm-started Newton refit (about 2-6 ms); its existence
is decided exactly by a null-space check of about 1 ms instead of the
engine's linear program of about 90 ms (:func:`engine.existence.mle_exists`); and the
groups are one matrix product of the replicates' stratum estimates with a 0/1
group-by-stratum matrix.

Results do not depend on the number of workers: model k always draws from its
own stream, and each model is computed the same way whichever process runs it.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import runfolder, seeds
from ..codes import YEAR, model_factors, uses_year_factor
from ..engine.cells import dataset_table
from ..engine.design import Design
from ..engine.estimates import GroupMatrix, group_matrix, n_hat_by
from ..engine.fit import fit_model
from ..engine.pooling import pool_estimates
from ..engine.profile import group_profile_intervals
from ..engine.resample import Bootstrap, parametric_bootstrap
from ..engine.status import FitStatus
from ..parallel import Workers
from . import bootimpute, uncertainty

log = logging.getLogger(__name__)

MODEL_TYPES = ("two-factor", "three-factor")
#: A model kept out of the pooling because fewer than two replicates were usable.
STATUS_TOO_FEW_REPLICATES = "too_few_bootstrap_replicates"
#: Confidence level of the published intervals (docs/method.md 7).
LEVEL = 0.95

#: Columns of ``results/estimates.csv`` (the schema is defined in :mod:`mse_helpers.runfolder`).
ESTIMATE_COLUMNS = list(runfolder.ESTIMATE_COLUMNS)
PER_MODEL_COLUMNS = [
    "model",
    "dataset",
    "type",
    "year",
    "group",
    "n_obs",
    "n_hat",
    "var_within",
    "var_within_log",
    "n_boot_ok",
    "n_boot_failed",
    "bias_boot",
]


class BootstrapInputError(ValueError):
    """An input of the bootstrap stage breaks a rule; the message names the file and entry."""


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
_DESIGN_CACHE: dict[tuple, Design] = {}


def cell_counts(persons: pd.DataFrame, design: Design, source: str = "persons") -> np.ndarray:
    """Observed-cell counts of a completed person-level file in ``design``'s cell order
    (:meth:`engine.design.Design.observed_counts`; the year is the file's ``year`` column).

    Raises
    ------
    BootstrapInputError
        A missing value, a value that is not a level (naming the data row), a row on no register.
    """
    try:
        return design.observed_counts(persons, source=source, columns={YEAR: "year"})
    except ValueError as exc:
        raise BootstrapInputError(str(exc)) from None


def _dataset_task(
    path: Path,
    jobs: list[tuple[int, dict]],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    three_factor: Sequence[str],
    seed: int,
    n_boot: int,
    profile: bool = False,
) -> list["ModelResult"]:
    """Fit and bootstrap the models of one completed data set (and, with
    ``profile``, each group's profile-likelihood interval: :func:`_profile_bounds`).

    The first data set a process sees builds the table with
    :func:`dataset_table` and the design; the others reuse the
    design (same cells) and bring only their counts (:func:`cell_counts`).
    """
    persons = runfolder.read_imputed(path)
    factors = model_factors(covariates, years)
    key = (tuple(registers), tuple(factors), tuple(int(y) for y in years), tuple(three_factor))
    design = _DESIGN_CACHE.get(key)
    if design is None:
        table = dataset_table(persons, registers, covariates, years)
        # the lattice path: refits 3x faster, numbers equal to the dense path's to about 1e-14 (docs/engine.md 3)
        design = Design(table, registers, factors, three_factor=list(three_factor) or None, lattice=True)
        _DESIGN_CACHE.clear()
        _DESIGN_CACHE[key] = design
    counts = cell_counts(persons, design, source=f"{runfolder.WORK_DIR}/{runfolder.IMPUTED_DIR}/{path.name}")
    one_year = not uses_year_factor(years)
    groups = group_matrix(
        design.strata, covariates, None if one_year else YEAR, single_year=str(years[0]) if one_year else None
    )
    out = []
    for k, mod in jobs:
        where = f"models.json model {k} (data set {mod['dataset']}, {mod['type']})"
        try:
            terms = design.canonical(tuple(mod["terms"]))
        except ValueError as exc:
            raise BootstrapInputError(f"{where}: {exc}") from None
        fit = fit_model(design, terms, counts=counts, explain=False)
        if not fit.ok:
            out.append(
                ModelResult(
                    model=k, dataset=mod["dataset"], type=mod["type"], terms=terms, status=fit.status, groups=groups
                )
            )
            continue
        expected = (mod.get("n_hat") or {}).get("total")
        if expected is not None and not np.isclose(fit.n_hat, float(expected), rtol=1e-6):
            raise BootstrapInputError(
                f"{where}: refitted N-hat {fit.n_hat:.3f} differs from the {float(expected):.3f} recorded by "
                f"model selection; {path.name} or the parameters changed after selection: re-run notebook 03"
            )
        boot = parametric_bootstrap(fit, n_boot, seeds.rng(seed, "bootstrap", k), groups)
        if YEAR in factors:
            by_year = n_hat_by(fit, YEAR)
            per_year = dict(zip(by_year[YEAR].astype(int), by_year["n_hat"]))
        else:
            per_year = {int(years[0]): fit.n_hat}
        out.append(
            ModelResult(
                model=k,
                dataset=mod["dataset"],
                type=mod["type"],
                terms=terms,
                status=fit.status,
                groups=groups,
                boot=boot,
                aic=fit.aic,
                bic=fit.bic,
                deviance=fit.deviance,
                df_resid=fit.df_resid,
                n_hat_by_year=per_year,
                n_hat_total=fit.n_hat,
                profile=_profile_bounds(fit, groups, where) if profile else None,
            )
        )
    return out


def _profile_bounds(fit, groups: GroupMatrix, where: str) -> np.ndarray:
    """Per group: the profile-likelihood bounds of N (``interval: profile``), groups x 2.

    An open upper bound is NaN in the second column; a group whose bound did
    not converge has NaN in both, with a warning naming model and group (its
    pooled interval is then not given).
    """
    out = np.full((len(groups.group), 2), np.nan)
    for i, prof in enumerate(group_profile_intervals(fit, groups.matrix, LEVEL, errors="keep")):
        if prof.message:
            log.warning("%s: no profile interval for %s %s: %s", where, groups.year[i], groups.group[i], prof.message)
            continue
        out[i] = (prof.lower, np.nan if prof.upper is None else prof.upper)
    return out


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """The refit and parametric bootstrap of one model of models.json (a worker's result).

    Attributes
    ----------
    model : int
        Position in models.json.
    dataset : int
    type : str
    terms : tuple of str
    status : FitStatus
        Of the refit on the completed data set.
    groups : GroupMatrix
        The report groups.
    boot : Bootstrap or None
        None when the refit is not ok.
    aic, bic, deviance : float
    df_resid : int
    n_hat_by_year : dict
        Year (int) -> N-hat.
    n_hat_total : float
    profile : ndarray or None
        Per group the profile-likelihood bounds of N (groups x 2; NaN upper:
        open), only for ``interval: profile``.
    """

    model: int
    dataset: int
    type: str
    terms: tuple[str, ...]
    status: FitStatus
    groups: GroupMatrix
    boot: Bootstrap | None = None
    aic: float = float("nan")
    bic: float = float("nan")
    deviance: float = float("nan")
    df_resid: int = 0
    n_hat_by_year: dict = dataclasses.field(default_factory=dict)
    n_hat_total: float = float("nan")
    profile: np.ndarray | None = None

    def to_dict(self) -> dict:
        """The row of ``results/models.csv`` (without the per-year columns: :meth:`models_row`)."""
        return {
            "dataset": self.dataset,
            "type": self.type,
            "terms": ";".join(self.terms),
            "aic": self.aic,
            "bic": self.bic,
            "deviance": self.deviance,
            "df": self.df_resid,
        }

    def models_row(self, years: Sequence[int]) -> dict:
        """The row of ``results/models.csv``: fit criteria, N-hat per year and in total."""
        row = self.to_dict()
        for y in years:
            row[f"n_hat_{y}"] = self.n_hat_by_year[int(y)]
        row["n_hat_total"] = self.n_hat_total
        return row

    def per_model_frame(self) -> pd.DataFrame:
        """The rows of ``work/bootstrap.parquet``: one per report group."""
        boot = self.boot
        frame = self.groups.frame()
        frame.insert(0, "type", self.type)
        frame.insert(0, "dataset", self.dataset)
        frame.insert(0, "model", self.model)
        frame["n_obs"] = boot.n_obs
        frame["n_hat"] = boot.n_hat
        frame["var_within"] = boot.var_within
        frame["var_within_log"] = boot.var_within_log
        frame["n_boot_ok"] = boot.n_ok
        frame["n_boot_failed"] = boot.n_failed
        frame["bias_boot"] = boot.bias  # evaluated as a correction in scripts/coverage.py, not applied
        if self.profile is None:
            return frame[PER_MODEL_COLUMNS]
        frame["profile_lower"], frame["profile_upper"] = self.profile[:, 0], self.profile[:, 1]
        return frame[PER_MODEL_COLUMNS + ["profile_lower", "profile_upper"]]


# --- the stage ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
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
        ``status`` ("ok", or the code of why the model was not pooled: a
        :class:`~mse_helpers.engine.status.FitStatus` value or
        :data:`STATUS_TOO_FEW_REPLICATES`), ``reason`` (the sentence), ``n_boot``,
        ``n_boot_ok``, ``n_boot_failed``, ``failed_statuses`` (e.g.
        ``mle_does_not_exist:3``), ``n_lp_checks``.
    n_models_skipped : int
        Models of models.json not pooled (status not ok there, failed refit,
        or fewer than two usable replicates).
    reselection : DataFrame or None
        With ``uncertainty: reselect``: one row per pooled model of the
        re-selection bootstrap (:func:`uncertainty.failed_frame`); else None.
    resampling : BootImputeResult or None
        With ``uncertainty: boot-impute``: the analyses of every resample
        (:func:`bootimpute.run_resamples`); else None.
    """

    estimates: pd.DataFrame
    models: pd.DataFrame
    per_model: pd.DataFrame
    failed: pd.DataFrame
    n_models_skipped: int
    reselection: pd.DataFrame | None = None
    resampling: "bootimpute.BootImputeResult | None" = None


def _failed_row(k: int, mod: dict, status: str, reason: str, n_boot: int, boot: Bootstrap | None) -> dict:
    statuses = ";".join(f"{s}:{n}" for s, n in sorted(boot.failed_status.items())) if boot else ""
    return {
        "model": k,
        "dataset": mod["dataset"],
        "type": mod["type"],
        "status": str(status),
        "reason": reason,
        "n_boot": n_boot if boot else 0,
        "n_boot_ok": boot.n_ok if boot else 0,
        "n_boot_failed": boot.n_failed if boot else 0,
        "failed_statuses": statuses,
        "n_lp_checks": boot.n_lp_checks if boot else 0,
    }


def run_stage(p, work_dir: Path, results_dir: Path) -> BootstrapResult:
    """Bootstrap and pooling stage of ``mse run`` (docs/method.md 7).

    Parameters
    ----------
    p : Params
        Uses registers, covariates, bootstrap, interval, uncertainty,
        reselect_replicates, seed, n_jobs; with ``uncertainty: boot-impute``
        also the inputs and every parameter of notebooks 01-03, resamples and
        resample_imputations.
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
    summary = runfolder.read_prep_summary(work_dir)
    years = runfolder.analysed_years(summary)
    jobs: dict[int, list[tuple[int, dict]]] = {}
    failed_rows: dict[int, dict] = {}
    for k, mod in enumerate(models):
        if mod["status"] != FitStatus.OK:
            failed_rows[k] = _failed_row(
                k, mod, mod["status"], f"not used: status {mod['status']} in models.json", 0, None
            )
            continue
        jobs.setdefault(mod["dataset"], []).append((k, mod))
    datasets = sorted(jobs)
    files = dict(zip(datasets, runfolder.imputed_files(work_dir, datasets, detail="a data set of models.json")))
    # one design for every data set: it holds every three-factor term of any model
    three = tuple(sorted({t for js in jobs.values() for _, mod in js for t in mod["terms"] if t.count(":") >= 2}))
    args = [
        (files[i], jobs[i], tuple(p.registers), tuple(p.covariates), years, three, p.seed, p.bootstrap)
        + ((True,) if p.interval == "profile" else ())
        for i in sorted(jobs)
    ]
    done = Workers.from_params(p).map(_dataset_task, args)
    results: list[ModelResult] = sorted((r for rs in done for r in rs), key=lambda r: r.model)
    pooled = []
    for res in results:
        mod = models[res.model]
        boot = res.boot
        if boot is None:
            status, reason = res.status, f"not used: refit status {res.status}"
        elif boot.n_ok < 2:
            status = STATUS_TOO_FEW_REPLICATES
            reason = f"not used: {STATUS_TOO_FEW_REPLICATES} ({boot.n_ok} of {boot.n_boot})"
        else:
            status, reason = FitStatus.OK, ""
            pooled.append(res)
        failed_rows[res.model] = _failed_row(res.model, mod, status, reason, p.bootstrap, boot)
    failed = pd.DataFrame([failed_rows[k] for k in sorted(failed_rows)])
    if len(pooled) < 2:
        raise ValueError(
            f"bootstrap: {len(pooled)} usable model(s) of {len(models)} in models.json; "
            f"Rubin's rules need at least two (see the statuses: {failed['status'].tolist()})"
        )
    per_model = pd.concat([r.per_model_frame() for r in pooled], ignore_index=True)
    reselection = resampling = None
    if p.uncertainty == uncertainty.RESELECT:  # within variances from re-selected replicates (docs/estimation.md 6)
        resel = uncertainty.run_reselection(p, work_dir, [(r.model, models[r.model]) for r in pooled], years)
        reselection = uncertainty.failed_frame(resel)
        estimates = uncertainty.pool_reselected(
            uncertainty.reselect_per_model(resel, per_model), ["year", "group"], interval=p.interval, level=LEVEL
        )
    elif p.uncertainty == uncertainty.BOOT_IMPUTE:  # the whole analysis on resampled inputs (docs/estimation.md 6)
        resampling = bootimpute.run_resamples(
            p,
            years,
            summary.get("reference_years"),
            n_resamples=p.resamples,
            n_imputations=p.resample_imputations,
            scratch=work_dir,  # person-level files stay in the run's private work folder
        )
        if resampling.n_usable < 2:
            raise ValueError(
                f"uncertainty boot-impute: {resampling.n_usable} usable resample(s) of {p.resamples} (left out: "
                f"{resampling.failed}); the interval needs at least two: raise the parameter resamples"
            )
        estimates = bootimpute.pool_boot_impute(
            per_model, resampling, ["year", "group"], interval=p.interval, level=LEVEL
        )
    else:
        estimates = pool_estimates(per_model, ["year", "group"], interval=p.interval, level=LEVEL)
    # publication order: the groups as built (total, covariates, pairs), years then "all"
    order = per_model.drop_duplicates(["year", "group"])[["year", "group"]]
    order = order.assign(_y=(order["year"] == "all"), _pos=np.arange(len(order)))
    estimates = (
        estimates.merge(order, on=["year", "group"], how="left")
        .sort_values(["_y", "year", "_pos"], kind="stable")[ESTIMATE_COLUMNS]
        .reset_index(drop=True)
    )
    models_frame = pd.DataFrame([r.models_row(years) for r in pooled])
    runfolder.write_bootstrap(work_dir, per_model)
    runfolder.write_results(results_dir, estimates, models_frame)
    log.info(
        "bootstrap: %d models pooled (%d replicates each), %d not used",
        len(pooled),
        p.bootstrap,
        len(models) - len(pooled),
    )
    return BootstrapResult(
        estimates=estimates,
        models=models_frame,
        per_model=per_model,
        failed=failed,
        n_models_skipped=int((failed["status"] != FitStatus.OK).sum()),
        reselection=reselection,
        resampling=resampling,
    )
