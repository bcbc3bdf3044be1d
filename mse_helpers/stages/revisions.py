"""Revisions: this run's estimates beside a previous run's, and why they changed (docs/report.md).

When a run has a previous run (parameter ``previous_run``), notebook 04 compares,
per year and report group present in both runs, the previous and the new
pooled estimate. The change is split in two steps that add up exactly:

1. **new data** (the previous run's models on this run's data): the terms of
   the previous run's selected models (both model types of every completed data
   set, from its ``work/models.json``) are fitted, pinned, on this run's
   completed data sets, and their point estimates pooled as usual (the mean over
   the models, :func:`engine.pooling.pool_estimates`). The difference to the
   previous estimate is what the new data (new year, re-imputed records,
   refitted coefficients) did with the models unchanged;
2. **re-selection** (the rest): this run's estimate minus the pinned one, what
   selecting the models anew on the new data did.

Data set k of this run gets the models of the previous run's data set k; when
the previous run has fewer data sets, data set k gets those of data set
``k mod m_previous`` (said in the notes). A pinned model whose MLE does not
exist on this run's data is left out of step 1 and counted in the notes.
With ``models_from`` = the previous run, this run's models are the pinned ones
and the re-selection part is zero (the same fits, the same design).

Writes ``results/revisions.csv`` (:data:`runfolder.REVISION_COLUMNS`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import runfolder
from ..codes import YEAR, model_factors, uses_year_factor
from ..engine.cells import dataset_table
from ..engine.design import Design
from ..engine.estimates import group_matrix
from ..engine.fit import fit_model
from ..engine.status import FitStatus
from ..parallel import Workers
from .bootstrap import cell_counts

log = logging.getLogger(__name__)

#: Columns of the pinned refits, one row per model (shown in the notes of the page).
PINNED_COLUMNS = ["model", "dataset", "from_dataset", "type", "terms", "status"]


@dataclasses.dataclass(frozen=True)
class PinnedRefit:
    """The previous run's models fitted on this run's completed data sets (step 1 of the split).

    Attributes
    ----------
    estimates : DataFrame
        ``year``, ``group``, ``n_hat_pinned`` (mean over the usable models), ``n_models``.
    models : DataFrame
        :data:`PINNED_COLUMNS`: per pinned model this run's data set, the previous
        run's data set it comes from, its type, terms and fit status here.
    """

    estimates: pd.DataFrame
    models: pd.DataFrame

    @property
    def n_not_usable(self) -> int:
        """Pinned models without a usable fit on this run's data."""
        return int((self.models["status"] != str(FitStatus.OK)).sum())


@dataclasses.dataclass(frozen=True)
class RevisionResult:
    """The comparison with a previous run (what the revision section shows).

    Attributes
    ----------
    previous_run : str
        The previous run folder's name (e.g. ``2026-12-03``).
    previous_dir : Path
    previous_years, years : list of int
        The analysed years of the previous run and of this one.
    table : DataFrame
        ``results/revisions.csv``: :data:`runfolder.REVISION_COLUMNS`, one row per
        year and group of both runs (single years; ``all`` differs in meaning
        when the years differ and is left out).
    pinned : PinnedRefit or None
        None when the split could not be made (see ``notes``).
    notes : tuple of str
        Plain sentences on how the comparison was made (mapping of data sets,
        pinned models left out, why a split is missing).
    """

    previous_run: str
    previous_dir: Path
    previous_years: list[int]
    years: list[int]
    table: pd.DataFrame
    pinned: PinnedRefit | None
    notes: tuple[str, ...]


# --- the comparison (pure) --------------------------------------------------------------


def _yearly(est: pd.DataFrame) -> pd.DataFrame:
    est = est.assign(year=est["year"].astype(str))
    return est[est["year"].str.fullmatch(r"\d{4}")]


def compare(
    previous: pd.DataFrame, new: pd.DataFrame, pinned: pd.DataFrame | None = None, previous_run: str = ""
) -> pd.DataFrame:
    """The revision table: per single year and group in both estimate tables, previous vs new.

    Parameters
    ----------
    previous, new : DataFrame
        ``results/estimates.csv`` of the previous run and of this run.
    pinned : DataFrame, optional
        ``year``, ``group``, ``n_hat_pinned`` (:func:`pool_pinned`); without it
        the two cause columns are NaN.
    previous_run : str
        Written into the ``previous_run`` column.

    Returns
    -------
    DataFrame
        :data:`runfolder.REVISION_COLUMNS`, in this run's row order. ``change`` =
        new - previous (persons), ``change_percent`` = 100 * change / previous,
        ``in_previous_interval``: previous lower <= new <= previous upper,
        ``change_new_data`` = pinned - previous, ``change_reselection`` =
        new - pinned (the two add up to ``change``).
    """
    keep = ["year", "group", "n_obs", "n_hat", "lower", "upper"]
    old = _yearly(previous)[keep].rename(columns={c: f"{c}_previous" for c in keep[2:]})
    cur = _yearly(new)[keep].rename(columns={c: f"{c}_new" for c in keep[2:]})
    out = cur.merge(old, on=["year", "group"], how="inner")
    out.insert(2, "previous_run", previous_run)
    out["change"] = out["n_hat_new"] - out["n_hat_previous"]
    out["change_percent"] = 100.0 * out["change"] / out["n_hat_previous"]
    out["in_previous_interval"] = (out["n_hat_new"] >= out["lower_previous"]) & (
        out["n_hat_new"] <= out["upper_previous"]
    )
    if pinned is not None:
        pin = pinned.assign(year=pinned["year"].astype(str))[["year", "group", "n_hat_pinned"]]
        out = out.merge(pin, on=["year", "group"], how="left")
    else:
        out["n_hat_pinned"] = np.nan
    out["change_new_data"] = out["n_hat_pinned"] - out["n_hat_previous"]
    out["change_reselection"] = out["n_hat_new"] - out["n_hat_pinned"]
    return out[list(runfolder.REVISION_COLUMNS)].reset_index(drop=True)


def dataset_mapping(m: int, m_previous: int) -> list[int]:
    """The previous run's data set whose models data set k of this run gets: k, or k mod m_previous."""
    if m_previous < 1:
        raise ValueError("the previous run has no completed data sets in its models.json")
    return [k if k < m_previous else k % m_previous for k in range(m)]


def pinned_jobs(previous_models: Sequence[dict], m: int) -> tuple[dict[int, list[tuple[int, int, str, tuple]]], list]:
    """The pinned models per data set of this run, from the previous run's models.json.

    Returns
    -------
    jobs : dict
        This run's data set -> list of (model index, previous data set, type, terms);
        only the previous run's models with status ok (the ones it used).
    skipped : list of dict
        The previous run's models it did not use (status not ok).
    """
    by_dataset: dict[int, list[dict]] = {}
    skipped = []
    for mod in previous_models:
        if str(mod.get("status", FitStatus.OK)) != str(FitStatus.OK):
            skipped.append(mod)
            continue
        by_dataset.setdefault(int(mod["dataset"]), []).append(mod)
    m_prev = max(by_dataset) + 1 if by_dataset else 0
    mapping = dataset_mapping(m, m_prev)
    jobs: dict[int, list] = {}
    index = 0
    for k, src in enumerate(mapping):
        for mod in by_dataset.get(src, []):
            jobs.setdefault(k, []).append((index, src, mod["type"], tuple(mod["terms"])))
            index += 1
    return jobs, skipped


def _pinned_task(
    path: Path,
    dataset: int,
    jobs: list[tuple[int, int, str, tuple]],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    three_factor: Sequence[str],
) -> tuple[list[dict], list[pd.DataFrame]]:
    """Fit the pinned models of one completed data set; their group point estimates.

    The table, design, counts and groups are built exactly as the bootstrap
    stage builds them (:func:`stages.bootstrap._dataset_task`), so that the same
    terms give the same N-hat to the last digit.
    """
    persons = runfolder.read_imputed(path)
    factors = model_factors(covariates, years)
    table = dataset_table(persons, registers, covariates, years)
    design = Design(table, registers, factors, three_factor=list(three_factor) or None)
    counts = cell_counts(persons, design, source=f"{runfolder.WORK_DIR}/{runfolder.IMPUTED_DIR}/{path.name}")
    one_year = not uses_year_factor(years)
    groups = group_matrix(
        design.strata, covariates, None if one_year else YEAR, single_year=str(years[0]) if one_year else None
    )
    rows, frames = [], []
    for k, src, model_type, terms in jobs:
        status, message = FitStatus.OK, ""
        try:
            terms = design.canonical(tuple(terms))
        except ValueError as exc:
            status, message = "not_in_this_design", str(exc)
        if status == FitStatus.OK:
            fit = fit_model(design, terms, counts=counts, explain=False)
            status, message = fit.status, fit.message
        rows.append(
            {
                "model": k,
                "dataset": dataset,
                "from_dataset": src,
                "type": model_type,
                "terms": ";".join(terms),
                "status": str(status),
                "reason": message,
            }
        )
        if status != FitStatus.OK:
            continue
        frame = groups.frame()
        n_obs = groups.sums(design.n_obs_by_stratum(fit.y))
        frame["model"] = k
        frame["n_hat"] = n_obs + groups.sums(fit.m0)
        frames.append(frame)
    return rows, frames


def pool_pinned(per_model: pd.DataFrame) -> pd.DataFrame:
    """Pinned point estimates pooled as the published ones: the mean over the models per year and group."""
    g = per_model.groupby(["year", "group"], sort=False)["n_hat"]
    return pd.DataFrame({"n_hat_pinned": g.mean(), "n_models": g.size()}).reset_index()


def refit_pinned(
    files: Sequence[Path],
    previous_models: Sequence[dict],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    workers: Workers | None = None,
) -> tuple[PinnedRefit, list[str]]:
    """Step 1 of the split: the previous run's models fitted on this run's completed data sets.

    Parameters
    ----------
    files : sequence of Path
        This run's completed data sets (data set k at position k).
    previous_models : sequence of dict
        The previous run's models.json objects.
    registers, covariates, years
        This run's.
    workers : Workers, optional

    Returns
    -------
    PinnedRefit
    notes : list of str
        Sentences for the page (mapping of data sets, models left out).
    """
    jobs, skipped = pinned_jobs(previous_models, len(files))
    three = tuple(sorted({t for js in jobs.values() for *_, terms in js for t in terms if t.count(":") >= 2}))
    args = [(files[k], k, jobs[k], tuple(registers), tuple(covariates), tuple(years), three) for k in sorted(jobs)]
    done = (workers or Workers(n_jobs=1)).map(_pinned_task, args)
    rows = [r for rs, _ in done for r in rs]
    frames = [f for _, fs in done for f in fs]
    models = pd.DataFrame(rows, columns=PINNED_COLUMNS + ["reason"])
    notes = []
    m_prev = len({int(mod["dataset"]) for mod in previous_models})
    if m_prev < len(files):
        notes.append(
            f"The previous run has {m_prev} completed data sets, this run {len(files)}: data set k of this run "
            f"was fitted with the models of the previous run's data set k mod {m_prev}."
        )
    elif m_prev > len(files):
        notes.append(
            f"The previous run has {m_prev} completed data sets, this run {len(files)}: the models of its first "
            f"{len(files)} were used."
        )
    if skipped:
        notes.append(f"{len(skipped)} model(s) the previous run did not use (no MLE there) are not used here either.")
    bad = models[models["status"] != str(FitStatus.OK)]
    if len(bad):
        notes.append(
            f"{len(bad)} of the previous run's {len(models)} models have no usable fit on this run's data "
            f"({', '.join(sorted(set(bad['status'])))}); the estimate with the previous models averages the "
            f"other {len(models) - len(bad)}."
        )
    if not frames:
        raise ValueError("none of the previous run's models can be fitted on this run's data")
    estimates = pool_pinned(pd.concat(frames, ignore_index=True))
    return PinnedRefit(estimates=estimates, models=models), notes


# --- the stage ----------------------------------------------------------------------------


def _years_of(est: pd.DataFrame) -> list[int]:
    return sorted({int(y) for y in _yearly(est)["year"]})


def run_stage(
    p, work_dir: Path, results_dir: Path, previous_dir: Path, estimates: pd.DataFrame | None = None
) -> RevisionResult:
    """Revision stage of notebook 04: compare with ``previous_dir`` and write ``results/revisions.csv``.

    Parameters
    ----------
    p : Params
        Uses m, registers, covariates and the workers' parameters.
    work_dir : Path
        This run's work folder (completed data sets, prep_summary.json).
    results_dir : Path
        Where this run's estimates.csv is and revisions.csv goes.
    previous_dir : Path
        The previous run folder (resolved, e.g. by :func:`runner.runindex.resolve_previous_run`).
    estimates : DataFrame, optional
        This run's estimates (default: read from ``results_dir``).

    Returns
    -------
    RevisionResult

    Raises
    ------
    runfolder.RunFolderError
        The previous run has no results/estimates.csv.
    """
    work_dir, results_dir, previous_dir = Path(work_dir), Path(results_dir), Path(previous_dir)
    prev_path = runfolder.run_estimates_path(previous_dir)
    if not prev_path.is_file():
        raise runfolder.RunFolderError(f"previous run {previous_dir}: no {runfolder.RESULTS_DIR}/estimates.csv")
    previous = pd.read_csv(prev_path, dtype={"year": str})
    new = (
        estimates if estimates is not None else pd.read_csv(results_dir / runfolder.ESTIMATES_FILE, dtype={"year": str})
    )
    years = runfolder.analysed_years(runfolder.read_prep_summary(work_dir))
    notes: list[str] = []
    pinned: PinnedRefit | None = None
    try:
        previous_models = runfolder.read_run_models(previous_dir)
        files = runfolder.imputed_files(work_dir, range(p.m), detail=f"m = {p.m}")
        pinned, found = refit_pinned(
            files, previous_models, p.registers, p.covariates, years, workers=Workers.from_params(p)
        )
        notes += found
    except (runfolder.RunFolderError, ValueError) as exc:
        notes.append(f"The change could not be split into new data and re-selection: {exc}.")
    table = compare(previous, new, pinned.estimates if pinned is not None else None, previous_dir.name)
    runfolder.write_revisions(results_dir, table)
    log.info("revisions: %d rows against %s", len(table), previous_dir.name)
    return RevisionResult(
        previous_run=previous_dir.name,
        previous_dir=previous_dir,
        previous_years=_years_of(previous),
        years=list(years),
        table=table,
        pinned=pinned,
        notes=tuple(notes),
    )
