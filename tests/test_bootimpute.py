"""Tests of bootstrap-then-impute (mse_helpers/stages/bootimpute.py, docs/estimation.md 6):
the Poisson resampling of persons and aggregate records, the analysis of variance that separates
resamples from imputations (against a direct computation and against statsmodels' one-way ANOVA),
the interval around the study's estimate, and the same numbers for any number of workers and on
Dask."""

from __future__ import annotations

import dataclasses

import distributed
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.formula.api import ols

from mse_helpers.runner.params import load_params
from mse_helpers.stages import bootimpute as bi
from mse_helpers.stages import prepare

# --- resampling -----------------------------------------------------------------------


def _reports():
    return pd.DataFrame(
        {
            "report_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
            "person_key": ["a", "a", "b", "c", "c", "c"],
            "organisation": ["X"] * 6,
        }
    )


def test_resampled_reports_take_each_person_whole_a_poisson_number_of_times():
    reports = _reports()
    out = bi.resample_reports(reports, np.random.default_rng(4))
    # what the same stream gives as weights, in sorted key order
    w = dict(zip(["a", "b", "c"], np.random.default_rng(4).poisson(1.0, size=3)))
    sizes = {"a": 2, "b": 1, "c": 3}
    assert len(out) == sum(w[k] * sizes[k] for k in w)
    base = out["person_key"].str.split(bi.COPY_SEP).str[0]
    for k in w:
        copies = out.loc[base == k, "person_key"]
        assert copies.nunique() == w[k]  # each copy its own person
        assert (copies.value_counts() == sizes[k]).all()  # with all its reports
    assert out["report_id"].is_unique
    # the same stream gives the same resample
    pd.testing.assert_frame_equal(out, bi.resample_reports(reports, np.random.default_rng(4)))


def test_poisson_resample_of_persons_has_the_poisson_mean_and_variance():
    keys = [f"k{i}" for i in range(400)]
    reports = pd.DataFrame({"report_id": keys, "person_key": keys})
    n = [len(bi.resample_reports(reports, np.random.default_rng(s))) for s in range(400)]
    assert abs(np.mean(n) - 400) < 4 * np.sqrt(400 / 400)
    assert 0.8 * 400 < np.var(n, ddof=1) < 1.2 * 400


def test_aggregate_resample_keeps_margins_within_the_total_and_unbiased():
    totals, margins = [], []
    for s in range(2000):
        total, new = bi.resample_aggregate_row(10, [(4, 5), (0, 10)], np.random.default_rng(s))
        assert new[0][0] + new[0][1] <= total and new[1][0] + new[1][1] == total and new[1][0] == 0
        totals.append(total)
        margins.append(new[0])
    margins = np.array(margins)
    assert abs(np.mean(totals) - 10) < 0.25 and abs(np.var(totals) - 10) < 1.5
    assert abs(margins[:, 0].mean() - 4) < 0.15 and abs(margins[:, 1].mean() - 5) < 0.15
    with pytest.raises(ValueError, match="exceed the total"):
        bi.resample_aggregate_row(3, [(2, 2)], np.random.default_rng(0))


def test_resampled_aggregates_stay_valid_text():
    agg = pd.DataFrame(
        {
            "year": ["2018", "2018"],
            "organisation": ["A", "B"],
            "total": ["10", "0"],
            "sex_F": ["4", "0"],
            "sex_M": ["5", "0"],
            "age_minor": ["0", "0"],
            "age_adult": ["10", "0"],
            "nat_NL": ["1", "0"],
            "nat_other": ["7", "0"],
            "expl_sexual": ["3", "0"],
            "expl_other": ["6", "0"],
        }
    )
    out = bi.resample_aggregates(agg, np.random.default_rng(1))
    assert out["organisation"].tolist() == ["A", "B"] and out["total"].iloc[1] == "0"
    for a, b in bi.inputs.AGGREGATE_PAIRS:
        assert (out[a].astype(int) + out[b].astype(int) <= out["total"].astype(int)).all()


# --- the variance ---------------------------------------------------------------------


def test_anova_equals_statsmodels_one_way_anova():
    rng = np.random.default_rng(8)
    theta = 100 + rng.normal(0, 5, size=(12, 1)) + rng.normal(0, 2, size=(12, 3))
    msb, msw = bi.anova(theta)
    frame = pd.DataFrame({"y": theta.ravel(), "b": np.repeat(np.arange(12), 3).astype(str)})
    table = sm.stats.anova_lm(ols("y ~ C(b)", data=frame).fit())
    assert msb == pytest.approx(table.loc["C(b)", "mean_sq"], rel=1e-12)
    assert msw == pytest.approx(table.loc["Residual", "mean_sq"], rel=1e-12)


def test_variance_separates_sampling_from_imputation_noise():
    # theta_bd = mu + a_b + e_bd: the variance of the analysis is Var(a) = 25, not 25 + 4
    rng = np.random.default_rng(2)
    theta = 50 + rng.normal(0, 5, size=(4000, 1)) + rng.normal(0, 2, size=(4000, 2))
    var, df = bi.boot_impute_variance(theta, var_between=0.0, n_models=10)
    assert var == pytest.approx(25, rel=0.06)
    # with no imputation noise and no Monte Carlo term: the plain variance between resamples, B - 1 df
    flat = np.repeat(rng.normal(0, 3, size=(9, 1)), 2, axis=1)
    var, df = bi.boot_impute_variance(flat, var_between=0.0, n_models=10)
    assert var == pytest.approx(np.var(flat[:, 0], ddof=1)) and df == pytest.approx(8)
    # the study's own finite-M term is added
    assert bi.boot_impute_variance(flat, var_between=20.0, n_models=10)[0] == pytest.approx(var + 2.0)


def _result(n_obs=100.0):
    rng = np.random.default_rng(5)
    rows = []
    for b in range(8):
        level = 300 * np.exp(rng.normal(0, 0.2))
        for d in range(2):
            for t in ("two-factor", "three-factor"):
                n_hat = n_obs + level * np.exp(rng.normal(0, 0.05))
                rows.append(dict(resample=b, imputation=d, type=t, status="ok", year="2018", group="total",
                                 n_obs=n_obs, n_hat=n_hat))  # fmt: skip
    return bi.BootImputeResult(pd.DataFrame(rows), 8, 2)


def test_interval_is_centred_on_the_studys_estimate_and_never_below_n_obs():
    per_model = pd.DataFrame(
        {"year": "2018", "group": "total", "n_obs": 100.0, "n_hat": [390.0, 410.0], "var_within": [50.0, 60.0]}
    )
    t = bi.pool_boot_impute(per_model, _result(), interval="rubin-t").iloc[0]
    log = bi.pool_boot_impute(per_model, _result(), interval="log-scale").iloc[0]
    for iv in (t, log):
        assert iv["n_hat"] == 400.0 and iv["n_obs"] == 100.0 and iv["dark"] == 300.0 and iv["n_resamples"] == 8
        assert iv["var_between"] == pytest.approx(200.0) and iv["n_models"] == 2
    assert t["interval"] == "boot-impute rubin-t" and log["interval"] == "boot-impute log-scale"
    assert 100 <= t["lower"] < 400 < t["upper"]
    assert t["upper"] - 400 == pytest.approx(stats.t.ppf(0.975, t["df"]) * np.sqrt(t["var_total"]))
    assert t["var_total"] == pytest.approx(t["var_within"] + 200.0 / 2)
    assert 100 < log["lower"] < 400 < log["upper"]
    # the log interval is symmetric around the mean log dark number of the study's models
    centre = np.mean(np.log([290.0, 310.0]))
    assert np.log(log["lower"] - 100) + np.log(log["upper"] - 100) == pytest.approx(2 * centre)
    assert (log["dark_lower"], log["dark_upper"]) == (t["dark_lower"], t["dark_upper"])
    assert log["lower"] - 100 == pytest.approx(log["dark_lower"])
    # a resample with a failed model is left out and counted
    est = _result().estimates
    est.loc[est["resample"] == 3, "status"] = "failed: ValueError: no start"
    res = bi.BootImputeResult(est, 8, 2)
    assert res.n_usable == 7 and res.failed == {"failed: ValueError: no start": 1}
    assert bi.pool_boot_impute(per_model, res).iloc[0]["n_resamples"] == 7
    with pytest.raises(ValueError, match="interval must be one of rubin-t, log-scale"):
        bi.pool_boot_impute(per_model, res, interval="profile")


def test_too_few_resamples_or_imputations_are_refused():
    with pytest.raises(ValueError, match="at least 2 resamples and 2 imputations"):
        bi.run_resamples(None, [2018], n_resamples=1)
    with pytest.raises(ValueError, match="at least 2 resamples and 2 imputations"):
        bi.run_resamples(None, [2018], n_resamples=3, n_imputations=1)


# --- the whole analysis on resamples ---------------------------------------------------

SMALL = {
    "maxit": 2,
    "n_jobs": 1,
    "sensitivity": [],
    "registers": ["K", "O", "P", "R", "Z"],
    "covariates": ["S", "U"],
    "years": "2016-2017",
    "three_factor_candidates": 2,
    "seed": 41,
}


def test_resamples_repeat_the_analysis_and_do_not_depend_on_workers_or_backend():
    p = load_params(None, SMALL)
    years = list(prepare.build(p).summary["years"])
    one = bi.run_resamples(p, years, n_resamples=2, n_imputations=2)
    two = bi.run_resamples(dataclasses.replace(p, n_jobs=2), years, n_resamples=2, n_imputations=2)
    pd.testing.assert_frame_equal(one.estimates, two.estimates)
    est = one.estimates
    assert one.n_usable == 2 and one.failed == {}
    assert set(est["type"]) == {"two-factor", "three-factor"} and set(est["imputation"]) == {0, 1}
    # each resample has its own persons: the numbers registered differ between resamples
    total = est[(est["year"] == "all") & (est["group"] == "total") & (est["type"] == "two-factor")]
    assert total.groupby("resample")["n_obs"].first().nunique() == 2
    assert (est["n_hat"] > est["n_obs"]).all()
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        on_dask = dataclasses.replace(p, backend="dask", scheduler=cluster.scheduler_address)
        dask = bi.run_resamples(on_dask, years, n_resamples=2, n_imputations=2)
    pd.testing.assert_frame_equal(one.estimates, dask.estimates)
    # another seed, other resamples
    other = bi.run_resamples(dataclasses.replace(p, seed=42), years, n_resamples=2, n_imputations=2)
    assert not np.allclose(other.estimates["n_obs"].to_numpy(), est["n_obs"].to_numpy())


def test_bootstrap_stage_with_boot_impute_keeps_the_studys_estimates_and_replaces_the_intervals(tmp_path):
    from mse_helpers.report import text
    from mse_helpers.stages import bootstrap, impute, selection

    p = load_params(None, {**SMALL, "m": 2, "bootstrap": 10, "uncertainty": "boot-impute", "resamples": 3})
    assert p.interval == "log-scale"  # interval: auto under boot-impute
    work = tmp_path / "work"
    prepare.run_stage(p, work)
    impute.run_stage(p, work)
    selection.run_stage(p, work)
    res = bootstrap.run_stage(p, work, tmp_path / "bi")
    study = bootstrap.run_stage(dataclasses.replace(p, uncertainty="study"), work, tmp_path / "st")
    est, ref = res.estimates, study.estimates
    assert list(est.columns) == list(ref.columns)
    for c in ("year", "group", "n_obs", "n_hat", "dark", "var_between", "n_models"):
        pd.testing.assert_series_equal(est[c], ref[c])
    assert (est["interval"] == "boot-impute log-scale").all()
    assert (est["lower"] > est["n_obs"]).all() and (est["lower"] < est["n_hat"]).all()
    assert (est["upper"] > est["n_hat"]).all()
    assert not np.allclose(est["upper"], ref["upper"])
    assert res.resampling.n_resamples == 3 and res.reselection is None and study.resampling is None
    assert not list(work.glob("resample_*"))  # each resample's files were in the work folder, and are gone
    assert "3 resamples of the data" in text.resampling_text(res.resampling)
    assert "none left out" in text.resampling_text(res.resampling)
    assert "bootstrap-then-impute" in text.interval_text(p.interval, p.uncertainty, p.interval_asked)


def test_boot_impute_with_profile_is_refused():
    from mse_helpers.runner.params import ParameterError

    with pytest.raises(ParameterError, match="`uncertainty: boot-impute` pools variances"):
        load_params(None, {"uncertainty": "boot-impute", "interval": "profile"})
    with pytest.raises(ParameterError, match="parameter resamples: must be from 2 to 10000, got 1"):
        load_params(None, {"uncertainty": "boot-impute", "resamples": 1})
