"""Tests of the log-linear MSE engine (mse_helpers.engine: cells, design, fit, estimates, resample).

Closed-form cases, structural zeros, strata, warm starts, the bootstrap, and
agreement with statsmodels GLM Poisson on the same design matrix.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from mse_helpers.engine.cells import cell_codes, complete_table, count_table, pattern_labels
from mse_helpers.engine.design import Design, parse_terms
from mse_helpers.engine.estimates import by_groups, n_hat_by, n_hat_groups
from mse_helpers.engine.fit import fit_model, refit
from mse_helpers.engine.resample import parametric_bootstrap
from mse_helpers.engine.status import FitStatus

REL = 1e-8  # issue 14: llf and N-hat equal to statsmodels to 1e-8 relative


def table_from_dict(counts: dict[tuple, int], lists: list[str]) -> pd.DataFrame:
    """Histories (tuples of 0/1) -> complete table."""
    rows = [dict(zip(lists, h), count=c) for h, c in counts.items()]
    return complete_table(pd.DataFrame(rows), lists)


def statsmodels_fit(design: Design, terms: tuple[str, ...], y: np.ndarray | None = None):
    """statsmodels GLM Poisson on exactly our design; returns (result, n_hat)."""
    cols = design.columns(terms)
    y = design.y if y is None else y
    res = sm.GLM(y, design.X_obs[:, cols], family=sm.families.Poisson()).fit(tol=1e-13, maxiter=500)
    n_hat = y.sum() + np.exp(design.X_unobs[:, cols] @ res.params).sum()
    return res, n_hat


def random_table(rng: np.random.Generator, n_lists: int, factors: dict[str, list], size: float) -> pd.DataFrame:
    """Complete table with Poisson counts from a random log-linear model (sparse when size is small)."""
    lists = [chr(ord("A") + i) for i in range(n_lists)]
    levels = [(0, 1)] * n_lists + [tuple(v) for v in factors.values()]
    rows = list(itertools.product(*levels))
    frame = pd.DataFrame(rows, columns=lists + list(factors))
    eta = np.log(size) + frame[lists].to_numpy() @ rng.normal(-1.0, 0.5, n_lists)
    # a few random list interactions and factor effects
    for a, b in itertools.combinations(lists, 2):
        eta += rng.normal(0, 0.7) * frame[a].to_numpy() * frame[b].to_numpy()
    for f, lv in factors.items():
        eff = dict(zip(lv, rng.normal(0, 0.4, len(lv))))
        eta += frame[f].map(eff).to_numpy()
    frame["count"] = rng.poisson(np.exp(eta))
    frame = frame[frame[lists].sum(axis=1) > 0]
    return complete_table(frame, lists, list(factors))


# --- closed forms ----------------------------------------------------------------


@pytest.mark.parametrize("n10,n01,n11", [(60, 40, 20), (7, 13, 3), (250, 31, 9)])
def test_two_lists_is_lincoln_petersen(n10, n01, n11):
    d = Design(table_from_dict({(1, 0): n10, (0, 1): n01, (1, 1): n11}, ["A", "B"]), ["A", "B"])
    fit = fit_model(d)
    expected = (n10 + n11) * (n01 + n11) / n11
    assert fit.ok
    assert fit.n_hat == pytest.approx(expected, rel=1e-9)
    assert fit.df_resid == 0 and fit.deviance == pytest.approx(0, abs=1e-8)


def test_three_lists_independence_solves_darroch_equation():
    # Under independence the MLE satisfies N - n = N * prod_j (1 - n_j / N)
    counts = {(1, 0, 0): 52, (0, 1, 0): 31, (0, 0, 1): 44, (1, 1, 0): 9, (1, 0, 1): 12, (0, 1, 1): 6, (1, 1, 1): 2}
    d = Design(table_from_dict(counts, ["A", "B", "C"]), ["A", "B", "C"])
    fit = fit_model(d)
    n = sum(counts.values())
    margins = [sum(c for h, c in counts.items() if h[j]) for j in range(3)]
    N = fit.n_hat
    assert N - n == pytest.approx(N * np.prod([1 - m / N for m in margins]), rel=1e-9)
    assert fit.df_resid == 7 - 4


def test_three_lists_all_two_factor_terms_closed_form():
    # saturated on the observed cells: m0 = n111 n100 n010 n001 / (n110 n101 n011)
    counts = {(1, 0, 0): 52, (0, 1, 0): 31, (0, 0, 1): 44, (1, 1, 0): 9, (1, 0, 1): 12, (0, 1, 1): 6, (1, 1, 1): 2}
    d = Design(table_from_dict(counts, ["A", "B", "C"]), ["A", "B", "C"])
    fit = fit_model(d, "all2")
    m0 = 2 * 52 * 31 * 44 / (9 * 12 * 6)
    assert fit.ok and fit.df_resid == 0
    assert fit.n_hat == pytest.approx(sum(counts.values()) + m0, rel=1e-9)
    np.testing.assert_allclose(fit.fitted, d.y, rtol=1e-8)


def test_fit_is_built_complete_and_its_criteria_are_computed():
    d = Design(table_from_dict({(1, 0): 60, (0, 1): 40, (1, 1): 20}, ["A", "B"]), ["A", "B"])
    fit = fit_model(d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.llf = 0.0
    assert fit.status is FitStatus.OK and fit.status == "ok" and json.dumps(fit.status) == '"ok"'
    assert (fit.nobs, fit.n_params, fit.df_resid) == (3, 3, 0)
    assert fit.aic == -2 * fit.llf + 2 * 3 and fit.bic == -2 * fit.llf + np.log(3) * 3
    assert list(fit.params.index) == ["(Intercept)", "A", "B"]
    # a refused model: a status, the reason apart, and no numbers
    zero = Design(table_from_dict({(1, 0): 6, (0, 1): 4, (1, 1): 0}, ["A", "B"]), ["A", "B"])
    refused = fit_model(zero)
    assert refused.status is FitStatus.NO_MLE and "MLE does not exist" in refused.message
    assert np.isnan(refused.aic) and np.isnan(refused.n_hat) and refused.params.empty


def test_saturated_three_lists_with_an_empty_cell_has_no_mle():
    counts = {(1, 0, 0): 52, (0, 1, 0): 31, (0, 0, 1): 44, (1, 1, 0): 9, (1, 0, 1): 12, (0, 1, 1): 0, (1, 1, 1): 2}
    d = Design(table_from_dict(counts, ["A", "B", "C"]), ["A", "B", "C"], three_factor="all")
    fit = fit_model(d, "all2")
    assert fit.status == "mle_does_not_exist"
    assert np.isnan(fit.n_hat) and np.isnan(fit.llf)
    assert fit.responsible  # some term is named
    # the three-list term is never identifiable: the all-zero cell is unobserved
    fit3 = fit_model(d, "all3")
    assert fit3.status == "not_identifiable"
    assert fit3.responsible == ("A:B:C",)


# --- covariates and strata ----------------------------------------------------------


def strata_table() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    t = random_table(rng, 3, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=40.0)
    # empty the stratum (S=M, J=2018): nobody registered there
    t.loc[(t["S"] == "M") & (t["J"] == 2018), "count"] = 0
    return t


def test_empty_stratum_makes_its_interaction_fail_but_not_main_effects():
    t = strata_table()
    d = Design(t, ["A", "B", "C"], ["S", "J"])
    bad = fit_model(d, "S:J")
    assert bad.status == "mle_does_not_exist"
    assert "S:J" in bad.responsible
    ok = fit_model(d, "A:B")
    assert ok.ok
    st = n_hat_by(ok, ["S", "J"])
    empty = st[(st["S"] == "M") & (st["J"] == 2018)].iloc[0]
    assert empty["n_obs"] == 0 and empty["n_hat"] > 0  # the model still predicts people there
    # groupings add up: per year = sum of its strata; total = sum of years
    by_year = n_hat_by(ok, "J")
    np.testing.assert_allclose(by_year["n_hat"].to_numpy(), st.groupby("J")["n_hat"].sum().to_numpy(), rtol=1e-12)
    assert by_year["n_hat"].sum() == pytest.approx(ok.n_hat, rel=1e-12)
    assert by_year["n_obs"].sum() == t["count"].sum()
    np.testing.assert_allclose(by_year["dark"], by_year["n_hat"] - by_year["n_obs"])


def test_n_hat_groups_cover_total_year_covariate_and_pairs():
    rng = np.random.default_rng(11)
    t = random_table(rng, 3, {"S": ["F", "M"], "L": ["A", "M"], "J": [2016, 2017]}, size=60.0)
    d = Design(t, ["A", "B", "C"], ["S", "L", "J"])
    fit = fit_model(d, "A:B,S:J")
    g = n_hat_groups(fit)
    total = g[(g["year"] == "all") & (g["group"] == "total")]["n_hat"].iloc[0]
    assert total == pytest.approx(fit.n_hat, rel=1e-12)
    for year in ("2016", "2017"):
        yt = g[(g["year"] == year) & (g["group"] == "total")]["n_hat"].iloc[0]
        by_s = g[(g["year"] == year) & g["group"].isin(["S=F", "S=M"])]["n_hat"].sum()
        pairs = g[(g["year"] == year) & g["group"].str.startswith("S=") & g["group"].str.contains("&L=")]
        assert by_s == pytest.approx(yt, rel=1e-12)
        assert len(pairs) == 4 and pairs["n_hat"].sum() == pytest.approx(yt, rel=1e-12)


def test_year_terms_count_k_minus_1_parameters():
    rng = np.random.default_rng(3)
    t = random_table(rng, 3, {"S": ["F", "M"], "J": [2016, 2017, 2018, 2019]}, size=80.0)
    d = Design(t, ["A", "B", "C"], ["S", "J"])
    base = d.n_params(())
    assert base == 1 + 3 + 1 + 3
    assert d.n_params(("A:J",)) == base + 3
    assert d.n_params(("S:J",)) == base + 3
    assert d.n_params(("A:B",)) == base + 1
    fit = fit_model(d, "A:J")
    assert fit.bic == pytest.approx(-2 * fit.llf + np.log(d.n_cells) * (base + 3), rel=1e-12)
    assert d.n_cells == (2**3 - 1) * 2 * 4


# --- count_table ---------------------------------------------------------------------


def test_count_table_cross_classifies_persons_with_zero_cells():
    persons = pd.DataFrame(
        {
            "P": [1, 1, 0, 1, 0],
            "R": [0, 1, 1, 0, 1],
            "S": ["M", "F", "F", "M", "M"],
            "J": [2017, 2017, 2016, 2017, 2016],
        }
    )
    t = count_table(persons, ["P", "R"], ["S", "J"])
    assert len(t) == 4 * 2 * 2
    assert t["count"].sum() == 5
    assert (~t["observed"]).sum() == 4 and t.loc[~t["observed"], "count"].eq(0).all()
    cell = t[(t.P == 1) & (t.R == 0) & (t.S == "M") & (t.J == 2017)]
    assert cell["count"].iloc[0] == 2
    # covariate levels follow codes.COVARIATES (F first = baseline) even if F is rarer
    d = Design(t, ["P", "R"], ["S", "J"])
    assert d.levels["S"] == ("F", "M") and "S[M]" in d.column_names and "J[2017]" in d.column_names


def test_count_table_rejects_bad_persons():
    good = pd.DataFrame({"P": [1, 0], "R": [0, 1], "J": [2016, 2016]})
    with pytest.raises(ValueError, match="on no list"):
        count_table(pd.concat([good, pd.DataFrame({"P": [0], "R": [0], "J": [2016]})]), ["P", "R"], ["J"])
    with pytest.raises(ValueError, match="'R' must be 0 or 1.*data row 2"):
        count_table(good.assign(R=[0, 2]), ["P", "R"], ["J"])
    with pytest.raises(ValueError, match="'J' is missing"):
        count_table(good.assign(J=[2016, None]), ["P", "R"], ["J"])


def test_complete_table_rejects_all_zero_history_and_duplicates():
    frame = pd.DataFrame({"A": [1, 0, 0], "B": [0, 1, 0], "count": [3, 4, 5]})
    with pytest.raises(ValueError, match=r"data row\(s\) \[3\] have every list 0"):
        complete_table(frame, ["A", "B"])
    dup = pd.DataFrame({"A": [1, 1], "B": [0, 0], "count": [3, 4]})
    with pytest.raises(ValueError, match="repeated in data rows \\[1, 2\\]"):
        complete_table(dup, ["A", "B"])


def test_parse_terms_canonical_names_and_formulas():
    v = ["A", "B", "C", "S"]
    assert parse_terms("B:A, C:A", v) == ("A:B", "A:C")
    assert parse_terms("~ A*B*C", v) == ("A:B", "A:C", "B:C", "A:B:C")
    assert parse_terms("A + B + S:A", v) == ("A:S",)
    assert len(parse_terms("all2", v)) == 6
    with pytest.raises(ValueError, match="unknown variable"):
        parse_terms("A:Q", v)
    with pytest.raises(ValueError, match="not in the design"):
        parse_terms("A:B:C", v, candidates=parse_terms("all2", v))


# --- agreement with statsmodels --------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_statsmodels_on_random_tables(seed):
    rng = np.random.default_rng(100 + seed)
    size = [3.0, 10.0, 50.0][seed % 3]  # sparse to dense
    t = random_table(rng, 4, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=size)
    d = Design(t, ["A", "B", "C", "D"], ["S", "J"], three_factor=["A:B:J"])
    cand = list(d.candidate_terms)
    terms = tuple(sorted(rng.choice(cand, size=int(rng.integers(0, 8)), replace=False).tolist()))
    fit = fit_model(d, terms)
    if not fit.ok:
        assert fit.status in ("mle_does_not_exist", "not_identifiable") and np.isnan(fit.n_hat)
        return
    res, n_hat = statsmodels_fit(d, fit.terms)
    assert fit.llf == pytest.approx(res.llf, rel=REL)
    assert fit.deviance == pytest.approx(res.deviance, rel=REL, abs=1e-8)
    assert fit.aic == pytest.approx(res.aic, rel=REL)
    assert fit.bic == pytest.approx(res.bic_llf, rel=REL)
    assert fit.df_resid == res.df_resid
    assert fit.n_hat == pytest.approx(n_hat, rel=REL)


def test_agrees_with_statsmodels_on_study_size_table():
    # 6 lists x S L N U x 4 years = 4,096 cells (4,032 observed), all two-factor terms
    rng = np.random.default_rng(2016)
    t = random_table(
        rng,
        6,
        {"S": ["F", "M"], "L": ["A", "M"], "N": ["NL", "O"], "U": ["S", "O"], "J": [2016, 2017, 2018, 2019]},
        size=40.0,
    )
    lists = list("ABCDEF")
    d = Design(t, lists, ["S", "L", "N", "U", "J"])
    assert d.n_cells == 4032
    fit = fit_model(d, "all2")
    assert fit.ok, fit.message
    assert fit.n_params == 89
    res, n_hat = statsmodels_fit(d, fit.terms)
    assert fit.llf == pytest.approx(res.llf, rel=REL)
    assert fit.n_hat == pytest.approx(n_hat, rel=REL)
    by_year = n_hat_by(fit, "J")
    cols = d.columns(fit.terms)
    m0_sm = np.exp(d.X_unobs[:, cols] @ res.params)
    sm_year = pd.Series(m0_sm).groupby(d.strata["J"].to_numpy()).sum()
    np.testing.assert_allclose(by_year["dark"].to_numpy(), sm_year.to_numpy(), rtol=REL)


def test_sparse_real_table_uk2013_agrees_with_statsmodels():
    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "uk2013.csv", comment="#")
    lists = ["LA", "NG", "PF", "GO", "GP", "NCA"]
    d = Design(complete_table(frame, lists), lists)
    for terms in [(), ("NG:PF", "PF:GO", "LA:NG")]:
        fit = fit_model(d, terms)
        assert fit.ok
        res, n_hat = statsmodels_fit(d, fit.terms)
        assert fit.llf == pytest.approx(res.llf, rel=REL)
        assert fit.n_hat == pytest.approx(n_hat, rel=REL)


# --- warm starts, refits, bootstrap ----------------------------------------------------------


def test_warm_start_gives_the_same_fit_in_fewer_iterations():
    rng = np.random.default_rng(7)
    t = random_table(rng, 5, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=30.0)
    d = Design(t, list("ABCDE"), ["S", "J"])
    full = fit_model(d, "all2")
    assert full.ok
    smaller = tuple(x for x in full.terms if x != "A:B")
    cold = fit_model(d, smaller)
    warm = fit_model(d, smaller, start=full.params)  # full has an extra coefficient: ignored
    assert warm.n_hat == pytest.approx(cold.n_hat, rel=1e-9)
    assert warm.llf == pytest.approx(cold.llf, rel=1e-12)
    assert warm.n_iter < cold.n_iter
    back = fit_model(d, full.terms, start=warm.params)  # added term starts at 0
    assert back.n_hat == pytest.approx(full.n_hat, rel=1e-9)


def test_a_start_series_changed_in_place_is_matched_again():
    # the start's match is kept per Series object: a Series changed since must not reuse it
    rng = np.random.default_rng(8)
    t = random_table(rng, 4, {"J": [2016, 2017, 2018]}, size=30.0)
    d = Design(t, list("ABCD"), ["J"])
    full = fit_model(d, "all2")
    start = full.params.copy()
    first = fit_model(d, full.terms, start=start)
    start.iloc[:] = 0.0  # in place: same object, same index
    again = fit_model(d, full.terms, start=start)
    fresh = fit_model(d, full.terms, start=pd.Series(0.0, index=full.params.index))
    assert first.n_iter < again.n_iter
    assert again.n_iter == fresh.n_iter and np.array_equal(again.beta, fresh.beta)


def test_refit_with_new_counts_matches_a_fresh_design():
    rng = np.random.default_rng(8)
    t = random_table(rng, 4, {"J": [2016, 2017]}, size=200.0)
    d = Design(t, list("ABCD"), ["J"])
    fit = fit_model(d, "A:B,C:J")
    assert fit.ok
    for _ in range(20):  # the A&B cells are small: some draws have no A:B overlap (no MLE)
        y_new = rng.poisson(fit.fitted).astype(float)
        re = refit(fit, y_new)
        if re.ok:
            break
    assert re.ok, re.message
    t2 = t.copy()
    t2.loc[t2["observed"], "count"] = y_new.astype(int)
    fresh = fit_model(Design(t2, list("ABCD"), ["J"]), "A:B,C:J")
    assert re.n_hat == pytest.approx(fresh.n_hat, rel=1e-9)
    assert re.n_obs == y_new.sum()


def test_bootstrap_counts_failed_replicates_and_is_reproducible():
    # n11 = 1: about e^-1 of the redrawn tables have n11 = 0, where the MLE does not exist
    d = Design(table_from_dict({(1, 0): 30, (0, 1): 20, (1, 1): 1}, ["A", "B"]), ["A", "B"])
    fit = fit_model(d)
    total = by_groups(d.strata, [])
    b1 = parametric_bootstrap(fit, 60, np.random.default_rng(42), total)
    b2 = parametric_bootstrap(fit, 60, np.random.default_rng(42), total)
    assert b1.n_failed == b2.n_failed and np.array_equal(b1.replicates, b2.replicates)
    # replay the draws: failures are exactly the replicates with no overlap
    rng = np.random.default_rng(42)
    zero_overlap = 0
    for _ in range(60):
        y = rng.poisson(fit.fitted)
        rng.poisson(fit.m0)
        zero_overlap += int(y[d.table.loc[d.observed, ["A", "B"]].sum(axis=1).to_numpy() == 2][0] == 0)
    assert b1.n_failed == zero_overlap > 0
    assert b1.failed_status == {"mle_does_not_exist": zero_overlap}
    assert len(b1.replicates) == 60 - zero_overlap
    assert np.isfinite(b1.replicates).all()
    iv = b1.interval()
    assert iv["lower"].iloc[0] < iv["upper"].iloc[0]


def test_bootstrap_by_group_and_interval_brackets_the_estimate():
    rng = np.random.default_rng(9)
    t = random_table(rng, 3, {"J": [2016, 2017]}, size=200.0)
    d = Design(t, list("ABC"), ["J"])
    fit = fit_model(d, "A:B")
    boot = parametric_bootstrap(fit, 40, np.random.default_rng(1), by_groups(d.strata[["J"]], ["J"]))
    assert boot.n_failed == 0
    iv = boot.interval()
    per_year = iv[iv["group"] != "total"]
    assert list(per_year["group"]) == ["J=2016", "J=2017"]
    est = n_hat_by(fit, "J")["n_hat"].to_numpy()
    assert ((per_year["lower"].to_numpy() < est) & (est < per_year["upper"].to_numpy())).all()
    # the groups' point estimates are the fit's
    np.testing.assert_allclose(boot.n_hat, np.r_[fit.n_hat, est], rtol=1e-12)


def test_fast_information_matrix_equals_the_direct_product():
    # the split-by-year plan (speed path) must give X' diag(mu) X exactly (to float32 rounding)
    rng = np.random.default_rng(12)
    t = random_table(rng, 4, {"S": ["F", "M"], "J": [2016, 2017, 2018, 2019]}, size=20.0)
    d = Design(t, list("ABCD"), ["S", "J"], three_factor=["A:B:J", "A:B:C", "S:A:J"])
    for spec in (None, "all2", "A:B,A:J,B:J,A:B:J", "A:B:C,S:J,A:S:J"):
        cols = d.columns(d.terms(spec))
        X = d.X_obs[:, cols]
        mu = rng.gamma(1.0, 2.0, X.shape[0])
        H = d.info_plan(cols).information(mu)
        np.testing.assert_allclose(H, (X * mu[:, None]).T @ X, rtol=2e-6, atol=1e-6 * mu.sum())


def test_three_factor_term_with_year_agrees_with_statsmodels():
    rng = np.random.default_rng(13)
    t = random_table(rng, 4, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=60.0)
    d = Design(t, list("ABCD"), ["S", "J"], three_factor=["A:B:J"])
    fit = fit_model(d, "A:B,A:J,B:J,A:B:J")
    assert fit.ok and fit.n_params == 1 + 4 + 1 + 2 + 1 + 2 + 2 + 2
    res, n_hat = statsmodels_fit(d, fit.terms)
    assert fit.llf == pytest.approx(res.llf, rel=REL)
    assert fit.n_hat == pytest.approx(n_hat, rel=REL)


# --- cell codes ------------------------------------------------------------------------------


def test_cell_codes_count_the_cells_of_complete_table_in_order():
    rng = np.random.default_rng(12)
    t = random_table(rng, 3, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=5.0)
    levels = {"S": ("F", "M"), "J": (2016, 2017, 2018), "A": (0, 1), "B": (0, 1), "C": (0, 1)}
    codes = cell_codes(t, ["S", "J", "A", "B", "C"], levels)
    np.testing.assert_array_equal(codes, np.arange(len(t)))  # factors slowest, lists fastest
    # numbers match by value, text by text: 2017.0 and "2017" find the cell of 2017
    as_text = t.assign(J=t["J"].astype(str))
    np.testing.assert_array_equal(
        cell_codes(as_text, ["J"], levels), cell_codes(t.assign(J=t["J"] * 1.0), ["J"], levels)
    )
    assert list(pattern_labels(2)[cell_codes(t.iloc[:4], ["B", "C"], levels)]) == ["00", "01", "10", "11"]
    bad = t.assign(S=t["S"].where(t.index != 4, "X"))
    with pytest.raises(ValueError, match=r"persons\.csv: column 'S' has 'X' in data row 5, not one of"):
        cell_codes(bad, ["S"], levels, source="persons.csv")
    gap = t.assign(J=t["J"].where(t.index != 2))
    with pytest.raises(ValueError, match=r"column 'J' is missing in data row 3"):
        cell_codes(gap, ["J"], levels)


# --- the lattice path (subset sums instead of the design matrix) ------------------------------


def test_lattice_products_equal_the_dense_design():
    rng = np.random.default_rng(21)
    t = random_table(rng, 4, {"S": ["F", "M"], "J": [2016, 2017, 2018, 2019]}, size=20.0)
    terms3 = ["A:B:J", "A:B:C", "S:A:J", "A:B:S"]
    d = Design(t, list("ABCD"), ["S", "J"], three_factor=terms3, lattice=True)
    assert d.uses_lattice
    for spec in (None, "all2", "A:B,A:J,B:J,A:B:J", "A:B:C,S:J,A:S:J,A:B:S,A:B,A:S,B:S"):
        cols = d.columns(d.terms(spec))
        X = d.X_obs[:, cols]
        L = d.lattice_model(cols)
        beta = rng.normal(0, 0.3, cols.size)
        r = rng.normal(0, 1, X.shape[0])
        mu = rng.gamma(1.0, 2.0, X.shape[0])
        np.testing.assert_allclose(L.dot(beta), X @ beta, rtol=0, atol=1e-12)
        np.testing.assert_allclose(L.tdot(r), r @ X, rtol=0, atol=1e-10)
        np.testing.assert_allclose(L.information(mu), (X * mu[:, None]).T @ X, rtol=1e-12, atol=1e-10)
        B = rng.normal(0, 0.3, (cols.size, 5))
        np.testing.assert_allclose(L.dot_many(B), X @ B, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_lattice_fits_agree_with_the_dense_path_and_statsmodels(seed):
    rng = np.random.default_rng(300 + seed)
    size = [3.0, 10.0, 50.0][seed % 3]  # sparse to dense
    t = random_table(rng, 4, {"S": ["F", "M"], "J": [2016, 2017, 2018]}, size=size)
    dense = Design(t, list("ABCD"), ["S", "J"], three_factor=["A:B:J"])
    lattice = Design(t, list("ABCD"), ["S", "J"], three_factor=["A:B:J"], lattice=True)
    terms = tuple(sorted(rng.choice(list(dense.candidate_terms), size=int(rng.integers(0, 9)), replace=False).tolist()))
    a, b = fit_model(dense, terms), fit_model(lattice, terms)
    assert a.status == b.status
    if not a.ok:
        return
    assert b.llf == pytest.approx(a.llf, rel=1e-11) and b.n_hat == pytest.approx(a.n_hat, rel=1e-9)
    res, n_hat = statsmodels_fit(dense, a.terms)
    assert b.llf == pytest.approx(res.llf, rel=REL) and b.n_hat == pytest.approx(n_hat, rel=REL)
    # a warm refit after dropping a term, as model selection does
    if terms:
        smaller = terms[1:]
        np.testing.assert_allclose(
            fit_model(lattice, smaller, start=b.params, check=False).n_hat,
            fit_model(dense, smaller, check=False).n_hat,
            rtol=1e-9,
        )


def test_lattice_needs_binary_variables_but_one_factor():
    rng = np.random.default_rng(22)
    t = random_table(rng, 3, {"L": ["a", "b", "c"], "J": [2016, 2017, 2018]}, size=30.0)
    d = Design(t, list("ABC"), ["L", "J"], lattice=True)
    assert not d.uses_lattice  # two factors with three levels: the dense path
    assert fit_model(d, "A:B,A:L").ok


def test_bootstrap_bias_is_the_exact_small_sample_bias_of_lincoln_petersen():
    """Bootstrap.bias against its exact value, computed without the engine.

    Two lists: the fit reproduces the observed cells (mu = 40, 30, 6), N-hat =
    n_obs + y10 y01 / y11 = 276. A replicate draws three independent Poisson counts and
    is usable when y11 > 0, so E[N-hat*] = 40 + 30 + E[Y | Y > 0] + 1200 E[1/Y | Y > 0],
    Y ~ Poisson(6): the upward bias of the estimator in a small overlap (about +35).
    """
    from scipy import stats

    d = Design(table_from_dict({(1, 0): 40, (0, 1): 30, (1, 1): 6}, ["A", "B"]), ["A", "B"])
    fit = fit_model(d)
    assert fit.n_hat == pytest.approx(276.0, rel=1e-10)
    boot = parametric_bootstrap(fit, 4000, np.random.default_rng(2026), by_groups(d.strata, []))
    k = np.arange(1, 200)
    w = stats.poisson.pmf(k, 6.0) / stats.poisson.sf(0, 6.0)
    exact = 40 + 30 + (w * k).sum() + 1200 * (w / k).sum() - 276.0
    se = boot.replicates[:, 0].std(ddof=1) / np.sqrt(boot.n_ok)
    assert exact > 30  # the bias the test is about is there
    assert abs(boot.bias[0] - exact) < 4 * se
    assert boot.bias[0] == pytest.approx(boot.replicates[:, 0].mean() - boot.n_hat[0], rel=1e-12)
