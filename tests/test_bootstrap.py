"""Tests of the bootstrap and pooling stage (mse_helpers/stages/bootstrap.py) and of the engine's
parametric bootstrap, groups and replicate existence check it uses (docs/method.md 7)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from mse_helpers import seeds
from mse_helpers.codes import COVARIATES, REGISTERS
from mse_helpers.engine.cells import complete_table, dataset_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import group_matrix, n_hat_by, n_hat_groups
from mse_helpers.engine.existence import check_existence, existence_screen
from mse_helpers.engine.fit import fit_model, refit
from mse_helpers.engine.pooling import pool_estimates
from mse_helpers.engine.resample import parametric_bootstrap
from mse_helpers.runner.params import load_params
from mse_helpers.stages import bootstrap as bs

YEARS = [2016, 2017]
COVS = ["S", "L", "N", "U"]


# --- helpers ---------------------------------------------------------------------------


def small_design(counts: dict | None = None, lists=("A", "B", "C"), factors=("S",), levels=None, lattice=False):
    """A complete table over lists x factors with the given (or unit) counts, and its design."""
    levels = levels or {"S": ("F", "M")}
    rows = []
    for f in itertools.product(*[levels[x] for x in factors]):
        for h in itertools.product((0, 1), repeat=len(lists)):
            if sum(h):
                rows.append(dict(zip(lists, h)) | dict(zip(factors, f)) | {"count": 1})
    table = complete_table(pd.DataFrame(rows), list(lists), list(factors), levels=levels)
    return Design(table, list(lists), list(factors), lattice=lattice)


def cell_mu(design: Design, log_mu) -> tuple[np.ndarray, np.ndarray]:
    """Expected counts of the observed and the unobserved cells from a function of a table row."""
    mu = np.array([np.exp(log_mu(row)) for row in design.table.to_dict("records")])
    obs = design.observed
    return mu[obs], mu[~obs]


def simulate_persons(rng: np.random.Generator, n_per_year: int = 1500) -> pd.DataFrame:
    """Registered persons of a population with independent registers (all six) and covariates."""
    frames = []
    p_reg = {"I": 0.05, "K": 0.04, "O": 0.15, "P": 0.3, "R": 0.2, "Z": 0.12}
    p_cov = {"S": 0.3, "L": 0.35, "N": 0.55, "U": 0.3}
    for year in YEARS:
        n = n_per_year
        f = pd.DataFrame({"year": np.full(n, year)})
        for c in COVS:
            f[c] = np.where(rng.random(n) < p_cov[c], COVARIATES[c][1], COVARIATES[c][0])
        for r in REGISTERS:
            # referral dependency: the police sees more of those the care coordinators see
            p = np.full(n, p_reg[r])
            f[r] = (rng.random(n) < p).astype("int8")
        f.loc[(f["R"] == 1) & (rng.random(n) < 0.3), "P"] = 1
        frames.append(f[f[list(REGISTERS)].sum(axis=1) > 0])
    out = pd.concat(frames, ignore_index=True)
    for r in REGISTERS:
        out[r] = out[r].astype("Int8")
    for c in COVS:
        out[c] = out[c].astype("string")
    out["source"] = pd.Series("reports", index=out.index, dtype="string")
    return out[["year", *REGISTERS, *COVS, "source"]]


def write_work_dir(tmp_path, n_datasets: int = 3, models: list[dict] | None = None):
    """A run folder with prep_summary.json, completed data sets and a models.json."""
    work = tmp_path / "work"
    (work / "imputed").mkdir(parents=True)
    (work / "prep_summary.json").write_text(json.dumps({"years": YEARS, "reference_years": [2016]}))
    rng = np.random.default_rng(7)
    base = simulate_persons(rng)
    entries = []
    for i in range(n_datasets):
        persons = base.copy()
        # completed data sets differ in the imputed values: flip a few covariates
        flip = rng.random(len(persons)) < 0.05
        persons.loc[flip, "S"] = np.where(persons.loc[flip, "S"] == "F", "M", "F")
        persons.to_parquet(work / "imputed" / f"imp_{i:03d}.parquet", index=False)
        table = dataset_table(persons, REGISTERS, COVS, YEARS)
        design = Design(table, REGISTERS, COVS + ["J"], three_factor=["O:P:R"])
        for kind, terms in (
            ("two-factor", ["P:R", "O:P", "O:R", "S:U", "L:N"]),
            ("three-factor", ["P:R", "O:P", "O:R", "S:U", "L:N", "O:P:R"]),
        ):
            fit = fit_model(design, terms)
            by = n_hat_by(fit, "J")
            entries.append(
                {
                    "dataset": i,
                    "type": kind,
                    "terms": list(fit.terms),
                    "status": fit.status,
                    "loglik": fit.llf,
                    "aic": fit.aic,
                    "bic": fit.bic,
                    "deviance": fit.deviance,
                    "df": fit.df_resid,
                    "n_params": fit.n_params,
                    "n_hat": {"total": fit.n_hat, **{str(y): v for y, v in zip(by["J"], by["n_hat"])}},
                }
            )
    if models is not None:
        entries = models(entries) if callable(models) else models
    (work / "models.json").write_text(json.dumps(entries))
    return work, base


def params(**over):
    # the study's bootstrap (the default uncertainty: reselect adds re-selection, tests/test_uncertainty.py)
    return load_params(None, {"bootstrap": 20, "n_jobs": 1, "seed": 11, "uncertainty": "study", **over})


# --- groups and counts ----------------------------------------------------------------


def groups_by_groupby(fit, covariates, year="J") -> pd.DataFrame:
    """Oracle of the report groups: a pandas group-by of the stratum estimates per grouping."""
    frames = []
    groupings = [[]] + [[c] for c in covariates] + [list(p) for p in itertools.combinations(covariates, 2)]
    for yk in ([], [year]):
        for g in groupings:
            t = n_hat_by(fit, yk + g)
            t["year"] = t[year].astype(str) if yk else "all"
            t["group"] = ["&".join(f"{c}={row[c]}" for c in g) for row in t[g].to_dict("records")] if g else "total"
            frames.append(t[["year", "group", "n_obs", "n_hat"]])
    return pd.concat(frames, ignore_index=True)


def test_group_matrix_gives_the_engines_groups():
    design = small_design(
        lists=("A", "B", "C"),
        factors=("S", "L", "J"),
        levels={"S": ("F", "M"), "L": ("A", "M"), "J": (2016, 2017, 2018)},
    )
    rng = np.random.default_rng(3)
    y = rng.poisson(20, size=design.y.size).astype(float)
    fit = fit_model(design, "A:B,A:S,B:L", counts=y)
    engine = groups_by_groupby(fit, covariates=["S", "L"])
    gm = group_matrix(design.strata, ["S", "L"])
    ours = gm.frame().assign(
        n_obs=gm.matrix @ design.n_obs_by_stratum(y), n_hat=gm.matrix @ (design.n_obs_by_stratum(y) + fit.m0)
    )
    merged = engine.merge(ours, on=["year", "group"], suffixes=("_engine", "_ours"), validate="one_to_one")
    assert len(merged) == len(engine) == len(ours) == 4 * (1 + 4 + 4)  # all + 3 years; total, 4 levels, 4 pairs
    np.testing.assert_allclose(merged["n_hat_ours"], merged["n_hat_engine"], rtol=1e-12)
    np.testing.assert_allclose(merged["n_obs_ours"], merged["n_obs_engine"], rtol=1e-12)
    assert gm.year[0] == "all" and gm.group[:3] == ("total", "S=F", "S=M")
    table = n_hat_groups(fit, covariates=["S", "L"])
    np.testing.assert_allclose(table["n_hat"].to_numpy(), ours["n_hat"].to_numpy(), rtol=1e-12)


def test_cell_counts_equal_dataset_table(tmp_path):
    persons = simulate_persons(np.random.default_rng(1), n_per_year=400)
    table = dataset_table(persons, REGISTERS, COVS, YEARS)
    design = Design(table, REGISTERS, COVS + ["J"])
    np.testing.assert_array_equal(bs.cell_counts(persons, design), design.y)
    # another data set on the same design: the counts of its own table
    other = simulate_persons(np.random.default_rng(2), n_per_year=300)
    other_table = dataset_table(other, REGISTERS, COVS, YEARS)
    np.testing.assert_array_equal(
        bs.cell_counts(other, design), other_table["count"].to_numpy()[other_table["observed"].to_numpy()]
    )
    bad = other.copy()
    bad.loc[5, "S"] = "X"
    with pytest.raises(bs.BootstrapInputError, match=r"column 'S' has 'X' in data row 6"):
        bs.cell_counts(bad, design, source="imp_001.parquet")
    nobody = other.copy()
    nobody.loc[3, REGISTERS] = 0
    with pytest.raises(
        bs.BootstrapInputError, match=r"imp_001.parquet: 1 row\(s\) are on no list \(first data row 4\)"
    ):
        bs.cell_counts(nobody, design, source="imp_001.parquet")


# --- existence of the refits ------------------------------------------------------------


def test_existence_screen_agrees_with_the_engines_lp():
    """Random sparse counts on designs with and without a non-trivial null space."""
    rng = np.random.default_rng(5)
    design = small_design(lists=("A", "B", "C", "D"), factors=("S",))
    n_checked = {True: 0, False: 0}
    null_space_seen = 0
    for terms in ("A:B,A:C,B:C,A:D,B:D,C:D", "A:B,B:C,C:D,A:S,B:S", "A:B,A:C,B:C"):
        cols = design.columns(design.terms(terms))
        X = design.X_obs[:, cols]
        for _ in range(150):
            y = rng.poisson(rng.uniform(0.2, 3.0), size=design.y.size).astype(float)
            if np.any(y @ X <= 0):
                continue  # zero sufficient statistics are decided before the screen
            exact = check_existence(design, design.terms(terms), counts=y, explain=False).status == "ok"
            screen = existence_screen(X, y)
            assert screen is not None
            assert screen == exact
            n_checked[exact] += 1
            Xp = X[y > 0]
            null_space_seen += np.linalg.matrix_rank(Xp) < X.shape[1]
    # both outcomes occurred, and the null-space LP was needed for some of them
    assert n_checked[True] > 20 and n_checked[False] > 20
    assert null_space_seen > n_checked[False]  # some non-trivial null spaces still have an MLE


def slow_bootstrap(fit, n_boot: int, rng: np.random.Generator) -> tuple[list[float], dict]:
    """Oracle: every replicate refitted with the full existence check (rank test and LP), N-hat by the fit."""
    n_hats, failed = [], {}
    for _ in range(n_boot):
        y_obs = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)
        rf = refit(fit, y_obs, check=True)
        if rf.ok:
            n_hats.append(rf.n_hat)
        else:
            failed[rf.status] = failed.get(rf.status, 0) + 1
    return n_hats, failed


def test_bootstrap_matches_the_full_check_replicate_by_replicate():
    """Same generator: the same replicates fail, the others give the same N-hat."""
    design = small_design(lists=("A", "B", "C"), factors=("S",))
    mu_obs, _ = cell_mu(
        design, lambda r: 0.8 - 0.9 * (r["A"] + r["B"] + r["C"]) + 0.4 * (r["S"] == "M") + 0.8 * r["A"] * r["B"]
    )
    y = np.random.default_rng(1).poisson(mu_obs * 3).astype(float)
    fit = fit_model(design, "A:B,A:C,B:C", counts=y)
    assert fit.ok
    gm = group_matrix(design.strata, [], year=None)  # the total only
    ours = parametric_bootstrap(fit, 300, np.random.default_rng(99), gm)
    oracle, oracle_failed = slow_bootstrap(fit, 300, np.random.default_rng(99))
    assert ours.n_failed == sum(oracle_failed.values()) > 0
    assert ours.failed_status == oracle_failed
    np.testing.assert_allclose(ours.replicates[:, 0], oracle, rtol=1e-8)
    assert ours.var_within[0] == pytest.approx(np.var(oracle, ddof=1), rel=1e-8)
    # failures of both kinds happened: a zero sufficient statistic, and zeros that
    # only the existence check (here: the null-space screen) can find
    rng = np.random.default_rng(99)
    X = design.X_obs[:, fit.cols]
    zero_margin = hidden = 0
    for _ in range(300):
        yb = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)
        if np.any(yb @ X <= 0):
            zero_margin += 1
        elif check_existence(design, fit.terms, counts=yb, explain=False).status != "ok":
            hidden += 1
    assert zero_margin > 0 and hidden > 0 and zero_margin + hidden == ours.n_failed


def test_bootstrap_on_the_lattice_path_equals_the_dense_path():
    """Same draws: the same replicates fail (the existence decision is exact on both), same N-hats."""
    dense = small_design(
        lists=("A", "B", "C", "D"), factors=("S", "J"), levels={"S": ("F", "M"), "J": (2016, 2017, 2018)}
    )
    lattice = small_design(
        lists=("A", "B", "C", "D"), factors=("S", "J"), levels={"S": ("F", "M"), "J": (2016, 2017, 2018)}, lattice=True
    )
    assert lattice.uses_lattice
    mu_obs, _ = cell_mu(dense, lambda r: 0.3 - 0.8 * (r["A"] + r["B"] + r["C"] + r["D"]) + 0.9 * r["A"] * r["B"])
    y = np.random.default_rng(4).poisson(mu_obs * 1.2).astype(float)  # sparse: some replicates have no MLE
    terms = "A:B,A:C,B:C,C:D,A:S,B:J"
    gm = group_matrix(dense.strata, ["S"])
    a = parametric_bootstrap(fit_model(dense, terms, counts=y), 200, np.random.default_rng(8), gm)
    b = parametric_bootstrap(fit_model(lattice, terms, counts=y), 200, np.random.default_rng(8), gm)
    assert a.failed_status == b.failed_status and a.n_failed > 0
    np.testing.assert_allclose(b.replicates, a.replicates, rtol=1e-9)


def test_bootstrap_sd_matches_repeated_poisson_draws():
    """Known truth: the bootstrap SD of N-hat is close to its SD over tables drawn from the truth."""
    design = small_design(lists=("A", "B", "C"), factors=("S",))
    mu_obs, _ = cell_mu(
        design,
        lambda r: 5.0 - 1.0 * r["A"] - 0.7 * r["B"] - 1.2 * r["C"] - 0.5 * (r["S"] == "M") + 0.6 * r["A"] * r["B"],
    )
    terms = "A:B"
    rng = np.random.default_rng(2024)
    estimates = []
    for _ in range(400):
        fit = fit_model(design, terms, counts=rng.poisson(mu_obs).astype(float), check=False)
        estimates.append(fit.n_hat)
    sd_true = np.std(estimates, ddof=1)
    gm = group_matrix(design.strata, [], year=None)
    sds = []
    for i in range(6):
        fit = fit_model(design, terms, counts=rng.poisson(mu_obs).astype(float))
        boot = parametric_bootstrap(fit, 150, seeds.rng(1, "bootstrap", i), gm)
        assert boot.n_failed == 0
        sds.append(np.sqrt(boot.var_within[0]))
    assert np.mean(sds) == pytest.approx(sd_true, rel=0.15)
    assert sd_true > 20  # the check is not about a degenerate estimate


def test_bootstrap_model_rejects_bad_input():
    design = small_design()
    fit = fit_model(design, None)
    gm = group_matrix(design.strata, ["S"], year=None)
    with pytest.raises(ValueError, match="at least 2 replicates"):
        parametric_bootstrap(fit, 1, np.random.default_rng(0), gm)
    # three lists, all two-factor terms: saturated on the 7 observed cells, so a zero cell has no MLE
    saturated = small_design(factors=(), levels={})
    refused = fit_model(saturated, "A:B,A:C,B:C", counts=np.r_[0.0, saturated.y[1:]])
    assert refused.status == "mle_does_not_exist"
    with pytest.raises(ValueError, match="not usable"):
        parametric_bootstrap(refused, 10, np.random.default_rng(0), group_matrix(saturated.strata, [], year=None))


# --- the stage ------------------------------------------------------------------------


def test_run_stage_writes_the_contract_files_and_pools(tmp_path):
    def mark_one_refused(entries):
        entries[-1] = entries[-1] | {"status": "mle_does_not_exist"}
        return entries

    work, persons = write_work_dir(tmp_path, models=mark_one_refused)
    results = tmp_path / "results"
    res = bs.run_stage(params(), work, results)
    # the refused model is counted, not used
    assert res.n_models_skipped == 1
    assert res.failed.loc[5, "status"] == "mle_does_not_exist"
    assert res.failed.loc[5, "reason"].startswith("not used: status mle_does_not_exist")
    assert (res.failed.loc[:4, "status"] == "ok").all() and (res.failed.loc[:4, "reason"] == "").all()
    assert len(res.models) == 5 and res.estimates["n_models"].eq(5).all()
    # files and columns as in the contract
    est = pd.read_csv(results / "estimates.csv", dtype={"year": str})
    assert list(est.columns) == bs.ESTIMATE_COLUMNS
    per_model = pd.read_parquet(work / "bootstrap.parquet")
    assert list(per_model.columns) == bs.PER_MODEL_COLUMNS
    models_csv = pd.read_csv(results / "models.csv")
    assert list(models_csv.columns) == [
        "dataset",
        "type",
        "terms",
        "aic",
        "bic",
        "deviance",
        "df",
        "n_hat_2016",
        "n_hat_2017",
        "n_hat_total",
    ]
    assert models_csv.loc[1, "terms"].split(";")[-1] == "O:P:R"
    # groups: per year and all years; total, 8 levels, 6 pairs x 4 level pairs
    assert len(est) == 3 * (1 + 8 + 24)
    assert set(est["year"]) == {"2016", "2017", "all"}
    # n_obs of a year is the mean over data sets, the persons counted
    tot = est.set_index(["year", "group"])
    assert tot.loc[("2016", "total"), "n_obs"] == (persons["year"] == 2016).sum()
    men = [
        (pd.read_parquet(work / "imputed" / f"imp_{i:03d}.parquet").query("year == 2017")["S"] == "M").sum()
        for i in range(3)
    ]
    # (the mean over the pooled models: data set 2's three-factor model is not used)
    assert tot.loc[("2017", "S=M"), "n_obs"] == pytest.approx(np.mean([men[0], men[0], men[1], men[1], men[2]]))
    assert len(set(men)) > 1  # the data sets differ, so the mean is a real check
    # the pooled numbers are Rubin's rules of the per-model rows
    again = pool_estimates(per_model, ["year", "group"]).set_index(["year", "group"])
    pd.testing.assert_series_equal(tot["var_total"], again.loc[tot.index, "var_total"], check_names=False)
    # point estimate per model equals models.json / models.csv
    tot_rows = per_model[(per_model["year"] == "all") & (per_model["group"] == "total")]
    np.testing.assert_allclose(tot_rows["n_hat"].to_numpy(), models_csv["n_hat_total"].to_numpy(), rtol=1e-12)
    # a year's groups add up: S=F + S=M = total, for every model
    yr = per_model[per_model["year"] == "2016"].set_index(["model", "group"])["n_hat"].unstack()
    np.testing.assert_allclose(yr["S=F"] + yr["S=M"], yr["total"], rtol=1e-10)
    # within variance is positive and n_boot bookkeeping adds up
    assert (per_model["var_within"] > 0).all() and (per_model["var_within_log"] > 0).all()
    assert (per_model["n_boot_ok"] + per_model["n_boot_failed"] == 20).all()
    # no person-level rows or keys in what is published
    for frame in (est, models_csv):
        assert len(frame) < len(persons) and not any("id" in c.lower() or "key" in c.lower() for c in frame.columns)


def test_run_stage_is_identical_for_any_number_of_workers(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=3)
    one = bs.run_stage(params(n_jobs=1), work, tmp_path / "r1")
    bs._DESIGN_CACHE.clear()
    two = bs.run_stage(params(n_jobs=2), work, tmp_path / "r2")
    pd.testing.assert_frame_equal(one.per_model, two.per_model, check_exact=True)
    pd.testing.assert_frame_equal(one.estimates, two.estimates, check_exact=True)
    pd.testing.assert_frame_equal(one.failed, two.failed, check_exact=True)
    assert (tmp_path / "r1" / "estimates.csv").read_bytes() == (tmp_path / "r2" / "estimates.csv").read_bytes()
    # another seed gives other bootstrap variances, same point estimates
    three = bs.run_stage(params(seed=12), work, tmp_path / "r3")
    assert not np.allclose(three.per_model["var_within"], one.per_model["var_within"])
    np.testing.assert_allclose(three.per_model["n_hat"], one.per_model["n_hat"], rtol=1e-12)


def test_log_scale_interval_stays_above_the_observed_count(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=2)
    t = bs.run_stage(params(), work, tmp_path / "t").estimates
    log = bs.run_stage(params(interval="log-scale"), work, tmp_path / "log").estimates
    assert (log["interval"] == "log-scale").all() and (t["interval"] == "rubin-t").all()
    assert (log["lower"] > log["n_obs"]).all()
    np.testing.assert_allclose(log["n_hat"], t["n_hat"], rtol=1e-12)
    assert not np.allclose(log["lower"], t["lower"])

    # the dark number and its interval: the same (log-scale) in both runs, never below zero,
    # and with interval="log-scale" the N-hat interval is n_obs + the dark interval
    for est in (t, log):
        assert est[["dark", "dark_lower", "dark_upper"]].notna().all().all()
        assert (est["dark_lower"] > 0).all() and (est["n_obs"] + est["dark_lower"] >= est["n_obs"]).all()
        assert (est["dark_lower"] < est["dark"]).all() and (est["dark"] < est["dark_upper"]).all()
        np.testing.assert_allclose(est["dark"], est["n_hat"] - est["n_obs"], rtol=1e-12)
    for col in ("dark", "dark_lower", "dark_upper"):
        np.testing.assert_array_equal(log[col].to_numpy(), t[col].to_numpy())
    np.testing.assert_allclose(log["lower"], log["n_obs"] + log["dark_lower"], rtol=1e-12)
    np.testing.assert_allclose(log["upper"], log["n_obs"] + log["dark_upper"], rtol=1e-12)
    # a rubin-t N-hat interval may well fall below n_obs in small groups; the dark interval never below 0
    written = pd.read_csv(tmp_path / "t" / "estimates.csv")
    assert (written["dark_lower"] >= 0).all()


def test_run_stage_input_errors(tmp_path):
    work, _ = write_work_dir(tmp_path, n_datasets=2)
    models = json.loads((work / "models.json").read_text())
    (work / "models.json").unlink()
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        bs.run_stage(params(), work, tmp_path / "r")
    bad = [dict(m) for m in models]
    bad[2]["type"] = "four-factor"
    (work / "models.json").write_text(json.dumps(bad))
    with pytest.raises(bs.BootstrapInputError, match=r"model 2 \(entry 3 of the list\): 'type' must be one of"):
        bs.run_stage(params(), work, tmp_path / "r")
    changed = [dict(m) for m in models]
    changed[1]["n_hat"] = {"total": models[1]["n_hat"]["total"] * 1.01}
    (work / "models.json").write_text(json.dumps(changed))
    with pytest.raises(bs.BootstrapInputError, match="model 1 .* differs from the .* recorded by model selection"):
        bs.run_stage(params(), work, tmp_path / "r")
    missing = [dict(m) for m in models] + [dict(models[0], dataset=7)]
    (work / "models.json").write_text(json.dumps(missing))
    with pytest.raises(FileNotFoundError, match="imp_007.parquet"):
        bs.run_stage(params(), work, tmp_path / "r")
    refused = [dict(m, status="mle_does_not_exist") for m in models[:3]] + models[3:]
    (work / "models.json").write_text(json.dumps(refused))
    with pytest.raises(ValueError, match="1 usable model"):
        bs.run_stage(params(), work, tmp_path / "r")
