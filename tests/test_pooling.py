"""Rubin's rules, checked against numbers worked out by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mse_helpers.engine.pooling import pool_estimates, pool_profile, rubin


def test_rubin_by_hand():
    # Q = 2, W = 1, B = var(1,2,3) = 1, T = 1 + (4/3) * 1, r = (4/3)/1,
    # nu = 2 * (1 + 3/4)^2 = 6.125
    res = rubin([1, 2, 3], [1, 1, 1])
    assert res["estimate"] == pytest.approx(2)
    assert res["var_between"] == pytest.approx(1)
    assert res["var_total"] == pytest.approx(7 / 3)
    assert res["df"] == pytest.approx(6.125)
    half = stats.t.ppf(0.975, 6.125) * np.sqrt(7 / 3)
    assert res["lower"] == pytest.approx(2 - half) and res["upper"] == pytest.approx(2 + half)


def test_rubin_no_between_variance_is_normal():
    res = rubin([5, 5, 5, 5], [4, 4, 4, 4])
    assert res["df"] == np.inf
    assert res["upper"] - 5 == pytest.approx(1.959964 * 2, rel=1e-6)


def test_rubin_rejects_bad_input():
    with pytest.raises(ValueError, match="at least two"):
        rubin([1], [1])
    with pytest.raises(ValueError, match="non-negative"):
        rubin([1, 2], [1, -1])


def test_rubin_covers_at_nominal_rate():
    # Proper-imputation toy: the observed-data estimate has variance W + Bv (the
    # missing information adds Bv); each data set adds imputation noise Bv, so
    # var(Qbar) = W + (1 + 1/M) Bv, which is what T estimates.
    rng = np.random.default_rng(1)
    theta, w, bv, m = 100.0, 4.0, 9.0, 10
    hits = 0
    n = 4000
    for _ in range(n):
        q = theta + rng.normal(0, np.sqrt(w + bv)) + rng.normal(0, np.sqrt(bv), m)
        r = rubin(q, np.full(m, w))
        hits += r["lower"] <= theta <= r["upper"]
    assert 0.935 <= hits / n <= 0.965


def _per_model():
    rng = np.random.default_rng(3)
    rows = []
    for k in range(6):
        for year, n_obs, n_hat in ((2018, 700.0, 5500.0), (2019, 1300.0, 5100.0)):
            est = n_hat + rng.normal(0, 300)
            rows.append(
                dict(
                    model=k,
                    year=year,
                    group="total",
                    n_obs=n_obs + k,
                    n_hat=est,
                    var_within=250.0**2,
                    var_within_log=(250 / (est - n_obs)) ** 2,
                )
            )
    return pd.DataFrame(rows)


def test_pool_estimates_per_group_matches_rubin():
    pm = _per_model()
    out = pool_estimates(pm, ["year", "group"])
    assert list(out["year"]) == [2018, 2019] and (out["n_models"] == 6).all()
    sub = pm[pm.year == 2019]
    ref = rubin(sub.n_hat, sub.var_within)
    row = out[out.year == 2019].iloc[0]
    assert row.n_hat == pytest.approx(ref["estimate"]) and row.upper == pytest.approx(ref["upper"])
    assert row.n_obs == pytest.approx(sub.n_obs.mean())  # mean over data sets
    assert row.ratio == pytest.approx(row.n_hat / row.n_obs)


def test_log_scale_interval_stays_above_observed():
    pm = _per_model()
    pm["n_hat"] = pm["n_obs"] + np.where(pm.year == 2018, 50.0, 5000.0)  # tiny dark number in 2018
    pm.loc[pm.year == 2018, "n_hat"] += np.linspace(-20, 20, 6)
    pm["var_within"] = 200.0**2
    pm["var_within_log"] = (200.0 / (pm.n_hat - pm.n_obs)) ** 2
    sym = pool_estimates(pm, ["year"], "rubin-t")
    log = pool_estimates(pm, ["year"], "log-scale")
    assert sym.loc[sym.year == 2018, "lower"].iloc[0] < sym.loc[sym.year == 2018, "n_obs"].iloc[0]
    assert (log["lower"] > log["n_obs"]).all()
    assert (log["lower"] < log["n_hat"]).all() and (log["n_hat"] < log["upper"]).all()


def test_pool_estimates_names_missing_columns():
    with pytest.raises(ValueError, match="var_within_log"):
        pool_estimates(_per_model().drop(columns="var_within_log"), ["year"], "log-scale")


def test_dark_number_interval_by_hand():
    # two models of one group: dark numbers 100 and 400, within variances of their logs 0.01 and 0.03.
    # log dark: 4.60517, 5.99146; Q = mean, W = 0.02, B = var(ddof=1) = (ln 4)^2 / 2,
    # T = W + 1.5 B, nu = (M - 1)(1 + W / (1.5 B))^2; interval exp(Q -+ t_nu sqrt(T))
    pm = pd.DataFrame(
        dict(
            year=[2020, 2020],
            group="total",
            n_obs=[50.0, 60.0],
            n_hat=[150.0, 460.0],
            var_within=[900.0, 1600.0],
            var_within_log=[0.01, 0.03],
        )
    )
    q = (np.log(100) + np.log(400)) / 2
    b = np.log(4) ** 2 / 2
    t = 0.02 + 1.5 * b
    nu = (1 + 0.02 / (1.5 * b)) ** 2
    half = stats.t.ppf(0.975, nu) * np.sqrt(t)
    for interval in ("rubin-t", "log-scale"):
        row = pool_estimates(pm, ["year", "group"], interval).iloc[0]
        assert row.dark == pytest.approx(305.0 - 55.0)  # mean N-hat minus mean n_obs
        assert row.dark_lower == pytest.approx(np.exp(q - half), rel=1e-12)
        assert row.dark_upper == pytest.approx(np.exp(q + half), rel=1e-12)
        assert row.dark_lower > 0
    log = pool_estimates(pm, ["year", "group"], "log-scale").iloc[0]
    assert log.lower == pytest.approx(55.0 + np.exp(q - half), rel=1e-12)


def test_dark_interval_absent_when_a_model_has_no_dark_number():
    pm = _per_model()
    pm.loc[0, "n_hat"] = pm.loc[0, "n_obs"]  # model 0, 2018: N-hat = n_obs
    out = pool_estimates(pm, ["year"], "rubin-t").set_index("year")
    assert np.isnan(out.loc[2018, "dark_lower"]) and np.isnan(out.loc[2018, "dark_upper"])
    assert out.loc[2019, "dark_lower"] > 0
    with pytest.raises(ValueError, match="no dark number"):
        pool_estimates(pm, ["year"], "log-scale")
    no_log = pool_estimates(pm.drop(columns="var_within_log"), ["year"], "rubin-t")
    assert no_log["dark_lower"].isna().all() and no_log["dark"].notna().all()


def _profile_frame(n_obs, n_hat, lower, upper):
    return pd.DataFrame(
        dict(
            year=2020,
            group="total",
            n_obs=n_obs,
            n_hat=n_hat,
            var_within=100.0,
            var_within_log=0.01,
            profile_lower=lower,
            profile_upper=upper,
        )
    )


def test_profile_pooling_of_one_model_is_its_profile_interval():
    row = pool_estimates(_profile_frame([50.0], [150.0], [120.0], [210.0]), ["year", "group"], "profile").iloc[0]
    assert row.lower == pytest.approx(120.0, rel=1e-12) and row.upper == pytest.approx(210.0, rel=1e-12)
    assert row.n_hat == 150.0 and row.var_between == 0.0 and row.df == np.inf and row.n_models == 1
    # rubin-t and log-scale still need two models
    with pytest.raises(ValueError, match="at least two"):
        pool_estimates(_profile_frame([50.0], [150.0], [120.0], [210.0]), ["year", "group"], "rubin-t")


def test_profile_pooling_by_hand():
    # two models, dark numbers 100 and 400; profile half-widths on the log scale:
    # model 1: below log(100/70), above log(160/100); model 2: below log(400/250), above log(700/400)
    pm = _profile_frame([50.0, 60.0], [150.0, 460.0], [120.0, 310.0], [210.0, 760.0])
    z = stats.norm.ppf(0.975)
    d = np.log([100.0, 400.0])
    b = np.log(4) ** 2 / 2
    expect = {}
    for side, half, sign in (
        ("lower", np.log([100 / 70, 400 / 250]), -1),
        ("upper", np.log([160 / 100, 700 / 400]), 1),
    ):
        w = np.mean((half / z) ** 2)
        nu = (1 + w / (1.5 * b)) ** 2
        expect[side] = 55.0 + np.exp(d.mean() + sign * stats.t.ppf(0.975, nu) * np.sqrt(w + 1.5 * b))
    row = pool_estimates(pm, ["year", "group"], "profile").iloc[0]
    assert row.lower == pytest.approx(expect["lower"], rel=1e-12)
    assert row.upper == pytest.approx(expect["upper"], rel=1e-12)
    assert row.lower > row.n_obs and row.interval == "profile"
    # the dark-number columns are the log-scale ones, whatever the interval
    log_row = pool_estimates(pm, ["year", "group"], "log-scale").iloc[0]
    assert row.dark_lower == pytest.approx(log_row.dark_lower) and row.n_hat == log_row.n_hat


def test_profile_pooling_open_bound_and_bad_rows():
    pm = _profile_frame([50.0, 60.0], [150.0, 460.0], [120.0, 310.0], [210.0, np.nan])
    row = pool_estimates(pm, ["year", "group"], "profile").iloc[0]
    assert row.upper == np.inf and 50 < row.lower < 150
    failed = _profile_frame([50.0, 60.0], [150.0, 460.0], [120.0, np.nan], [210.0, 700.0])
    row = pool_estimates(failed, ["year", "group"], "profile").iloc[0]
    assert np.isnan(row.lower) and np.isnan(row.upper) and row.n_hat == pytest.approx(305.0)
    with pytest.raises(ValueError, match="missing columns"):
        pool_estimates(pm.drop(columns="profile_upper"), ["year", "group"], "profile")
    with pytest.raises(ValueError, match="n_obs < lower"):
        pool_profile([50.0], [150.0], [40.0], [210.0])
