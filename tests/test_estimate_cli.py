"""Tests of ``mse estimate`` (mse_helpers.cli.estimate), through the ``mse`` entry point."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from mse_helpers import cli

FIXTURES = Path(__file__).parent / "fixtures"
KOREA = str(FIXTURES / "korea.csv")

# Published abundance and BIC for the Korea data, by model (user guide of the R
# package MultipleSystemsEstimation, table `bic_results`, printed to 4 and 5
# decimals). That package's BIC uses n = 123 persons; ours uses n = 7 cells, so
# the published BIC is recomputed from our log-likelihood as -2 llf + k log(123).
KOREA_PUBLISHED = {
    "b:c,c:d": (157.1667, 57.14081),
    "b:c": (268.7778, 58.96860),
    "b:d,c:d": (123.4630, 91.89711),
    "c:d": (126.1944, 138.06368),
    "b:d": (126.9394, 155.16018),
    "": (141.9926, 184.14431),
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["estimate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code, out, _ = run(capsys, *argv, "--json")
    assert out.count("\n") == 1  # exactly one JSON object on stdout
    return code, json.loads(out)


@pytest.mark.parametrize("terms,published", KOREA_PUBLISHED.items())
def test_reproduces_published_korea_estimates(capsys, terms, published):
    n_hat, bic_123 = published
    code, res = run_json(capsys, KOREA, "--terms", terms)
    assert code == 0 and res["status"] == "ok"
    assert res["n_obs"] == 123
    assert res["n_hat"] == pytest.approx(n_hat, abs=5e-5)
    k = 4 + len(res["terms"])  # intercept, three lists, the interactions
    assert -2 * res["loglik"] + k * math.log(123) == pytest.approx(bic_123, abs=5e-6)


def test_korea_model_bc_fit_statistics_match_published_glm(capsys):
    # same source: glm output for model [12,3] = b:c, deviance 8.567 on 2 df, AIC 44.91
    code, res = run_json(capsys, KOREA, "--terms", "b:c")
    assert res["deviance"] == pytest.approx(8.566946, abs=5e-7)
    assert res["aic"] == pytest.approx(44.90767, abs=5e-6)
    assert res["df"] == 2
    assert res["bic"] == pytest.approx(-2 * res["loglik"] + 5 * math.log(7), rel=1e-12)


def test_json_has_exactly_the_documented_keys(capsys):
    code, res = run_json(capsys, KOREA)
    assert set(res) == {
        "n_obs",
        "n_hat",
        "terms",
        "loglik",
        "aic",
        "bic",
        "deviance",
        "df",
        "status",
        "by",
        "interval",
        "profile",
    }
    assert res["by"] == {} and res["interval"] is None and res["terms"] == []


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "counts.csv"
    p.write_text(text)
    return str(p)


STRATA = """A,B,C,S,J,count
1,0,0,F,2018,60
0,1,0,F,2018,40
1,1,0,F,2018,20
0,0,1,F,2018,30
1,0,1,F,2018,10
1,0,0,M,2018,50
0,1,0,M,2018,30
1,1,0,M,2018,10
0,0,1,M,2018,20
0,1,1,M,2018,5
1,0,0,F,2019,70
0,1,0,F,2019,35
1,1,0,F,2019,15
0,0,1,F,2019,33
1,1,1,F,2019,4
1,0,0,M,2019,44
0,1,0,M,2019,28
1,1,0,M,2019,12
0,0,1,M,2019,25
0,1,1,M,2019,6
"""


def test_by_groups_add_up_and_bootstrap_is_reproducible(capsys, tmp_path):
    path = write(tmp_path, STRATA)
    args = (path, "--terms", "A:B", "--by", "J,S", "--bootstrap", "30", "--seed", "7")
    code, res = run_json(capsys, *args)
    assert code == 0 and res["status"] == "ok"
    assert set(res["by"]) == {"J=2018&S=F", "J=2018&S=M", "J=2019&S=F", "J=2019&S=M"}
    assert sum(g["n_obs"] for g in res["by"].values()) == res["n_obs"] == 547
    assert sum(g["n_hat"] for g in res["by"].values()) == pytest.approx(res["n_hat"], rel=1e-12)
    iv = res["interval"]
    assert iv["n_boot"] == 30 and iv["lower"] < res["n_hat"] < iv["upper"]
    assert all(g["interval"]["lower"] < g["n_hat"] < g["interval"]["upper"] for g in res["by"].values())
    _, again = run_json(capsys, *args)
    assert again["interval"] == iv
    _, other = run_json(capsys, path, "--terms", "A:B", "--bootstrap", "30", "--seed", "8")
    assert other["interval"]["lower"] != iv["lower"]


def test_readable_output(capsys, tmp_path):
    code, out, _ = run(capsys, write(tmp_path, STRATA), "--by", "J")
    assert code == 0
    assert "N-hat" in out and "J=2018" in out and "status:     ok" in out


def test_lists_option_makes_other_columns_covariates(capsys, tmp_path):
    text = "A,B,X,count\n1,0,0,10\n0,1,0,12\n1,1,0,4\n1,0,1,8\n0,1,1,9\n1,1,1,3\n"
    path = write(tmp_path, text)
    _, default = run_json(capsys, path)  # X is 0/1, so by default it is a third list
    _, with_x = run_json(capsys, path, "--lists", "A,B", "--by", "X")
    assert default["n_obs"] == with_x["n_obs"] == 46
    assert set(with_x["by"]) == {"X=0", "X=1"}
    # two lists per stratum, main effects + X: Lincoln-Petersen with a common A:B odds
    assert with_x["n_hat"] != default["n_hat"]


def test_failed_model_reports_status_not_a_number(capsys, tmp_path):
    text = "A,B,C,count\n1,0,0,30\n0,1,0,25\n0,0,1,40\n1,0,1,8\n0,1,1,5\n"
    code, res = run_json(capsys, write(tmp_path, text), "--terms", "A:B")
    assert code == 1
    assert res["status"] == "mle_does_not_exist" and res["n_hat"] is None
    assert res["responsible"] == ["A:B"]


@pytest.mark.parametrize(
    "text,args,message",
    [
        ("A,B,count\n1,0,5\n0,1,4\n0,0,3\n", (), "data row(s) [3] have every list 0"),
        ("A,B,n\n1,0,5\n0,1,4\n", (), "no 'count' column"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,2\n", ("--lists", "A,Q"), "--lists: column(s) ['Q']"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,2\n", ("--by", "J"), "--by: ['J'] are not covariate columns"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,2\n", ("--bootstrap", "10"), "--bootstrap needs --seed"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,2\n", ("--bootstrap", "1", "--seed", "3"), "--bootstrap: must be 0"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,-2\n", (), "whole number >= 0; data row 3"),
        ("A,B,count\n1,0,5\n0,1,4\n1,1,2\n", ("--terms", "A:Z"), "unknown variable(s) ['Z']"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(capsys, tmp_path, text, args, message):
    code, out, err = run(capsys, write(tmp_path, text), *args)
    assert code == 2 and out == ""
    assert message in err


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err


# --- --select (model selection, mse_helpers.stages.selection) ---------------------------------


def _random_counts_csv(tmp_path: Path, seed: int, effects: dict, zero_ab: bool = False) -> tuple[str, "object"]:
    """A random table with lists A B G D, a 0/1 covariate S and three years, as CSV and as the
    reference's frame (``tests/stepwise_reference.py``)."""
    import numpy as np
    import stepwise_reference as ref

    table = ref.random_table(
        np.random.default_rng(seed),
        ["A", "B", "G", "D"],
        ["S"],
        year_levels=[2016, 2017, 2018],
        scale=25.0,
        effects=effects,
    )
    if zero_ab:  # lists A and B never overlap: the all-two-factor model has no MLE
        table = table.assign(count=np.where((table["A"] == 1) & (table["B"] == 1), 0, table["count"]))
    path = tmp_path / f"random{seed}.csv"
    table.to_csv(path, index=False)
    return str(path), table


def _sorted_names(terms) -> set[str]:
    return {":".join(sorted(t.split(":"))) for t in terms}


@pytest.mark.parametrize("seed", [1, 2])
def test_select_backward_aic_matches_reference_step(capsys, tmp_path, seed):
    import stepwise_reference as ref

    path, table = _random_counts_csv(tmp_path, seed, {"A:B": 0.9, "G:D": -0.7, "A:S": 0.5})
    code, res = run_json(capsys, path, "--lists", "A,B,G,D", "--select", "backward-aic")
    assert code == 0 and res["status"] == "ok"
    variables = ["A", "B", "G", "D", "S", "J"]
    start = [f"{a}:{b}" for a, b in itertools.combinations(variables, 2)]
    slow = ref.backward(table, variables, start, "aic", categorical=["J"])
    assert _sorted_names(res["terms"]) == _sorted_names(slow)
    assert res["n_hat"] == pytest.approx(ref.n_hat(table, ["A", "B", "G", "D"], ["S", "J"], slow, ["J"]), rel=1e-7)
    assert len(res["selection"]["removed"]) == len(start) - len(res["terms"]) > 0


def test_select_study_matches_reference_and_reports_refused_terms(capsys, tmp_path):
    import stepwise_reference as ref

    path, table = _random_counts_csv(
        tmp_path, 3, {"G:D": 0.8, "A:S": 0.4, "G:S": 0.5, "D:S": 0.4, "G:D:S": 0.7}, zero_ab=True
    )
    code, res = run_json(capsys, path, "--lists", "A,B,G,D", "--select", "study")
    assert code == 0
    sel = res["selection"]
    assert [(r["term"], r["status"], r["step"]) for r in sel["refused"] if r["type"] == "backward"] == [
        ("A:B", "mle_does_not_exist", 0)
    ]
    variables = ["A", "B", "G", "D", "S", "J"]
    start = [f"{a}:{b}" for a, b in itertools.combinations(variables, 2) if (a, b) != ("A", "B")]
    two = ref.backward(table, variables, start, "aic", categorical=["J"])
    # every three-factor term containing A and B has no MLE: the reference need not see them
    three = [":".join(c) for c in itertools.combinations(variables, 3) if not {"A", "B"} <= set(c)]
    slow = ref.forward(table, variables, two, three, "bic", categorical=["J"])
    assert _sorted_names(res["terms"]) == _sorted_names(slow)
    assert res["n_hat"] == pytest.approx(ref.n_hat(table, ["A", "B", "G", "D"], ["S", "J"], slow, ["J"]), rel=1e-7)
    code, out, _ = run(capsys, path, "--lists", "A,B,G,D", "--select", "study")
    assert "selection:  study" in out and "refused A:B (backward, step 0)" in out


def test_select_forward_bic_on_korea_finds_the_lowest_bic_model(capsys):
    # all six models the published enumeration lists, by our BIC (n = 7 cells): forward search
    # from main effects must reach the best of them, b:c + c:d (N-hat 157.1667)
    bics = {terms: run_json(capsys, KOREA, "--terms", terms)[1]["bic"] for terms in KOREA_PUBLISHED}
    assert min(bics, key=bics.get) == "b:c,c:d"
    code, res = run_json(capsys, KOREA, "--select", "forward-bic")
    assert code == 0 and res["terms"] == ["b:c", "c:d"]
    assert res["n_hat"] == pytest.approx(157.1667, abs=5e-5)
    assert [r["term"] for r in res["selection"]["refused"]] == ["b:d"]  # b:c + b:d + c:d: no MLE


def test_select_unknown_method_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["estimate", KOREA, "--select", "lasso"])
    assert exc.value.code == 2
    assert "--select" in capsys.readouterr().err


# --- guards: limits of a request, impossible counts, list columns with other values -----------


def _many_lists(tmp_path, n_lists, n_rows=200):
    import random

    rng = random.Random(n_lists)
    cols = [f"L{i}" for i in range(n_lists)]
    rows = set()
    while len(rows) < n_rows:
        r = tuple(rng.randint(0, 1) for _ in cols)
        if any(r):
            rows.add(r)
    lines = [",".join(cols) + ",count"] + [",".join(map(str, r)) + f",{rng.randint(1, 9)}" for r in sorted(rows)]
    return write(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize("extra", [(), ("--terms", "all2"), ("--select", "study")])
def test_twenty_lists_refused_at_once_naming_the_limit_and_what_to_do(capsys, tmp_path, extra):
    import time

    import mse_helpers.cli.estimate  # noqa: F401  (imported first: the refusal is timed, not the import)

    path = _many_lists(tmp_path, 20)
    t0 = time.perf_counter()
    code, out, err = run(capsys, path, *extra)
    assert time.perf_counter() - t0 < 1.0
    assert code == 2 and out == ""
    assert "20 lists" in err and "limit of 15" in err and "1,048,576 cells" in err
    assert "merge small lists" in err and "--lists" in err and err.count("\n") == 1


def test_design_over_the_size_limit_refused_before_it_is_built(capsys, tmp_path):
    # 14 lists pass the list limit; a covariate with 40 levels makes the design too big.
    import random

    rng = random.Random(3)
    cols = [f"L{i}" for i in range(14)]
    lines = [",".join(cols) + ",G,count"]
    for g in range(40):
        r = [rng.randint(0, 1) for _ in cols]
        r[0] = 1
        lines.append(",".join(map(str, r)) + f",g{g},{rng.randint(1, 9)}")
    code, _, err = run(capsys, write(tmp_path, "\n".join(lines) + "\n"))
    assert code == 2 and "GiB, more than the limit of 1 GiB" in err
    assert "655,360 cells" in err and "fewer covariates" in err


def test_request_size_counts_the_design_columns():
    import pandas as pd

    from mse_helpers.cli.estimate import request_size
    from mse_helpers.engine.cells import complete_table
    from mse_helpers.engine.design import Design

    frame = pd.read_csv(FIXTURES / "korea.csv", comment="#")
    lists = [c for c in frame.columns if c != "count"]
    frame = frame.assign(J=["a", "b", "c"] * (len(frame) // 3) + ["a"] * (len(frame) % 3))
    for select in (False, True):
        table = complete_table(frame, lists, ["J"])
        design = Design(table, lists, ["J"], three_factor="all" if select else None)
        assert request_size(frame, lists, ["J"], select) == design.X.shape


@pytest.mark.parametrize(
    "value,shown",
    [
        ("1e30", "1e+30"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("nan", "nan"),
        ("-250", "-250"),
        ("2.5", "2.5"),
        ("lots", "'lots'"),
    ],
)
def test_impossible_counts_name_row_and_column_with_plain_numbers(capsys, tmp_path, value, shown):
    text = f"A,B,count\n# a comment line\n1,0,5\n0,1,{value}\n1,1,2\n"
    code, out, err = run(capsys, write(tmp_path, text))
    assert code == 2 and out == ""
    assert "column 'count'" in err and "data row 2 (file row 4)" in err and f"has {shown}" in err
    assert "np." not in err and "Traceback" not in err


def test_list_column_with_a_2_is_named_with_the_value(capsys, tmp_path):
    text = "A,B,C,count\n1,0,0,5\n0,1,1,4\n1,1,2,3\n0,0,1,7\n"
    code, out, err = run(capsys, write(tmp_path, text))
    assert code == 2 and out == ""
    assert "row 4 (data row 3), column 'C'" in err and "holds 2" in err and "--lists" in err
    assert "every list 0" not in err


def test_named_list_column_with_other_value_names_row_and_value(capsys, tmp_path):
    text = "A,B,C,count\n1,0,x,5\n0,1,1,4\n1,1,0,3\n"
    code, _, err = run(capsys, write(tmp_path, text), "--lists", "A,B,C")
    assert code == 2 and "row 2 (data row 1), column 'C'" in err and "got 'x'" in err


def test_covariate_with_numeric_levels_is_still_a_covariate(capsys, tmp_path):
    # An age class 3/4/5 is not a list with a wrong value: no refusal.
    text = "A,B,C,age,count\n1,0,0,3,5\n0,1,1,4,4\n1,1,0,5,3\n1,0,1,3,2\n0,1,0,4,6\n1,0,0,5,1\n"
    code, res = run_json(capsys, write(tmp_path, text))
    assert code in (0, 1) and res["n_obs"] == 21


def test_selection_too_long_by_the_time_estimate_is_refused(capsys, tmp_path):
    # 13 lists: one fit takes about a second, but --select study would fit thousands of models.
    path = _many_lists(tmp_path, 13)
    code, out, err = run(capsys, path, "--select", "study")
    assert code == 2 and out == ""
    assert "--select study on 13 lists" in err and "minutes" in err and "limit is 30 minutes" in err


def test_estimates_of_fits_and_time_scale_as_stated():
    from mse_helpers.cli.estimate import estimated_fits, estimated_seconds

    assert estimated_fits(5, None, None) == 1
    assert estimated_fits(5, "backward-aic", None) == 4 * 10  # 10 two-factor terms, bounded search
    assert estimated_fits(5, "backward-aic", 3) == 6  # every candidate of every step: 3 + 2 + 1
    assert estimated_fits(5, "study", 3) == 40 + 10 * 10  # the study always starts from all2
    assert estimated_fits(5, "stepwise", None) == 2 * 10
    assert estimated_seconds(16384, 106, 1) == pytest.approx(1.47, rel=0.01)  # the calibration point


def test_estimate_guard_uses_the_engines_replicate_minimum():
    # mse estimate checks --bootstrap before it imports the engine; the rule must stay the engine's
    from mse_helpers.cli import estimate
    from mse_helpers.engine import resample

    assert estimate.MIN_REPLICATES == resample.MIN_REPLICATES
