"""Tests of the chained-equations imputer (mse_helpers.stages.impute), docs/method.md section 4.

The data are simulated here: correlated binary registers and covariates from a
small seeded generative model, so the true values behind every masked cell are
known.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from mse_helpers import seeds
from mse_helpers.codes import COVARIATES
from mse_helpers.stages import impute

REGISTERS = ("I", "K", "O", "P", "R", "Z")
COVS = ("S", "L", "N", "U")
YEARS = (2016, 2017, 2018, 2019)


# --- simulated data --------------------------------------------------------------------


def simulate_persons(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Person-level records with strongly associated covariates and registers.

    Exploitation type drives sex, sex and type drive nationality, nationality
    drives age group; registers depend on covariates and on each other
    (referrals), with year effects.
    """
    year = rng.choice(YEARS, size=n)
    yidx = year - YEARS[0]
    u = rng.random(n) < expit(-0.2 + 0.1 * yidx)  # U=O (non-sexual)
    s = rng.random(n) < expit(-1.5 + 2.5 * u)  # S=M more often if non-sexual
    nat = rng.random(n) < expit(-0.5 + 1.0 * u + 0.8 * s)  # N=O
    age = rng.random(n) < expit(-1.0 - 1.2 * nat)  # L=M (minor) mostly Dutch
    pol = rng.random(n) < expit(-0.3 - 0.8 * u + 0.5 * age)
    reg_r = rng.random(n) < expit(-2.0 + 1.5 * pol - 0.7 * u + 0.3 * (yidx == 2))
    reg_o = rng.random(n) < expit(-1.5 + 1.0 * reg_r + 1.0 * u)
    reg_i = rng.random(n) < expit(-2.5 + 2.0 * u + 0.8 * pol)
    reg_k = rng.random(n) < expit(-2.5 + 0.8 * nat)
    reg_z = rng.random(n) < expit(-1.5 + 1.5 * age)
    frame = pd.DataFrame({"year": year.astype("int64")})
    for name, val in zip(REGISTERS, (reg_i, reg_k, reg_o, pol, reg_r, reg_z)):
        frame[name] = pd.array(val.astype(int), dtype="Int8")
    for name, val in zip(COVS, (s, age, nat, u)):
        frame[name] = pd.array(np.array(COVARIATES[name])[val.astype(int)], dtype="string")
    frame["source"] = pd.array(["reports"] * n, dtype="string")
    return frame


def mask(frame: pd.DataFrame, variable: str, prob: np.ndarray, rng: np.random.Generator):
    """Set ``variable`` missing with probability ``prob`` per record; return copy and mask."""
    hide = rng.random(len(frame)) < prob
    out = frame.copy()
    out.loc[hide, variable] = pd.NA
    return out, hide


def link_stub(persons, partial, reference_years, rng):
    """A random stand-in for prepare.link_partial_records (same contract).

    Each partial record is linked, with probability 0.3, to a random person of
    its year who is not yet on its register (filling that person's missing
    covariates), else it becomes a new person on that register only.
    """
    out = persons.copy().reset_index(drop=True)
    out["source"] = out["source"].astype("string")
    new = []
    for _, rec in partial.iterrows():
        reg = next(r for r in REGISTERS if r in rec and pd.notna(rec[r]) and rec[r] == 1)
        candidates = np.flatnonzero((out["year"] == rec["year"]).to_numpy() & (out[reg] == 0).to_numpy())
        if len(candidates) and rng.random() < 0.3:
            i = rng.choice(candidates)
            out.loc[i, reg] = 1
            for cov in COVS:
                if pd.isna(out.loc[i, cov]) and pd.notna(rec[cov]):
                    out.loc[i, cov] = rec[cov]
            out.loc[i, "source"] = "linked"
        else:
            row = rec.copy()
            for r in REGISTERS:
                if pd.isna(row[r]):
                    row[r] = 0
            row["source"] = "aggregate"
            new.append(row)
    if new:
        out = pd.concat([out, pd.DataFrame(new).astype(out.dtypes.to_dict())], ignore_index=True)
    return out


def make_partial(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Partial records of register O in 2018: other registers unknown, S and L missing."""
    frame = pd.DataFrame({"year": np.full(n, 2018, dtype="int64")})
    for r in REGISTERS:
        frame[r] = pd.array([1 if r == "O" else None] * n, dtype="Int8")
    frame["S"] = pd.array([None] * n, dtype="string")
    frame["L"] = pd.array(np.where(rng.random(n) < 0.95, "A", "M"), dtype="string")
    frame["N"] = pd.array(["O"] * n, dtype="string")
    frame["U"] = pd.array(["O"] * n, dtype="string")
    frame["source"] = pd.array(["aggregate"] * n, dtype="string")
    return frame


def completed_codes(frame: pd.DataFrame, variable: str) -> np.ndarray:
    """0/1 code of ``variable`` in a completed or true frame."""
    if variable in COVARIATES:
        return (frame[variable] == COVARIATES[variable][1]).to_numpy(dtype=float)
    return frame[variable].to_numpy(dtype=float)


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return simulate_persons(4000, np.random.default_rng(11))


# --- building blocks ---------------------------------------------------------------------


def test_collapsed_fit_equals_fit_on_records():
    """Patterns with frequency weights give statsmodels' own estimate and covariance."""
    rng = np.random.default_rng(3)
    x = (rng.random((3000, 8)) < 0.3).astype(float)
    y = (rng.random(3000) < expit(-1 + x @ np.linspace(-1, 1, 8))).astype(float)
    full = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    x_u, y_u, n_u = impute.collapse_patterns(x, y)
    assert len(y_u) < 600 and n_u.sum() == 3000
    beta, cov = impute.fit_logistic(sm.add_constant(x_u, has_constant="add"), y_u, n_u)
    np.testing.assert_allclose(beta, full.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cov, full.cov_params(), rtol=1e-6, atol=1e-10)


def test_posterior_equals_mice_augmented_fit_on_records():
    """logreg_posterior = statsmodels GLM on records + mice's pseudo-records, uncollapsed."""
    rng = np.random.default_rng(4)
    x = (rng.random((2000, 5)) < 0.4).astype(float)
    y = (rng.random(2000) < expit(0.5 - x @ np.array([1.0, -0.5, 0.2, 0.0, 2.0]))).astype(float)
    observed = rng.random(2000) < 0.7
    beta, cov, keep = impute.logreg_posterior(y, observed, x)
    x_aug, y_aug, w_aug = impute.augment(x)
    design = sm.add_constant(np.vstack([x[observed], x_aug]), has_constant="add")
    ref = sm.GLM(
        np.concatenate([y[observed], y_aug]),
        design,
        family=sm.families.Binomial(),
        freq_weights=np.concatenate([np.ones(observed.sum()), w_aug]),
    ).fit()
    assert keep.all()
    np.testing.assert_allclose(beta, ref.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(cov, ref.cov_params(), rtol=1e-6, atol=1e-10)


def test_augment_follows_mice():
    """4 pseudo-records per predictor at mean +/- sd/2 (clipped to the range), y 0,0,1,1, weight (p+1)/4p."""
    x = np.array([[0, 0.0, 5], [1, 0, 5], [1, 1, 6], [1, 0, 7]])
    x_aug, y_aug, w_aug = impute.augment(x)
    mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    assert x_aug.shape == (12, 3)
    np.testing.assert_allclose(w_aug.sum(), 4.0)
    np.testing.assert_array_equal(y_aug, np.tile([0, 0, 1, 1], 3))
    for j in range(3):
        block = x_aug[4 * j : 4 * j + 4]
        others = np.delete(np.arange(3), j)
        np.testing.assert_allclose(block[:, others], np.tile(mean[others], (4, 1)))
        expected = np.clip(mean[j] + np.array([0.5, -0.5, 0.5, -0.5]) * sd[j], x[:, j].min(), x[:, j].max())
        np.testing.assert_allclose(block[:, j], expected)
    # predictor 0 has mean 0.75 and sd 0.5: mean + sd/2 = 1.0 is at the maximum, not beyond
    assert x_aug[:, 0].max() <= 1.0


def test_perfect_separation_gives_finite_draws_and_no_warnings():
    """y equals a predictor on every observed record: finite coefficients, no warning, sensible draws."""
    rng = np.random.default_rng(5)
    x = (rng.random((1000, 3)) < 0.5).astype(float)
    x[:, 2] = 0.0  # a constant predictor, dropped
    y = x[:, 0].copy()
    observed = rng.random(1000) < 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        beta, cov, keep = impute.logreg_posterior(y, observed, x)
        draws = impute.draw_logreg(y, observed, x, np.random.default_rng(0))
    assert keep.tolist() == [True, True, False]
    assert np.all(np.isfinite(beta)) and np.all(np.isfinite(cov))
    assert abs(beta[1]) < 20  # large (strong separation) but finite
    # the imputed values follow the separating predictor almost always
    assert np.mean(draws == x[~observed, 0]) > 0.95


def test_draws_follow_the_posterior():
    """Imputed 1s among missing records match the model probability (no between-draw bias)."""
    rng = np.random.default_rng(6)
    x = (rng.random((20000, 2)) < 0.5).astype(float)
    prob = expit(-1.0 + 1.5 * x[:, 0] - 0.5 * x[:, 1])
    y = (rng.random(20000) < prob).astype(float)
    observed = rng.random(20000) < 0.5
    draws = np.concatenate([impute.draw_logreg(y, observed, x, np.random.default_rng(k)) for k in range(10)])
    expected = np.tile(prob[~observed], 10)
    for cell in ((0, 0), (1, 0), (0, 1), (1, 1)):
        sel = np.tile((x[~observed] == cell).all(axis=1), 10)
        # ~12,500 draws per cell; beta* uncertainty with n_obs ~ 10,000 adds ~0.01
        assert abs(draws[sel].mean() - expected[sel].mean()) < 0.03, cell


# --- validation: masked truth ------------------------------------------------------------


def impute_frame(frame, seed, m=5, maxit=5, n_jobs=1):
    empty = frame.iloc[:0]
    return impute.impute_datasets(frame, empty, None, YEARS, REGISTERS, COVS, seed, m=m, maxit=maxit, n_jobs=n_jobs)


def test_masked_truth_recovered_mcar(truth):
    """30% of S and 20% of N masked completely at random: imputed shares and the S-U association recovered."""
    rng = np.random.default_rng(21)
    frame, hide_s = mask(truth, "S", np.full(len(truth), 0.3), rng)
    frame, hide_n = mask(frame, "N", np.full(len(truth), 0.2), rng)
    datasets = impute_frame(frame, seed=1)
    for var, hide in (("S", hide_s), ("N", hide_n)):
        true = completed_codes(truth, var)[hide]
        imputed = np.array([completed_codes(d.completed, var)[hide] for d in datasets])
        # tolerance 0.04: sampling error of ~800-1200 masked cells (sd ~0.015) plus model uncertainty
        assert abs(imputed.mean() - true.mean()) < 0.04, var
    # the association with the fully observed U is kept (imputation from the wrong model would flatten it)
    u = completed_codes(truth, "U")[hide_s] == 1
    true_s = completed_codes(truth, "S")[hide_s]
    imp_s = np.array([completed_codes(d.completed, "S")[hide_s] for d in datasets])
    true_diff = true_s[u].mean() - true_s[~u].mean()
    imp_diff = imp_s[:, u].mean() - imp_s[:, ~u].mean()
    assert true_diff > 0.3
    assert abs(imp_diff - true_diff) < 0.06


def test_masked_truth_recovered_mar_within_stratum(truth):
    """S missing at random within strata of U (60% vs 10%): complete cases are biased, imputation is not."""
    rng = np.random.default_rng(22)
    u = completed_codes(truth, "U") == 1
    frame, hide = mask(truth, "S", np.where(u, 0.6, 0.1), rng)
    true_share = completed_codes(truth, "S").mean()
    observed_share = completed_codes(frame[~hide], "S").mean()
    assert abs(observed_share - true_share) > 0.06  # the test has power: ignoring missingness is wrong
    datasets = impute_frame(frame, seed=2)
    imputed_share = np.mean([completed_codes(d.completed, "S").mean() for d in datasets])
    assert abs(imputed_share - true_share) < 0.025  # whole-file share, ~1,400 imputed of 4,000
    # and within each stratum the masked values are recovered
    for stratum in (True, False):
        sel = hide & (u == stratum)
        true = completed_codes(truth, "S")[sel].mean()
        imp = np.mean([completed_codes(d.completed, "S")[sel].mean() for d in datasets])
        # the masked truth is itself a sample: tolerance 3 binomial standard errors + 0.01
        tol = 3 * np.sqrt(true * (1 - true) / sel.sum()) + 0.01
        assert abs(imp - true) < tol, (stratum, sel.sum(), imp, true, tol)


def test_missing_register_is_imputed(truth):
    """A register can be missing too; its masked values are recovered like a covariate's."""
    rng = np.random.default_rng(23)
    frame, hide = mask(truth, "R", np.full(len(truth), 0.15), rng)
    datasets = impute_frame(frame, seed=3, m=3)
    true = completed_codes(truth, "R")[hide]
    imp = np.array([completed_codes(d.completed, "R")[hide] for d in datasets])
    assert abs(imp.mean() - true.mean()) < 0.05
    assert all(d.completed["R"].dtype == "Int8" for d in datasets)


# --- reproducibility and between-imputation variation ------------------------------------


def test_datasets_differ_and_same_seed_repeats(truth):
    rng = np.random.default_rng(24)
    frame, hide = mask(truth, "L", np.full(len(truth), 0.25), rng)
    first = impute_frame(frame, seed=7, m=3, maxit=3)
    again = impute_frame(frame, seed=7, m=3, maxit=3)
    other = impute_frame(frame, seed=8, m=1, maxit=3)
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a.completed, b.completed)
        pd.testing.assert_frame_equal(a.trace, b.trace)
    codes = [completed_codes(d.completed, "L")[hide] for d in first]
    # two draws of ~1,000 masked cells with P(minor) ~ 0.2 disagree in roughly 2p(1-p) ~ 30% of cells
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.mean(codes[i] != codes[j]) > 0.1
    assert not first[0].completed.equals(other[0].completed)
    # observed values are never changed
    for d in first:
        pd.testing.assert_series_equal(d.completed["L"][~hide], frame["L"][~hide])


def test_results_do_not_depend_on_n_jobs(truth):
    rng = np.random.default_rng(25)
    frame, _ = mask(truth, "U", np.full(len(truth), 0.1), rng)
    partial = make_partial(60, rng)
    args = dict(
        persons=frame.iloc[:1500],
        partial=partial,
        reference_years=[2016, 2017],
        years=YEARS,
        registers=REGISTERS,
        covariates=COVS,
        seed=9,
        m=3,
        maxit=2,
        link=link_stub,
    )
    serial = impute.impute_datasets(**args, n_jobs=1)
    parallel = impute.impute_datasets(**args, n_jobs=2)
    for a, b in zip(serial, parallel):
        pd.testing.assert_frame_equal(a.completed, b.completed)
        pd.testing.assert_frame_equal(a.trace, b.trace)


# --- linking per data set, year totals ---------------------------------------------------


def test_linking_redone_per_dataset_and_year_totals_kept(truth):
    rng = np.random.default_rng(26)
    persons, _ = mask(truth.iloc[:2000], "S", np.full(2000, 0.05), rng)
    partial = make_partial(150, rng)
    datasets = impute.impute_datasets(
        persons, partial, [2016, 2017], YEARS, REGISTERS, COVS, seed=5, m=3, maxit=3, link=link_stub
    )
    for d in datasets:
        linked = link_stub(persons, partial, [2016, 2017], seeds.rng(5, "link", d.index))
        # imputation keeps every record: year totals equal the linked file's
        pd.testing.assert_series_equal(
            d.completed["year"].value_counts().sort_index(), linked["year"].value_counts().sort_index()
        )
        pd.testing.assert_series_equal(d.completed["source"], linked["source"].astype("string"), check_names=False)
        assert not d.completed.isna().any().any()
    n_2018 = [int((d.completed["year"] == 2018).sum()) for d in datasets]
    assert len(set(n_2018)) > 1  # each data set has its own linking realisation


# --- the stage ---------------------------------------------------------------------------


class P:  # the attributes of Params the stage uses
    registers, covariates, seed, m, maxit, n_jobs = REGISTERS, COVS, 13, 2, 3, 1


def write_inputs(work_dir, persons, partial):
    work_dir.mkdir(parents=True, exist_ok=True)
    persons.to_parquet(work_dir / "persons.parquet", index=False)
    partial.to_parquet(work_dir / "partial.parquet", index=False)
    (work_dir / "prep_summary.json").write_text(json.dumps({"years": list(YEARS), "reference_years": [2016, 2017]}))


def test_run_stage_writes_completed_files(tmp_path, truth):
    rng = np.random.default_rng(27)
    persons, _ = mask(truth.iloc[:1200], "N", np.full(1200, 0.1), rng)
    partial = make_partial(40, rng)
    write_inputs(tmp_path, persons, partial)
    (tmp_path / "imputed").mkdir()
    (tmp_path / "imputed" / "imp_007.parquet").write_text("stale")
    result = impute.run_stage(P, tmp_path, link=link_stub)
    files = sorted((tmp_path / "imputed").glob("*.parquet"))
    assert [f.name for f in files] == ["imp_000.parquet", "imp_001.parquet"] == [f.name for f in result.files]
    for f in files:
        done = pd.read_parquet(f)
        assert list(done.columns) == ["year", *REGISTERS, *COVS, "source"]
        assert not done.isna().any().any()
        for cov in COVS:
            assert set(done[cov]) <= set(COVARIATES[cov])
        assert len(done) <= len(persons) + len(partial)
    traces = pd.read_parquet(tmp_path / "impute_traces.parquet")
    # N (persons) and S (partial records) are imputed: 2 data sets x 3 iterations x 2 variables
    assert len(traces) == 2 * 3 * 2 and set(traces["variable"]) == {"N", "S"}
    totals = result.year_totals.set_index("year")
    assert totals.loc[2018, "n_partial"] == 40
    assert (totals["n_completed_max"] <= totals["n_persons"] + totals["n_partial"]).all()
    # frequencies per register equal the files' column sums
    first = pd.read_parquet(files[0])
    freq = result.frequencies.query("dataset == 0").set_index(["year", "register"])["n_obs"]
    assert freq.loc[(2018, "O")] == int(first.loc[first["year"] == 2018, "O"].sum())
    # missing counts: S missing on every unlinked partial record, plus none in persons
    miss = result.missing.query("dataset == 0 and variable == 'S'").set_index("year")["n_missing"]
    assert miss.loc[2016] == 0 and miss.loc[2018] > 0


def test_run_stage_names_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"persons\.parquet.*notebook 01"):
        impute.run_stage(P, tmp_path)


def test_bad_level_is_named():
    frame = simulate_persons(20, np.random.default_rng(1))
    frame.loc[7, "S"] = "X"
    with pytest.raises(impute.ImputeInputError, match=r"column S .*'X'.*\[7\]"):
        impute.encode_binary(frame, REGISTERS, COVS, name="persons.parquet")


def test_variable_never_observed_is_an_error(truth):
    frame = truth.iloc[:100].copy()
    frame["U"] = pd.array([None] * 100, dtype="string")
    with pytest.raises(impute.ImputeInputError, match=r"\['U'\] have no observed value"):
        impute_frame(frame, seed=1, m=1, maxit=1)


# --- diagnostics of notebook 02 -------------------------------------------------------


def test_diagnostics_tables_from_a_stage_run(tmp_path, truth):
    from matplotlib.figure import Figure

    from mse_helpers.report import imputation as diagnostics

    rng = np.random.default_rng(28)
    persons, hide_n = mask(truth.iloc[:1000], "N", np.full(1000, 0.2), rng)
    write_inputs(tmp_path, persons, persons.iloc[:0])
    result = impute.run_stage(P, tmp_path)
    shares = diagnostics.missing_shares(result.missing)
    years = persons["year"].to_numpy()
    for y in YEARS:
        expected = hide_n[years == y].mean()
        assert shares.loc["N (nationality)", y] == pytest.approx(expected)
        assert shares.loc["S (sex)", y] == 0
    assert shares.loc["N (nationality)", "all years"] == pytest.approx(hide_n.mean())
    table = diagnostics.observed_vs_imputed(result.proportions)
    assert list(table.index) == ["N (nationality)"]  # only imputed variables
    observed_n = completed_codes(persons[~hide_n], "N")
    assert table.loc["N (nationality)", "observed_share"] == pytest.approx(observed_n.mean(), abs=5e-4)
    imputed = np.concatenate([completed_codes(pd.read_parquet(f), "N")[hide_n] for f in result.files])
    assert table.loc["N (nationality)", "imputed_share"] == pytest.approx(imputed.mean(), abs=5e-4)
    assert table.loc["N (nationality)", "n_imputed"] == hide_n.sum()
    freq = diagnostics.register_frequency_table(result.frequencies)
    mean_p = np.mean([pd.read_parquet(f).query("year == 2017")["P"].sum() for f in result.files])
    assert freq.loc[2017, "P"] == pytest.approx(mean_p, abs=0.05)
    totals = diagnostics.year_totals_table(result.year_totals)
    assert (totals["linked_away"] == "0").all()
    assert totals["n_persons"].sum() == 1000
    assert isinstance(diagnostics.trace_plot(result.traces), Figure)
    assert isinstance(diagnostics.register_frequency_plot(result.frequencies), Figure)


def test_trace_stability_flags_chains_that_have_not_mixed():
    rng = np.random.default_rng(29)
    it = np.arange(1, 11)
    rows = []
    for d in range(4):
        mixed = 0.4 + 0.02 * rng.standard_normal(10)
        stuck = 0.2 * d + 0.01 * rng.standard_normal(10)  # each chain at its own level
        trending = 0.1 + 0.05 * it + 0.01 * rng.standard_normal(10)
        for name, vals in (("S", mixed), ("L", stuck), ("N", trending)):
            rows += [(d, i, name, v) for i, v in zip(it, vals)]
    traces = pd.DataFrame(rows, columns=["dataset", "iteration", "variable", "mean"])
    from mse_helpers.report import imputation as diagnostics

    table = diagnostics.trace_stability(traces)
    assert table.loc["S (sex)", "r_hat"] < 1.1
    assert table.loc["L (age group)", "r_hat"] > 3
    assert table.loc["N (nationality)", "drift"] > 0.2
    assert abs(table.loc["S (sex)", "drift"]) < 0.03


def test_with_the_real_linking_of_data_preparation(truth):
    """Integration with prepare.link_partial_records, the linking the stage uses."""
    from mse_helpers.stages import prepare

    rng = np.random.default_rng(30)
    persons, _ = mask(truth.iloc[:1500], "U", np.full(1500, 0.05), rng)
    partial = make_partial(80, rng)
    datasets = impute.impute_datasets(
        persons, partial, [2016, 2017], YEARS, REGISTERS, COVS, seed=4, m=2, maxit=2, link=prepare.link_partial_records
    )
    for d in datasets:
        linked = prepare.link_partial_records(persons, partial, [2016, 2017], seeds.rng(4, "link", d.index))
        pd.testing.assert_series_equal(
            d.completed["year"].value_counts().sort_index(), linked["year"].value_counts().sort_index()
        )
        assert not d.completed.isna().any().any()
        # every partial record is on O: as a linked person or as a new one
        assert d.completed.query("year == 2018")["O"].sum() >= 80
        assert set(d.completed["source"]) <= {"reports", "linked", "aggregate"}
    assert not datasets[0].completed.equals(datasets[1].completed)


def test_failed_fit_names_the_variable():
    """No predictor and one observed value only: the MLE is infinite; the error says where."""
    values = pd.DataFrame({"S": [1.0] * 50 + [np.nan] * 5})
    with pytest.raises(RuntimeError, match="imputing S in iteration 1"):
        impute.impute_chained(values, np.full(55, 2016), [2016], np.random.default_rng(0), maxit=2)


def test_run_stage_names_the_bad_file(tmp_path, truth):
    persons = truth.iloc[:200].copy()
    persons.loc[5, "N"] = "BE"
    write_inputs(tmp_path, persons, persons.iloc[:0])
    with pytest.raises(impute.ImputeInputError, match=r"persons\.parquet: column N .*'BE'.*\[5\]"):
        impute.run_stage(P, tmp_path)
    persons = truth.iloc[:200].copy()
    persons.loc[3, "year"] = 2021
    write_inputs(tmp_path, persons, persons.iloc[:0])
    with pytest.raises(impute.ImputeInputError, match=r"persons\.parquet: column year: year\(s\) \[2021\]"):
        impute.run_stage(P, tmp_path)
