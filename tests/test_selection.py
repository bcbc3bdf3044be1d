"""Tests of model selection (mse_helpers.stages.selection) against the slow reference
implementation ``tests/stepwise_reference.py`` (R ``step()`` semantics, statsmodels fits)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import stepwise_reference as ref

from mse_helpers.engine.bounds import drop_bounds, pick_bracketed
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.fit import fit_model
from mse_helpers.runner.params import load_params
from mse_helpers.stages import selection

LISTS = ["A", "B", "G", "D"]  # not C: patsy reserves C()
FACTORS = ["S", "J"]
YEARS = [2016, 2017, 2018]
# effects of the generating model: some two-factor terms and one three-factor term,
# so that backward AIC keeps some terms and forward BIC has something to find
EFFECTS = [
    {"A:B": 0.9, "G:D": -0.7, "A:S": 0.5, "B:G": 0.4},
    {"A:B": 0.6, "B:D": 0.8, "A:B:S": 0.9, "B:S": 0.3, "A:S": -0.4},
    {"A:G": 1.0, "G:S": -0.6, "B:D": 0.3, "A:G:D": -0.8, "A:D": 0.5, "G:D": 0.4},
    {},
]


def random_case(seed: int, effects: dict, scale: float = 25.0) -> tuple[pd.DataFrame, Design]:
    """A random observed-cell table (reference format) and the engine's design of it."""
    rng = np.random.default_rng(seed)
    table = ref.random_table(rng, LISTS, ["S"], year_levels=YEARS, scale=scale, effects=effects)
    design = Design(complete_table(table, LISTS, FACTORS), LISTS, FACTORS, three_factor="all")
    return table, design


def names(terms) -> set[str]:
    """Terms as sets of variables (the reference sorts names alphabetically, the engine by design order)."""
    return {":".join(sorted(t.split(":"))) for t in terms}


@pytest.mark.parametrize("case", range(len(EFFECTS)))
def test_backward_aic_selects_what_the_reference_selects(case):
    table, design = random_case(100 + case, EFFECTS[case])
    start = design.terms("all2")
    fast = selection.backward(design, start, criterion="aic")
    slow = ref.backward(table, LISTS + FACTORS, list(start), "aic", categorical=["J"])
    assert names(fast.fit.terms) == names(slow)
    # the search did something: not the start, not main effects only (except the null case)
    assert 0 < len(fast.path) < len(start)
    assert fast.fit.n_hat == pytest.approx(ref.n_hat(table, LISTS, FACTORS, slow, ["J"]), rel=1e-7)
    assert fast.fit.aic == pytest.approx(ref.fit(table, LISTS + FACTORS, slow, ["J"])["aic"], rel=1e-9)


@pytest.mark.parametrize("case", range(len(EFFECTS)))
def test_selection_on_the_lattice_path_selects_the_same_models(case):
    table, design = random_case(100 + case, EFFECTS[case])
    lattice = Design(complete_table(table, LISTS, FACTORS), LISTS, FACTORS, three_factor="all", lattice=True)
    assert lattice.uses_lattice
    dense_two = selection.backward(design, "all2", criterion="aic")
    two = selection.backward(lattice, "all2", criterion="aic")
    assert two.path == dense_two.path and two.fit.n_hat == pytest.approx(dense_two.fit.n_hat, rel=1e-9)
    three = [t for t in design.candidate_terms if t.count(":") == 2]
    dense_fwd = selection.forward(design, dense_two.fit, three, criterion="bic")
    fwd = selection.forward(lattice, two.fit, three, criterion="bic")
    assert fwd.path == dense_fwd.path and fwd.fit.n_hat == pytest.approx(dense_fwd.fit.n_hat, rel=1e-9)


# --- bounded backward search: brackets instead of refitting every candidate -------------------

#: random tables from very sparse (most cells 0 or 1) to dense, with and without generated effects
SPARSE_CASES = [(seed, scale, e) for seed, scale, e in itertools.product((1, 2, 3), (0.7, 2.0, 25.0), (0, 2))]


def sparse_design(seed: int, scale: float, effects: dict, lattice: bool) -> Design:
    rng = np.random.default_rng(seed)
    table = ref.random_table(rng, LISTS, ["S"], year_levels=YEARS, scale=scale, effects=effects)
    return Design(complete_table(table, LISTS, FACTORS), LISTS, FACTORS, three_factor="all", lattice=lattice)


def study_design(lattice: bool) -> Design:
    """A table of the study's shape: 6 lists x S L N U x 4 years, 4,032 observed cells, sparse."""
    rng = np.random.default_rng(2016)
    lists = list("IKOPRZ")
    factors = {"S": (0, 1), "L": (0, 1), "N": (0, 1), "U": (0, 1), "J": (2016, 2017, 2018, 2019)}
    frame = pd.DataFrame(
        list(itertools.product(*([(0, 1)] * 6 + list(factors.values())))), columns=lists + list(factors)
    )
    eta = np.log(0.4) + frame[lists].to_numpy() @ rng.normal(-1.0, 0.6, 6)
    for a, b in itertools.combinations(lists + ["S", "L", "N", "U"], 2):
        eta += rng.normal(0, 0.4) * frame[a].to_numpy() * frame[b].to_numpy()
    eta += frame["J"].map(dict(zip(factors["J"], rng.normal(0, 0.2, 4)))).to_numpy()
    frame["count"] = rng.poisson(np.exp(eta))
    frame = frame[frame[lists].sum(axis=1) > 0]
    return Design(complete_table(frame, lists, list(factors)), lists, list(factors), lattice=lattice)


@pytest.mark.parametrize("lattice", [False, True])
@pytest.mark.parametrize("seed,scale,e", SPARSE_CASES)
def test_drop_bounds_bracket_every_exact_refit(seed, scale, e, lattice):
    design = sparse_design(seed, scale, EFFECTS[e], lattice)
    terms, _ = selection.existing_start(design, design.terms("all2"))
    for model in (terms, terms[: len(terms) // 2]):  # the start and a smaller model
        fit = fit_model(design, model, check=False)
        drops = list(model)
        b = drop_bounds(fit, drops)
        exact = np.array(
            [fit_model(design, [u for u in model if u != t], start=fit.params, check=False).llf for t in drops]
        )
        assert np.all(b.llf_lower <= exact) and np.all(exact <= b.llf_upper)
        assert np.all(exact <= fit.llf + 1e-9 * abs(fit.llf))
        # not vacuous: the bracket of a term that hardly matters is narrow
        weakest = np.argmin(fit.llf - exact)
        assert b.llf_upper[weakest] - b.llf_lower[weakest] < 1e-2 + 1e-7 * abs(fit.llf)
        for steps in (1, 3):  # more Newton steps: brackets at least as narrow, still bracketing
            tight = drop_bounds(fit, drops, steps=steps)
            assert np.all(tight.llf_lower <= exact) and np.all(exact <= tight.llf_upper)
            assert np.all(tight.llf_lower >= b.llf_lower) and np.all(tight.llf_upper <= b.llf_upper)


@pytest.mark.parametrize("criterion", ["aic", "bic"])
@pytest.mark.parametrize("seed,scale,e", SPARSE_CASES)
def test_bounded_backward_removes_what_the_full_search_removes(seed, scale, e, criterion):
    design = sparse_design(seed, scale, EFFECTS[e], lattice=True)
    full = selection.backward(design, "all2", criterion=criterion, bounded=False)
    fast = selection.backward(design, "all2", criterion=criterion)
    assert fast.path == full.path and fast.refused == full.refused
    # the chosen models are refitted the same way (warm start from the same model): the same numbers
    assert fast.fit.llf == full.fit.llf and fast.fit.n_hat == full.fit.n_hat
    assert fast.counter.fits < full.counter.fits


@pytest.mark.parametrize("lattice", [False, True])
def test_bounded_backward_on_the_study_size_table_equals_the_full_search(lattice):
    design = study_design(lattice)
    assert design.n_cells == 4032 and design.uses_lattice == lattice
    full = selection.backward(design, "all2", criterion="aic", bounded=False)
    fast = selection.backward(design, "all2", criterion="aic")
    assert len(full.path) >= 5
    assert fast.path == full.path and fast.fit.llf == full.fit.llf and fast.fit.n_hat == full.fit.n_hat
    # one or two exact fits per step instead of one per droppable term
    assert fast.counter.fits <= 3 * (len(full.path) + 1) < full.counter.fits / 5


def test_pick_bracketed_is_the_rule_on_exact_values():
    rng = np.random.default_rng(5)
    for _ in range(2000):
        n = int(rng.integers(1, 7))
        # values on a coarse grid so that ties and near-ties within TOL happen often
        vals = {f"t{i}": float(rng.integers(0, 6)) + rng.choice([0.0, 5e-10, 2e-9]) for i in range(n)}
        current = float(rng.integers(0, 7))
        brackets = {}
        for t, v in vals.items():
            if rng.random() < 0.7:  # a bracket, sometimes exact, sometimes wide
                w = rng.choice([0.0, 1e-10, 0.5, 3.0], size=2)
                brackets[t] = (v - w[0], v + w[1])
        asked = []

        def exact(t):
            asked.append(t)
            return vals[t]

        order = list(vals)
        assert pick_bracketed(order, brackets, exact, current, selection.TOL) == selection._pick(
            [(t, vals[t]) for t in order], current
        )
        assert set(vals) - set(brackets) <= set(asked)


@pytest.mark.parametrize("case", range(len(EFFECTS)))
def test_forward_bic_selects_what_the_reference_selects(case):
    table, design = random_case(200 + case, EFFECTS[case])
    two = selection.backward(design, "all2", criterion="aic")
    three = [t for t in design.candidate_terms if t.count(":") == 2]
    fast = selection.forward(design, two.fit, three, criterion="bic")
    slow = ref.forward(table, LISTS + FACTORS, list(two.fit.terms), three, "bic", categorical=["J"])
    assert names(fast.fit.terms) == names(slow)
    assert fast.fit.n_hat == pytest.approx(ref.n_hat(table, LISTS, FACTORS, slow, ["J"]), rel=1e-7)
    # every added term had its margins in the model when it was added
    model = set(two.fit.terms)
    for t in fast.path:
        assert set(selection.margins(t)) <= model
        model.add(t)


def test_forward_from_main_effects_over_two_and_three_factor_terms_matches_reference():
    table, design = random_case(300, EFFECTS[1])
    cands = list(design.candidate_terms)
    fast = selection.forward(design, (), cands, criterion="bic")
    slow = ref.forward(table, LISTS + FACTORS, [], cands, "bic", categorical=["J"])
    assert names(fast.fit.terms) == names(slow)
    assert len(fast.path) >= 2
    assert fast.fit.n_hat == pytest.approx(ref.n_hat(table, LISTS, FACTORS, slow, ["J"]), rel=1e-7)


def test_a_generated_three_factor_effect_is_found_by_forward_bic():
    table, design = random_case(7, EFFECTS[1], scale=60.0)
    two = selection.backward(design, "all2", criterion="aic")
    assert {"A:B", "A:S", "B:S"} <= set(two.fit.terms)
    three = [t for t in design.candidate_terms if t.count(":") == 2]
    fast = selection.forward(design, two.fit, three, criterion="bic")
    assert "A:B:S" in fast.path


def _zero_cells(table: pd.DataFrame, **values) -> pd.DataFrame:
    mask = np.logical_and.reduce([table[k] == v for k, v in values.items()])
    return table.assign(count=np.where(mask, 0, table["count"]))


def test_start_without_mle_removes_the_blamed_term_then_matches_reference():
    # lists A and B never overlap: A:B has a zero sufficient statistic
    rng = np.random.default_rng(11)
    table = ref.random_table(rng, LISTS, ["S"], year_levels=YEARS, scale=25.0, effects={"G:D": 0.8})
    table = _zero_cells(table, A=1, B=1)
    design = Design(complete_table(table, LISTS, FACTORS), LISTS, FACTORS)
    assert fit_model(design, "all2").status == "mle_does_not_exist"
    fast = selection.backward(design, "all2", criterion="aic")
    assert [(r["step"], r["term"], r["status"]) for r in fast.refused] == [(0, "A:B", "mle_does_not_exist")]
    assert "A:B" in fast.refused[0]["reason"]
    start = [t for t in design.terms("all2") if t != "A:B"]
    slow = ref.backward(table, LISTS + FACTORS, start, "aic", categorical=["J"])
    assert names(fast.fit.terms) == names(slow)


def test_forward_refuses_a_term_without_mle_and_never_selects_it():
    # nobody is on A and B with S = 1: A:B:S has a zero sufficient statistic, and an
    # unchecked fit would "improve" BIC by sending those cells to 0
    table, _ = random_case(21, {"A:B": 0.8, "A:S": 0.4, "B:S": 0.4})
    table = _zero_cells(table, A=1, B=1, S=1)
    design = Design(complete_table(table, LISTS, FACTORS), LISTS, FACTORS, three_factor="all")
    base = ("A:B", "A:S", "B:S")
    unchecked = fit_model(design, base + ("A:B:S",), check=False)
    base_fit = fit_model(design, base)
    assert not unchecked.ok or unchecked.bic < base_fit.bic - 1.0  # it would have been taken
    three = [t for t in design.candidate_terms if t.count(":") == 2]
    fast = selection.forward(design, base_fit, three, criterion="bic")
    refused = {r["term"]: r for r in fast.refused}
    assert refused["A:B:S"]["status"] == "mle_does_not_exist"
    assert "A:B:S" in refused["A:B:S"]["reason"]
    assert "A:B:S" not in fast.fit.terms
    # the same as the reference searching without the refused term
    slow = ref.forward(table, LISTS + FACTORS, list(base), [t for t in three if t != "A:B:S"], "bic", categorical=["J"])
    assert names(fast.fit.terms) == names(slow)


def test_pick_follows_the_reference_tie_rule():
    # first candidate in order wins an exact tie; a later one must beat it by more than TOL
    assert selection._pick([("a", 5.0), ("b", 5.0)], 10.0) == "a"
    assert selection._pick([("a", 5.0), ("b", 5.0 - 1e-12)], 10.0) == "a"
    assert selection._pick([("a", 5.0), ("b", 4.9)], 10.0) == "b"
    assert selection._pick([("a", 10.0 - 1e-12)], 10.0) is None


def test_margins():
    assert selection.margins("O:P:R") == ("O:P", "O:R", "P:R")
    assert selection.margins("P:R") == ()


def test_screening_ranks_by_bic_gain_of_each_term_added_alone():
    table, design = random_case(31, EFFECTS[2], scale=40.0)
    two = selection.backward(design, "all2", criterion="aic")
    frame, refused, _ = selection.screen_three_factor(design, two.fit, k=3)
    assert len(frame) == math.comb(6, 3) and frame["kept"].sum() == min(3, frame["rank"].notna().sum())
    eligible = frame[frame["rank"].notna()].sort_values("rank")
    # gains recomputed by the reference; ranks are by decreasing gain
    base_bic = ref.fit(table, LISTS + FACTORS, list(two.fit.terms), ["J"])["bic"]
    for term, gain in zip(eligible["term"], eligible["bic_gain"]):
        bic = ref.fit(table, LISTS + FACTORS, list(two.fit.terms) + [term], ["J"])["bic"]
        assert gain == pytest.approx(base_bic - bic, abs=1e-6)
    assert eligible["bic_gain"].is_monotonic_decreasing
    assert list(frame.loc[frame["kept"], "term"]) == [t for t in frame["term"] if t in set(eligible["term"][:3])]
    # terms with a missing margin are not ranked
    model = set(two.fit.terms)
    for term, rank in zip(frame["term"], frame["rank"]):
        assert pd.isna(rank) == (not set(selection.margins(term)) <= model)


def test_analysis_variables_and_errors():
    regs, covs = ("I", "K", "O", "P", "R", "Z"), ("S", "L", "N", "U")
    assert selection.analysis_variables("drop:K", regs, covs) == (("I", "O", "P", "R", "Z"), covs)
    assert selection.analysis_variables("drop:K,S", regs, covs) == (("I", "O", "P", "R", "Z"), ("L", "N", "U"))
    assert selection.analysis_variables("no-covariates", regs, covs) == (regs, ())
    with pytest.raises(ValueError, match="sensitivity.*'drop:Q'"):
        selection.analysis_variables("drop:Q", regs, covs)
    with pytest.raises(ValueError, match="fewer than two registers"):
        selection.analysis_variables("drop:I,K", ("I", "K", "O"), covs)


# --- the stage -------------------------------------------------------------------------

STAGE_REGISTERS = ["I", "K", "O", "P"]


def _write_run(tmp_path, m: int) -> None:
    """m small completed data sets (4 registers, sex, 3 years) and prep_summary.json."""
    imputed = tmp_path / "imputed"
    imputed.mkdir(parents=True)
    for i in range(m):
        rng = np.random.default_rng(500 + i)
        cells = ref.random_table(
            rng,
            STAGE_REGISTERS,
            ["S"],
            year_levels=YEARS,
            scale=12.0,
            effects={"I:O": 0.7, "O:P": -0.5, "I:P": 0.6, "I:S": 0.4, "O:S": 0.5, "K:P": 0.6, "I:O:P": 0.5},
        )
        persons = cells.loc[cells.index.repeat(cells["count"])].reset_index(drop=True)
        frame = pd.DataFrame({"year": persons["J"].astype("int64")})
        for r in STAGE_REGISTERS:
            frame[r] = persons[r].astype("Int8")
        frame["S"] = np.where(persons["S"] == 1, "M", "F")
        frame["source"] = "reports"
        frame.to_parquet(imputed / f"imp_{i:03d}.parquet", index=False)
    (tmp_path / "prep_summary.json").write_text(json.dumps({"years": YEARS}))


def _params(m: int, n_jobs: int):
    return load_params(
        None,
        {
            "registers": STAGE_REGISTERS,
            "covariates": ["S"],
            "m": m,
            "n_jobs": n_jobs,
            "three_factor_candidates": 3,
            "sensitivity": ["drop:K", "no-covariates"],
        },
    )


def test_run_stage_writes_the_contract_files_and_does_not_depend_on_n_jobs(tmp_path):
    m = 3
    _write_run(tmp_path, m)
    one = selection.run_stage(_params(m, 1), tmp_path)
    text_one = {
        f: (tmp_path / f).read_text() for f in ("models.json", "screening.csv", "refused.csv", "sensitivity.csv")
    }
    two = selection.run_stage(_params(m, 2), tmp_path)
    for f, text in text_one.items():
        assert (tmp_path / f).read_text() == text, f  # byte-identical with 1 and 2 workers
    assert one.models == two.models

    models = json.loads(text_one["models.json"])
    assert len(models) == 2 * m
    assert [(d["dataset"], d["type"]) for d in models] == [
        (i, t) for i in range(m) for t in ("two-factor", "three-factor")
    ]
    keys = {"dataset", "type", "terms", "status", "loglik", "aic", "bic", "deviance", "df", "n_params", "n_hat"}
    assert all(set(d) == keys for d in models)
    # the objects are the file: to_dict writes it byte for byte, from_dict reads it back
    assert json.dumps([mdl.to_dict() for mdl in one.models], indent=1) == text_one["models.json"]
    assert [selection.SelectedModel.from_dict(d) for d in models] == one.models
    for d in models:
        assert set(d["n_hat"]) == {"total", *map(str, YEARS)}
        assert d["n_hat"]["total"] == pytest.approx(sum(d["n_hat"][str(y)] for y in YEARS), rel=1e-12)
    # the three-factor model contains the two-factor model of its data set
    for i in range(m):
        assert set(models[2 * i]["terms"]) <= set(models[2 * i + 1]["terms"])

    screening = pd.read_csv(tmp_path / "screening.csv")
    assert list(screening.columns) == ["term", "bic_gain", "rank", "kept"]
    assert len(screening) == math.comb(6, 3)
    assert screening["kept"].sum() == min(3, screening["rank"].notna().sum()) >= 1

    # sensitivity: n_obs of drop:K is the main n_obs less the persons only on K
    sens = pd.read_csv(tmp_path / "sensitivity.csv", dtype={"year": str})
    assert set(sens["analysis"]) == {"main", "drop:K", "no-covariates"}
    assert len(sens) == 3 * m * 2 * (len(YEARS) + 1)
    for i in range(m):
        persons = pd.read_parquet(tmp_path / "imputed" / f"imp_{i:03d}.parquet")
        only_k = persons[(persons["K"] == 1) & (persons[["I", "O", "P"]].sum(axis=1) == 0)]
        for y in YEARS:
            row = sens[(sens["dataset"] == i) & (sens["year"] == str(y)) & (sens["type"] == "two-factor")]
            n_main = row.loc[row["analysis"] == "main", "n_obs"].item()
            n_drop = row.loc[row["analysis"] == "drop:K", "n_obs"].item()
            assert n_main - n_drop == (only_k["year"] == y).sum()
            assert n_main == (persons["year"] == y).sum()
    # the main rows are the models' own N-hat
    main_total = sens[(sens["analysis"] == "main") & (sens["year"] == "total")]
    assert list(main_total["n_hat"]) == pytest.approx([d["n_hat"]["total"] for d in models], rel=1e-12)


def test_run_stage_names_missing_inputs(tmp_path):
    _write_run(tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="imp_001.parquet"):
        selection.run_stage(_params(2, 1), tmp_path)


def test_notebook_tables_from_model_objects():
    from mse_helpers.report import selection as selection_plots

    def model(ds, typ, terms, n16, n17):
        return selection.SelectedModel.from_dict(
            {
                "dataset": ds,
                "type": typ,
                "terms": terms,
                "status": "ok",
                "loglik": -1.0,
                "aic": 10.0 + ds,
                "bic": 12.0,
                "deviance": 3.0,
                "df": 5,
                "n_params": 7,
                "n_hat": {"total": n16 + n17, "2016": n16, "2017": n17},
            }
        )

    models = [
        model(0, "two-factor", ["A:B"], 100.0, 200.0),
        model(0, "three-factor", ["A:B", "A:B:S"], 110.0, 190.0),
        model(1, "two-factor", ["A:B", "A:S"], 120.0, 210.0),
        model(1, "three-factor", ["A:B", "A:S"], 120.0, 210.0),
    ]
    csv = selection_plots.annex_f(models, [2016, 2017])
    assert list(csv.columns) == [
        "dataset",
        "type",
        "terms",
        "n_terms",
        "aic",
        "bic",
        "deviance",
        "df",
        "n_hat_2016",
        "n_hat_2017",
        "n_hat_total",
    ]
    assert csv.loc[1, "terms"] == "A:B;A:B:S" and csv.loc[2, "aic"] == 11.0 and csv.loc[1, "n_hat_total"] == 300.0
    added = selection_plots.added_terms(models)
    assert list(added["added"]) == ["A:B:S", "(none)"] and list(added["n_added"]) == [1, 0]
    freq = selection_plots.term_frequency(models).set_index("term")
    assert freq.loc["A:B", "two-factor"] == 2 and freq.loc["A:S", "three-factor"] == 1
    assert freq.loc["A:B:S", "two-factor"] == 0
    n_obs = {"total": 50.0, "2016": 20.0, "2017": 30.0}
    sens = selection.sensitivity_frame(
        {"main": [{"models": [dataclasses.replace(m, n_obs=n_obs) for m in models[2 * i : 2 * i + 2]]} for i in (0, 1)]}
    )
    table = selection_plots.sensitivity_table(sens, "two-factor")
    assert table.loc["2016", "n_hat main"] == 110.0 and table.loc["total", "n_hat main"] == 315.0
    assert table.loc["n_datasets", "n_hat main"] == 2 and table.loc["2017", "n_obs main"] == 30.0


def _korea_design() -> Design:
    frame = pd.read_csv(Path(__file__).parent / "fixtures" / "korea.csv", comment="#")
    return Design(complete_table(frame, ["b", "c", "d"], []), ["b", "c", "d"], [], three_factor="all")


def test_start_without_mle_removes_one_term_at_a_time_on_korea():
    # all two-list terms have no MLE (nobody on c and d only); the check blames b:c and b:d.
    # Removing b:d gives b:c + c:d (AIC 40.27), removing b:c gives b:d + c:d (AIC 125.5, a worse
    # fit); the old rule removed both and ended at c:d (AIC 124.0, N-hat 126.2)
    design = _korea_design()
    aic = {t: fit_model(design, t).aic for t in ("b:c,c:d", "b:d,c:d", "c:d")}
    assert aic["b:c,c:d"] == pytest.approx(40.268, abs=1e-3) and aic["c:d"] == pytest.approx(124.003, abs=1e-3)
    assert aic["b:c,c:d"] < aic["b:d,c:d"]
    terms, removed = selection.existing_start(design, design.terms("all2"))
    assert terms == ("b:c", "c:d")
    assert [(r["step"], r["term"], r["status"]) for r in removed] == [(0, "b:d", "mle_does_not_exist")]
    assert "lowest AIC (40.268)" in removed[0]["reason"]
    back = selection.backward(design, "all2", criterion="aic")
    assert back.fit.terms == ("b:c", "c:d") and back.path == []
    assert back.fit.n_hat == pytest.approx(157.1667, abs=5e-5)  # the published estimate of this model


def test_start_rule_when_no_single_removal_gives_an_mle():
    # b:c:d is not identifiable (the all-zero cell is unobserved) and the only removable term;
    # removing it leaves all two-list terms, still without MLE: it goes anyway (the blamed term
    # supported by the fewest persons), then the one-at-a-time rule continues as above
    design = _korea_design()
    terms, removed = selection.existing_start(design, design.terms("b*c*d"))
    assert [r["term"] for r in removed] == ["b:c:d", "b:d"]
    assert removed[0]["status"] == "not_identifiable" and "no single removal" in removed[0]["reason"]
    assert terms == ("b:c", "c:d")


def test_start_rule_uses_the_search_criterion():
    design = _korea_design()
    _, removed = selection.existing_start(design, design.terms("all2"), criterion="bic")
    assert "lowest BIC (39.943)" in removed[0]["reason"]
