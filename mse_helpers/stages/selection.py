"""Model selection over all completed data sets (docs/method.md 6; docs/selection.md).

For every completed data set two models are selected, as in the study:

1. **two-factor model**: backward stepwise AIC from all two-factor terms of the
   registers, covariates and year. When the all-two-factor model has no MLE
   (it has none on the bundled data), terms are removed first, each recorded
   with the reason, until the MLE exists (:func:`existing_start`: terms with a
   zero sufficient statistic together, then one term at a time, the removal
   with the best criterion); the backward search starts from there.
2. **three-factor model**: forward stepwise BIC from the two-factor model over
   the ``k`` three-factor terms kept by a screening on data set 0; a
   three-factor term is eligible only when its three two-factor margins are
   in the model.

The searches are *exactly greedy*: at every step the candidate with the lowest
criterion among all allowed candidates is taken (backward: every candidate
drop gets a guaranteed lower and upper bound of its log-likelihood from the
current fit, :mod:`mse_helpers.engine.bounds`, and only the candidates the
step rule cannot decide from the bounds are refitted exactly, warm-started;
forward: every candidate is refitted exactly), with the same tie rule and tolerance as R's
``step()`` and the test oracle ``tests/stepwise_reference.py``: candidates are
visited in design order and one replaces the running best only when its
criterion is lower by more than :data:`TOL`. Existence checks (the LP of
``existence.py``) are needed only when terms are *added*: sub-models of a
model whose MLE exists have one too. A forward step checks candidates in the
order of the selection rule until the first that passes, which chooses the
same model as checking all of them first. A candidate whose check fails, or
whose fit does not converge, is recorded in ``refused`` and never chosen; a
refused term stays out of later forward steps of that search (non-existence
is inherited by every larger model).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import runfolder
from ..codes import YEAR, model_factors
from ..engine.bounds import drop_bounds, pick_bracketed
from ..engine.cells import dataset_table
from ..engine.design import Design
from ..engine.estimates import n_hat_by
from ..engine.existence import check_existence
from ..engine.fit import Fit, fit_model
from ..engine.status import FitStatus
from ..parallel import Workers

log = logging.getLogger(__name__)

#: A candidate must lower the criterion by more than this to be taken (as the
#: reference implementation; R's step() uses a similar 1e-7 guard).
TOL = 1e-9

TWO_FACTOR, THREE_FACTOR, SCREENING = "two-factor", "three-factor", "screening"
REFUSED_COLUMNS = ["dataset", "type", "step", "term", "status", "reason"]
SCREENING_COLUMNS = ["term", "bic_gain", "rank", "kept"]
SENSITIVITY_COLUMNS = ["analysis", "dataset", "type", "year", "n_obs", "n_hat"]
NO_COVARIATES = "no-covariates"


# --- bookkeeping -----------------------------------------------------------------


@dataclasses.dataclass
class Counter:
    """How much work a search did (for the benchmark and the notebook)."""

    fits: int = 0
    checks: int = 0

    def add(self, other: "Counter") -> None:
        """Add another counter's numbers to this one."""
        self.fits += other.fits
        self.checks += other.checks


@dataclasses.dataclass(frozen=True)
class Selection:
    """Outcome of one stepwise search.

    Attributes
    ----------
    fit : Fit
        The selected model (status "ok").
    path : list of str
        Terms removed (backward) or added (forward), in order.
    refused : list of dict
        ``step``, ``term``, ``status``, ``reason`` of every refused candidate
        (and of the terms removed to reach a starting model whose MLE exists).
    counter : Counter
        Fits and existence checks done.
    """

    fit: Fit
    path: list[str]
    refused: list[dict]
    counter: Counter


def margins(term: str) -> tuple[str, ...]:
    """The lower-order interaction margins of a term (``"O:P:R"`` -> ``O:P``, ``O:R``, ``P:R``).

    Variables keep their order, so canonical names stay canonical. A
    two-factor term has none (main effects are always in the model).
    """
    vs = term.split(":")
    if len(vs) <= 2:
        return ()
    return tuple(":".join(c) for c in itertools.combinations(vs, len(vs) - 1))


def _order(design: Design, terms: Sequence[str]) -> tuple[str, ...]:
    """Terms in design order (the order ties are broken in)."""
    pos = {t: i for i, t in enumerate(design.candidate_terms)}
    return tuple(sorted(terms, key=pos.__getitem__))


def _pick(values: Sequence[tuple[str, float]], current: float, tol: float = TOL) -> str | None:
    """The step rule of R's ``step()`` and of the reference: visit candidates in
    order; one becomes the best when it beats the running best (initially the
    current model) by more than ``tol``. None when no candidate improves."""
    best, best_val = None, current
    for term, val in values:
        if val < best_val - tol:
            best, best_val = term, val
    return best


# --- starting model ----------------------------------------------------------------


def _removable(terms: Sequence[str]) -> list[str]:
    """Interaction terms that may be dropped alone: not a margin of another term (marginality)."""
    return [t for t in terms if ":" in t and not any(t != u and set(t.split(":")) < set(u.split(":")) for u in terms)]


def _statistic(design: Design, term: str, y: np.ndarray) -> np.ndarray:
    """Sufficient statistic of each column of a term: persons in the cells where it is 1."""
    return design.X_obs[:, design.blocks[term]].T @ y


def _record(term: str, status: FitStatus, why: str) -> dict:
    return {"step": 0, "term": term, "status": status, "reason": f"removed from the starting model: {why}"}


def existing_start(
    design: Design,
    terms: Sequence[str],
    counts: np.ndarray | None = None,
    counter: Counter | None = None,
    criterion: str = "aic",
) -> tuple[tuple[str, ...], list[dict]]:
    """Remove terms from a starting model without MLE until its MLE exists (docs/selection.md 2).

    While the model fails the existence or rank check:

    1. terms with a column whose sufficient statistic is 0 (two lists that
       never overlap, a list with nobody in a stratum) are removed together:
       no model containing one of them has an MLE, so their order is immaterial;
    2. otherwise one term is removed. Every single removal of a term the
       check blames (respecting marginality) is checked; of those whose model
       passes, the one with the lowest ``criterion`` is taken and the start is
       reached. When none passes, every other removable term is tried the
       same way;
    3. when no single removal gives a model that passes, the blamed term
       supported by the fewest persons (smallest sufficient statistic; ties in
       design order) is removed and the loop repeats.

    Ties of the criterion go to the first candidate in design order, as in
    :func:`_pick`.

    Parameters
    ----------
    design : Design
    terms : sequence of str
        The intended starting model (e.g. all two-factor terms).
    counts : ndarray, optional
        Observed-cell counts (default: the design's).
    counter : Counter, optional
        Incremented per check and per fit.
    criterion : {"aic", "bic"}
        The criterion of the search that starts from here.

    Returns
    -------
    terms : tuple of str
        The starting model reached, whose MLE exists and is identifiable.
    removed : list of dict
        One record per removed term, in order: ``step`` (0), ``term``,
        ``status`` (of the model it was removed from), ``reason``.

    Raises
    ------
    RuntimeError
        When the check fails and no interaction term is left to remove.
    """
    terms = _order(design, design.canonical(tuple(terms)))
    counter = counter if counter is not None else Counter()
    y = design.check_counts(counts)
    removed: list[dict] = []
    counter.checks += 1
    ex = check_existence(design, terms, counts=y, explain=True)
    while ex.status != FitStatus.OK:
        removable = _removable(terms)
        if not removable:
            raise RuntimeError(f"starting model: {ex.message}; no interaction term to remove")
        forced = []
        if ex.status == FitStatus.NO_MLE:
            forced = [t for t in removable if (_statistic(design, t, y) == 0).any()]
        if forced:
            why = f"{ex.message}; a term with a zero sufficient statistic is in no model whose MLE exists"
            removed += [_record(t, ex.status, why) for t in forced]
            terms = tuple(t for t in terms if t not in forced)
            counter.checks += 1
            ex = check_existence(design, terms, counts=y, explain=True)
            continue
        blamed = [t for t in removable if t in ex.responsible]
        others = [t for t in removable if t not in blamed]
        for group in (blamed, others):
            best = _best_removal(design, terms, group, y, counter, criterion)
            if best is not None:
                term, value = best
                why = (
                    f"{ex.message}; of the single removals whose model has an MLE, this one gives the "
                    f"lowest {criterion.upper()} ({value:.3f})"
                )
                removed.append(_record(term, ex.status, why))
                return tuple(t for t in terms if t != term), removed
        pool = blamed or removable
        term = min(pool, key=lambda t: float(_statistic(design, t, y).sum()))  # min keeps the first of ties
        why = (
            f"{ex.message}; no single removal gives a model with an MLE, so the "
            f"{'blamed ' if blamed else ''}term supported by the fewest persons "
            f"({_statistic(design, term, y).sum():,.0f}) goes first"
        )
        removed.append(_record(term, ex.status, why))
        terms = tuple(t for t in terms if t != term)
        counter.checks += 1
        ex = check_existence(design, terms, counts=y, explain=True)
    return terms, removed


def _best_removal(
    design: Design, terms: tuple[str, ...], candidates: Sequence[str], y: np.ndarray, counter: Counter, criterion: str
) -> tuple[str, float] | None:
    """Of the models ``terms`` minus one candidate, the one whose MLE exists with the lowest criterion.

    Returns the candidate and its criterion, or None when none of these models has an MLE.
    """
    values = []
    for t in candidates:
        sub = tuple(u for u in terms if u != t)
        counter.checks += 1
        if check_existence(design, sub, counts=y, explain=False).status != FitStatus.OK:
            continue
        counter.fits += 1
        fit = fit_model(design, sub, counts=y, check=False, explain=False)
        if fit.ok:
            values.append((t, float(getattr(fit, criterion))))
    best = _pick(values, math.inf)
    return None if best is None else (best, dict(values)[best])


# --- the searches ------------------------------------------------------------------


def _fit(design, terms, counts, start, counter, check=False) -> Fit:
    counter.fits += 1
    return fit_model(design, terms, counts=counts, start=start, check=check, explain=False)


def _why_not(design: Design, cand: Fit, counts, counter: Counter, step: int, term: str) -> dict:
    """Refusal record of a candidate whose unchecked fit failed: usually its
    MLE does not exist (Newton drifts); the check says so and names the terms."""
    counter.checks += 1
    ex = check_existence(design, cand.terms, counts=counts, explain=True)
    if ex.status != FitStatus.OK:
        return {"step": step, "term": term, "status": ex.status, "reason": ex.message}
    return {"step": step, "term": term, "status": cand.status, "reason": cand.message}


def backward(
    design: Design,
    start_terms: Sequence[str],
    counts: np.ndarray | None = None,
    criterion: str = "aic",
    repair_start: bool = True,
    tol: float = TOL,
    bounded: bool = True,
) -> Selection:
    """Backward stepwise selection (R's ``step(direction = "backward")``).

    At each step every term not contained in another term of the model
    (marginality) is a candidate for dropping; the drop that lowers the
    criterion most is made (:func:`_pick`), until none lowers it. With
    ``bounded`` (the default) the criterion of every candidate is first
    bracketed without fitting (:func:`engine.bounds.drop_bounds`: exact lower
    and upper bounds from the current MLE); only candidates whose bracket the
    step rule cannot decide on are refitted exactly (warm started from the
    current model), so the removals are those of refitting every candidate
    (``bounded=False``, the reference; tests/test_selection.py compares them).

    Parameters
    ----------
    design : Design
    start_terms : sequence of str
        Interaction terms of the starting model ("all2" for all two-factor terms).
    counts : ndarray, optional
        Observed-cell counts of this data set (default: the design's).
    criterion : {"aic", "bic"}
    repair_start : bool
        When the starting model has no MLE, remove the terms the existence
        check blames first (:func:`existing_start`); otherwise the start is
        assumed to pass. Sub-models then need no check.
    tol : float
        Minimum improvement.
    bounded : bool
        Decide from brackets where they suffice (False: refit every candidate).

    Returns
    -------
    Selection
    """
    counter = Counter()
    terms = _order(
        design, design.canonical(start_terms if isinstance(start_terms, (str, tuple)) else tuple(start_terms))
    )
    refused: list[dict] = []
    if repair_start:
        terms, refused = existing_start(design, terms, counts, counter, criterion)
    current = _fit(design, terms, counts, None, counter)
    if not current.ok:
        raise RuntimeError(f"starting model {list(terms)}: {current.status}: {current.message}")
    penalty = 2.0 if criterion == "aic" else float(np.log(current.nobs))
    var_sets = {t: frozenset(t.split(":")) for t in terms}
    path: list[str] = []
    step = 0
    while terms:
        step += 1
        # the previous step's candidate models never come back: free their cached
        # information plans (~0.3 MB each on the study table), bounding memory
        design.clear_caches()
        # marginality: a margin of a term still in the model is not dropped
        allowed = [t for t in terms if not any(var_sets[t] < var_sets[u] for u in terms)]
        fits: dict[str, Fit | None] = {}

        def exact(t: str, step=step, current=current, terms=terms) -> float | None:
            """The candidate's criterion from an exact fit (None: refused, never chosen)."""
            if t not in fits:
                cand = _fit(design, tuple(u for u in terms if u != t), counts, current.params, counter)
                if not cand.ok:  # cannot happen for an existing MLE; recorded, never chosen
                    refused.append({"step": step, "term": t, "status": cand.status, "reason": cand.message})
                fits[t] = cand if cand.ok else None
            return None if fits[t] is None else getattr(fits[t], criterion)

        brackets: dict[str, tuple[float, float]] = {}
        try:  # an information matrix that is not numerically positive definite: no brackets, refit all
            bounds = drop_bounds(current, allowed) if bounded and allowed else None
        except np.linalg.LinAlgError:
            bounds = None
        if bounds is not None:
            lo, hi = bounds.criterion(penalty)
            # the candidates that can still be the best are fitted now, the others only if the rule needs them
            for i, t in enumerate(allowed):
                v = exact(t) if lo[i] <= hi.min() + tol else None
                if t not in fits:
                    brackets[t] = (float(lo[i]), float(hi[i]))
                elif v is not None:
                    brackets[t] = (v, v)
        else:
            for t in allowed:
                exact(t)
        order = [t for t in allowed if fits.get(t, True) is not None]
        best = pick_bracketed(order, brackets, exact, getattr(current, criterion), tol)
        while best is not None and exact(best) is None:  # chosen by its bracket, then refused when fitted
            order.remove(best)
            best = pick_bracketed(order, brackets, exact, getattr(current, criterion), tol)
        if best is None:
            break
        current = fits[best]
        terms = tuple(u for u in terms if u != best)
        path.append(best)
    return Selection(current, path, refused, counter)


def forward(
    design: Design,
    base: Fit | Sequence[str],
    candidates: Sequence[str],
    counts: np.ndarray | None = None,
    criterion: str = "bic",
    tol: float = TOL,
) -> Selection:
    """Forward stepwise selection (R's ``step(direction = "forward")``) with hierarchy.

    A candidate is eligible when every lower-order margin is in the model.
    Every eligible candidate is refitted exactly (warm started from the current
    model, no existence check); then candidates are checked in the order of
    the step rule until one passes, which is taken if it lowers the criterion.
    Candidates that fail are recorded and leave the pool for good (a model
    containing them has no MLE either).

    Parameters
    ----------
    design : Design
        Must hold the candidate terms.
    base : Fit or sequence of str
        Starting model (a Fit whose MLE exists, or its terms: then checked).
    candidates : sequence of str
        Terms that may be added.
    counts : ndarray, optional
    criterion : {"bic", "aic"}
    tol : float

    Returns
    -------
    Selection
    """
    counter = Counter()
    refused: list[dict] = []
    if isinstance(base, Fit):
        current = _fit(design, _order(design, base.terms), counts, base.params if base.ok else None, counter)
    else:
        base_terms = _order(design, design.canonical(tuple(base) if not isinstance(base, str) else base))
        current = _fit(design, base_terms, counts, None, counter, check=True)
        counter.checks += 1
    if not current.ok:
        raise RuntimeError(f"starting model {list(current.terms)}: {current.status}: {current.message}")
    pool = list(_order(design, [t for t in design.canonical(tuple(candidates)) if t not in current.terms]))
    path: list[str] = []
    step = 0
    while pool:
        step += 1
        terms = set(current.terms)
        values = []
        for t in list(pool):
            if any(mg not in terms for mg in margins(t)):
                continue  # hierarchy: a margin is missing
            cand = _fit(design, _order(design, current.terms + (t,)), counts, current.params, counter)
            if not cand.ok:
                refused.append(_why_not(design, cand, counts, counter, step, t))
                pool.remove(t)
                continue
            values.append((t, getattr(cand, criterion), cand))
        chosen = None
        while values:
            best = _pick([(t, v) for t, v, _ in values], getattr(current, criterion), tol)
            if best is None:
                break
            cand = next(c for t, _, c in values if t == best)
            counter.checks += 1
            ex = check_existence(design, cand.terms, counts=counts, explain=True)
            if ex.status == FitStatus.OK:
                chosen = cand
                break
            refused.append({"step": step, "term": best, "status": ex.status, "reason": ex.message})
            pool.remove(best)
            values = [v for v in values if v[0] != best]
        if chosen is None:
            break
        added = next(t for t in chosen.terms if t not in terms)
        pool.remove(added)
        path.append(added)
        current = chosen
    return Selection(current, path, refused, counter)


# --- screening of three-factor terms ----------------------------------------------------


def screen_three_factor(
    design: Design,
    base: Fit,
    k: int,
    counts: np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[dict], Counter]:
    """Rank all three-factor terms by their BIC gain on one data set; keep the best k.

    The gain of a term is ``BIC(base) - BIC(base + term)``, the term added alone
    to the two-factor model ``base`` (the first step of a forward BIC search over
    all three-factor terms). Only terms whose three margins are in ``base`` are
    eligible (hierarchy). Eligible terms are ranked by gain (ties: design
    order); the top k whose MLE exists are kept, checking in rank order; a term
    that fails is refused (recorded) and the next one moves up.

    Parameters
    ----------
    design : Design
        Built with ``three_factor="all"``.
    base : Fit
        The two-factor model (its MLE exists).
    k : int
        Terms to keep.
    counts : ndarray, optional

    Returns
    -------
    screening : DataFrame
        ``term``, ``bic_gain`` (NaN when not eligible), ``rank`` (1 = largest
        gain among eligible terms; <NA> when not eligible), ``kept``; every
        three-factor term once, in design order.
    refused : list of dict
        Terms that failed the check or did not converge.
    counter : Counter
    """
    counter = Counter()
    three = [t for t in design.candidate_terms if t.count(":") == 2]
    base_fit = _fit(design, _order(design, base.terms), counts, base.params if base.ok else None, counter)
    terms = set(base_fit.terms)
    gains: dict[str, float] = {}
    fits: dict[str, Fit] = {}
    refused: list[dict] = []
    for t in three:
        if any(mg not in terms for mg in margins(t)):
            continue
        cand = _fit(design, _order(design, base_fit.terms + (t,)), counts, base_fit.params, counter)
        if not cand.ok:
            refused.append(_why_not(design, cand, counts, counter, 1, t))
            gains[t] = float("nan")
            continue
        gains[t] = base_fit.bic - cand.bic
        fits[t] = cand
    ranked = sorted(fits, key=lambda t: -gains[t])  # stable: ties keep design order
    kept: list[str] = []
    for t in ranked:
        if len(kept) >= k:
            break
        counter.checks += 1
        ex = check_existence(design, fits[t].terms, counts=counts, explain=True)
        if ex.status == FitStatus.OK:
            kept.append(t)
        else:
            refused.append({"step": 1, "term": t, "status": ex.status, "reason": ex.message})
    rank = {t: i + 1 for i, t in enumerate(ranked)}
    frame = pd.DataFrame(
        {
            "term": three,
            "bic_gain": [gains.get(t, float("nan")) for t in three],
            "rank": pd.array([rank.get(t) for t in three], dtype="Int64"),
            "kept": [t in kept for t in three],
        }
    )
    return frame, refused, counter


# --- one completed data set --------------------------------------------------------------

#: Designs built in this process, reused across data sets (their cells are
#: identical; only the counts differ). Keyed by variables and three-factor terms.
_DESIGNS: dict[tuple, Design] = {}


def design_for(
    table: pd.DataFrame, lists: Sequence[str], factors: Sequence[str], three_factor: Sequence[str] | str | None = None
) -> tuple[Design, np.ndarray]:
    """A Design with this table's cells (cached per process) and the table's counts.

    All completed data sets give the same cells in the same order
    (:func:`engine.cells.dataset_table` fixes the levels), so one Design serves
    them all; the counts are passed to every fit. The cache saves building the
    model matrix, and keeps the information plans of models visited before.

    The design is the dense one (``lattice=False``): with the bounded backward
    search the lattice path saves little here, and the searches' unchecked fits
    of candidates without an MLE drift differently on it, which would change when
    such a candidate is recorded as refused (work/refused.csv); the selected
    models are the same on both paths (docs/engine.md 3).
    """
    three = three_factor if isinstance(three_factor, str) or three_factor is None else tuple(three_factor)
    key = (tuple(lists), tuple(factors), three)
    d = _DESIGNS.get(key)
    cols = list(lists) + list(factors)
    if d is None or not d.table[cols].equals(table[cols].reset_index(drop=True)):
        d = Design(table, lists, factors, three_factor=three, lattice=False)
        if len(_DESIGNS) > 8:
            _DESIGNS.clear()
        _DESIGNS[key] = d
    else:
        # the information plans of one data set's search take ~0.3 MB each; few
        # recur on the next data set, so free them (bounded worker memory)
        d.clear_caches()
    return d, table["count"].to_numpy()[table["observed"].to_numpy().astype(bool)].astype(float)


@dataclasses.dataclass(frozen=True)
class SelectedModel:
    """The selected model of one completed data set and model type: one object of ``work/models.json``.

    Attributes
    ----------
    dataset : int
        Index of the completed data set.
    type : str
        ``"two-factor"`` or ``"three-factor"``.
    terms : tuple of str
        Interaction terms (main effects are always in).
    status : str
        A :class:`~mse_helpers.engine.status.FitStatus` value ("ok" for a selected model).
    llf, aic, bic, deviance : float
        As :class:`~mse_helpers.engine.fit.Fit` (``llf`` is the file's ``loglik``).
    df_resid, n_params : int
        (``df_resid`` is the file's ``df``.)
    n_hat : dict
        ``"total"`` and each year as text -> N-hat.
    n_obs : dict
        The same keys -> observed persons (not written to models.json; NaN-free
        only for models made by this process).
    """

    dataset: int
    type: str
    terms: tuple[str, ...]
    status: str
    llf: float = float("nan")
    aic: float = float("nan")
    bic: float = float("nan")
    deviance: float = float("nan")
    df_resid: int = 0
    n_params: int = 0
    n_hat: dict = dataclasses.field(default_factory=dict)
    n_obs: dict = dataclasses.field(default_factory=dict, compare=False)

    @classmethod
    def from_fit(cls, fit: Fit, dataset: int, model_type: str) -> "SelectedModel":
        """The summary of a selected fit (docs/method.md 6): N-hat and n_obs in total and per year."""
        n_hat = {"total": float(fit.n_hat)}
        n_obs = {"total": float(fit.n_obs)}
        if YEAR in fit.design.factors:
            by = n_hat_by(fit, YEAR)
            n_hat.update({str(int(y)): float(v) for y, v in zip(by[YEAR], by["n_hat"])})
            n_obs.update({str(int(y)): float(v) for y, v in zip(by[YEAR], by["n_obs"])})
        elif YEAR in fit.design.table.columns:
            # one analysed year (no year factor, codes.uses_year_factor): its numbers are the totals
            year = str(int(fit.design.table[YEAR].iloc[0]))
            n_hat[year], n_obs[year] = n_hat["total"], n_obs["total"]
        return cls(
            dataset=int(dataset),
            type=model_type,
            terms=tuple(fit.terms),
            status=str(fit.status),
            llf=float(fit.llf),
            aic=float(fit.aic),
            bic=float(fit.bic),
            deviance=float(fit.deviance),
            df_resid=int(fit.df_resid),
            n_params=int(fit.n_params),
            n_hat=n_hat,
            n_obs=n_obs,
        )

    def to_dict(self) -> dict:
        """The models.json object (the stage contract; keys and order as the file has them)."""
        return {
            "dataset": self.dataset,
            "type": self.type,
            "terms": list(self.terms),
            "status": self.status,
            "loglik": self.llf,
            "aic": self.aic,
            "bic": self.bic,
            "deviance": self.deviance,
            "df": self.df_resid,
            "n_params": self.n_params,
            "n_hat": dict(self.n_hat),
        }

    @classmethod
    def from_dict(cls, obj: dict) -> "SelectedModel":
        """A models.json object (as checked by the bootstrap stage); numbers it lacks are NaN / 0."""
        nan = float("nan")
        return cls(
            dataset=int(obj["dataset"]),
            type=obj["type"],
            terms=tuple(obj["terms"]),
            status=str(obj["status"]),
            llf=float(obj.get("loglik", nan)),
            aic=float(obj.get("aic", nan)),
            bic=float(obj.get("bic", nan)),
            deviance=float(obj.get("deviance", nan)),
            df_resid=int(obj.get("df", 0)),
            n_params=int(obj.get("n_params", 0)),
            n_hat={str(k): float(v) for k, v in (obj.get("n_hat") or {}).items()},
        )


def select_table(
    table: pd.DataFrame, lists: Sequence[str], factors: Sequence[str], candidates: Sequence[str], dataset: int = 0
) -> dict:
    """Both selections (two-factor by backward AIC, three-factor by forward BIC) on one table.

    Parameters
    ----------
    table : DataFrame
        Complete count table (:func:`engine.cells.dataset_table`).
    lists, factors : sequence of str
    candidates : sequence of str
        Three-factor candidate terms (terms with a variable not in the table
        are ignored).
    dataset : int
        Index, written into the records.

    Returns
    -------
    dict
        ``models`` (two :class:`SelectedModel`), ``refused`` (records
        with ``dataset`` and ``type``), ``fits`` and ``checks`` (counts).
    """
    variables = set(lists) | set(factors)
    cands = tuple(t for t in candidates if set(t.split(":")) <= variables)
    d2, y = design_for(table, lists, factors)
    two = backward(d2, "all2", counts=y, criterion="aic")
    d3, _ = design_for(table, lists, factors, cands) if cands else (d2, y)
    three = forward(d3, two.fit, cands, counts=y, criterion="bic")
    refused = [dict(r, dataset=int(dataset), type=TWO_FACTOR) for r in two.refused]
    refused += [dict(r, dataset=int(dataset), type=THREE_FACTOR) for r in three.refused]
    counter = Counter()
    counter.add(two.counter)
    counter.add(three.counter)
    return {
        "models": [
            SelectedModel.from_fit(two.fit, dataset, TWO_FACTOR),
            SelectedModel.from_fit(three.fit, dataset, THREE_FACTOR),
        ],
        "refused": refused,
        "fits": counter.fits,
        "checks": counter.checks,
    }


# --- pinned models (parameter models_from) -------------------------------------------------

#: Step number of a pinned model's record in refused.csv (no search step).
PINNED_STEP = 0


def pinned_terms(models: Sequence[dict], m: int) -> dict[int, dict[str, tuple[str, ...]]]:
    """The terms to pin per data set and model type, from another run's models.json.

    Data set k gets the other run's data set k (its first ``m`` data sets when it has more).

    Parameters
    ----------
    models : sequence of dict
        That run's models.json objects (``dataset``, ``type``, ``terms``).
    m : int
        Completed data sets of this run.

    Returns
    -------
    dict
        Data set -> {model type -> terms}.

    Raises
    ------
    ValueError
        When a data set below ``m`` lacks a model type (``runner.params`` refuses this before a run).
    """
    out: dict[int, dict[str, tuple[str, ...]]] = {}
    for mod in models:
        k = int(mod["dataset"])
        if k < m:
            out.setdefault(k, {})[mod["type"]] = tuple(mod["terms"])
    missing = [(k, t) for k in range(m) for t in (TWO_FACTOR, THREE_FACTOR) if t not in out.get(k, {})]
    if missing:
        raise ValueError(f"parameter models_from: no {missing[0][1]} model for data set {missing[0][0]}")
    return out


def fit_pinned(
    table: pd.DataFrame,
    lists: Sequence[str],
    factors: Sequence[str],
    pinned: dict[str, Sequence[str]],
    dataset: int = 0,
    source: str = "models_from",
) -> dict:
    """Fit given terms (both model types) on one table instead of selecting (parameter ``models_from``).

    A pinned model whose MLE does not exist on this table (or whose fit does
    not converge) is kept with its status, so that it appears in models.json
    and the bootstrap stage reports it as not used; a record of the reason
    goes to refused.csv. It is never dropped silently.

    Parameters
    ----------
    table : DataFrame
        Complete count table (:func:`engine.cells.dataset_table`).
    lists, factors : sequence of str
    pinned : dict
        Model type -> interaction terms.
    dataset : int
    source : str
        Where the terms come from (the run folder's name), for the records.

    Returns
    -------
    dict
        As :func:`select_table`: ``models``, ``refused``, ``fits``, ``checks``.

    Raises
    ------
    ValueError
        A term with a variable the table does not have.
    """
    models, refused = [], []
    keys: list[str] = []
    for model_type in (TWO_FACTOR, THREE_FACTOR):
        terms = tuple(pinned[model_type])
        three = tuple(t for t in terms if t.count(":") >= 2)
        design, y = design_for(table, lists, factors, three or None)
        try:
            terms = _order(design, design.canonical(terms))
        except ValueError as exc:
            raise ValueError(f"parameter models_from: {source}, data set {dataset} ({model_type}): {exc}") from None
        fit = fit_model(design, terms, counts=y, check=True, explain=True)
        if fit.ok:
            models.append(SelectedModel.from_fit(fit, dataset, model_type))
            continue
        if not keys:  # the years of a per-year N-hat, for a failed model's empty numbers
            keys = ["total"] + ([str(int(v)) for v in factor_years(table)] if YEAR in factors else [])
        nan = float("nan")
        models.append(
            SelectedModel(
                dataset=int(dataset),
                type=model_type,
                terms=terms,
                status=str(fit.status),
                n_hat={k: nan for k in keys},
                n_obs={k: nan for k in keys},
            )
        )
        refused.append(
            {
                "dataset": int(dataset),
                "type": model_type,
                "step": PINNED_STEP,
                "term": ";".join(terms),
                "status": str(fit.status),
                "reason": f"pinned model from {source} has no usable fit on this run's data: {fit.message}",
            }
        )
    return {"models": models, "refused": refused, "fits": 2, "checks": 2}


def factor_years(table: pd.DataFrame) -> list[int]:
    """The years of a count table (its ``J`` column), sorted."""
    return sorted({int(v) for v in table[YEAR].unique()}) if YEAR in table.columns else []


def _pinned_task(path: Path, i: int, registers, covariates, years, pinned, source: str) -> dict:
    """One data set with pinned terms (runs in a joblib worker)."""
    persons = runfolder.read_imputed(path)
    table = dataset_table(persons, registers, covariates, years)
    out = fit_pinned(table, registers, model_factors(covariates, years), pinned, dataset=i, source=source)
    out["analysis"] = "main"
    return out


def run_pinned(
    files: Sequence[Path],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    pinned: dict[int, dict[str, tuple[str, ...]]],
    source: str,
    workers: Workers | None = None,
) -> list[dict]:
    """:func:`fit_pinned` on every completed data set, in parallel (data set i at position i of ``files``)."""
    args = (tuple(registers), tuple(covariates), tuple(years))
    tasks = [(f, i, *args, pinned[i], source) for i, f in enumerate(files)]
    return (workers or Workers(n_jobs=1)).map(_pinned_task, tasks)


# --- sensitivity transformations ---------------------------------------------------------


def analysis_variables(
    analysis: str, registers: Sequence[str], covariates: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Registers and covariates used by a sensitivity analysis.

    Parameters
    ----------
    analysis : str
        ``"main"``, ``"no-covariates"`` or ``"drop:K"`` / ``"drop:S,L"`` (codes of
        registers and/or covariates to leave out).
    registers, covariates : sequence of str
        Those of the main analysis.

    Returns
    -------
    registers, covariates : tuple of str
    """
    registers, covariates = tuple(registers), tuple(covariates)
    if analysis == "main":
        return registers, covariates
    if analysis == NO_COVARIATES:
        return registers, ()
    if not analysis.startswith("drop:"):
        raise ValueError(f"parameter sensitivity: unknown analysis {analysis!r}")
    codes = [c for c in analysis[5:].split(",") if c]
    unknown = [c for c in codes if c not in registers and c not in covariates]
    if unknown:
        raise ValueError(
            f"parameter sensitivity: {analysis!r} leaves out {unknown}, which the run does not "
            f"use (registers {list(registers)}, covariates {list(covariates)})"
        )
    regs = tuple(r for r in registers if r not in codes)
    if len(regs) < 2:
        raise ValueError(f"parameter sensitivity: {analysis!r} leaves fewer than two registers")
    return regs, tuple(c for c in covariates if c not in codes)


def analysis_table(
    persons: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str], years: Sequence[int]
) -> pd.DataFrame:
    """Count table of a completed data set on a subset of registers and covariates.

    Persons on none of the remaining registers become unobserved (they are
    part of what the model estimates); their number is visible as the drop in
    ``n_obs`` in sensitivity.csv.
    """
    on_any = persons[list(registers)].astype(int).sum(axis=1) > 0
    return dataset_table(persons.loc[on_any], registers, covariates, years)


# --- the stage ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """What notebook 03 shows; no person-level rows.

    Attributes
    ----------
    models : list of SelectedModel
        The models of models.json (2m, data set then type).
    screening : DataFrame
        ``term``, ``bic_gain``, ``rank``, ``kept`` (screening.csv).
    refused : DataFrame
        ``dataset``, ``type``, ``step``, ``term``, ``status``, ``reason`` (refused.csv).
    sensitivity : DataFrame
        ``analysis``, ``dataset``, ``type``, ``year``, ``n_obs``, ``n_hat``
        (sensitivity.csv; the main analysis included as ``main``).
    years : list of int
    stats : dict
        Wall times (s) and numbers of fits and existence checks.
    """

    models: list[SelectedModel]
    screening: pd.DataFrame
    refused: pd.DataFrame
    sensitivity: pd.DataFrame
    years: list[int]
    stats: dict


def _task(path: Path, i: int, registers, covariates, years, candidates, analysis: str = "main") -> dict:
    """One data set, one analysis (runs in a joblib worker)."""
    persons = runfolder.read_imputed(path)
    regs, covs = analysis_variables(analysis, registers, covariates)
    table = analysis_table(persons, regs, covs, years)
    out = select_table(table, regs, model_factors(covs, years), candidates, dataset=i)
    out["analysis"] = analysis
    return out


def run_selections(
    files: Sequence[Path],
    registers: Sequence[str],
    covariates: Sequence[str],
    years: Sequence[int],
    candidates: Sequence[str],
    n_jobs: int = 1,
    analysis: str = "main",
    workers: Workers | None = None,
) -> list[dict]:
    """Both selections on every completed data set, in parallel; results do not depend on ``n_jobs``.

    Parameters
    ----------
    files : sequence of Path
        Completed data sets, data set i at position i.
    registers, covariates, years, candidates
        See :func:`select_table`.
    n_jobs : int
        joblib workers (1: in this process); used when ``workers`` is None.
    analysis : str
        "main" or a sensitivity analysis (:func:`analysis_variables`).
    workers : Workers, optional
        Where the selections run (:class:`mse_helpers.parallel.Workers`: this
        machine or a Dask cluster); default ``Workers(n_jobs)``.

    Returns
    -------
    list of dict
        :func:`select_table` outputs, in data-set order.
    """
    args = (tuple(registers), tuple(covariates), tuple(years), tuple(candidates), analysis)
    return (workers or Workers(n_jobs=n_jobs)).map(_task, [(f, i, *args) for i, f in enumerate(files)])


def screening_step(
    path: Path, registers: Sequence[str], covariates: Sequence[str], years: Sequence[int], k: int
) -> tuple[pd.DataFrame, list[dict], Counter]:
    """The screening of all three-factor terms on one completed data set (data set 0).

    Selects the two-factor model of that data set by backward AIC, then ranks
    every three-factor term with :func:`screen_three_factor`.

    Returns
    -------
    screening : DataFrame
    refused : list of dict
        With ``dataset`` 0 and ``type`` "screening".
    counter : Counter
    """
    persons = runfolder.read_imputed(path)
    factors = model_factors(covariates, years)
    table = dataset_table(persons, registers, covariates, years)
    d2, y = design_for(table, registers, factors)
    two = backward(d2, "all2", counts=y, criterion="aic")
    d3 = Design(table, registers, factors, three_factor="all")
    frame, refused, counter = screen_three_factor(d3, two.fit, k, counts=y)
    counter.add(two.counter)
    return frame, [dict(r, dataset=0, type=SCREENING) for r in refused], counter


def run_stage(p, work_dir: Path) -> SelectionResult:
    """Model selection stage of ``mse run`` (notebook 03).

    Reads ``work/imputed/imp_*.parquet`` (data sets 0..p.m-1) and
    ``work/prep_summary.json``; screens the three-factor terms on data set 0
    (keeping ``p.three_factor_candidates``); selects both models on every data
    set with ``p.n_jobs`` workers; runs each analysis of ``p.sensitivity`` on
    the first ``p.sensitivity_datasets`` data sets (``None``: all ``p.m``).

    With ``p.models_from`` (a run folder) the main models are not selected:
    data set k is fitted with the terms of both model types of that run's data
    set k (:func:`fit_pinned`; a pinned model without MLE here keeps its status
    and is recorded in refused.csv). The screening and the sensitivity analyses
    run as usual (they are not the published models).

    Parameters
    ----------
    p : Params
    work_dir : Path

    Returns
    -------
    SelectionResult

    Notes
    -----
    Writes ``work/models.json``, ``work/screening.csv``, ``work/refused.csv`` and
    ``work/sensitivity.csv`` (the main analysis included as ``main``).
    """
    work_dir = Path(work_dir)
    years = runfolder.analysed_years(runfolder.read_prep_summary(work_dir))
    files = runfolder.imputed_files(work_dir, range(p.m), detail=f"m = {p.m}")
    registers, covariates = tuple(p.registers), tuple(p.covariates)
    for analysis in p.sensitivity:  # fail before the long part, naming the parameter
        analysis_variables(analysis, registers, covariates)

    t0 = time.perf_counter()
    screening, screen_refused, screen_counter = screening_step(
        files[0], registers, covariates, years, p.three_factor_candidates
    )
    candidates = tuple(screening.loc[screening["kept"], "term"])
    t1 = time.perf_counter()
    workers = Workers.from_params(p)
    models_from = getattr(p, "models_from", None)
    if models_from is not None:
        pinned = pinned_terms(runfolder.read_run_models(Path(models_from)), p.m)
        source = f"run {Path(models_from).name}"
        main = run_pinned(files, registers, covariates, years, pinned, source, workers=workers)
    else:
        main = run_selections(files, registers, covariates, years, candidates, workers=workers)
    t2 = time.perf_counter()
    n_sens = p.m if p.sensitivity_datasets is None else min(p.m, p.sensitivity_datasets)
    sens_results = {
        a: run_selections(files[:n_sens], registers, covariates, years, candidates, workers=workers, analysis=a)
        for a in p.sensitivity
    }
    t3 = time.perf_counter()

    models = [mdl for res in main for mdl in res["models"]]
    refused = pd.DataFrame(
        screen_refused
        + [r for res in main for r in res["refused"]]
        + [dict(r, type=f"{r['type']} ({a})") for a, rs in sens_results.items() for res in rs for r in res["refused"]],
        columns=REFUSED_COLUMNS,
    )
    sensitivity = sensitivity_frame({"main": main, **sens_results})
    stats = {
        "seconds_screening": t1 - t0,
        "seconds_main": t2 - t1,
        "seconds_sensitivity": t3 - t2,
        "fits_screening": screen_counter.fits,
        "checks_screening": screen_counter.checks,
        "fits_main": sum(r["fits"] for r in main),
        "checks_main": sum(r["checks"] for r in main),
        "fits_sensitivity": sum(r["fits"] for rs in sens_results.values() for r in rs),
        "checks_sensitivity": sum(r["checks"] for rs in sens_results.values() for r in rs),
        "n_jobs": p.n_jobs,
        "m": p.m,
        "sensitivity_datasets": n_sens if p.sensitivity else 0,
        "models_from": str(models_from) if models_from is not None else None,
        "pinned_not_usable": sum(mdl.status != FitStatus.OK for mdl in models) if models_from is not None else 0,
    }
    result = SelectionResult(models, screening, refused, sensitivity, years, stats)
    write_outputs(result, work_dir)
    log.info(
        "model selection: %d models on %d data sets in %.1f s (screening %.1f s, sensitivity %.1f s)",
        len(models),
        p.m,
        t3 - t0,
        t1 - t0,
        t3 - t2,
    )
    return result


def sensitivity_frame(results: dict[str, list[dict]]) -> pd.DataFrame:
    """sensitivity.csv rows: N-hat per analysis, data set, model type and year (and "total").

    ``n_obs`` is the number of persons observed on the analysis' registers.
    """
    rows = []
    for analysis, res in results.items():
        for r in res:
            for mdl in r["models"]:
                for year, n_hat in mdl.n_hat.items():
                    rows.append(
                        {
                            "analysis": analysis,
                            "dataset": mdl.dataset,
                            "type": mdl.type,
                            "year": year,
                            "n_obs": mdl.n_obs[year],
                            "n_hat": n_hat,
                        }
                    )
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def write_outputs(result: SelectionResult, work_dir: Path) -> None:
    """Write models.json, screening.csv, refused.csv and sensitivity.csv into ``work_dir``."""
    contract = [mdl.to_dict() for mdl in result.models]
    runfolder.write_selection(work_dir, contract, result.screening, result.refused, result.sensitivity)
