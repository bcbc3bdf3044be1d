"""Profile-likelihood interval of N (mse_helpers.engine.profile) against Rcapture's ``closedpCI.t``.

The reference rows are ``tests/fixtures/r_reference.csv`` (``interval == profile-multinomial-95``,
fixed models, tables without covariates); no R is needed. Rcapture 1.4 replaces ``log N! - log (N-n)!``
by Stirling's formula without its ``1/(12N) - 1/(12(N-n))`` term when N > 100, and searches the
upper bound only up to 3 N-hat. With the same constant (``stirling=True``) the bounds agree to 1e-6
relative; with the exact constant (the default) to a tenth of a person.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize
from scipy.special import gammaln
from test_r_reference import degenerate

from mse_helpers import cli
from mse_helpers.cli.estimate import read_counts, split_columns
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import group_matrix
from mse_helpers.engine.fit import fit_model
from mse_helpers.engine.profile import _Profile, _rcapture_constant, group_profile_intervals, profile_interval
from mse_helpers.engine.status import FitStatus

FIXTURES = Path(__file__).parent / "fixtures"
TABLES = {"korea": FIXTURES / "korea.csv", "uk2013": FIXTURES / "uk2013.csv"}


def table_path(dataset: str) -> Path:
    return TABLES.get(dataset, FIXTURES / "published" / f"{dataset}.csv")


def has_covariates(dataset: str) -> bool:
    path = table_path(dataset)
    return bool(split_columns(read_counts(path), None, str(path))[1])


def profile_rows() -> list[dict]:
    with (FIXTURES / "r_reference.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        r
        for r in rows
        if r["interval"] == "profile-multinomial-95" and r["kind"] == "fixed" and not has_covariates(r["dataset"])
    ]


def fitted(dataset: str, terms: str):
    path = table_path(dataset)
    frame = read_counts(path)
    lists, factors = split_columns(frame, None, str(path))
    design = Design(complete_table(frame, lists, factors, source=str(path)), lists, factors)
    return fit_model(design, terms or None)


ROWS = profile_rows()
IDS = [f"{r['dataset']}|{r['model']}|{r['terms'] or 'main'}" for r in ROWS]


def test_reference_has_enough_profile_rows():
    assert len(ROWS) >= 40
    assert sum(1 for r in ROWS if not r["upper"]) >= 5  # Rcapture's open upper bounds


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_bounds_equal_rcapture(row):
    fit = fitted(row["dataset"], row["terms"])
    if not fit.ok:
        # this project refuses the model (no MLE); R's number is then not an estimate either
        assert degenerate(row)
        return
    assert not degenerate(row)
    exact = profile_interval(fit)
    like_r = profile_interval(fit, stirling=True)
    assert like_r.lower == pytest.approx(float(row["lower"]), rel=1e-6)
    assert exact.lower == pytest.approx(float(row["lower"]), abs=0.1, rel=1e-5)
    assert exact.lower >= fit.n_obs
    # the maximum of a flat curve is located only to about sqrt(eps) of its width (R: optimize)
    assert like_r.n_hat_multinomial == pytest.approx(float(row["n_hat_multinomial"]), rel=1e-5)
    if row["upper"]:
        assert like_r.upper == pytest.approx(float(row["upper"]), rel=1e-6)
        assert exact.upper == pytest.approx(float(row["upper"]), abs=0.1, rel=1e-5)
    else:
        # Rcapture searched only up to 3 N-hat ("profile upper bound above ..."): ours lies beyond
        limit = float(re.search(r"above ([0-9.]+)", row["note"]).group(1))
        assert exact.upper_open or exact.upper > limit
        assert like_r.upper_open or like_r.upper > limit
    assert exact.lower < exact.n_hat_multinomial < (exact.upper or float("inf"))


def test_deviance_at_the_bounds_is_the_critical_value():
    fit = fitted("korea", "b:c,c:d")
    iv = profile_interval(fit)
    prof = _Profile(fit)
    top = prof.llf(iv.n_hat_multinomial)
    for bound in (iv.lower, iv.upper):
        assert 2 * (top - prof.llf(bound)) == pytest.approx(3.841459, abs=1e-5)
    # the maximum is a maximum
    assert top > prof.llf(iv.n_hat_multinomial - 0.5) and top > prof.llf(iv.n_hat_multinomial + 0.5)


def test_rcapture_constant_is_stirling_without_the_last_term():
    assert _rcapture_constant(80.0, 10.0) == pytest.approx(gammaln(81.0) - gammaln(11.0), rel=1e-14)
    exact = gammaln(1001.0) - gammaln(11.0)
    assert _rcapture_constant(1000.0, 10.0) - exact == pytest.approx(-(1 / 12000 - 1 / 120), rel=1e-3)


def open_table(tmp_path: Path) -> str:
    """Two lists overlapping in one person: N-hat = 500 x 500, and the profile deviance
    stays below 3.84 up to far beyond 1000 x n_obs."""
    path = tmp_path / "open.csv"
    pd.DataFrame({"A": [1, 0, 1], "B": [0, 1, 1], "count": [500, 500, 1]}).to_csv(path, index=False)
    return str(path)


def test_open_upper_bound_is_none_with_a_flag(tmp_path):
    path = open_table(tmp_path)
    design = Design(complete_table(read_counts(path), ["A", "B"], []), ["A", "B"])
    fit = fit_model(design)
    iv = profile_interval(fit)
    assert iv.upper is None and iv.upper_open and not iv.lower_open
    assert iv.search_limit == 1000 * 1001
    prof = _Profile(fit)
    assert 2 * (prof.llf(iv.n_hat_multinomial) - prof.llf(iv.search_limit)) < 3.841459
    # with a wider search the bound exists, beyond the first limit: open means "not found up to it"
    wide = profile_interval(fit, max_factor=1e5)
    assert not wide.upper_open and wide.upper > iv.search_limit


def estimate(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli.main(["estimate", *argv])
    return code, buf.getvalue()


def test_cli_text_and_json_give_the_profile_interval():
    terms = "LA:NG,LA:PF,NG:GO,NG:GP,PF:GP,PF:NCA,GO:GP"
    code, text = estimate(str(TABLES["uk2013"]), "--terms", terms)
    assert code == 0 and "95% profile-likelihood interval 9,982 - 13,182" in text
    code, out = estimate(str(TABLES["uk2013"]), "--terms", terms, "--json")
    prof = json.loads(out)["profile"]
    assert prof["lower"] == pytest.approx(9982.256, abs=0.1) and prof["upper"] == pytest.approx(13181.69, abs=0.1)
    assert prof["lower_open"] is False and prof["upper_open"] is False and prof["level"] == 0.95


def test_cli_open_bound_is_never_a_number(tmp_path):
    path = open_table(tmp_path)
    code, text = estimate(path)
    assert code == 0 and "> 1,001,000" in text
    code, out = estimate(path, "--json")
    prof = json.loads(out)["profile"]
    assert prof["upper"] is None and prof["upper_open"] is True and prof["lower"] > 1001


def test_cli_with_covariates_gives_the_poisson_profile_of_the_total_and_the_by_groups(tmp_path):
    path = tmp_path / "cov.csv"
    covariate_frame().to_csv(path, index=False)
    code, out = estimate(str(path), "--lists", "A,B,C", "--terms", "A:B,C:S,B:J", "--by", "S", "--json")
    res = json.loads(out)
    prof = res["profile"]
    assert code == 0 and prof["available"] and prof["method"].startswith("profile likelihood, Poisson")
    design = Design(covariate_table(), ["A", "B", "C"], ["S", "J"])
    fit = fit_model(design, "A:B,C:S,B:J")
    total, female, male = group_profile_intervals(fit, [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]])
    assert list(design.strata["S"]) == ["F", "F", "M", "M"]
    assert prof["lower"] == pytest.approx(total.lower, rel=1e-12) and prof["upper"] == pytest.approx(total.upper)
    assert prof["lower"] > res["n_obs"] and prof["lower"] < res["n_hat"] < prof["upper"]
    assert set(prof["by"]) == {"S=F", "S=M"}
    for label, g in (("S=F", female), ("S=M", male)):
        assert prof["by"][label]["lower"] == pytest.approx(g.lower, rel=1e-12)
        assert prof["by"][label]["upper"] == pytest.approx(g.upper, rel=1e-12)
        assert prof["by"][label]["lower"] > res["by"][label]["n_obs"] and not prof["by"][label]["upper_open"]
    code, text = estimate(str(path), "--lists", "A,B,C", "--terms", "A:B,C:S,B:J")
    assert code == 0 and f"95% profile-likelihood interval {total.lower:,.0f} - {total.upper:,.0f}" in text


def test_cli_keeps_the_estimate_when_a_profile_fit_fails(monkeypatch):
    import mse_helpers.engine.profile as profile

    def fails(fit, level):
        raise RuntimeError("profile interval: the fit with N = 200.0 did not converge")

    monkeypatch.setattr(profile, "profile_interval", fails)
    code, out = estimate(str(TABLES["korea"]), "--terms", "b:c", "--json")
    res = json.loads(out)
    assert code == 0 and res["n_hat"] == pytest.approx(268.7778, abs=1e-4)
    assert res["profile"]["available"] is False and "did not converge" in res["profile"]["reason"]
    code, text = estimate(str(TABLES["korea"]), "--terms", "b:c")
    assert "no profile-likelihood interval: profile interval: the fit with N = 200.0 did not converge" in text


# --- the grouped (Poisson) profile of tables with covariates ----------------------------------

CRIT = 3.841458820694124  # chi-square(1) at 0.95


def covariate_frame(seed: int = 3) -> pd.DataFrame:
    """Observed cells of three lists x S x J (four strata), counts drawn from a log-linear model."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b, c, s, j in itertools.product((0, 1), (0, 1), (0, 1), ("F", "M"), (2018, 2019)):
        if a or b or c:
            eta = np.log(60) - a - 0.6 * b - 1.2 * c + 0.8 * a * b + 0.3 * (s == "M") * (1 + c) + 0.5 * (j == 2019) * b
            rows.append((a, b, c, s, j, rng.poisson(np.exp(eta))))
    return pd.DataFrame(rows, columns=["A", "B", "C", "S", "J", "count"])


def covariate_table(seed: int = 3) -> pd.DataFrame:
    """:func:`covariate_frame` as a complete table."""
    return complete_table(covariate_frame(seed), ["A", "B", "C"], ["S", "J"])


class Oracle:
    """The slow way: the profile log-likelihood at each dark number D, maximised with a
    general optimiser, then a root search in log D for the 3.84 drop.

    A group of one stratum s has a linear constraint ``x0_s beta = log D``: statsmodels'
    GLM Poisson without the intercept, on the columns minus ``x0_s`` and with offset
    ``log D``. A group of several strata: scipy's SLSQP with the constraint
    ``log sum_{s in g} exp(x0_s beta) = log D``.
    """

    def __init__(self, fit):
        self.X = fit.design.X_obs[:, fit.cols]
        self.X0 = fit.design.X_unobs[:, fit.cols]
        self.y, self.beta = fit.y, fit.beta
        self.l_hat = self.llf(fit.beta)

    def llf(self, beta):
        eta = self.X @ beta
        return float(self.y @ eta - np.exp(eta).sum())

    def profile(self, mask, D):
        strata = np.flatnonzero(mask)
        if strata.size == 1:
            x0 = self.X0[strata[0]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sm.GLM(
                    self.y, self.X[:, 1:] - x0[1:], family=sm.families.Poisson(), offset=np.full(self.y.size, np.log(D))
                ).fit(tol=1e-13)
            return self.llf(np.concatenate([[np.log(D) - x0[1:] @ res.params], res.params]))
        X0g = self.X0[strata]

        def log_g(b):
            e = X0g @ b
            return e.max() + np.log(np.exp(e - e.max()).sum())

        def grad_log_g(b):
            e = X0g @ b
            w = np.exp(e - e.max())
            return (w / w.sum()) @ X0g

        scale = abs(self.l_hat)
        res = optimize.minimize(
            lambda b: -self.llf(b) / scale,
            self.beta,
            jac=lambda b: -(self.X.T @ (self.y - np.exp(self.X @ b))) / scale,
            method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda b: log_g(b) - np.log(D), "jac": grad_log_g}],
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        return self.llf(res.x)

    def bounds(self, mask):
        dark = float(np.exp(self.X0[mask > 0] @ self.beta).sum())

        def dev(log_d):
            return 2 * (self.l_hat - self.profile(mask > 0, np.exp(log_d))) - CRIT

        lo = optimize.brentq(dev, np.log(dark) - 3, np.log(dark), xtol=1e-12)
        hi = optimize.brentq(dev, np.log(dark), np.log(dark) + 3, xtol=1e-12)
        return np.exp(lo), np.exp(hi)


@pytest.fixture(scope="module")
def covariate_fit():
    design = Design(covariate_table(), ["A", "B", "C"], ["S", "J"])
    fit = fit_model(design, "A:B,C:S,B:J")
    assert fit.ok
    return fit


def test_grouped_profile_equals_the_slow_oracle(covariate_fit):
    fit = covariate_fit
    groups = group_matrix(fit.design.strata, ["S"], "J")
    res = group_profile_intervals(fit, groups.matrix)
    oracle = Oracle(fit)
    sizes = groups.matrix.sum(axis=1)
    assert set(sizes) == {1, 2, 4}  # single strata (statsmodels) and groups (SLSQP)
    for row, r in zip(groups.matrix, res):
        lo, hi = oracle.bounds(row)
        assert r.lower - r.n_obs == pytest.approx(lo, rel=1e-8)
        assert r.upper - r.n_obs == pytest.approx(hi, rel=1e-8)
        assert r.n_obs < r.lower < r.n_hat < r.upper and not r.upper_open
        # the centre is the Poisson N-hat of the group
        assert r.n_hat == pytest.approx(r.n_obs + fit.m0[row > 0].sum(), rel=1e-12)


def test_grouped_profile_total_is_the_sum_of_the_strata(covariate_fit):
    # the total's centre is the sum of the strata's, its interval narrower than their sum
    fit = covariate_fit
    total, *strata = group_profile_intervals(fit, np.vstack([np.ones(4), np.eye(4)]))
    assert total.n_hat == pytest.approx(sum(s.n_hat for s in strata), rel=1e-12)
    assert total.upper - total.lower < sum(s.upper - s.lower for s in strata)


@pytest.mark.parametrize("row", ROWS[::4], ids=IDS[::4])
def test_grouped_profile_without_covariates_equals_the_statsmodels_oracle(row):
    fit = fitted(row["dataset"], row["terms"])
    if not fit.ok:
        return
    (r,) = group_profile_intervals(fit, np.ones((1, 1)))
    lo, hi = Oracle(fit).bounds(np.ones(1))
    assert r.lower - r.n_obs == pytest.approx(lo, rel=1e-7)
    assert r.upper - r.n_obs == pytest.approx(hi, rel=1e-7)


def test_grouped_profile_without_covariates_is_close_to_the_multinomial_one():
    """Poisson (grouped) against multinomial (Rcapture's) profile on the published tables
    without covariates: the same shape, the Poisson lower bound a little higher (the
    multinomial one also counts the binomial variation of n_obs given N)."""
    worst = {"small": 0.0, "large": 0.0}  # relative differences of the bounds, n_obs below / above 1,000
    n = 0
    for row in ROWS:
        fit = fitted(row["dataset"], row["terms"])
        if not fit.ok:
            continue
        mult = profile_interval(fit)
        (pois,) = group_profile_intervals(fit, np.ones((1, 1)))
        assert pois.n_hat == pytest.approx(fit.n_hat, rel=1e-12)
        assert mult.lower <= pois.lower < fit.n_hat
        assert pois.upper_open == mult.upper_open
        size = "large" if fit.n_obs >= 1000 else "small"
        worst[size] = max(worst[size], pois.lower / mult.lower - 1)
        if mult.upper is not None:
            worst[size] = max(worst[size], abs(pois.upper / mult.upper - 1))
        n += 1
    assert n >= 30
    # measured: 6.2 % at most (Korea b:c + c:d, 123 persons, upper bound 240.6 against 226.5;
    # hare, 68 persons: 4.4 %), 1.4 % above 1,000 persons (HIV), 0.2 % on the UK table
    assert worst["small"] < 0.07 and worst["large"] < 0.015


def test_grouped_profile_open_upper_bound(tmp_path):
    path = open_table(tmp_path)
    fit = fit_model(Design(complete_table(read_counts(path), ["A", "B"], []), ["A", "B"]))
    (r,) = group_profile_intervals(fit, np.ones((1, 1)))
    assert r.upper is None and r.upper_open and r.search_limit == 1000 * 1001 and r.lower > 1001
    (wide,) = group_profile_intervals(fit, np.ones((1, 1)), max_factor=1e5)
    assert not wide.upper_open and wide.upper > r.search_limit
    assert wide.lower == pytest.approx(r.lower, rel=1e-10)


def test_grouped_profile_lower_bound_never_below_n_obs():
    # a tiny dark number (almost every person on both lists): the lower bound stays above n_obs
    frame = pd.DataFrame({"A": [1, 0, 1], "B": [0, 1, 1], "count": [2, 3, 400]})
    fit = fit_model(Design(complete_table(frame, ["A", "B"], []), ["A", "B"]))
    (r,) = group_profile_intervals(fit, np.ones((1, 1)))
    assert fit.n_obs < r.lower < fit.n_hat < r.upper
    assert r.lower - fit.n_obs == pytest.approx(Oracle(fit).bounds(np.ones(1))[0], rel=1e-7)


def test_grouped_profile_refuses_a_failed_fit_and_a_bad_group_matrix(covariate_fit):
    with pytest.raises(ValueError, match="groups need 4 columns"):
        group_profile_intervals(covariate_fit, np.ones((1, 3)))
    bad = dataclasses.replace(covariate_fit, status=FitStatus.NOT_CONVERGED, beta=None)
    with pytest.raises(ValueError, match="has no fit"):
        group_profile_intervals(bad, np.ones((1, 4)))


# --- the pipeline: interval "profile" in the bootstrap stage ------------------------------------


def test_bootstrap_stage_with_the_profile_interval(tmp_path):
    from test_bootstrap import COVS, REGISTERS, YEARS, params, write_work_dir

    from mse_helpers import runfolder
    from mse_helpers.engine.cells import dataset_table
    from mse_helpers.engine.pooling import pool_estimates
    from mse_helpers.stages import bootstrap as bs

    work, _ = write_work_dir(tmp_path, n_datasets=2)
    t = bs.run_stage(params(), work, tmp_path / "t")
    prof = bs.run_stage(params(interval="profile"), work, tmp_path / "p")
    est, pm = prof.estimates, prof.per_model
    assert (est["interval"] == "profile").all() and len(est) == len(t.estimates) == 99
    np.testing.assert_allclose(est["n_hat"], t.estimates["n_hat"], rtol=1e-12)
    # never below the observed persons, around the pooled N-hat, not the rubin-t interval
    assert (est["lower"] > est["n_obs"]).all() and (est["lower"] < est["n_hat"]).all()
    assert (est["n_hat"] < est["upper"]).all() and np.isfinite(est["upper"]).all()
    assert not np.allclose(est["lower"], t.estimates["lower"])
    assert "profile_lower" not in t.per_model and pm[["profile_lower", "profile_upper"]].notna().all().all()
    # the per-model bounds are the engine's profile intervals of the refitted model
    persons = runfolder.read_imputed(work / "imputed" / "imp_001.parquet")
    design = Design(dataset_table(persons, REGISTERS, COVS, YEARS), REGISTERS, COVS + ["J"], three_factor=["O:P:R"])
    mod = json.loads((work / "models.json").read_text())[3]  # data set 1, three-factor
    fit = fit_model(design, mod["terms"])
    groups = group_matrix(design.strata, COVS, "J")
    mine = pm[pm["model"] == 3]
    assert list(mine["group"]) == list(groups.group) and list(mine["year"]) == list(groups.year)
    engine = group_profile_intervals(fit, groups.matrix)
    np.testing.assert_allclose(mine["profile_lower"], [g.lower for g in engine], rtol=1e-10)
    np.testing.assert_allclose(mine["profile_upper"], [g.upper for g in engine], rtol=1e-10)
    # M = 1: pooling one model gives that model's profile interval
    one = pool_estimates(mine, ["year", "group"], "profile").set_index(["year", "group"])
    mine = mine.set_index(["year", "group"]).loc[one.index]
    np.testing.assert_allclose(one["lower"], mine["profile_lower"], rtol=1e-12)
    np.testing.assert_allclose(one["upper"], mine["profile_upper"], rtol=1e-12)
    # the written results carry the pooled profile interval
    written = pd.read_csv(tmp_path / "p" / "estimates.csv")
    np.testing.assert_allclose(written["lower"], est["lower"], rtol=1e-12)


def test_grouped_profile_on_the_lattice_path_equals_the_dense_path(covariate_fit):
    lattice = Design(covariate_table(), ["A", "B", "C"], ["S", "J"], lattice=True)
    fit = fit_model(lattice, "A:B,C:S,B:J")
    groups = group_matrix(lattice.strata, ["S"], "J").matrix
    for a, b in zip(group_profile_intervals(fit, groups), group_profile_intervals(covariate_fit, groups)):
        assert a.lower == pytest.approx(b.lower, rel=1e-9) and a.upper == pytest.approx(b.upper, rel=1e-9)


def test_every_interval_has_its_report_text():
    # the report explains the interval of the run; a new interval without a text would fail the report
    from mse_helpers.engine.pooling import INTERVALS
    from mse_helpers.report.text import interval_text

    assert "profile" in INTERVALS
    for interval in INTERVALS:
        assert interval.split("-")[0] in interval_text(interval).lower()


def test_grouped_profile_walks_through_smaller_regions_when_newton_fails(covariate_fit, monkeypatch):
    # the fallback path (critical values 3.84/256 ... 3.84, warm-started) gives the same bounds
    import mse_helpers.engine.profile as profile

    groups = group_matrix(covariate_fit.design.strata, ["S"], "J").matrix
    direct = group_profile_intervals(covariate_fit, groups)
    solve = profile._GroupedProfile._solve
    calls = []

    def first_fails(self, *args, **kw):
        calls.append(1)
        if len(calls) % 6 == 1:  # each bound: the direct attempt fails, then 5 region steps
            raise RuntimeError("stalled")
        return solve(self, *args, **kw)

    monkeypatch.setattr(profile._GroupedProfile, "_solve", first_fails)
    walked = group_profile_intervals(covariate_fit, groups)
    assert len(calls) == 6 * 2 * len(groups)
    for a, b in zip(walked, direct):
        assert a.lower == pytest.approx(b.lower, rel=1e-9) and a.upper == pytest.approx(b.upper, rel=1e-9)
        assert a.n_iter > b.n_iter
