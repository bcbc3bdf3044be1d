"""Tests of the parameter ``uncertainty`` (mse_helpers/stages/uncertainty.py, docs/estimation.md 6):
``study`` leaves the study's results untouched; ``reselect`` repeats the model selection in every
bootstrap replicate (the full selection), pools all replicates into a percentile interval,
is seeded per model and replicate and does not depend on the number of workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_bootstrap import COVS, YEARS, params, simulate_persons, write_work_dir

from mse_helpers.codes import REGISTERS
from mse_helpers.engine.cells import dataset_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import group_matrix
from mse_helpers.engine.existence import check_existence
from mse_helpers.engine.fit import fit_model
from mse_helpers.engine.status import FitStatus
from mse_helpers.runner.params import ParameterError
from mse_helpers.stages import bootstrap as bs
from mse_helpers.stages import selection
from mse_helpers.stages import uncertainty as unc

SCREENED = ["O:P:R", "I:O:P"]


def with_screening(work):
    """The screening file notebook 03 writes (reselect reads the kept three-factor terms)."""
    pd.DataFrame(
        {"term": SCREENED + ["K:O:P"], "bic_gain": [3.0, 1.0, -2.0], "rank": [1, 2, 3], "kept": [True, True, False]}
    ).to_csv(work / "screening.csv", index=False)
    return work


def small_table(seed: int = 3):
    persons = simulate_persons(np.random.default_rng(seed), n_per_year=1200)
    table = dataset_table(persons, REGISTERS, COVS, YEARS)
    design = Design(table, REGISTERS, COVS + ["J"], three_factor=SCREENED)
    y = table["count"].to_numpy()[table["observed"].to_numpy().astype(bool)].astype(float)
    return design, y


# --- parameter and study --------------------------------------------------------------


def test_uncertainty_parameter_is_checked_and_study_is_the_default():
    assert params().uncertainty == unc.STUDY
    assert params(uncertainty="reselect").uncertainty == unc.RESELECT
    with pytest.raises(ParameterError, match="parameter uncertainty: must be one of study, reselect"):
        params(uncertainty="bootstrap-all")


def test_study_gives_byte_identical_estimates_and_reselect_changes_only_the_interval(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=2)
    with_screening(work)
    bs.run_stage(params(), work, tmp_path / "d")
    study = bs.run_stage(params(uncertainty="study"), work, tmp_path / "s")
    assert (tmp_path / "d" / "estimates.csv").read_bytes() == (tmp_path / "s" / "estimates.csv").read_bytes()
    assert study.reselection is None
    resel = bs.run_stage(params(uncertainty="reselect", bootstrap=3), work, tmp_path / "r")
    # the point estimates, n_obs and Rubin's variances are those of the study's method (with its own B)
    study3 = bs.run_stage(params(bootstrap=3), work, tmp_path / "s3").estimates
    same = ["year", "group", "n_obs", "n_hat", "ratio", "dark", "var_within", "var_between", "var_total", "df"]
    pd.testing.assert_frame_equal(resel.estimates[same], study3[same])
    assert (resel.estimates["interval"] == "reselect").all()
    est = resel.estimates
    assert (est["lower"] >= est["n_obs"]).all() and (est["upper"] > est["lower"]).all()
    np.testing.assert_allclose(est["dark_lower"], est["lower"] - est["n_obs"])
    assert not np.allclose(est["lower"], study3["lower"])
    # every replicate of every model is accounted for
    r = resel.reselection
    assert len(r) == 4 and (r["n_rep"] == 3).all()
    assert (r["n_rep_ok"] + r["n_rep_failed"] == 3).all()
    written = pd.read_csv(tmp_path / "r" / "estimates.csv", dtype={"year": str})
    assert list(written.columns) == bs.ESTIMATE_COLUMNS and (written["interval"] == "reselect").all()


def test_reselect_needs_the_screening_file(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=2)
    with pytest.raises(FileNotFoundError, match="screening.csv"):
        bs.run_stage(params(uncertainty="reselect", bootstrap=2), work, tmp_path / "r")


def test_reselect_is_identical_for_any_number_of_workers_and_follows_the_seed(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=2)
    with_screening(work)
    one = bs.run_stage(params(uncertainty="reselect", bootstrap=2, n_jobs=1), work, tmp_path / "r1")
    two = bs.run_stage(params(uncertainty="reselect", bootstrap=2, n_jobs=2), work, tmp_path / "r2")
    pd.testing.assert_frame_equal(one.estimates, two.estimates, check_exact=True)
    pd.testing.assert_frame_equal(one.reselection, two.reselection, check_exact=True)
    assert (tmp_path / "r1" / "estimates.csv").read_bytes() == (tmp_path / "r2" / "estimates.csv").read_bytes()
    other = bs.run_stage(params(uncertainty="reselect", bootstrap=2, seed=12), work, tmp_path / "r3")
    assert not np.allclose(other.estimates["upper"], one.estimates["upper"])


# --- the local search --------------------------------------------------------------------


def _aic(design, terms, y):
    fit = fit_model(design, terms, counts=y, check=False)
    return fit.aic if fit.ok else np.inf


def test_local_two_factor_search_ends_where_no_single_drop_or_addition_lowers_the_aic():
    design, y = small_table()
    start = ("O:P", "S:U")  # far from the data's structure (P:R is strong): additions are needed
    res = unc.reselect_two_factor(design, start, y, start_exists=True)
    assert res.fit.ok and res.rounds >= 2
    assert "P:R" in res.fit.terms  # the referral dependency of simulate_persons was found
    assert res.fit.aic < _aic(design, start, y)
    terms = set(res.fit.terms)
    for t in terms:  # no drop improves
        assert _aic(design, tuple(terms - {t}), y) >= res.fit.aic - selection.TOL
    for t in set(unc.two_factor_terms(design)) - terms:  # no addition whose MLE exists improves
        cand = tuple(terms | {t})
        if check_existence(design, cand, counts=y).status == FitStatus.OK:
            assert _aic(design, cand, y) >= res.fit.aic - selection.TOL


def test_local_search_from_the_full_searchs_model_does_not_raise_the_aic():
    design, y = small_table(seed=5)
    full = unc.full_search(design, selection.TWO_FACTOR, y, SCREENED)
    local = unc.reselect_two_factor(design, full.terms, y, start_exists=True)
    assert local.fit.aic <= full.aic + selection.TOL
    three = unc.reselect_three_factor(design, full.terms, y, SCREENED, start_exists=True)
    assert set(local.fit.terms) <= set(three.fit.terms)
    assert all(t in SCREENED for t in set(three.fit.terms) - set(local.fit.terms))


def test_replicate_estimates_are_dark_numbers_added_to_n_obs():
    design, y = small_table()
    fit = fit_model(design, ("P:R", "O:P", "S:U"), counts=y)
    groups = group_matrix(design.strata, COVS, "J")
    kwargs = dict(model=4, dataset=2, model_type=selection.TWO_FACTOR, groups=groups, candidates=SCREENED, n_rep=3)
    res = unc.reselect_model(design, fit, seed=1, **kwargs)
    assert res.n_ok + res.n_failed == 3 and res.dark.shape == (res.n_ok, len(groups.group))
    assert (res.dark > 0).all()
    np.testing.assert_allclose(res.n_hat - res.n_obs, groups.sums(fit.m0))
    again = unc.reselect_model(design, fit, seed=1, **kwargs)
    np.testing.assert_array_equal(again.dark, res.dark)  # seeded per model and replicate
    assert again.failed_status == res.failed_status and again.n_changed == res.n_changed


# --- the interval ------------------------------------------------------------------------


def test_reselect_interval_is_the_pooled_percentile_never_below_n_obs():
    design, _ = small_table()
    groups = group_matrix(design.strata, COVS, "J")
    g = len(groups.group)
    rng = np.random.default_rng(0)

    def model(k, n_obs, dark, failed=None):
        return unc.ModelReselection(
            model=k,
            dataset=k,
            type=selection.TWO_FACTOR,
            terms=(),
            groups=groups,
            n_obs=np.full(g, n_obs, dtype=float),
            n_hat=np.full(g, n_obs + dark.mean()),
            dark=dark,
            n_rep=len(dark) + sum((failed or {}).values()),
            failed_status=failed or {},
            n_changed=0,
            n_repaired=0,
        )

    d1, d2 = rng.gamma(5, 20, (40, g)), rng.gamma(5, 30, (30, g))
    d2[:, 0] = 0.0  # a group whose dark number vanishes in one model's replicates
    res = [model(0, 100, d1), model(1, 90, d2, {"no_starting_model": 2})]
    iv = unc.reselect_interval(res)
    pool = np.vstack([100 + d1, 90 + d2])
    lo, hi = np.quantile(pool, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(iv["lower"].to_numpy()[1:], lo[1:])
    np.testing.assert_allclose(iv["upper"].to_numpy(), hi)
    assert iv["n_obs"].eq(95).all()
    # group 0: the pool's 2.5% point is model 1's n_obs (90), below the published n_obs: clipped
    assert lo[0] == 90 and iv["lower"].iloc[0] == 95 and iv["dark_lower"].iloc[0] == 0
    assert (iv["lower"] >= iv["n_obs"]).all()
    assert iv["n_rep_ok"].eq(70).all() and iv["n_rep_failed"].eq(2).all()


def test_report_says_what_the_reselect_interval_contains():
    from mse_helpers.report import text

    study = text.interval_text("rubin-t")
    assert study == text.INTERVAL_TEXT["rubin-t"]  # the study's prose unchanged
    resel = text.interval_text("rubin-t", "reselect")
    assert "model selection" in resel and "never falls below n_obs" in resel
    for part in ("imputation", "linking", "choosing the model"):
        assert part in resel
    with pytest.raises(ValueError, match="parameter uncertainty"):
        text.interval_text("rubin-t", "percentile")
    assert "closed" in text.INTERVAL_LIMITS and "linked" in text.INTERVAL_LIMITS
