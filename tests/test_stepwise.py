"""``--select stepwise`` (mse_helpers.stages.stepwise) against SparseMSE 2.0.1's stepwise method.

The reference rows are those of ``tests/fixtures/r_reference.csv`` with ``kind == stepwise``
(``estimatepopulation.0`` and ``estimatepopulation``: SparseMSE's terms, in the order its
stepwise method added them, and its N-hat), written by ``scripts/compare_r.py``; no R needed.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import pandas as pd
import pytest
from scipy import stats
from test_r_reference import empty_overlaps, reference_rows, table_path

from mse_helpers import cli
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.fit import fit_model
from mse_helpers.stages.stepwise import list_pairs, overlap_pvalue, overlap_pvalues, stepwise

ROWS = [r for r in reference_rows() if r["kind"] == "stepwise"]


def design_of(dataset: str) -> Design:
    frame = pd.read_csv(table_path(dataset), comment="#")
    lists = [c for c in frame.columns if c != "count"]
    return Design(complete_table(frame, lists, []), lists, [])


def kept_at_minus_infinity(row: dict) -> list[str]:
    """Pairs SparseMSE kept in its model with no overlap (the note of its stepwise fit names them)."""
    (fit,) = [r for r in ROWS if r["dataset"] == row["dataset"] and r["func"] == "estimatepopulation.0"]
    note = fit["note"]
    if "minus infinity: " not in note:
        return []
    return note.split("minus infinity: ")[1].split(";")[0].split(",")


def test_reference_has_stepwise_rows_for_every_table():
    assert len(ROWS) >= 26
    assert {r["dataset"] for r in ROWS} == {r["dataset"] for r in reference_rows()}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['dataset']}|{r['func']}" for r in ROWS])
def test_same_terms_in_the_same_order_and_same_n_hat_as_sparsemse(row):
    sel = stepwise(design_of(row["dataset"]))
    empty = kept_at_minus_infinity(row)
    if not empty:
        # SparseMSE's model has an MLE by our rule: the same path and the same number
        assert ",".join(sel.path) == row["terms"]
        assert sel.fit.ok
        assert sel.fit.n_hat == pytest.approx(float(row["n_hat"]), rel=1e-6)
        return
    # SparseMSE kept pairs that never overlap at minus infinity (the Netherlands): those pairs
    # really have no overlap, we refuse them (zero sufficient statistic) and never select them;
    # our path is SparseMSE's finite terms up to where the kept pair changes the fit
    assert sorted(empty_overlaps(row["dataset"], ",".join(empty))) == sorted(empty)
    refused = {r["term"]: r for r in sel.refused}
    for pair in empty:
        assert pair in refused and "zero sufficient statistic" in refused[pair]["reason"]
        assert pair not in sel.fit.terms
    theirs = row["terms"].split(",")
    assert sel.path == theirs[: len(sel.path)] and len(sel.path) >= len(theirs) - 1
    assert sel.fit.ok and sel.fit.n_hat > float(row["n_hat"])


def test_overlap_pvalue_is_the_smaller_poisson_tail():
    # P(X <= 3) and P(X >= 3) for X ~ Poisson(7.5), by the series
    pmf = [math.exp(-7.5) * 7.5**k / math.factorial(k) for k in range(4)]
    assert overlap_pvalue(3, 7.5) == pytest.approx(sum(pmf), rel=1e-12)
    upper = 1 - sum(math.exp(-7.5) * 7.5**k / math.factorial(k) for k in range(12))  # P(X >= 12)
    assert overlap_pvalue(12, 7.5) == pytest.approx(upper, rel=1e-10)
    assert overlap_pvalue(0, 2.0) == pytest.approx(math.exp(-2.0), rel=1e-12)  # P(X >= 0) = 1


def test_first_step_pvalues_on_korea_by_hand():
    # main effects on Korea: the expected overlap of b and c is the sum of the fitted values of
    # the cells 110 and 111; b:c is added first (the smallest p-value, below 0.02)
    design = design_of("korea")
    main = fit_model(design, ())
    cells = design.table.loc[design.observed, ["b", "c", "d"]].to_numpy()
    both = (cells[:, 0] == 1) & (cells[:, 1] == 1)
    expected = float(main.fitted[both].sum())
    p = overlap_pvalues(main, ["b:c", "b:d", "c:d"])
    assert p["b:c"] == pytest.approx(stats.poisson.sf(54 + 12 - 1, expected), rel=1e-10)
    assert min(p, key=p.get) == "b:c" and p["b:c"] == pytest.approx(3.5138e-5, rel=1e-4)
    assert stepwise(design).path == ["b:c"]


def test_threshold_zero_and_one():
    design = design_of("lesbian")  # all six pairs together have an MLE
    assert stepwise(design, pthresh=0).path == []
    every = stepwise(design, pthresh=1)
    assert every.path == list(list_pairs(design)) and every.fit.ok
    with pytest.raises(ValueError, match="pthresh"):
        stepwise(design, pthresh=1.5)


def test_covariates_are_refused():
    frame = pd.read_csv(table_path("korea"), comment="#")
    frame = pd.concat([frame.assign(S="F"), frame.assign(S="M")], ignore_index=True)
    design = Design(complete_table(frame, ["b", "c", "d"], ["S"]), ["b", "c", "d"], ["S"])
    with pytest.raises(ValueError, match="covariate"):
        stepwise(design)


def run_json(*argv: str) -> tuple[int, dict]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli.main(["estimate", *argv, "--json"])
    return code, json.loads(buf.getvalue())


def test_cli_select_stepwise_on_korea():
    code, res = run_json(str(table_path("korea")), "--select", "stepwise")
    assert code == 0 and res["terms"] == ["b:c"]
    assert res["n_hat"] == pytest.approx(268.7777777777, rel=1e-9)  # SparseMSE: 268.77777777777777
    sel = res["selection"]
    assert sel["method"] == "stepwise" and sel["added"] == ["b:c"] and sel["removed"] == []
    # b:d (no MLE with b:c) never came up: its p-value in the model b:c is above 0.02
    assert sel["refused"] == []


def test_cli_select_stepwise_refuses_a_start_and_covariates(capsys, tmp_path):
    code = cli.main(["estimate", str(table_path("korea")), "--select", "stepwise", "--terms", "b:c"])
    assert code == 2 and "starts from main effects" in capsys.readouterr().err
    frame = pd.read_csv(table_path("korea"), comment="#")
    path = tmp_path / "strata.csv"
    pd.concat([frame.assign(S="F"), frame.assign(S="M")]).to_csv(path, index=False)
    code = cli.main(["estimate", str(path), "--select", "stepwise"])
    assert code == 2 and "covariate(s) ['S']" in capsys.readouterr().err
