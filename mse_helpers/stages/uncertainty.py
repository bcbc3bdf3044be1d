"""Intervals that include model choice: parameter ``uncertainty`` (docs/estimation.md 6).

``uncertainty: study`` is the study's method: a parametric bootstrap of each
*selected* model and Rubin's rules over the 2m models (:mod:`.bootstrap`).
Model choice then enters the interval only through the spread between the
completed data sets.

``uncertainty: reselect`` (this module) repeats the model selection in every
bootstrap replicate:

1. for every pooled model k (a completed data set and a model type), draw
   ``reselect_replicates`` Poisson replicate tables from the fitted selected
   model, each from its own stream ``seeds.rng(seed, "bootstrap", k, RESELECT_STREAM, b)``;
2. on every replicate re-run that model type's selection exactly as the
   study's selection does on a completed data set (:func:`full_search`):
   backward AIC from all two-factor terms (its start repaired until the MLE
   exists), then for the three-factor type forward BIC over the screened
   three-factor terms. With the bounded backward search of the engine this
   costs about 0.2 s per replicate, less than the *local* search
   (:func:`reselect_two_factor`, :func:`reselect_three_factor`: from the
   selected model both ways), which is kept for ``scripts/reselect_check.py``
   and stays near the selected model (it understates model uncertainty);
3. estimate every report group with the re-selected model: the replicate's
   dark number (N* - n_obs*) is added to the data set's n_obs, so a replicate
   estimate is never below the number registered;
4. Rubin's rules over the models with model k's within variances taken from
   its re-selected replicates (:func:`reselect_per_model`: the variance of
   N* and of log(dark*)) instead of the fixed-model bootstrap's, and the
   run's ``interval``, ``log-scale`` (what the default ``interval: auto``
   gives here: :func:`resolve_interval`) or ``rubin-t``
   (:func:`pool_reselected`; ``profile`` is refused). The interval then holds
   sampling (the Poisson draws), imputation and linking (the between
   variance: the completed data sets differ) and model choice (the selection
   is repeated). W-bar averages over the 2m models, so few replicates per
   model suffice.

A replicate whose selected model has no MLE starts from the model the
selection's own repair reaches (:func:`selection.existing_start`); a replicate
whose search fails is counted in ``failed_status``, never dropped silently.
The point estimate, n_obs and the between variance stay those of the study's
method (its bootstrap still runs for ``work/bootstrap.parquet``); the within
and total variances, df and the interval columns are the re-selection's, and
a ``rubin-t`` lower end is not let below n_obs.

Results do not depend on the number of workers: every replicate has its own
stream and is computed the same way in any process.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import runfolder, seeds
from ..codes import YEAR, model_factors, uses_year_factor
from ..engine.cells import dataset_table
from ..engine.design import Design
from ..engine.estimates import GroupMatrix, group_matrix
from ..engine.fit import Fit, fit_model
from ..engine.pooling import INTERVALS, pool_estimates
from ..engine.resample import refit_replicate
from ..engine.status import FitStatus
from ..parallel import Workers
from . import selection

log = logging.getLogger(__name__)

STUDY, RESELECT = "study", "reselect"
#: Bootstrap-then-impute: the input data resampled and the whole analysis repeated (:mod:`.bootimpute`).
BOOT_IMPUTE = "boot-impute"
#: Values of the parameter ``uncertainty``.
UNCERTAINTY = (STUDY, RESELECT, BOOT_IMPUTE)
#: Extra index of the replicate streams: ``seeds.rng(seed, "bootstrap", k, RESELECT_STREAM, b)``
#: differs from the study bootstrap's ``seeds.rng(seed, "bootstrap", k)``.
RESELECT_STREAM = 1
#: Rounds of (backward, forward) of the local two-factor search; each round
#: lowers the AIC strictly, so this is a guard, never reached in practice.
MAX_ROUNDS = 25
#: Status of a replicate whose search raised (no starting model with an MLE).
NO_START = "no_starting_model"
#: Values of ``interval`` that ``reselect`` pools (the replicates give variances, no profile likelihood).
POOLED_INTERVALS = ("rubin-t", "log-scale")

# --- the interval a run uses: `interval: auto` --------------------------------------------

#: ``interval: auto``: the interval is chosen for the run's ``uncertainty`` (:func:`resolve_interval`).
AUTO_INTERVAL = "auto"
#: Values of the parameter ``interval``: ``auto`` and the engine's intervals.
INTERVAL_CHOICES = (AUTO_INTERVAL, *INTERVALS)
#: What ``interval: auto`` resolves to, per ``uncertainty`` (the reasons: :func:`resolve_interval`).
AUTO_CHOICE = {STUDY: "rubin-t", RESELECT: "log-scale", BOOT_IMPUTE: "log-scale"}

#: Coverage found by the coverage study (docs/estimation.md 6, "Coverage on two generators" and
#: "Bootstrap-then-impute"): the share of all 1,800 yearly groups (50 populations x 4 years x 9
#: groups) whose 95% interval contained the truth, in percent, on the project's simulator and on the
#: second generator, keyed by (uncertainty, interval); ``boot-impute`` with 10 resamples.
#: ``profile`` was not part of that study, so it has no entry.
COVERAGE: dict[tuple[str, str], tuple[int, int]] = {
    (STUDY, "rubin-t"): (82, 67),
    (STUDY, "log-scale"): (81, 73),
    (RESELECT, "rubin-t"): (85, 69),
    (RESELECT, "log-scale"): (88, 77),
    (BOOT_IMPUTE, "rubin-t"): (94, 76),
    (BOOT_IMPUTE, "log-scale"): (96, 80),
}
#: ``boot-impute`` with the default 40 resamples, checked on the first 10 populations of each generator
#: (360 yearly groups each; docs/estimation.md 6, "Bootstrap-then-impute"): the coverage there, in percent.
COVERAGE_DEFAULT_RESAMPLES: dict[tuple[str, str], tuple[int, int]] = {
    (BOOT_IMPUTE, "rubin-t"): (93, 80),
    (BOOT_IMPUTE, "log-scale"): (89, 82),
}
#: The coverage target of issue 15 over all yearly groups, in percent (docs/estimation.md 6).
COVERAGE_TARGET = 92


def resolve_interval(interval: str, uncertainty: str) -> str:
    """The interval a run uses: ``interval: auto`` resolved for ``uncertainty``, any other value as given.

    ``auto`` is the coverage study's choice (docs/estimation.md 6, "The rule
    for the default"): under ``uncertainty: boot-impute`` and ``reselect`` the
    ``log-scale`` interval, which covered more yearly groups than the method's
    ``rubin-t`` on *both* generators (96% and 80% against 94% and 76%; 88% and
    77% against 85% and 69%; :data:`COVERAGE`); under ``uncertainty: study`` the study's
    own ``rubin-t``, so that ``study`` with the defaults reproduces the
    study's ``estimates.csv`` byte for byte. Explicit values are not changed
    here (``reselect`` with ``profile`` is refused by the parameter check).

    Parameters
    ----------
    interval : str
        The parameter as given: one of :data:`INTERVAL_CHOICES`.
    uncertainty : str
        One of :data:`UNCERTAINTY`.

    Returns
    -------
    str
        One of ``engine.pooling.INTERVALS``.

    Raises
    ------
    ValueError
        An unknown ``interval`` or ``uncertainty``, naming the parameter.
    """
    if uncertainty not in UNCERTAINTY:
        raise ValueError(f"parameter uncertainty: must be one of {', '.join(UNCERTAINTY)}, got {uncertainty!r}")
    if interval not in INTERVAL_CHOICES:
        raise ValueError(f"parameter interval: must be one of {', '.join(INTERVAL_CHOICES)}, got {interval!r}")
    return AUTO_CHOICE[uncertainty] if interval == AUTO_INTERVAL else interval


# --- the searches on one replicate ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reselected:
    """The model re-selected on one replicate.

    Attributes
    ----------
    fit : Fit
        The re-selected model fitted to the replicate.
    rounds : int
        Backward/forward rounds of the two-factor search.
    repaired : bool
        Whether the selected model had no MLE on the replicate (the local
        search then repairs its start with :func:`selection.existing_start`;
        the full search always starts from all two-factor terms).
    """

    fit: Fit
    rounds: int
    repaired: bool


def two_factor_terms(design: Design) -> tuple[str, ...]:
    """All two-factor terms of the design (the study's starting model, ``"all2"``)."""
    return tuple(t for t in design.candidate_terms if t.count(":") == 1)


def reselect_two_factor(
    design: Design, start: Sequence[str], counts: np.ndarray, *, start_exists: bool, max_rounds: int = MAX_ROUNDS
) -> Reselected:
    """Local two-factor search by AIC, both ways, from ``start`` (docs/estimation.md 6).

    Backward AIC from ``start`` (:func:`selection.backward`), then forward AIC
    over all two-factor terms (:func:`selection.forward`), repeated until a
    forward step adds nothing. The study searches backward from all two-factor
    terms; starting at the selected model and allowing additions reaches the
    same local optimum when the replicate is close to the data, at a fraction
    of the cost (``scripts/reselect_check.py`` compares the two).

    Parameters
    ----------
    design : Design
    start : sequence of str
        Two-factor terms of the selected model.
    counts : ndarray
        Replicate counts of the observed cells.
    start_exists : bool
        Whether the MLE of ``start`` exists on ``counts`` (else it is repaired
        first, as the study's selection does with its start).
    max_rounds : int

    Returns
    -------
    Reselected
    """
    cands = two_factor_terms(design)
    back = selection.backward(design, tuple(start), counts=counts, criterion="aic", repair_start=not start_exists)
    current = back.fit
    rounds = 1
    while rounds < max_rounds:
        fwd = selection.forward(design, current, cands, counts=counts, criterion="aic")
        if not fwd.path:
            break
        rounds += 1
        # the forward model's MLE was checked when its terms were added: no repair needed
        current = selection.backward(design, fwd.fit.terms, counts=counts, criterion="aic", repair_start=False).fit
    return Reselected(current, rounds, not start_exists)


def reselect_three_factor(
    design: Design,
    start: Sequence[str],
    counts: np.ndarray,
    candidates: Sequence[str],
    *,
    start_exists: bool,
) -> Reselected:
    """The three-factor model type on a replicate: forward BIC over ``candidates`` from the
    locally re-selected two-factor model (the study's search, from a re-selected base).

    Parameters
    ----------
    design : Design
        Must hold the candidate three-factor terms.
    start : sequence of str
        Terms of the selected three-factor model (its two-factor terms start the search).
    counts : ndarray
    candidates : sequence of str
        The screened three-factor terms (``work/screening.csv``, kept).
    start_exists : bool
        Whether the selected three-factor model's MLE exists on ``counts``
        (then its two-factor part has one too).
    """
    two = reselect_two_factor(design, [t for t in start if t.count(":") == 1], counts, start_exists=start_exists)
    if not candidates:
        return two
    three = selection.forward(design, two.fit, tuple(candidates), counts=counts, criterion="bic")
    return Reselected(three.fit, two.rounds, two.repaired)


def full_search(design: Design, model_type: str, counts: np.ndarray, candidates: Sequence[str]) -> Fit:
    """The study's full selection of one model type on one table (backward AIC from all
    two-factor terms, then forward BIC for the three-factor type), for comparisons."""
    two = selection.backward(design, "all2", counts=counts, criterion="aic")
    if model_type == selection.TWO_FACTOR or not candidates:
        return two.fit
    return selection.forward(design, two.fit, tuple(candidates), counts=counts, criterion="bic").fit


def reselect(
    design: Design, fit: Fit, model_type: str, counts: np.ndarray, candidates: Sequence[str]
) -> tuple[Reselected | None, str]:
    """Re-select model ``fit``'s type on replicate ``counts``.

    Returns
    -------
    reselected : Reselected or None
        None when the search failed.
    status : str
        ``"ok"``, :data:`NO_START` or the fit status of a failed search.
    """
    # the exact existence check of the bootstrap (about 1 ms): counted as "repaired" when the
    # selected model itself has no MLE on the replicate
    _, status, _ = refit_replicate(fit, counts)
    exists = status == FitStatus.OK
    try:
        res = Reselected(full_search(design, model_type, counts, candidates), 1, not exists)
    except RuntimeError:  # existing_start found no model with an MLE
        return None, NO_START
    if not res.fit.ok:
        return None, str(res.fit.status)
    return res, str(FitStatus.OK)


# --- one model ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelReselection:
    """The re-selection bootstrap of one pooled model.

    Attributes
    ----------
    model : int
        Position in models.json.
    dataset : int
    type : str
    terms : tuple of str
        The selected model.
    groups : GroupMatrix
    n_obs, n_hat : ndarray
        Per group: the data set's observed persons and the selected model's N-hat.
    dark : ndarray
        Usable replicates x groups: the re-selected model's dark number N* - n_obs*.
    n_rep : int
        Replicates drawn.
    failed_status : dict
        Status -> replicates whose search failed (left out, counted).
    n_changed : int
        Usable replicates whose re-selected terms differ from the selected model's.
    n_repaired : int
        Replicates on which the selected model had no MLE (start repaired).
    seconds : float
        Time of this model's replicates (not part of the results' equality).
    """

    model: int
    dataset: int
    type: str
    terms: tuple[str, ...]
    groups: GroupMatrix
    n_obs: np.ndarray
    n_hat: np.ndarray
    dark: np.ndarray
    n_rep: int
    failed_status: dict
    n_changed: int
    n_repaired: int
    seconds: float = dataclasses.field(default=0.0, compare=False)

    @property
    def n_failed(self) -> int:
        """Replicates left out."""
        return int(sum(self.failed_status.values()))

    @property
    def n_ok(self) -> int:
        """Usable replicates."""
        return self.n_rep - self.n_failed


def reselect_model(
    design: Design,
    fit: Fit,
    *,
    model: int,
    dataset: int,
    model_type: str,
    groups: GroupMatrix,
    candidates: Sequence[str],
    n_rep: int,
    seed: int,
) -> ModelReselection:
    """Draw ``n_rep`` replicates from ``fit`` and re-select the model type on each.

    Parameters
    ----------
    design : Design
        Holds the candidate three-factor terms.
    fit : Fit
        The selected model fitted to its completed data set (status ok).
    model, dataset : int
        Position in models.json (names the streams) and data set.
    model_type : str
    groups : GroupMatrix
    candidates : sequence of str
    n_rep : int
    seed : int
        The master seed.

    Returns
    -------
    ModelReselection
    """
    t0 = time.perf_counter()
    dark = []
    failed: dict[str, int] = {}
    n_changed = n_repaired = 0
    for b in range(n_rep):
        rng = seeds.rng(seed, "bootstrap", model, RESELECT_STREAM, b)
        y = rng.poisson(fit.fitted).astype(float)
        res, status = reselect(design, fit, model_type, y, candidates)
        if res is None:
            failed[status] = failed.get(status, 0) + 1
            continue
        n_repaired += res.repaired
        n_changed += set(res.fit.terms) != set(fit.terms)
        dark.append(groups.sums(res.fit.m0))
    n_obs = groups.sums(design.n_obs_by_stratum(fit.y))
    return ModelReselection(
        model=model,
        dataset=dataset,
        type=model_type,
        terms=tuple(fit.terms),
        groups=groups,
        n_obs=n_obs,
        n_hat=n_obs + groups.sums(fit.m0),
        dark=np.array(dark).reshape(len(dark), len(groups.group)),
        n_rep=n_rep,
        failed_status=failed,
        n_changed=int(n_changed),
        n_repaired=int(n_repaired),
        seconds=time.perf_counter() - t0,
    )


# --- one data set (a worker's task) and the stage's step --------------------------------


def dataset_design(
    persons: pd.DataFrame,
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    three_factor: Sequence[str] = (),
) -> tuple[Design, np.ndarray, GroupMatrix]:
    """The design, observed-cell counts and report groups of one completed data set.

    Parameters
    ----------
    persons : DataFrame
        A completed person-level file (``work/imputed/imp_*.parquet``).
    registers, covariates : sequence of str
    years : sequence of int
        The analysed years.
    three_factor : sequence of str
        Three-factor terms the design must hold (candidates and selected terms).

    Returns
    -------
    design : Design
    counts : ndarray
        Observed-cell counts in the design's order.
    groups : GroupMatrix
        Every report group, per year and over all years.
    """
    factors = model_factors(covariates, years)
    table = dataset_table(persons, registers, covariates, years)
    design = Design(table, list(registers), list(factors), three_factor=list(three_factor) or None)
    counts = table["count"].to_numpy()[table["observed"].to_numpy().astype(bool)].astype(float)
    one_year = not uses_year_factor(years)
    groups = group_matrix(
        design.strata, covariates, None if one_year else YEAR, single_year=str(years[0]) if one_year else None
    )
    return design, counts, groups


def _dataset_task(
    path: Path,
    jobs: list[tuple[int, dict]],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    candidates: Sequence[str],
    seed: int,
    n_rep: int,
) -> list[ModelReselection]:
    """Re-selection bootstrap of the pooled models of one completed data set."""
    three = sorted({*candidates, *(t for _, mod in jobs for t in mod["terms"] if t.count(":") >= 2)})
    design, counts, groups = dataset_design(runfolder.read_imputed(path), registers, covariates, years, three)
    out = []
    for k, mod in jobs:
        fit = fit_model(design, design.canonical(tuple(mod["terms"])), counts=counts, explain=False)
        if not fit.ok:  # the bootstrap stage refitted it with status ok on the same counts
            raise RuntimeError(f"models.json model {k}: refit status {fit.status} on {path.name}")
        out.append(
            reselect_model(
                design,
                fit,
                model=k,
                dataset=mod["dataset"],
                model_type=mod["type"],
                groups=groups,
                candidates=candidates,
                n_rep=n_rep,
                seed=seed,
            )
        )
    return out


def screened_candidates(work_dir: Path) -> tuple[str, ...]:
    """The three-factor terms kept by the screening (``work/screening.csv``, notebook 03)."""
    path = runfolder.require(work_dir, runfolder.SCREENING, "needed by uncertainty: reselect")
    screening = pd.read_csv(path)
    return tuple(screening.loc[screening["kept"].astype(bool), "term"])


def run_reselection(
    p,
    work_dir: Path,
    models: Sequence[tuple[int, dict]],
    years: Sequence[int],
    *,
    n_rep: int | None = None,
) -> list[ModelReselection]:
    """Re-selection bootstrap of every pooled model (a step of the bootstrap stage).

    Parameters
    ----------
    p : Params
        Uses registers, covariates, reselect_replicates (replicates per model
        unless ``n_rep``), seed, n_jobs, backend.
    work_dir : Path
        Holds ``imputed/``, ``screening.csv``.
    models : sequence of (int, dict)
        Position in models.json and the model object, of the pooled models.
    years : sequence of int
    n_rep : int, optional
        Replicates per model (default ``p.reselect_replicates``).

    Returns
    -------
    list of ModelReselection
        In model order.
    """
    work_dir = Path(work_dir)
    n_rep = int(p.reselect_replicates if n_rep is None else n_rep)
    if n_rep < 1:
        raise ValueError(f"uncertainty reselect: at least one replicate per model, got {n_rep}")
    candidates = screened_candidates(work_dir)
    jobs: dict[int, list[tuple[int, dict]]] = {}
    for k, mod in models:
        jobs.setdefault(mod["dataset"], []).append((k, mod))
    files = dict(zip(sorted(jobs), runfolder.imputed_files(work_dir, sorted(jobs), detail="a data set of models.json")))
    args = [
        (files[i], jobs[i], tuple(p.registers), tuple(p.covariates), tuple(years), candidates, p.seed, n_rep)
        for i in sorted(jobs)
    ]
    done = Workers.from_params(p).map(_dataset_task, args)
    out = sorted((r for rs in done for r in rs), key=lambda r: r.model)
    log.info(
        "uncertainty reselect: %d models x %d replicates, %d failed, %d with another model",
        len(out),
        n_rep,
        sum(r.n_failed for r in out),
        sum(r.n_changed for r in out),
    )
    return out


# --- the interval -----------------------------------------------------------------------


def reselect_per_model(results: Sequence[ModelReselection], per_model: pd.DataFrame) -> pd.DataFrame:
    """The study's per-model frame with the re-selected replicates' variances as within variances.

    Per pooled model k and group: ``n_obs`` and ``n_hat`` stay the study's (the
    selected model on its completed data set, ``work/bootstrap.parquet``);
    ``var_within`` becomes the variance (ddof 1) of the replicate estimates
    N*_b = n_obs_k + dark*_b over k's usable re-selected replicates, and
    ``var_within_log`` that of log(dark*_b) (NaN where a replicate estimates no
    dark number). Rubin's W-bar then averages these over the 2m models, so a
    few replicates per model suffice.

    Parameters
    ----------
    results : sequence of ModelReselection
        One per pooled model.
    per_model : DataFrame
        The study's per-model rows (``model``, ``year``, ``group``, ``n_obs``,
        ``n_hat``, ...), exactly the pooled models of ``results``.

    Returns
    -------
    DataFrame
        ``per_model``'s rows and columns (without profile bounds), the two
        variances replaced, plus ``n_rep_ok``.

    Raises
    ------
    ValueError
        A model with fewer than two usable replicates (no variance), or models
        that differ between ``results`` and ``per_model``.
    """
    got, want = sorted(r.model for r in results), sorted(set(per_model["model"]))
    if got != want:
        raise ValueError(f"uncertainty reselect: re-selected models {got} differ from the pooled models {want}")
    frames = []
    for r in results:
        if r.n_ok < 2:
            raise ValueError(
                f"uncertainty reselect: model {r.model} has {r.n_ok} usable re-selected replicate(s) of {r.n_rep} "
                f"({r.failed_status}); a within variance needs two: raise reselect_replicates"
            )
        f = r.groups.frame()
        f["model"] = r.model
        f["var_within"] = (r.n_obs[None, :] + r.dark).var(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.where(r.dark > 0, r.dark, np.nan))
        f["var_within_log"] = logs.var(axis=0, ddof=1)
        f["n_rep_ok"] = r.n_ok
        frames.append(f)
    variances = pd.concat(frames, ignore_index=True)
    keep = [c for c in per_model.columns if c not in ("var_within", "var_within_log", "profile_lower", "profile_upper")]
    out = per_model[keep].merge(variances, on=["model", "year", "group"], how="left", validate="one_to_one")
    if out["var_within"].isna().any():
        bad = out.loc[out["var_within"].isna(), ["model", "year", "group"]].head(3).to_dict("records")
        raise ValueError(f"uncertainty reselect: no re-selected variance for {bad}")
    return out


def interval_label(interval: str) -> str:
    """The ``interval`` column of estimates.csv under ``uncertainty: reselect``, e.g. ``reselect rubin-t``."""
    return f"{RESELECT} {interval}"


def pool_reselected(
    per_model: pd.DataFrame, by: Sequence[str], *, interval: str = "rubin-t", level: float = 0.95
) -> pd.DataFrame:
    """Rubin's rules over the models with the re-selected within variances (:func:`reselect_per_model`).

    :func:`engine.pooling.pool_estimates` with ``interval`` (``rubin-t`` or
    ``log-scale``); the point estimate and n_obs are the study's (the mean of
    the models' N-hat and n_obs). The log-scale interval is above n_obs by
    construction; a ``rubin-t`` lower end below the published n_obs (the true
    number cannot be smaller) is raised to n_obs. ``interval`` says
    ``reselect rubin-t`` or ``reselect log-scale``.

    Raises
    ------
    ValueError
        ``interval="profile"`` (refused at the parameter check too), or what
        ``pool_estimates`` raises.
    """
    if interval not in POOLED_INTERVALS:
        raise ValueError(
            f"uncertainty reselect: interval must be one of {', '.join(POOLED_INTERVALS)}, got {interval!r}"
        )
    out = pool_estimates(per_model, list(by), interval=interval, level=level)
    out["lower"] = np.maximum(out["lower"], out["n_obs"])
    out["interval"] = interval_label(interval)
    return out


def failed_frame(results: Sequence[ModelReselection]) -> pd.DataFrame:
    """One row per model: replicates drawn, usable, failed (with statuses), re-selected another model."""
    return pd.DataFrame(
        [
            {
                "model": r.model,
                "dataset": r.dataset,
                "type": r.type,
                "n_rep": r.n_rep,
                "n_rep_ok": r.n_ok,
                "n_rep_failed": r.n_failed,
                "failed_statuses": ";".join(f"{s}:{n}" for s, n in sorted(r.failed_status.items())),
                "n_changed": r.n_changed,
                "n_repaired": r.n_repaired,
            }
            for r in results
        ]
    )
