"""The simulator: log-linear structure, reproducibility, calibration of the bundled data."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mse_helpers.cli.simulate import DEFAULT_SEED
from mse_helpers.runner.params import load_params
from mse_helpers.stages import prepare
from mse_helpers.synthetic import simulator as simulate

DATA = Path(__file__).resolve().parents[1] / "data"
TOL = simulate.TOLERANCES


@pytest.fixture(scope="module")
def bundled():
    return simulate.SimulatedData(
        reports=pd.read_csv(DATA / "reports.csv", dtype={"age": "Int64"}),
        aggregates=pd.read_csv(DATA / "aggregates.csv"),
        truth=pd.read_csv(DATA / "truth.csv", keep_default_na=False),
        population=None,
    )


@pytest.fixture(scope="module")
def calib(bundled):
    return simulate.calibration_table(bundled)


def _get(calib, quantity):
    return calib[calib["quantity"] == quantity].set_index("year")


def test_no_three_factor_interactions_and_referrals_as_specified():
    alpha, theta = simulate.solve_main_effects(simulate.year_spec(2016))
    grid = simulate.cell_grid()
    logp = np.log(simulate.cell_probabilities(alpha, theta, grid))
    index = {tuple(row): k for k, row in enumerate(grid)}
    names = list(simulate.COV_ORDER) + list(simulate.REGISTERS)
    rng = np.random.default_rng(0)
    for _ in range(30):  # random triples of variables in random strata: third differences vanish
        a, b, c = rng.choice(10, 3, replace=False)
        base = rng.integers(0, 2, 10)
        total = 0.0
        for va, vb, vc in itertools.product((0, 1), repeat=3):
            cell = base.copy()
            cell[[a, b, c]] = va, vb, vc
            total += (-1) ** (3 - va - vb - vc) * logp[index[tuple(cell)]]
        assert abs(total) < 1e-9, (names[a], names[b], names[c])
    # the P-R referral log odds ratio equals DELTA in a stratum
    cell = np.zeros(10, int)
    p, r = names.index("P"), names.index("R")
    lor = 0.0
    for vp, vr in itertools.product((0, 1), repeat=2):
        cell[[p, r]] = vp, vr
        lor += (-1) ** (vp + vr) * logp[index[tuple(cell)]]
    assert lor == pytest.approx(simulate.DELTA[("P", "R")])


def test_main_effects_meet_the_targets_in_expectation():
    spec = simulate.year_spec(2017)
    alpha, theta = simulate.solve_main_effects(spec)
    grid = simulate.cell_grid()
    mu = simulate.cell_probabilities(alpha, theta, grid) * spec.n_true
    reg = grid[:, 4:].any(axis=1)
    sizes = grid[reg, 4:].T @ mu[reg]
    assert sizes == pytest.approx([spec.register_persons[g] for g in simulate.REGISTERS], rel=1e-6)
    share = grid[reg, :4].T @ mu[reg] / mu[reg].sum()
    assert share == pytest.approx([spec.registered_shares[c] for c in simulate.COV_ORDER], rel=1e-6)


def test_each_year_has_its_own_stream():
    both = simulate.simulate([2019, 2020], seed=5)
    alone = simulate.simulate([2020], seed=5)
    pd.testing.assert_frame_equal(
        both.reports[both.reports["report_id"].str.startswith("M2020")].reset_index(drop=True), alone.reports
    )
    other = simulate.simulate([2020], seed=6)
    assert not alone.reports["person_key"].equals(other.reports["person_key"])
    assert len(alone.aggregates) == 0  # no withholding in a further year by default


def test_bundled_files_are_what_the_simulator_writes(tmp_path):
    simulate.write_data(simulate.simulate(range(2016, 2020), DEFAULT_SEED), tmp_path)
    for name in ("reports", "aggregates", "truth", "register_map"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (DATA / f"{name}.csv").read_bytes(), name


def test_bundled_persons_and_withheld_within_tolerance(calib):
    persons = _get(calib, "registered persons (reports)")
    for y, r in persons.iterrows():
        assert abs(r["generated"] - r["target"]) <= TOL["persons"] * r["target"], y
    withheld = _get(calib, "persons in aggregates")
    for y in (2018, 2019):
        r = withheld.loc[y]
        assert abs(r["generated"] - r["target"]) <= TOL["withheld"] * r["target"], y
    lo, hi = TOL["multi_register"]
    assert _get(calib, "on 2+ registers (%)")["generated"].between(lo, hi).all()
    lo, hi = TOL["true_total"]
    assert _get(calib, "true total")["generated"].between(lo, hi).all()


def test_bundled_reports_per_group_within_tolerance(calib):
    for group in simulate.TARGET_REPORTS:
        for y, r in _get(calib, f"reports: {group}").iterrows():
            assert abs(r["generated"] - r["target"]) <= max(TOL["reports_group"] * r["target"], 40), (group, y)


def test_bundled_covariates_within_tolerance(calib):
    shares = calib[calib["quantity"].str.endswith("among known (%)")]
    assert len(shares) == 16
    assert ((shares["generated"] - shares["target"]).abs() <= TOL["share_pp"]).all()
    unknown = calib[calib["quantity"].str.contains("unknown")]
    assert ((unknown["generated"] - unknown["target"]).abs() <= TOL["unknown_pp"]).all()


def test_minors_and_dutch_non_sexual_are_most_hidden():
    pop = simulate.simulate([2017], seed=11).population
    reg = pop[list(simulate.REGISTERS)].any(axis=1)
    ratio = lambda sel: sel.sum() / (sel & reg).sum()
    assert ratio(pop["L"] == 1) > 1.3 * ratio(pop["L"] == 0)
    groups = {(n, u): ratio((pop["N"] == n) & (pop["U"] == u)) for n in (0, 1) for u in (0, 1)}
    assert max(groups, key=groups.get) == (0, 1)  # Dutch, non-sexual: the highest true/registered
    assert groups[(0, 1)] > 1.2 * ratio(pd.Series(True, index=pop.index))


def test_bundled_data_hold_the_special_cases(bundled):
    rep = bundled.reports.assign(date=pd.to_datetime(bundled.reports["report_date"]))
    excl = {"EMM", "IND", "OM"}
    assert excl <= set(rep["organisation"])
    kept = rep[~rep["organisation"].isin(excl)].sort_values("date")
    g = kept.groupby("person_key")["date"]
    dec_jan = (g.transform("min").dt.month == 12) & (kept["date"].dt.month == 1)
    assert dec_jan.sum() >= 5  # December first report, January second
    same_reg = kept.assign(reg=kept["organisation"].str.split().str[0]).duplicated(["person_key", "reg"])
    assert same_reg.sum() >= 10
    multi = rep["exploitation"].fillna("").str.contains(";")
    assert multi.sum() >= 20


def test_bundled_data_pass_validation_and_preparation(tmp_path):
    res = prepare.run_stage(load_params(), tmp_path / "w")
    assert res.summary["years"] == [2016, 2017, 2018, 2019]
    assert res.summary["reference_years"] == [2016, 2017]
    conflicts = sum(v["conflicts_S"] for v in res.summary["counts_per_year"].values())
    assert conflicts > 0
    truth = pd.read_csv(DATA / "truth.csv", keep_default_na=False)
    total = truth[truth["group"] == "total"].set_index("year")
    # the registered persons in the reports never exceed the truth's registered persons
    persons = res.persons.groupby("year").size()
    assert (persons <= total["n_registered"]).all()
