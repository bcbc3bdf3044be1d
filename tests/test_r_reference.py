"""This project's ``mse estimate`` against Rcapture's Poisson fits of the same log-linear models.

The reference ``tests/fixtures/r_reference.csv`` is written by ``scripts/compare_r.py`` (which
needs R); these tests need no R. Only the fixed-model rows are asserted on (Rcapture
``closedpCI.t`` with ``mX`` and ``closedp.t``'s model Mt, which is the main-effects model);
the profile-likelihood bounds are asserted on in tests/test_profile.py, SparseMSE's stepwise
rows in tests/test_stepwise.py and Rcapture's ``closedp.bc`` rows in tests/test_bias.py.
"""

from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from mse_helpers import cli

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "r_reference.csv"
TABLES = {"korea": FIXTURES / "korea.csv", "uk2013": FIXTURES / "uk2013.csv"}

# R's glm "converging" to a boundary: N-hat this many times n_obs means the fit ran off to
# infinity (a model without MLE that glm did not flag, e.g. Korea with all two-list terms).
RUNAWAY = 1e3


def table_path(dataset: str) -> Path:
    return TABLES.get(dataset, FIXTURES / "published" / f"{dataset}.csv")


def reference_rows() -> list[dict]:
    with REFERENCE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def fixed_rows() -> list[dict]:
    return [r for r in reference_rows() if r["kind"] == "fixed" or (r["func"] == "closedp.t" and r["model"] == "Mt")]


def estimate(path: Path, terms: str) -> dict:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli.main(["estimate", str(path), "--terms", terms, "--json"])
    res = json.loads(buf.getvalue())
    assert code == (0 if res["status"] == "ok" else 1)  # 1: no MLE, and no number printed
    return res


def empty_overlaps(dataset: str, terms: str) -> list[str]:
    """The model's two-list terms whose lists have no person in common (a zero margin)."""
    table = pd.read_csv(table_path(dataset), comment="#")
    pairs = [t.split(":") for t in terms.split(",") if t]
    return [f"{a}:{b}" for a, b in pairs if table.loc[(table[a] == 1) & (table[b] == 1), "count"].sum() == 0]


def degenerate(row: dict) -> bool:
    """Rcapture's number is not an MLE: glm warned, N-hat ran off towards infinity, or a term's
    lists never overlap (the term's MLE is minus infinity; R then reports the finite limit, the
    "extended" MLE SparseMSE uses, which this project refuses by design)."""
    return (
        row["glm_warning"] == "1"
        or not row["n_hat"]
        or float(row["n_hat"]) > RUNAWAY * int(row["n_obs"])
        or bool(empty_overlaps(row["dataset"], row["terms"]))
    )


ROWS = fixed_rows()


def test_reference_covers_every_table_and_enough_models():
    rows = reference_rows()
    datasets = {r["dataset"] for r in rows}
    assert set(TABLES) <= datasets
    for name in datasets:
        assert table_path(name).is_file(), name
    # every table has its main-effects fit and a SparseMSE stepwise row
    for name in datasets:
        assert any(r["dataset"] == name and r["kind"] == "fixed" and r["terms"] == "" for r in rows), name
        assert any(r["dataset"] == name and r["package"] == "SparseMSE" for r in rows), name
    assert sum(not degenerate(r) for r in ROWS) >= 30


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['dataset']}|{r['model']}|{r['terms'] or 'main'}" for r in ROWS])
def test_same_n_hat_as_rcapture_poisson_fit(row):
    res = estimate(table_path(row["dataset"]), row["terms"])
    assert res["n_obs"] == int(row["n_obs"])
    if degenerate(row):
        # R's number is not an estimate; this project must refuse the model, not print a number
        assert res["status"] != "ok" and res["n_hat"] is None
    else:
        assert res["status"] == "ok"
        assert res["n_hat"] == pytest.approx(float(row["n_hat"]), rel=1e-6)
