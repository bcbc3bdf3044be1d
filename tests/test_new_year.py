"""A new year of data: append 2020 to the bundled data as the README
shows, run the whole pipeline, and check that 2020 is in every results table and figure.

Slow (the four notebooks run with quick settings): ``pytest -m slow tests/test_new_year.py``.
"""

import json
import shutil

import matplotlib
import nbformat
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from helpers import QUICK as HELPER_QUICK  # noqa: E402

from mse_helpers.cli import main  # noqa: E402
from mse_helpers.report import figures as plots  # noqa: E402
from mse_helpers.report import tables
from mse_helpers.runner.params import PROJECT_ROOT  # noqa: E402

NEW_YEAR = 2020
QUICK = HELPER_QUICK + ["--set", "sensitivity=[]"]

# Cells of notebook 04 that show results tables, by the call they make.
TABLE_CALLS = (
    "tables.table6(",
    "tables.covariate_table(",
    "tables.annex_g_tables(",
    "tables.ratio_table(",
    "tables.validation_table(",
    "result.models",
)
FIGURE_CALLS = ("plots.figure4(", "plots.figure5(", "plots.ratio_figure(", "plots.figure6(")


def _outputs(cell, kind):
    return [o["data"][kind] for o in cell.get("outputs", []) if kind in o.get("data", {})]


@pytest.fixture(scope="module")
def run_with_new_year(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    for f in ("reports.csv", "aggregates.csv", "register_map.csv", "truth.csv"):
        shutil.copy(PROJECT_ROOT / "data" / f, data / f)
    assert main(["simulate", "--years", str(NEW_YEAR), "--out", str(data), "--append"]) == 0
    (data / "params.yaml").write_text(
        "reports: reports.csv\naggregates: aggregates.csv\nregister_map: register_map.csv\ntruth: truth.csv\n"
    )
    reports = tmp_path_factory.mktemp("reports")
    code = main(["run", "--params", str(data / "params.yaml"), "--reports", str(reports)] + QUICK)
    (run,) = [d for d in reports.iterdir() if d.is_dir()]
    failed = run / "FAILED"
    assert code == 0, failed.read_text() if failed.is_file() else f"mse run exit code {code}"
    return run


@pytest.mark.slow
def test_new_year_in_results_files(run_with_new_year):
    run = run_with_new_year
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["years"] == [2016, 2017, 2018, 2019, NEW_YEAR]
    est = tables.check_estimates(pd.read_csv(run / "results" / "estimates.csv"))
    groups = set(est["group"])
    assert len(groups) == 1 + 8 + 24
    assert set(est.loc[est["year"] == str(NEW_YEAR), "group"]) == groups  # every group in the new year
    assert f"n_hat_{NEW_YEAR}" in pd.read_csv(run / "results" / "models.csv").columns
    assert f"{NEW_YEAR}:" in manifest["headline"]


@pytest.mark.slow
def test_new_year_in_every_table_and_figure_of_the_report(run_with_new_year):
    run = run_with_new_year
    nb = nbformat.read(run / "notebooks" / "04_results.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for call in TABLE_CALLS:
        cells = [c for c in code if call in c.source]
        assert cells, f"notebook 04 has no cell calling {call}"
        html = [h for c in cells for h in _outputs(c, "text/html") if "<table" in h]
        assert html, f"the cell calling {call} shows no table"
        for h in html:
            assert str(NEW_YEAR) in h, f"a table of {call} lacks {NEW_YEAR}"
    for call in FIGURE_CALLS:
        cells = [c for c in code if call in c.source]
        assert len(cells) == 1 and _outputs(cells[0], "image/png"), f"no figure from {call}"
    # the figures are drawn from results/estimates.csv: redraw them and look for the year on the x axis
    est = pd.read_csv(run / "results" / "estimates.csv")
    for fig in (plots.figure4(est), plots.figure5(est), plots.figure6(est, tables.read_earlier_estimates(None))):
        for ax in fig.axes:
            xs = {
                int(x)
                for ln in ax.get_lines()
                if ln.get_label().startswith(("estimated", "this run")) or "(" in ln.get_label()
                for x in ln.get_xdata()
            }
            assert NEW_YEAR in xs, f"{ax.get_title()}: no {NEW_YEAR} point"
        plt.close(fig)
    fig = plots.ratio_figure(est)
    assert str(NEW_YEAR) in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)
    # every published page (HTML without code) that shows a table mentions the new year
    pages = {p.name: p.read_text(encoding="utf-8") for p in (run / "html").glob("*.html")}
    assert "04_results.html" in pages and "01_data_preparation.html" in pages
    for name, text in pages.items():
        if "<table" in text:
            assert str(NEW_YEAR) in text, f"{name} never shows {NEW_YEAR}"
