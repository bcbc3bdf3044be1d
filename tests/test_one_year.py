"""A one-year run works end to end: the year factor J leaves the models (codes.uses_year_factor)."""

import json

import pandas as pd
import pytest
from helpers import QUICK

from mse_helpers.cli import main
from mse_helpers.codes import YEAR, model_factors, uses_year_factor


def test_year_factor_only_with_more_than_one_year():
    assert not uses_year_factor([2016])
    assert uses_year_factor([2016, 2017])
    assert model_factors(["S", "L"], [2016]) == ["S", "L"]
    assert model_factors(["S"], [2016, 2019]) == ["S", YEAR]
    assert model_factors([], [2018]) == []


@pytest.mark.slow
def test_one_year_run_end_to_end(tmp_path, capsys):
    reports = tmp_path / "reports"
    args = [
        "run",
        "--reports",
        str(reports),
        "--set",
        "years=2016",
        *QUICK,
    ]
    assert main(args) == 0, capsys.readouterr().err
    (run,) = [d for d in reports.iterdir() if d.is_dir()]
    man = json.loads((run / "manifest.json").read_text())
    assert man["status"] == "ok" and man["years"] == [2016]
    est = pd.read_csv(run / "results" / "estimates.csv", dtype={"year": str})
    assert set(est["year"]) == {"2016", "all"}
    total = est[est["group"] == "total"].set_index("year")
    assert total.loc["2016", "n_hat"] > total.loc["2016", "n_obs"] > 0
    # one year: the all-years row is that year's
    assert total.loc["all", "n_hat"] == pytest.approx(total.loc["2016", "n_hat"], rel=1e-9)
    models = json.loads((run / "work" / "models.json").read_text())
    assert all(not any(YEAR in t.split(":") for t in m["terms"]) for m in models)
    assert all(set(m["n_hat"]) == {"total", "2016"} for m in models)
    # privacy: the published reports name no machine path (the work files are named as work/...)
    for page in (run / "html").glob("*.html"):
        assert str(tmp_path) not in page.read_text(encoding="utf-8"), page.name
