"""The bias-corrected Mt estimate (mse_helpers.engine.bias) against Rcapture's ``closedp.bc``.

Reference rows: ``kind == bias-corrected`` in ``tests/fixtures/r_reference.csv`` (Rcapture 1.4-4
``closedp.bc(m = "Mt")``, written by ``scripts/compare_r.py``); no R needed.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
from test_r_reference import reference_rows, table_path

from mse_helpers import cli
from mse_helpers.engine.bias import NotApplicable, bias_corrected, mt_bias_corrected, stratifying_covariate
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import n_hat_by
from mse_helpers.engine.fit import fit_model

ROWS = [r for r in reference_rows() if r["kind"] == "bias-corrected"]
#: Rcapture solves Darroch's equation with uniroot's default tolerance, .Machine$double.eps^0.25
#: = 1.2e-4 (absolute, in persons); ours is solved to machine precision.
UNIROOT_TOL = 2.5e-4


def design_of(dataset: str) -> Design:
    frame = pd.read_csv(table_path(dataset), comment="#")
    lists = [c for c in frame.columns if c != "count"]
    return Design(complete_table(frame, lists, []), lists, [])


def test_reference_has_a_bias_corrected_row_for_every_table():
    assert {r["dataset"] for r in ROWS} == {r["dataset"] for r in reference_rows()}
    assert all(r["func"] == "closedp.bc" and r["model"] == "Mt" for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r["dataset"] for r in ROWS])
def test_same_bias_corrected_mt_estimate_as_rcapture(row):
    bc = bias_corrected(fit_model(design_of(row["dataset"]), ()))
    assert bc.model == "Mt"
    assert bc.n_hat == pytest.approx(float(row["n_hat"]), abs=UNIROOT_TOL)
    assert bc.stderr == pytest.approx(float(row["stderr"]), rel=1e-5)
    # the correction is small-sample: a few persons at most on these tables, not a new model
    assert abs(bc.n_hat - bc.n_hat_uncorrected) < 0.12 * bc.n_hat_uncorrected


def test_two_lists_is_chapman():
    # n1 = 50, n2 = 40, 10 on both: (51 x 41) / 11 - 1; Seber (1982) p. 60 for the variance
    n_hat, se = mt_bias_corrected([50, 40], 80)
    assert n_hat == pytest.approx(51 * 41 / 11 - 1, rel=1e-14)
    assert se == pytest.approx(math.sqrt(51 * 41 * 40 * 30 / (12 * 11**2)), rel=1e-14)


def test_three_lists_solves_the_corrected_darroch_equation():
    counts = {(1, 0, 0): 42, (0, 1, 0): 29, (0, 0, 1): 18, (1, 1, 0): 10, (1, 0, 1): 6, (0, 1, 1): 4, (1, 1, 1): 2}
    frame = pd.DataFrame([dict(zip("ABC", h), count=c) for h, c in counts.items()])
    n_i = np.array([sum(c for h, c in counts.items() if h[i]) for i in range(3)], dtype=float)
    n, t = float(sum(counts.values())), 3
    n_hat, se = mt_bias_corrected(n_i, n)
    big = n_hat + t / 2  # the root, in corrected counts
    a, b = n_i + (t + 2) / (2 * t), n + t / 2
    assert np.prod(1 - a / big) == pytest.approx(1 - b / big, abs=1e-13)
    assert se == pytest.approx((1 / (big - b) + (t - 1) / big - np.sum(1 / (big - a))) ** -0.5, rel=1e-12)
    # the uncorrected root is the Mt MLE (main effects), which the correction moves by a few persons
    mle = fit_model(Design(complete_table(frame, list("ABC"), []), list("ABC"), []), ())
    assert np.prod(1 - n_i / mle.n_hat) == pytest.approx(1 - n / mle.n_hat, abs=1e-9)
    assert 0 < abs(n_hat - mle.n_hat) < 5


def test_no_overlap_has_no_estimate():
    with pytest.raises(NotApplicable, match="more than one list"):
        mt_bias_corrected([20, 30, 10], 60)


def strata_design() -> Design:
    """Korea's lists in two strata G with different counts."""
    frame = pd.read_csv(table_path("korea"), comment="#")
    other = frame.assign(count=(frame["count"] * 0.6).round() + 3)
    both = pd.concat([frame.assign(G="x"), other.assign(G="y")], ignore_index=True)
    return Design(complete_table(both, ["b", "c", "d"], ["G"]), ["b", "c", "d"], ["G"])


def level_design(design: Design, level: str) -> Design:
    t = design.table
    frame = t.loc[t["observed"].astype(bool) & (t["G"] == level), ["b", "c", "d", "count"]]
    return Design(complete_table(frame, ["b", "c", "d"], []), ["b", "c", "d"], [])


def test_covariate_not_interacting_with_the_lists_collapses_the_table():
    design = strata_design()
    fit = fit_model(design, ())
    assert stratifying_covariate(fit) is None
    collapsed = (
        design.table[design.table["observed"].astype(bool)].groupby(["b", "c", "d"], as_index=False)["count"].sum()
    )
    plain = fit_model(Design(complete_table(collapsed, ["b", "c", "d"], []), ["b", "c", "d"], []), ())
    assert fit.n_hat == pytest.approx(plain.n_hat, rel=1e-9)  # the premise: N-hat of the collapsed table
    assert bias_corrected(fit).n_hat == pytest.approx(bias_corrected(plain).n_hat, rel=1e-12)


def test_mt_within_the_levels_of_one_covariate():
    design = strata_design()
    fit = fit_model(design, "b:G,c:G,d:G")
    assert stratifying_covariate(fit) == "G"
    bc = bias_corrected(fit)
    by = n_hat_by(fit, ["G"]).set_index("G")
    total = 0.0
    for level in ("x", "y"):
        own = fit_model(level_design(design, level), ())
        assert by.loc[level, "n_hat"] == pytest.approx(own.n_hat, rel=1e-8)  # the premise: Mt per level
        row = bc.by.set_index("G").loc[level]
        assert row["n_hat"] == pytest.approx(bias_corrected(own).n_hat, rel=1e-12)
        total += row["n_hat"]
    assert bc.model == "Mt by G" and bc.n_hat == pytest.approx(total, rel=1e-12)
    assert bc.stderr == pytest.approx(math.hypot(*bc.by["stderr"]), rel=1e-12)


@pytest.mark.parametrize("terms", ["b:c", "b:G,c:G", "b:G,c:G,d:G,b:c"])
def test_other_models_are_not_applicable(terms):
    fit = fit_model(strata_design(), terms)
    with pytest.raises(NotApplicable):
        bias_corrected(fit)


def run_json(*argv: str) -> tuple[int, dict]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli.main(["estimate", *argv, "--json"])
    return code, json.loads(buf.getvalue())


def test_cli_bias_correct():
    (row,) = [r for r in ROWS if r["dataset"] == "korea"]
    code, res = run_json(str(table_path("korea")), "--bias-correct")
    assert code == 0 and res["bias_corrected"]["available"]
    assert res["bias_corrected"]["n_hat"] == pytest.approx(float(row["n_hat"]), abs=UNIROOT_TOL)
    assert res["n_hat"] == pytest.approx(141.99, abs=0.01)  # the MLE is still the estimate
    code, res = run_json(str(table_path("korea")), "--bias-correct", "--terms", "b:c")
    assert code == 0 and not res["bias_corrected"]["available"]
    assert "between lists ['b:c']" in res["bias_corrected"]["reason"]
    code, res = run_json(str(table_path("korea")))
    assert "bias_corrected" not in res  # only when asked for


def test_cli_bias_correct_text(capsys):
    assert cli.main(["estimate", str(table_path("korea")), "--bias-correct"]) == 0
    out = capsys.readouterr().out
    assert "bias-corrected     142.3  (model Mt, standard error 6.3;" in out
