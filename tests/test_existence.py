"""Tests of the existence and identifiability checks (mse_helpers.engine.existence)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mse_helpers.engine import existence as ex
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.fit import fit_model


def design_of(counts: dict[tuple, int], lists=("A", "B", "C"), three_factor=None) -> Design:
    rows = [dict(zip(lists, h), count=c) for h, c in counts.items()]
    return Design(complete_table(pd.DataFrame(rows), list(lists)), list(lists), three_factor=three_factor)


def artificial3() -> Design:
    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "artificial3.csv", comment="#")
    return Design(complete_table(frame, ["A", "B", "C"]), ["A", "B", "C"])


def test_non_overlapping_pair_has_no_mle_and_is_named():
    # lists A and B never overlap, C overlaps both
    d = design_of({(1, 0, 0): 30, (0, 1, 0): 25, (0, 0, 1): 40, (1, 0, 1): 8, (0, 1, 1): 5})
    res = ex.check_existence(d, ("A:B",))
    assert res.status == "mle_does_not_exist" and res.responsible == ("A:B",)
    assert "A:B" in res.message
    assert ex.check_existence(d, ()).status == "ok"
    assert ex.check_existence(d, ("A:C",)).status == "ok"
    # with both A:C and B:C, A and B are independent given C; with no A-B overlap the
    # fitted A&B cells are forced to 0 although no single margin is 0
    both = ex.check_existence(d, ("A:C", "B:C"))
    assert both.status == "mle_does_not_exist" and set(both.responsible) <= {"A:C", "B:C"}
    fit = fit_model(d, "A:B")
    assert fit.status == "mle_does_not_exist" and np.isnan(fit.n_hat) and fit.params.empty


def test_artificial3_statuses_of_chan_silverman_vincent():
    # Table 2/3 of Chan, Silverman and Vincent (2021): with only AB, the LP is 0 (no MLE)
    d = artificial3()
    assert ex.check_existence(d, ()).status == "ok"
    ab = ex.check_existence(d, ("A:B",))
    assert ab.status == "mle_does_not_exist"
    assert ab.responsible == ("A:B",)  # found through the direction of recession, not a zero margin
    assert ex.check_existence(d, ("A:B",), method="fienberg-rinaldo").status == "mle_does_not_exist"
    # A, C never overlap: SparseMSE sets that term to -infinity (extended MLE) and calls
    # the model fine; the project's rule (docs/method.md 5) refuses it and names the term
    ac = ex.check_existence(d, ("A:C", "B:C"))
    assert ac.status == "mle_does_not_exist" and set(ac.responsible) == {"A:C", "B:C"}


def test_three_list_interaction_is_not_identifiable():
    d = design_of({h: 10 + i for i, h in enumerate(itertools.product((0, 1), repeat=3)) if any(h)}, three_factor="all")
    res = ex.check_existence(d, ("A:B", "A:C", "B:C", "A:B:C"))
    assert res.status == "not_identifiable"
    assert res.rank_deficiency == 1 and res.responsible == ("A:B:C",)
    assert ex.check_existence(d, ("A:B", "A:C", "B:C")).status == "ok"


def test_dependent_columns_blames_the_later_column():
    X = np.array([[1, 0, 1, 2], [1, 1, 0, 2], [1, 1, 1, 2], [1, 0, 0, 2.0]])
    assert ex.dependent_columns(X).tolist() == [3]
    assert ex.dependent_columns(np.eye(4)).tolist() == []


def test_positive_table_skips_the_lp():
    d = design_of({h: 5 for h in itertools.product((0, 1), repeat=3) if any(h)})
    res = ex.check_existence(d, ("A:B", "B:C"))
    assert res.status == "ok" and res.lp_value == np.inf


def sparse_design(seed: int) -> Design:
    rng = np.random.default_rng(seed)
    lists = list("ABCDE")
    rows = [h for h in itertools.product((0, 1), repeat=5) if any(h)]
    frame = pd.DataFrame(rows, columns=lists)
    eta = 2.5 - 1.4 * frame.sum(axis=1).to_numpy() + rng.normal(0, 0.8, len(frame))
    frame["count"] = rng.poisson(np.exp(eta))
    return Design(complete_table(frame, lists), lists)


@pytest.mark.parametrize("seed", range(12))
def test_both_lps_agree_on_random_sparse_tables(seed):
    d = sparse_design(seed)
    rng = np.random.default_rng(seed)
    terms = tuple(sorted(rng.choice(d.candidate_terms, size=int(rng.integers(1, 10)), replace=False).tolist()))
    fr = ex.check_existence(d, terms, method="fienberg-rinaldo")
    dr = ex.check_existence(d, terms, method="direction")
    assert fr.status == dr.status


@pytest.mark.parametrize("seed", range(6))
def test_existence_is_inherited_by_submodels(seed):
    # the fact backward elimination relies on (docs/engine.md): dropping a term never
    # destroys existence or identifiability
    d = sparse_design(50 + seed)
    rng = np.random.default_rng(seed)
    terms = tuple(t for t in d.candidate_terms if rng.random() < 0.5)
    if ex.check_existence(d, terms).status != "ok":
        terms = ()
    for t in terms:
        sub = tuple(u for u in terms if u != t)
        assert ex.check_existence(d, sub).status == "ok"


def test_failing_model_would_drift_in_an_unchecked_fit():
    # why the check exists: an unchecked Newton fit runs the A:B coefficient off towards
    # -infinity (or stops without converging) instead of reporting a status
    d = design_of({(1, 0, 0): 30, (0, 1, 0): 25, (0, 0, 1): 40, (1, 0, 1): 8, (0, 1, 1): 5})
    unchecked = fit_model(d, "A:B", check=False)
    assert (not unchecked.ok) or unchecked.params["A:B"] < -15
    assert fit_model(d, "A:B").status == "mle_does_not_exist"
