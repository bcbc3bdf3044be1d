"""The second, independent generator (mse_helpers.synthetic.second, mse simulate --generator second)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mse_helpers.cli import main
from mse_helpers.cli.run import check_inputs
from mse_helpers.codes import COVARIATES, REGISTERS
from mse_helpers.runner.params import load_params
from mse_helpers.synthetic import second

SEED = 20161231
FILES = ("reports.csv", "aggregates.csv", "register_map.csv", "truth.csv")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("second")
    assert (
        main(["simulate", "--generator", "second", "--years", "2016-2019", "--seed", str(SEED), "--out", str(out)]) == 0
    )
    return out


@pytest.fixture(scope="module")
def data():
    return second.simulate(range(2016, 2020), SEED)


def _params(folder, **over):
    base = dict(
        reports=str(folder / "reports.csv"),
        aggregates=str(folder / "aggregates.csv"),
        register_map=str(folder / "register_map.csv"),
        truth=str(folder / "truth.csv"),
    )
    base.update(over)
    return load_params(None, base)


def test_files_pass_the_pre_flight(written):
    assert all((written / f).is_file() for f in FILES)
    check_inputs(_params(written))  # raises UsageError listing every problem otherwise
    reports = pd.read_csv(written / "reports.csv", dtype=str)
    assert reports["report_id"].str.match(r"^G(2016|2017|2018|2019)-\d{5}$").all()
    assert reports["report_id"].is_unique


def test_same_seed_gives_identical_files_and_another_seed_does_not(written, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    assert (
        main(["simulate", "--generator", "second", "--years", "2016-2019", "--seed", str(SEED), "--out", str(again)])
        == 0
    )
    assert (
        main(
            ["simulate", "--generator", "second", "--years", "2016-2019", "--seed", str(SEED + 1), "--out", str(other)]
        )
        == 0
    )
    for f in FILES:
        assert (again / f).read_bytes() == (written / f).read_bytes(), f
    assert (other / "reports.csv").read_bytes() != (written / "reports.csv").read_bytes()
    assert (other / "truth.csv").read_bytes() != (written / "truth.csv").read_bytes()


def test_a_year_is_the_same_alone_as_with_other_years(data):
    alone = second.simulate([2019], SEED)
    both = data.reports[data.reports["report_id"].str.startswith("G2019")].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.reports, both)
    pd.testing.assert_frame_equal(alone.truth, data.truth[data.truth["year"] == 2019].reset_index(drop=True))


def test_truth_equals_the_drawn_population(data, written):
    truth = pd.read_csv(written / "truth.csv", keep_default_na=False)
    pop = data.population
    for year, g in pop.groupby("year"):
        registered = g[list(REGISTERS)].sum(axis=1) > 0
        t = truth[truth["year"] == year].set_index("group")
        assert t.loc["total", "n_true"] == len(g) == second.year_settings(year).n_true
        assert t.loc["total", "n_registered"] == int(registered.sum())
        for c, levels in COVARIATES.items():
            for code, level in enumerate(levels):
                assert t.loc[f"{c}={level}", "n_true"] == int((g[c] == code).sum())
                assert t.loc[f"{c}={level}", "n_registered"] == int(((g[c] == code) & registered).sum())


def test_registered_persons_are_in_the_reports(data, written):
    # in a year without withholding every registered person has a (non-excluded) report
    from mse_helpers.stages import prepare

    res = prepare.build(_params(written, years="2016-2017"))
    truth = data.truth.set_index(["year", "group"])
    for y in (2016, 2017):
        assert res.summary["counts_per_year"][str(y)]["persons"] == truth.loc[(y, "total"), "n_registered"]


def test_withheld_years_produce_aggregates_and_no_reports_of_those_organisations(data):
    agg = data.aggregates
    assert set(agg["year"]) == set(second.WITHHOLDING)
    for year, orgs in second.WITHHOLDING.items():
        rows = agg[agg["year"] == year]
        assert set(rows["organisation"]) <= set(orgs) and len(rows) >= 1
        of_year = data.reports[data.reports["report_id"].str.startswith(f"G{year}")]
        assert not of_year["organisation"].isin(orgs).any()
    assert (data.reports.loc[data.reports["report_id"].str.startswith("G2016"), "organisation"] == "FairWork").any()
    for lo, hi in (
        ("sex_F", "sex_M"),
        ("age_adult", "age_minor"),
        ("nat_NL", "nat_other"),
        ("expl_sexual", "expl_other"),
    ):
        assert (agg[lo] + agg[hi] <= agg["total"]).all()
    assert (agg[["sex_F", "sex_M"]].sum(axis=1) < agg["total"]).any()  # some values unknown


def test_capture_rates_and_effects_change_across_years(data):
    pop = data.population
    rate = pop.groupby("year")[list(REGISTERS)].mean()
    # youth care / other reporters: 146 of 4,400 persons in 2016, ~45 of 4,700 in 2018
    assert rate.loc[2016, "Z"] > 2 * rate.loc[2018, "Z"]
    assert rate.loc[2019, "P"] > 1.5 * rate.loc[2016, "P"]
    # the police's covariate effects change in 2019: the share of men among police persons jumps
    men_on_p = pop[pop["P"] == 1].groupby("year")["S"].mean()
    assert men_on_p[2019] > men_on_p[2018] + 0.15
    assert second.year_settings(2019).effects["P"]["S"] != second.year_settings(2018).effects["P"]["S"]


def _overlap_ratio(pop, a, b):
    """Observed persons on both registers over the number expected if independent."""
    n = len(pop)
    return (pop[a] & pop[b]).sum() / (pop[a].sum() * pop[b].sum() / n)


def _big_year(n=200_000):
    return dataclasses.replace(second.year_settings(2017), n_true=n)


def test_referral_raises_the_overlap_above_independence(monkeypatch):
    with_referral = second.draw_population(_big_year(), np.random.default_rng(5))
    monkeypatch.setattr(second, "REFERRALS", {})
    without = second.draw_population(_big_year(), np.random.default_rng(5))
    r_with, r_without = _overlap_ratio(with_referral, "P", "R"), _overlap_ratio(without, "P", "R")
    assert r_with > 2.0 and r_with > 1.5 * r_without


def test_latent_effect_makes_registers_dependent_within_strata(monkeypatch):
    monkeypatch.setattr(second, "REFERRALS", {})  # no referrals: only the latent effect links P and R
    pop = second.draw_population(_big_year(), np.random.default_rng(6))
    stratum = pop[(pop["S"] == 0) & (pop["L"] == 0) & (pop["N"] == 1) & (pop["U"] == 0)]
    assert len(stratum) > 20_000
    assert _overlap_ratio(stratum, "P", "R") > 1.3
    monkeypatch.setattr(second, "LOADINGS", {g: 0.0 for g in REGISTERS})
    flat = second.draw_population(_big_year(), np.random.default_rng(6))
    stratum = flat[(flat["S"] == 0) & (flat["L"] == 0) & (flat["N"] == 1) & (flat["U"] == 0)]
    assert abs(_overlap_ratio(stratum, "P", "R") - 1) < 0.15  # independent within the stratum


def test_calibration_is_refused_for_the_second_generator(tmp_path, capsys):
    assert main(["simulate", "--generator", "second", "--calibration", "--out", str(tmp_path / "x")]) == 2
    assert "--calibration: only for --generator simulator" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
