"""Revisions between runs: `previous_run`, `models_from`, results/revisions.csv and Figure 6 with a run as source.

The quick tests use small hand-made run folders. The slow ones (``pytest -m slow tests/test_revisions.py``)
make three quick runs into one reports folder, as the README's "A new year of data" does: the bundled
2016-2019 data, then 2020 added (the previous run found by ``previous_run: auto``), then 2020 added with
the first run's models pinned (``models_from``).
"""

import json
import shutil

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

matplotlib.use("Agg")
from helpers import QUICK  # noqa: E402

from mse_helpers import runfolder  # noqa: E402
from mse_helpers.codes import COVARIATES  # noqa: E402
from mse_helpers.report import figures, tables  # noqa: E402
from mse_helpers.report import revisions as revision_report  # noqa: E402
from mse_helpers.runner import runindex  # noqa: E402
from mse_helpers.runner.params import PROJECT_ROOT, ParameterError, load_params  # noqa: E402
from mse_helpers.stages import revisions  # noqa: E402

NEW_YEAR = 2020
RUN = QUICK + ["--set", "sensitivity=[]"]


# --- hand-made run folders --------------------------------------------------------------------


def _groups():
    covs = list(COVARIATES)
    singles = [f"{c}={lv}" for c in covs for lv in COVARIATES[c]]
    pairs = [
        f"{a}={la}&{b}={lb}"
        for i, a in enumerate(covs)
        for b in covs[i + 1 :]
        for la in COVARIATES[a]
        for lb in COVARIATES[b]
    ]
    return ["total"] + singles + pairs


def _estimates(years, scale=1.0):
    """An estimates.csv frame with every group of four covariates (numbers made up, consistent)."""
    rows = []
    for y in [str(v) for v in years] + ["all"]:
        for k, g in enumerate(_groups()):
            n_hat = scale * (4000.0 if g == "total" else 300.0 + 17 * k) + (int(y) - 2016 if y != "all" else 0)
            rows.append(
                dict(year=y, group=g, n_obs=n_hat / 3, n_hat=n_hat, lower=0.8 * n_hat, upper=1.2 * n_hat, ratio=3.0,
                     dark=n_hat * 2 / 3, dark_lower=1.0, dark_upper=2.0, var_within=1.0, var_between=1.0,
                     var_total=2.0, df=10.0, n_models=4, interval="rubin-t")
            )  # fmt: skip
    return pd.DataFrame(rows)


def _run_folder(reports, name, *, years=(2016, 2017, 2018, 2019), status="ok", started=None, models=None, scale=1.0):
    d = reports / name
    for sub in runfolder.SUBFOLDERS:
        (d / sub).mkdir(parents=True, exist_ok=True)
    _estimates(years, scale).to_csv(runfolder.run_estimates_path(d), index=False)
    manifest = {"status": status, "years": list(years), "started": started or f"{name[:10]}T10:00:00+00:00"}
    (d / runfolder.MANIFEST_FILE).write_text(json.dumps(manifest))
    p = load_params(None)
    (d / runfolder.PARAMS_FILE).write_text(
        yaml.safe_dump({"registers": list(p.registers), "covariates": list(p.covariates)})
    )
    if models is not None:
        (d / "work" / "models.json").write_text(json.dumps(models))
    return d


def _models(m, terms=("P:R",), three=("O:P:R",)):
    out = []
    for k in range(m):
        out.append({"dataset": k, "type": "two-factor", "terms": list(terms), "status": "ok"})
        out.append({"dataset": k, "type": "three-factor", "terms": list(terms) + list(three), "status": "ok"})
    return out


# --- the comparison ------------------------------------------------------------------------


def test_compare_matches_a_merge_of_the_two_estimate_tables_and_the_split_adds_up():
    prev, new = _estimates([2016, 2017, 2018, 2019]), _estimates([2016, 2017, 2018, 2019, 2020], scale=1.1)
    pinned = new.assign(n_hat_pinned=new["n_hat"] * 0.97)[["year", "group", "n_hat_pinned"]]
    table = revisions.compare(prev, new, pinned, previous_run="2026-12-01")
    assert list(table.columns) == list(runfolder.REVISION_COLUMNS)
    assert set(table["year"]) == {"2016", "2017", "2018", "2019"}  # 2020 and "all" are not in both
    assert len(table) == 4 * len(_groups())
    both = new.merge(prev, on=["year", "group"], suffixes=("_n", "_p"))
    both = both[both["year"] != "all"].set_index(["year", "group"])
    t = table.set_index(["year", "group"]).loc[both.index]
    np.testing.assert_allclose(t["change"], both["n_hat_n"] - both["n_hat_p"])
    np.testing.assert_allclose(t["change_percent"], 100 * (both["n_hat_n"] / both["n_hat_p"] - 1))
    assert (
        t["in_previous_interval"] == ((both["n_hat_n"] >= both["lower_p"]) & (both["n_hat_n"] <= both["upper_p"]))
    ).all()
    np.testing.assert_allclose(t["change_new_data"] + t["change_reselection"], t["change"])
    assert (table["previous_run"] == "2026-12-01").all()


def test_compare_without_pinned_estimates_has_no_split():
    table = revisions.compare(_estimates([2018]), _estimates([2018, 2019]))
    assert table["change_new_data"].isna().all() and table["change_reselection"].isna().all()
    assert table["change"].notna().all()


def test_dataset_mapping():
    assert revisions.dataset_mapping(3, 5) == [0, 1, 2]
    assert revisions.dataset_mapping(5, 2) == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError):
        revisions.dataset_mapping(2, 0)


# --- finding the previous run ---------------------------------------------------------------


def test_previous_run_auto_is_the_newest_good_overlapping_earlier_run(tmp_path):
    reports = tmp_path / "reports"
    old = _run_folder(reports, "2026-11-01")
    good = _run_folder(reports, "2026-11-20")
    _run_folder(reports, "2026-11-25", status="failed")  # failed runs are never revised
    _run_folder(reports, "2026-11-26", years=(2010, 2011))  # no common year
    current = _run_folder(reports, "2026-12-03", status="running", years=(2016, 2017, 2018, 2019, 2020))
    later = _run_folder(reports, "2026-12-04")  # started after the current run
    years = [2016, 2017, 2018, 2019, 2020]
    assert runindex.previous_run(reports, years, exclude=current) == good
    assert runindex.resolve_previous_run("auto", current, years) == good
    assert runindex.resolve_previous_run(None, current, years) is None
    assert runindex.resolve_previous_run(str(old), current, years) == old
    assert runindex.previous_run(reports, years, exclude=later) == good  # the current run is not ok yet
    assert runindex.previous_run(reports, [2030], exclude=current) is None


# --- parameters -------------------------------------------------------------------------------


def test_previous_run_and_models_from_parameters(tmp_path):
    reports = tmp_path / "reports"
    good = _run_folder(reports, "2026-11-20", models=_models(3))
    failed = _run_folder(reports, "2026-11-21", status="failed")
    assert load_params(None).previous_run == "auto" and load_params(None).models_from is None
    p = load_params(None, {"previous_run": str(good), "models_from": str(good), "m": 3})
    assert p.previous_run == good and p.models_from == good
    assert load_params(None, {"previous_run": None}).previous_run is None
    cases = {
        str(tmp_path / "nope"): "does not exist",
        str(failed): "status 'failed'",
    }
    for value, words in cases.items():
        with pytest.raises(ParameterError, match="parameter previous_run") as exc:
            load_params(None, {"previous_run": value})
        assert words in str(exc.value)
    with pytest.raises(ParameterError, match="previous_run: run folder .* has no results/estimates.csv"):
        load_params(None, {"previous_run": str(tmp_path)})


@pytest.mark.parametrize(
    "setup, overrides, words",
    [
        (dict(models=None), {}, "work/models.json is missing"),
        (dict(models=_models(2)), {"m": 3}, "no two-factor model for data set 2 (2 data set(s) there, m = 3 here)"),
        (dict(models=_models(3)), {"m": 3, "covariates": ["S", "L"]}, "used covariates ['S', 'L', 'N', 'U']"),
        (dict(models=_models(3, terms=("J:P",))), {"m": 3, "years": [2019]}, "one year: no J"),
    ],
)
def test_models_from_is_refused_with_a_clear_message_before_a_run(tmp_path, setup, overrides, words):
    src = _run_folder(tmp_path / "reports", "2026-11-20", **setup)
    with pytest.raises(ParameterError) as exc:
        load_params(None, {"models_from": str(src), **overrides})
    assert "parameter models_from" in str(exc.value) and words in str(exc.value)


def test_models_from_relative_to_the_parameters_file(tmp_path):
    src = _run_folder(tmp_path / "reports", "2026-11-20", models=_models(3))
    (tmp_path / "my.yaml").write_text("models_from: reports/2026-11-20\nm: 3\nprevious_run: auto\n")
    p = load_params(tmp_path / "my.yaml")
    assert p.models_from == src.resolve() and p.previous_run == "auto"


# --- Figure 6 with a run folder as source ----------------------------------------------------------


def test_earlier_estimates_from_a_run_folder(tmp_path):
    run = _run_folder(tmp_path / "reports", "2026-11-20")
    for source in (run, runfolder.run_estimates_path(run)):
        earlier = tables.read_earlier_estimates(source)
        assert set(earlier["year"]) == {"2016", "2017", "2018", "2019"}  # the "all" rows are left out
        assert (earlier["kind"] == tables.EARLIER_RUN).all() and (earlier["label"] == "run 2026-11-20").all()
        assert len(earlier) == 4 * len(_groups())
    p = load_params(None, {"earlier_estimates": str(run)})
    assert p.earlier_estimates == run.resolve()
    assert p.input_files()["earlier_estimates"] == runfolder.run_estimates_path(run.resolve())
    failed = _run_folder(tmp_path / "reports", "2026-11-21", status="failed")
    with pytest.raises(ValueError, match="status 'failed'"):
        tables.read_earlier_estimates(failed)
    assert (tables.read_earlier_estimates(None)["kind"] == tables.PUBLISHED).all()


def _png_height(fig, tmp_path):
    out = tmp_path / "fig6.png"
    fig.savefig(out, bbox_inches="tight")
    return matplotlib.image.imread(out).shape[0]


def test_figure6_with_a_run_stays_readable(tmp_path):
    run = _run_folder(tmp_path / "reports", "2026-11-20")
    est = _estimates([2016, 2017, 2018, 2019, 2020], scale=1.05)
    fig = figures.figure6(est, run)
    axes = fig.axes
    assert 1 < len(axes) <= figures.MAX_PANELS  # one panel per family (total, 4 covariates, 6 pairs), not 33
    assert len(axes) == 1 + 4 + 6
    assert _png_height(fig, tmp_path) < 3000
    labels = [t.get_text() for ax in axes for t in ax.get_legend().get_texts()]
    assert "run 2026-11-20 (earlier run)" in labels and not any("published" in t for t in labels)
    assert axes[0].get_title() == "all victims"
    # this run's lines reach 2020, the earlier run's points stop at 2019
    xs = {int(x) for ln in axes[0].get_lines() if ln.get_label() == "this run: estimated" for x in ln.get_xdata()}
    assert NEW_YEAR in xs
    # the bundled published figures: total and sexual exploitation, labelled published
    pub = figures.figure6(est)
    labels = [t.get_text() for ax in pub.axes for t in ax.get_legend().get_texts()]
    assert "published estimate (not this run)" in labels and len(pub.axes) == 2
    fig, ax = matplotlib.figure.Figure(), None
    ax = fig.subplots()
    assert figures.figure6(est, run, ax=ax) is fig and ax.get_title() == "all victims"
    assert "run 2026-11-20 (earlier run)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_revision_text_and_table_say_it_in_plain_words():
    prev, new = _estimates([2016, 2017, 2018, 2019]), _estimates([2016, 2017, 2018, 2019, 2020], scale=1.3)
    pinned = new.assign(n_hat_pinned=new["n_hat"] * 0.9)[["year", "group", "n_hat_pinned"]]
    table = revisions.compare(prev, new, pinned, previous_run="2026-11-20")
    result = revisions.RevisionResult(
        "2026-11-20", None, [2016, 2017, 2018, 2019], [2016, 2017, 2018, 2019, 2020], table, object(), ()
    )
    text = revision_report.revision_text(result)
    row = table[(table["group"] == "total") & (table["year"] == "2016")].iloc[0]
    assert "**2026-11-20**" in text and "lies outside the previous 95% interval" in text
    assert f"{row.change_percent:+.1f}%" in text and "**Why the estimates changed.**" in text
    html = revision_report.revision_table(table).to_html()
    assert "new estimate in previous interval" in html and "+1,200" in html  # 4,000 -> 5,200 rounded
    assert ">5,200<" in html and ">no<" in html and "5200.0" not in html  # estimates rounded, yes/no
    assert "&" not in "".join(revision_report.revision_frame(table)["group"])


# --- three quick runs (slow) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from mse_helpers.cli import main

    data = tmp_path_factory.mktemp("data")
    for f in ("reports.csv", "aggregates.csv", "register_map.csv", "truth.csv"):
        shutil.copy(PROJECT_ROOT / "data" / f, data / f)
    params = "reports: reports.csv\naggregates: aggregates.csv\nregister_map: register_map.csv\ntruth: truth.csv\n"
    (data / "params.yaml").write_text(params)
    reports = tmp_path_factory.mktemp("reports")

    def run(*extra):
        before = {d for d in reports.iterdir() if d.is_dir()}
        code = main(["run", "--params", str(data / "params.yaml"), "--reports", str(reports), *RUN, *extra])
        (new,) = {d for d in reports.iterdir() if d.is_dir()} - before
        failed = new / "FAILED"
        assert code == 0, failed.read_text() if failed.is_file() else f"mse run exit code {code}"
        return new

    first = run()
    assert main(["simulate", "--years", str(NEW_YEAR), "--out", str(data), "--append"]) == 0
    second = run()  # previous_run: auto -> the first run
    pinned = run("--set", f"models_from={first}", "--set", f"previous_run={first}")
    return first, second, pinned


def _est(run):
    return pd.read_csv(runfolder.run_estimates_path(run), dtype={"year": str})


@pytest.mark.slow
def test_revisions_csv_equals_a_comparison_of_the_two_runs(runs):
    first, second, _ = runs
    assert not (first / "results" / runfolder.REVISIONS_FILE).exists()  # nothing to revise yet
    assert "No previous run to compare with" in (first / "html" / "04_results.html").read_text(encoding="utf-8")
    rev = runfolder.read_revisions(second / "results")
    assert (rev["previous_run"] == first.name).all()
    old, new = _est(first), _est(second)
    both = new.merge(old, on=["year", "group"], suffixes=("_new", "_old"))
    both = both[both["year"].str.fullmatch(r"\d{4}")].set_index(["year", "group"]).sort_index()
    rev = rev.set_index(["year", "group"]).sort_index()
    assert list(rev.index) == list(both.index)
    assert sorted(set(rev.index.get_level_values("year"))) == ["2016", "2017", "2018", "2019"]
    for col in ("n_hat", "lower", "upper", "n_obs"):
        np.testing.assert_allclose(rev[f"{col}_previous"], both[f"{col}_old"], rtol=1e-12)
        np.testing.assert_allclose(rev[f"{col}_new"], both[f"{col}_new"], rtol=1e-12)
    np.testing.assert_allclose(rev["change"], both["n_hat_new"] - both["n_hat_old"], rtol=1e-9)
    np.testing.assert_allclose(rev["change_percent"], 100 * (both["n_hat_new"] / both["n_hat_old"] - 1), rtol=1e-9)
    inside = (both["n_hat_new"] >= both["lower_old"]) & (both["n_hat_new"] <= both["upper_old"])
    assert (rev["in_previous_interval"] == inside).all()
    np.testing.assert_allclose(rev["change_new_data"] + rev["change_reselection"], rev["change"], atol=1e-6)
    assert rev["change"].abs().max() > 0  # 2020 changes the earlier years
    page = (second / "html" / "04_results.html").read_text(encoding="utf-8")
    assert "Revisions since the previous run" in page and f"<strong>{first.name}</strong>" in page
    total16 = rev.loc[("2016", "total")]
    assert f"{total16.change_percent:+.1f}%" in page


@pytest.mark.slow
def test_with_models_from_the_earlier_years_change_only_through_new_data(runs):
    first, _, pinned = runs
    theirs = {(m["dataset"], m["type"]): m["terms"] for m in json.loads((first / "work" / "models.json").read_text())}
    ours = {(m["dataset"], m["type"]): m["terms"] for m in json.loads((pinned / "work" / "models.json").read_text())}
    assert {k: sorted(v) for k, v in ours.items()} == {k: sorted(v) for k, v in theirs.items()}
    rev = runfolder.read_revisions(pinned / "results")
    assert (rev["previous_run"] == first.name).all() and len(rev)
    assert rev["change_reselection"].abs().max() < 1e-6  # re-selection part zero
    np.testing.assert_allclose(rev["change_new_data"], rev["change"], atol=1e-6)
    assert rev["change"].abs().max() > 0
    page = (pinned / "html" / "03_model_selection.html").read_text(encoding="utf-8")
    assert "The models were not selected in this run" in page and first.name in page


@pytest.mark.slow
def test_a_pinned_model_without_mle_is_reported_not_dropped(runs, tmp_path):
    from mse_helpers.engine.status import FitStatus
    from mse_helpers.stages import bootstrap, selection

    first, _, _ = runs
    # a source run whose data set 0 two-factor model has every two-factor term: no MLE on these data
    src = tmp_path / "src"
    shutil.copytree(first, src, ignore=shutil.ignore_patterns("imputed", "*.parquet", "html*", "notebooks"))
    models = json.loads((src / "work" / "models.json").read_text())
    persons = runfolder.read_imputed(runfolder.imputed_path(first / "work", 0))
    p = load_params(first / "params.yaml")
    years = runfolder.analysed_years(runfolder.read_prep_summary(first / "work"))
    table = selection.analysis_table(persons, p.registers, p.covariates, years)
    design, _ = selection.design_for(table, p.registers, selection.model_factors(p.covariates, years))
    all2 = [t for t in design.candidate_terms if t.count(":") == 1]
    models[0]["terms"] = all2
    (src / "work" / "models.json").write_text(json.dumps(models))
    work = tmp_path / "run" / "work"
    shutil.copytree(first / "work", work)
    p = load_params(first / "params.yaml", {"models_from": str(src)})
    result = selection.run_stage(p, work)
    assert result.models[0].status != FitStatus.OK and result.stats["pinned_not_usable"] == 1
    assert len(result.models) == 2 * p.m  # kept, with its status
    assert (result.refused["step"] == selection.PINNED_STEP).sum() == 1
    boot = bootstrap.run_stage(p, work, tmp_path / "run" / "results")
    assert boot.failed.loc[0, "status"] == result.models[0].status and boot.n_models_skipped == 1
    assert "no usable fit" in revision_report.pinned_models_text(result.models, src, p.m)
