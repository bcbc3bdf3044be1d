"""Results tables, figures and report text (notebook 04) on estimate frames built here.

The estimates follow the contract of ``results/estimates.csv``: per-model group
estimates are made from random strata (so groups add up like the engine's),
then pooled with :func:`pooling.pool_estimates`.
"""

import itertools
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from mse_helpers.codes import COVARIATES, group_label  # noqa: E402
from mse_helpers.engine import pooling
from mse_helpers.report import figures as plots  # noqa: E402
from mse_helpers.report import tables
from mse_helpers.report import text as report
from mse_helpers.runner.params import load_params  # noqa: E402

YEARS = (2016, 2017, 2018)


def fake_estimates(years=YEARS, n_models=4, seed=1, interval="rubin-t", covariates=tuple(COVARIATES)):
    """Pooled estimates with the contract's columns, groups consistent with their strata."""
    rng = np.random.default_rng(seed)
    covs = list(covariates)
    strata = list(itertools.product(*[COVARIATES[c] for c in covs]))
    groupings = [[]] + [[c] for c in covs] + [list(p) for p in itertools.combinations(covs, 2)]
    rows = []
    for k in range(n_models):
        for y in years:
            obs = rng.integers(20, 120, len(strata)).astype(float)
            frame = pd.DataFrame(strata, columns=covs).assign(n_obs=obs, n_hat=obs * rng.uniform(2, 5, len(strata)))
            for g in groupings:
                agg = (
                    frame.groupby(g)[["n_obs", "n_hat"]].sum().reset_index()
                    if g
                    else frame[["n_obs", "n_hat"]].sum().to_frame().T
                )
                for r in agg.to_dict("records"):
                    rows.append(
                        dict(
                            model=k,
                            year=str(y),
                            group=group_label(**{c: r[c] for c in g}),
                            n_obs=r["n_obs"],
                            n_hat=r["n_hat"],
                        )
                    )
    per = pd.DataFrame(rows)
    per = pd.concat(
        [per, per.groupby(["model", "group"])[["n_obs", "n_hat"]].sum().reset_index().assign(year="all")],
        ignore_index=True,
    )
    per["var_within"] = (0.1 * per["n_hat"]) ** 2
    per["var_within_log"] = 0.02
    return pooling.pool_estimates(per, ["year", "group"], interval)


@pytest.fixture(scope="module")
def est():
    return fake_estimates()


def row(est, year, group):
    r = est[(est["year"].astype(str) == str(year)) & (est["group"] == group)]
    assert len(r) == 1
    return r.iloc[0]


# --- rounding -----------------------------------------------------------------------


def test_publication_round_rule():
    values = [4, 5, 994, 995, 1049, 1050, 4249, 4250, 12345, -15, np.nan]
    expected = [0, 10, 990, 1000, 1000, 1100, 4200, 4300, 12300, -20, np.nan]
    np.testing.assert_array_equal(tables.publication_round(values), expected)
    assert tables.publication_round(5499.9) == 5500.0
    assert "nearest 10 below 1,000" in tables.ROUNDING_RULE and "nearest 100" in tables.ROUNDING_RULE


# --- Table 6, Tables 7-10, Annex G ----------------------------------------------------


def test_table6_rounds_each_year_and_keeps_exact_values(est):
    t6 = tables.table6(est)
    assert list(t6.index) == ["2016", "2017", "2018", "all"]
    exact = tables.table6(est, rounded=False)
    for year in ["2016", "2018", "all"]:
        r = row(est, year, "total")
        assert t6.loc[year, "N-hat"] == tables.publication_round(r.n_hat)
        assert t6.loc[year, "lower 95%"] == tables.publication_round(r.lower)
        assert t6.loc[year, "upper 95%"] == tables.publication_round(r.upper)
        assert t6.loc[year, "n_obs"] == round(r.n_obs)
        assert t6.loc[year, "ratio"] == pytest.approx(round(r.n_hat / r.n_obs, 1))
        assert exact.loc[year, "N-hat"] == pytest.approx(r.n_hat)
    assert list(tables.table6(est, all_years=False).index) == ["2016", "2017", "2018"]


def test_table6_accepts_estimates_csv_as_read(tmp_path, est):
    est.to_csv(tmp_path / "estimates.csv", index=False)
    back = pd.read_csv(tmp_path / "estimates.csv")
    pd.testing.assert_frame_equal(tables.table6(back), tables.table6(est))


def test_missing_column_is_named(est):
    with pytest.raises(ValueError, match="estimates: missing column.*upper"):
        tables.table6(est.drop(columns=["upper"]))


def test_covariate_table_has_both_levels_per_year(est):
    t = tables.covariate_table(est, "S", rounded=False)
    assert list(t.index.get_level_values("level").unique()) == ["F: female", "M: male"]
    assert len(t) == 2 * len(YEARS)
    assert t.loc[("M: male", "2017"), "N-hat"] == pytest.approx(row(est, 2017, "S=M").n_hat)
    # the levels add up to the total (strata sums), in n_obs and in N-hat
    tot = row(est, 2017, "total")
    assert t.xs("2017", level="year")["n_obs"].sum() == pytest.approx(tot.n_obs)
    assert t.xs("2017", level="year")["N-hat"].sum() == pytest.approx(tot.n_hat)
    with pytest.raises(ValueError, match="covariate 'X'"):
        tables.covariate_table(est, "X")


def test_annex_g_has_every_pair(est):
    g = tables.annex_g_tables(est, rounded=False)
    assert len(g) == 6
    assert list(g)[0] == "Annex G table 1: sex by age group"
    assert list(g)[-1] == "Annex G table 6: nationality by exploitation type"
    t = g["Annex G table 5: age group by exploitation type"]
    assert len(t) == 4 * len(YEARS)
    assert t.loc[("M: minor (<18)", "O: other", "2018"), "N-hat"] == pytest.approx(row(est, 2018, "L=M&U=O").n_hat)
    with pytest.raises(ValueError, match="pair"):
        tables.pair_table(est, "L", "S")


def test_tables_follow_the_run_covariates():
    est = fake_estimates(covariates=("S", "U"))
    assert tables.result_covariates(est) == ["S", "U"]
    assert list(tables.annex_g_tables(est)) == ["Annex G table 1: sex by exploitation type"]


def test_ratio_table_most_hidden_first(est):
    r = tables.ratio_table(est)
    assert r["mean"].is_monotonic_decreasing
    assert len(r) == 1 + 8 + 24
    assert r.loc["N=NL&U=O", "2016"] == pytest.approx(row(est, 2016, "N=NL&U=O").ratio)
    assert r.loc["S=M", "mean"] == pytest.approx(np.mean([row(est, y, "S=M").ratio for y in YEARS]))
    assert len(tables.ratio_table(est, pairs=False)) == 9


# --- validation ------------------------------------------------------------------------


def test_validation_table_coverage_and_errors(est):
    t16, m16, p16 = row(est, 2016, "total"), row(est, 2016, "S=M"), row(est, 2016, "S=M&L=M")
    truth = pd.DataFrame(
        [
            {"year": 2016, "group": "total", "n_true": t16.n_hat, "n_registered": 900},  # inside
            {"year": 2016, "group": "S=M", "n_true": m16.upper + 1, "n_registered": 200},  # just above
            {"year": 2017, "group": "total", "n_true": 3000, "n_registered": 950},
            {"year": 2018, "group": "total", "n_true": 3500, "n_registered": 1000},
            {"year": 2016, "group": "S=M&L=M", "n_true": p16.lower, "n_registered": 10},  # on the bound: inside
            {"year": 2015, "group": "total", "n_true": 9999, "n_registered": 1},  # not an analysed year
        ]
    )
    v = tables.validation_table(est, truth)
    assert "2015" not in set(v["year"])
    a = v[(v["year"] == "2016") & (v["group"] == "total")].iloc[0]
    assert bool(a["covered"]) and a["relative_error"] == pytest.approx(0.0)
    b = v[(v["year"] == "2016") & (v["group"] == "S=M")].iloc[0]
    assert not bool(b["covered"])
    assert b["relative_error"] == pytest.approx((m16.n_hat - m16.upper - 1) / (m16.upper + 1))
    # all years: total is in every year, so its truth is summed; S=M is not, so no all-years row
    allrow = v[(v["year"] == "all") & (v["group"] == "total")].iloc[0]
    assert allrow["n_true"] == pytest.approx(t16.n_hat + 3000 + 3500)
    assert allrow["n_hat"] == pytest.approx(row(est, "all", "total").n_hat)
    assert v[(v["year"] == "all") & (v["group"] == "S=M")].empty
    s = tables.validation_summary(v)
    assert s.loc["2016", "groups"] == 3 and s.loc["2016", "covered"] == 2


def test_validation_keeps_truth_groups_without_estimate():
    est = fake_estimates(covariates=("S",))
    truth = pd.DataFrame(
        {"year": [2016, 2016], "group": ["total", "U=S"], "n_true": [4000, 3000], "n_registered": [900, 600]}
    )
    v = tables.validation_table(est, truth)
    missing = v[v["group"] == "U=S"].iloc[0]
    assert pd.isna(missing["n_hat"]) and pd.isna(missing["covered"])
    assert "1 truth rows have no estimate" in report.validation(v)


def test_read_truth_of_bundled_data_and_bad_file(tmp_path):
    truth = tables.read_truth(load_params("synthetic").truth)
    assert {"total", "S=F", "U=O"} <= set(truth["group"])
    bad = tmp_path / "truth.csv"
    bad.write_text("year,group,n_true\n2016,total,10\n")
    with pytest.raises(ValueError, match=r"truth file .*truth.csv: missing column\(s\) n_registered"):
        tables.read_truth(bad)
    bad.write_text("year,group,n_true,n_registered\n2016,total,10,5\n2016,sex=F,10,5\n")
    with pytest.raises(ValueError, match="row 3, column group"):
        tables.read_truth(bad)


# --- published estimates ----------------------------------------------------------------


def test_published_estimates_hold_the_numbers_of_method_md():
    pub = tables.read_earlier_estimates(None)
    tot = pub[pub["group"] == "total"].set_index("year")
    assert tot.loc["2018", ["n_hat", "lower", "upper"]].tolist() == [5500, 4000, 7000]
    assert tot.loc["2019", ["n_hat", "lower", "upper"]].tolist() == [5100, 3900, 6300]
    assert tot.loc["2016", "n_hat"] == 4200 and np.isnan(tot.loc["2016", "lower"])
    period = tot.loc["2010-2015"]
    assert (period["first_year"], period["last_year"]) == (2010, 2015)
    sexual = pub[pub["group"] == "U=S"].set_index("year")["n_hat"]
    assert sexual.to_dict() == {"2012": 6582, "2013": 5732, "2016": 1800, "2017": 1400, "2018": 2400, "2019": 2200}
    assert (pub["source"].str.len() > 0).all()


@pytest.mark.parametrize(
    "content, message",
    [
        ("year,group,n_hat,lower,upper\n2016,total,4200,,\n", r"missing column\(s\) source"),
        ("year,group,n_hat,lower,upper,source\n2016,total,4200,,,a\n20x7,total,1,,,b\n", "row 3, column year"),
        ("year,group,n_hat,lower,upper,source\n2016,total,4200,5000,6000,a\n", "row 2, column lower/upper"),
        ("year,group,n_hat,lower,upper,source\n2016,total,,,,a\n", "row 2, column n_hat"),
        ("year,group,n_hat,lower,upper,source\n2016,all,10,,,a\n", "row 2, column group"),
        ("year,group,n_hat,lower,upper,source\n2016,total,10,,,\n", "row 2, column source"),
    ],
)
def test_bad_earlier_estimates_file_is_named(tmp_path, content, message):
    path = tmp_path / "earlier.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"earlier estimates file .*earlier.csv: .*{message}"):
        tables.read_earlier_estimates(path)


# --- figures -----------------------------------------------------------------------------


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_figure4_points_and_band(est):
    fig = plots.figure4(est)
    (ax,) = fig.axes
    lines = _lines(ax)
    est_line, obs_line = lines["estimated (N-hat)"], lines["observed (n_obs)"]
    assert list(est_line.get_xdata()) == list(YEARS)
    np.testing.assert_allclose(est_line.get_ydata(), [row(est, y, "total").n_hat for y in YEARS])
    np.testing.assert_allclose(obs_line.get_ydata(), [row(est, y, "total").n_obs for y in YEARS])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    plt.close(fig)


def test_figure5_four_panels_two_levels_each(est):
    fig = plots.figure5(est)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["sex", "age group", "nationality", "exploitation type"]
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2
        assert all(len(ln.get_xdata()) == len(YEARS) for ln in ax.get_lines())
    nat = _lines(fig.axes[2])["Dutch (NL)"]
    np.testing.assert_allclose(nat.get_ydata(), [row(est, y, "N=NL").n_hat for y in YEARS])
    plt.close(fig)
    fig = plots.figure5(fake_estimates(covariates=("S", "L", "U")))
    assert len(fig.axes) == 3
    plt.close(fig)


def _points_under_legend(fig, ax):
    """Drawn points (line vertices and band outlines) that fall inside the axes' legend box."""
    fig.draw_without_rendering()
    box = ax.get_legend().get_window_extent()
    pts = [ln.get_xydata() for ln in ax.get_lines()]
    pts += [path.vertices for c in ax.collections if isinstance(c, PolyCollection) for path in c.get_paths()]
    xy = ax.transData.transform(np.vstack(pts))
    inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
    return int(inside.sum())


def test_legends_do_not_hide_the_highest_bounds():
    """The first year's upper bound is the highest value (as often in the report): the upper-left
    legend must sit above it, in Figure 4 and in every panel of Figure 5."""
    est = fake_estimates()
    first = est["year"] == str(YEARS[0])
    est.loc[first, "upper"] = est.loc[first, "upper"] * 3
    fig = plots.figure4(est)
    assert _points_under_legend(fig, fig.axes[0]) == 0
    top = row(est, YEARS[0], "total").upper
    assert fig.axes[0].get_ylim()[1] > top  # the band itself is drawn in full
    plt.close(fig)
    fig = plots.figure5(est)
    for ax in fig.axes:
        assert _points_under_legend(fig, ax) == 0, ax.get_title()
    plt.close(fig)


def test_figure6_published_points_are_labelled(est):
    pub = tables.read_earlier_estimates(None)
    fig = plots.figure6(est, pub)
    assert [ax.get_title() for ax in fig.axes] == ["all victims", "sexual (U=S)"]
    for ax, group in zip(fig.axes, ["total", "U=S"]):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "published estimate (not this run)" in labels
        # the errorbar's data line carries the published single years
        n_single = int(((pub["group"] == group) & (pub["first_year"] == pub["last_year"])).sum())
        pts = [ln for ln in ax.get_lines() if ln.get_marker() == "s"]
        assert len(pts) == 1 and len(pts[0].get_xdata()) == n_single
        assert len(_lines(ax)["this run: estimated"].get_xdata()) == len(YEARS)
    assert "published yearly average 2010-2015" in _lines(fig.axes[0])
    plt.close(fig)


def test_figure6_skips_groups_not_estimated():
    est = fake_estimates(covariates=("S",))
    fig = plots.figure6(est, tables.read_earlier_estimates(None))
    assert [ax.get_title() for ax in fig.axes] == ["all victims"]
    plt.close(fig)


def test_ratio_figure_one_point_per_group_and_year(est):
    fig = plots.ratio_figure(est)
    assert len(fig.axes) == 2
    levels, pairs = fig.axes
    assert sum(len(c.get_offsets()) for c in levels.collections) == 8 * len(YEARS)
    assert sum(len(c.get_offsets()) for c in pairs.collections) == 24 * len(YEARS)
    # most hidden group on top (highest y)
    top = levels.get_yticklabels()[-1].get_text()
    r = tables.ratio_table(est)
    assert top == r[[("&" not in g and g != "total") for g in r.index]]["name"].iloc[0]
    plt.close(fig)
    assert len(plots.ratio_figure(est, pairs=False).axes) == 1
    plt.close("all")


# --- report text -----------------------------------------------------------------------------

SUMMARY = {
    "years": [2016, 2017, 2018],
    "reference_years": [2016, 2017],
    "counts_per_year": {"2016": {"persons": 911}, "2017": {"persons": 933}, "2018": {"persons": 644}},
    "excluded_reports_per_organisation": [
        {"year": 2016, "organisation": "EMM", "reports": 83},
        {"year": 2017, "organisation": "EMM", "reports": 221},
        {"year": 2017, "organisation": "IND", "reports": 197},
    ],
    "partial_records": [
        {"year": 2018, "organisation": "FairWork", "register": "O", "records": 163, "used": True},
        {"year": 2018, "organisation": "Regiocoordinator", "register": "R", "records": 366, "used": True},
        {"year": 2018, "organisation": "KMarAgg", "register": "K", "records": 7, "used": False},
    ],
    "notes": [],
}


def test_headline_carries_the_rounded_estimates(est):
    text = report.headline(est)
    for y in ["2016", "2017", "2018"]:
        r = row(est, y, "total")
        assert f"**{y}: {report.fmt(r.n_hat)}** ({report.fmt(r.lower)}-{report.fmt(r.upper)})" in text
        assert f"ratio {r.n_hat / r.n_obs:.1f}" in text
    assert f"All years together: {report.fmt(row(est, 'all', 'total').n_hat)}" in text
    assert "rubin-t" in text


def test_method_text_uses_the_parameters():
    p = load_params(
        None,
        {
            "m": 7,
            "bootstrap": 20,
            "uncertainty": "reselect",
            "reselect_replicates": 33,  # uncertainty: reselect takes its within variances from these
            "maxit": 4,
            "three_factor_candidates": 11,
            "registers": ["I", "O", "P", "R", "Z"],
            "interval": "log-scale",
        },
    )
    text = report.method(p, n_models=13, n_years=3)
    assert "7 completed data sets" in text and "4 iterations" in text
    assert "33 replicates with the model selection repeated" in text and "from the 11 terms" in text
    assert "the 13 models" in text and "32 x 16 x 3 = 1,536 cells" in text
    assert "log-scale interval" in text and "K (Royal" not in text
    assert "five-way interaction" in report.assumptions(p.registers)
    # the default, boot-impute: the resamples and their completed data sets, not replicates per model
    q = load_params(None, {"m": 7, "resamples": 12, "resample_imputations": 3})
    text = report.method(q, n_models=13, n_years=3)
    assert "from 12 resamples of the data, each analysed in full with 3 completed data sets" in text
    assert "mean over the 13 models" in text and "replicates with the model selection" not in text
    assert "bootstrap-then-impute" in text and "log-scale interval" in text


def test_data_decisions_text_from_the_summary(tmp_path):
    p = load_params()
    reg_map = pd.DataFrame(
        {
            "organisation": ["Politie A", "Politie B", "FairWork", "EMM", "IND"],
            "register": ["P", "P", "O", "exclude", "exclude"],
        }
    )
    text = report.data_decisions(SUMMARY, reg_map, p)
    assert "| P (Police) | 2 | Politie A, Politie B |" in text
    assert "| exclude | 2 | EMM, IND |" in text
    assert "| EMM | 83 | 221 | 304 |" in text and "| IND | 0 | 197 | 197 |" in text
    assert "501 in all" in text
    assert "2018: 529" in text  # used partial records only
    assert "not used (register left out of this run): 1 (7 persons)" in text
    assert "reference years 2016, 2017" in text
    assert "2016: 911; 2017: 933; 2018: 644" in text
    assert f"within {p.linkage_window_days} days" in text


def test_caveats_count_from_the_run(est):
    p = load_params()
    per_model = pd.DataFrame(
        {
            "model": [0, 0, 1, 1],
            "dataset": [0, 0, 0, 0],
            "type": ["two-factor", "two-factor", "three-factor", "three-factor"],
            "n_boot_ok": [98, 98, 100, 100],
            "n_boot_failed": [2, 2, 0, 0],
        }
    )
    text = report.caveats(est, SUMMARY, p, per_model)
    assert "2018: 529 partial records, against 644 persons" in text
    yearly = est[est["year"].astype(str).str.fullmatch(r"\d{4}")]
    n_below = int((yearly["lower"] < yearly["n_obs"]).sum())
    assert n_below > 0  # the fixture's wide intervals give some
    assert f"in {n_below} of {len(yearly)} yearly groups" in text
    assert "2 of 200 bootstrap replicates failed" in text and "model 0" in text
    failed = pd.DataFrame(
        {
            "model": [0, 1, 2],
            "dataset": [0, 0, 1],
            "type": ["two-factor", "three-factor", "two-factor"],
            "status": ["ok", "ok", "not used: refit status mle_does_not_exist"],
            "n_boot_ok": [97, 100, 0],
            "n_boot_failed": [3, 0, 0],
        }
    )
    text = report.caveats(est, SUMMARY, p, failed)
    assert (
        "1 of 3 selected models were left out: model 2 (data set 1, two-factor): not used: the maximum "
        "likelihood estimate does not exist"
    ) in text
    assert "mle_does_not_exist" not in text
    assert "3 of 200 bootstrap replicates failed" in text
    t = row(est, 2017, "total")
    share = (1 + 1 / t.n_models) * t.var_between / t.var_total
    assert f"2017: {share:.0%}" in text
    assert tables.ROUNDING_RULE in text


def test_parameters_name_input_files_without_their_folders():
    p = load_params()
    text = report.parameters(p)
    assert "| reports | reports.csv |" in text and str(p.reports.parent) not in text
    assert f"| bootstrap | {p.bootstrap} |" in text and f"| seed | {p.seed} |" in text


def test_validation_text_counts(est):
    truth = pd.DataFrame(
        {
            "year": list(YEARS),
            "group": "total",
            "n_true": [row(est, y, "total").n_hat for y in YEARS[:2]] + [1e6],
            "n_registered": 900,
        }
    )
    text = report.validation(tables.validation_table(est, truth))
    assert "in 2 of 3 yearly groups (67%)" in text
    assert "2018: true 1,000,000" in text and "**outside**" in text


def test_notebook_04_keeps_its_first_cells_and_has_no_outputs():
    import nbformat

    from mse_helpers.runner.params import PROJECT_ROOT

    nb = nbformat.read(PROJECT_ROOT / "notebooks" / "04_results.ipynb", as_version=4)
    assert nb.cells[1].metadata.get("tags") == ["parameters"]
    # the exploration's parameters (written by notebook 01), then the session of mse_helpers.runner.lab
    assert "params_file = None" in nb.cells[1].source and "overrides = {}" in nb.cells[1].source
    assert 'session = lab.open_session("04_results", params_file, overrides, run_dir)' in nb.cells[2].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in code)
    assert any("bootstrap.run_stage(p, work_dir, results_dir)" in c.source for c in code)
    assert json.dumps(nb.cells[0].source) == json.dumps("# Results")
