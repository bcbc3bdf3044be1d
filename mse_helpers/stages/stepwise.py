"""SparseMSE's stepwise selection by Poisson p-values (docs/selection.md 5; docs/engine.md 7).

Chan, Silverman and Vincent (2021, "Multiple systems estimation for sparse
capture data: inferential challenges when there are nonoverlapping lists",
JASA 116, 1297-1306), as the R package SparseMSE 2.0.1 implements it
(``stepwisefit``, called by ``estimatepopulation.0(method = "stepwise")``):

* start from the main-effects model; the candidates are the two-list terms,
  in the order (1,2), (1,3), ..., (1,t), (2,3), ...;
* at every step each candidate not yet in the model gets a p-value: the
  overlap of its two lists (the persons on both, whatever their other lists)
  is, under the current model without the term, Poisson with mean the sum of
  the fitted values of the cells on both lists; the p-value is the smaller
  tail, ``min(P(X <= n), P(X >= n))``;
* a candidate whose model (current terms plus the candidate) fails the
  existence or rank check gets p-value 1;
* the candidate with the smallest p-value is added when that p-value is below
  the threshold (0.02; ties: the first in candidate order) and the model is
  refitted; otherwise the search stops.

SparseMSE checks every candidate at every step; here the candidates below the
threshold are checked in the order of their p-values until one passes, which
takes the same term with a fraction of the checks.

The one difference: SparseMSE's check (``checkident``) lets a pair of lists
that never overlap into the model, held at minus infinity (its cells are
dropped from the fit), and its N-hat is that of the model on the remaining
cells. Here such a model has no MLE (the term has a zero sufficient
statistic), so the candidate gets p-value 1 and is recorded as refused; the
search then goes on without it. On the published tables this changes the
result only where SparseMSE reports "empty overlaps" (the Netherlands, six
and five lists; docs/r_comparison.md).

Non-existence is inherited by larger models, so a refused candidate is never
checked again (SparseMSE checks it at every step and gives it p-value 1 each
time: the same choice). A candidate is refused (and recorded) only when it
came up, that is when its p-value was below the threshold and smaller than
that of the term taken.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from scipy import stats

from ..engine.design import Design
from ..engine.existence import check_existence
from ..engine.fit import Fit, fit_model
from ..engine.status import FitStatus
from .selection import Counter, Selection

#: SparseMSE's default threshold (``pthresh``) of the p-value of an added term.
PTHRESH = 0.02


def list_pairs(design: Design) -> tuple[str, ...]:
    """The two-list terms in SparseMSE's candidate order: (1,2), (1,3), ..., (2,3), ..."""
    return tuple(f"{a}:{b}" for a, b in itertools.combinations(design.lists, 2))


def overlap_pvalue(observed: float, expected: float) -> float:
    """The smaller Poisson tail of an observed overlap: ``min(P(X <= n), P(X >= n))``, X ~ Poisson(expected).

    As SparseMSE's ``min(ppois(n, m), ppois(n - 1, m, lower.tail = FALSE))``.
    """
    return float(min(stats.poisson.cdf(observed, expected), stats.poisson.sf(observed - 1, expected)))


def overlap_pvalues(fit: Fit, pairs: Sequence[str]) -> dict[str, float]:
    """The p-value of each two-list term under ``fit`` (a model without it).

    Parameters
    ----------
    fit : Fit
        The current model (status ok).
    pairs : sequence of str
        Two-list terms ``"A:B"``.

    Returns
    -------
    dict
        Term -> p-value (:func:`overlap_pvalue` of the observed overlap
        against the sum of the fitted values of the cells on both lists).
    """
    design = fit.design
    out = {}
    for t in pairs:
        both = design.X_obs[:, design.blocks[t][0]]  # 1 on the observed cells on both lists
        out[t] = overlap_pvalue(float(both @ fit.y), float(both @ fit.fitted))
    return out


def stepwise(
    design: Design,
    counts: np.ndarray | None = None,
    *,
    pthresh: float = PTHRESH,
) -> Selection:
    """SparseMSE's stepwise selection of two-list terms (see the module docstring).

    Parameters
    ----------
    design : Design
        A table without covariates (the method is defined for lists only).
    counts : ndarray, optional
        Observed-cell counts (default: the design's).
    pthresh : float
        A term is added only when its p-value is below this (SparseMSE's
        ``pthresh``): 0 gives the main-effects model; 1 gives all two-list
        terms when that model has an MLE (as SparseMSE), else adds every
        term whose model has one.

    Returns
    -------
    Selection
        ``path``: terms added, in order; ``refused``: candidates that came up
        (p-value below the threshold) and whose model fails the check
        (``step``, ``term``, ``status``, ``reason``), each once.

    Raises
    ------
    ValueError
        A design with covariates, or ``pthresh`` outside [0, 1].
    RuntimeError
        When the main-effects model fails the check.
    """
    if design.factors:
        raise ValueError(
            f"stepwise selection (SparseMSE) is defined for tables of lists only; this table has "
            f"covariate(s) {list(design.factors)}"
        )
    if not 0 <= pthresh <= 1:
        raise ValueError(f"pthresh: must be between 0 and 1, got {pthresh}")
    counter = Counter()
    pairs = list_pairs(design)
    refused: list[dict] = []
    if pthresh == 1:
        counter.checks += 1
        full = fit_model(design, pairs, counts=counts, explain=False)
        counter.fits += 1
        if full.ok:
            return Selection(full, list(pairs), refused, counter)
    counter.checks += 1
    current = fit_model(design, (), counts=counts)
    counter.fits += 1
    if not current.ok:
        raise RuntimeError(f"main-effects model: {current.status}: {current.message}")
    if pthresh == 0:
        return Selection(current, [], refused, counter)
    pool = list(pairs)
    path: list[str] = []
    step = 0
    while pool:
        step += 1
        pvalues = overlap_pvalues(current, pool)
        # candidates by p-value (ties: candidate order, as SparseMSE's min(which(...)));
        # checking them in this order until one passes takes the term SparseMSE takes after
        # checking all of them (a failed one has p-value 1 there), with far fewer checks
        ranked = sorted((pvalues[t], i, t) for i, t in enumerate(pool) if pvalues[t] < pthresh)
        term = None
        for _, _, t in ranked:
            counter.checks += 1
            ex = check_existence(design, _in_order(pairs, current.terms + (t,)), counts=counts, explain=True)
            if ex.status == FitStatus.OK:
                term = t
                break
            refused.append({"step": step, "term": t, "status": ex.status, "reason": ex.message})
            pool.remove(t)  # a larger model has no MLE either: never a candidate again
        if term is None:
            break
        current = fit_model(
            design, _in_order(pairs, current.terms + (term,)), counts=counts, start=current.params, check=False
        )
        counter.fits += 1
        if not current.ok:  # the check passed, so Newton should converge; say so if not
            raise RuntimeError(f"stepwise step {step}, adding {term}: {current.status}: {current.message}")
        pool.remove(term)
        path.append(term)
    return Selection(current, path, refused, counter)


def _in_order(pairs: Sequence[str], terms: Sequence[str]) -> tuple[str, ...]:
    """Terms in candidate (= design) order, the canonical order of a model's terms."""
    chosen = set(terms)
    return tuple(t for t in pairs if t in chosen)
