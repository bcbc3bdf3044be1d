"""Bootstrap intervals of ``mse estimate``: the dark number, ``--reselect``, ``--ci bca``, failed replicates.

The intervals are recomputed here by hand from the replicate tables (each replicate's own
stream ``seeds.rng(seed, "estimate", 1, b)``), with full fits and, for BCa, SparseMSE's
formulas (``estimatepopulation`` and ``bcaconfvalues`` of SparseMSE 2.0.1) written out.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mse_helpers import cli, seeds
from mse_helpers.cli import estimate
from mse_helpers.engine import resample
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import by_groups
from mse_helpers.engine.fit import fit_model

FIXTURES = Path(__file__).parent / "fixtures"
KOREA = str(FIXTURES / "korea.csv")
NEWORL = str(FIXTURES / "published" / "NewOrl.csv")
UK5 = str(FIXTURES / "published" / "UKdat_5.csv")


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(["estimate", *argv, "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return code, json.loads(out)


def run_text(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["estimate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def design_of(path: str, three_factor: str | None = None) -> Design:
    frame = estimate.read_counts(path)
    lists, factors = estimate.split_columns(frame, None, path)
    return Design(complete_table(frame, lists, factors, source=path), lists, factors, three_factor=three_factor)


def replicate_counts(fit, seed: int, b: int) -> np.ndarray:
    """Replicate b's observed-cell counts, drawn as documented (observed cells, then the unobserved)."""
    g = seeds.rng(seed, "estimate", 1, b)
    y = g.poisson(fit.fitted).astype(float)
    g.poisson(fit.m0)
    return y


def by_hand_dark(design: Design, terms, seed: int, n_boot: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per replicate: dark number and N-hat of a full (checked) fit of the model; failures counted."""
    fit = fit_model(design, terms)
    dark, n_hat, failed = [], [], 0
    for b in range(n_boot):
        rf = fit_model(design, terms, counts=replicate_counts(fit, seed, b))
        if not rf.ok:
            failed += 1
            continue
        dark.append(rf.n_hat - rf.n_obs)
        n_hat.append(rf.n_hat)
    return np.array(dark), np.array(n_hat), failed


def quantile_type8(x: np.ndarray, p: float) -> float:
    """R's ``quantile(x, p, type = 8)`` (Hyndman & Fan): h = (n + 1/3) p + 1/3, clamped."""
    x = np.sort(x)
    n = x.size
    h = (n + 1 / 3) * p + 1 / 3
    if h <= 1:
        return float(x[0])
    if h >= n:
        return float(x[-1])
    lo = math.floor(h)
    return float(x[lo - 1] + (h - lo) * (x[lo] - x[lo - 1]))


def test_percentile_interval_is_the_dark_number_added_to_n_obs(capsys):
    # Korea, model b:c + c:d (the published estimate 157.2): the brief's case
    code, res = run_json(capsys, KOREA, "--terms", "b:c,c:d", "--bootstrap", "200", "--seed", "1")
    iv = res["interval"]
    assert code == 0 and iv["ci"] == "percentile" and iv["reselect"] is None
    dark, _, failed = by_hand_dark(design_of(KOREA), ("b:c", "c:d"), 1, 200)
    assert iv["n_failed"] == failed and iv["n_boot"] == 200
    assert iv["lower"] == pytest.approx(123 + np.quantile(dark, 0.025), rel=1e-9)
    assert iv["upper"] == pytest.approx(123 + np.quantile(dark, 0.975), rel=1e-9)
    assert iv["lower"] >= 123


def test_dark_number_interval_never_below_n_obs_where_the_n_hat_percentile_is(capsys):
    # Korea c:d: N-hat 126.2, a dark number of about 3; the replicates' own n_obs vary by +-11,
    # so the old percentile of N-hat* reaches far below the 123 persons observed
    code, res = run_json(capsys, KOREA, "--terms", "c:d", "--bootstrap", "200", "--seed", "3")
    dark, n_hat, _ = by_hand_dark(design_of(KOREA), ("c:d",), 3, 200)
    assert np.quantile(n_hat, 0.025) < 115  # the interval the issue reported was of this kind
    assert res["interval"]["lower"] == pytest.approx(123 + np.quantile(dark, 0.025), rel=1e-9)
    assert 123 <= res["interval"]["lower"] < res["n_hat"] < res["interval"]["upper"]
    _, bca = run_json(capsys, KOREA, "--terms", "c:d", "--bootstrap", "200", "--seed", "3", "--ci", "bca")
    assert bca["interval"]["lower"] >= 123


def test_bca_interval_by_hand_as_sparsemse(capsys):
    code, res = run_json(capsys, UK5, "--terms", "LA:NG,GO:GP", "--bootstrap", "120", "--seed", "5", "--ci", "bca")
    iv = res["interval"]
    assert code == 0 and iv["ci"] == "bca" and iv["n_failed"] == 0
    design = design_of(UK5)
    terms = ("LA:NG", "GO:GP")
    fit = fit_model(design, terms)
    dark, _, _ = by_hand_dark(design, terms, 5, 120)
    dark_hat = fit.n_hat - fit.n_obs
    # jackknife: one person fewer in each observed history, counted as often as the history's count
    w, jack = [], []
    for c in np.flatnonzero(fit.y > 0):
        y = fit.y.copy()
        y[c] -= 1
        jf = fit_model(design, terms, counts=y)
        w.append(fit.y[c])
        jack.append(jf.n_hat)  # SparseMSE uses N-hat; n_obs - 1 in every table, so the residuals are the dark's
    w, jack = np.array(w), np.array(jack)
    jr = np.sum(w * jack) / np.sum(w) - jack
    ahat = np.sum(w * jr**3) / (6 * np.sum(w * jr**2) ** 1.5)
    assert iv["acceleration"] == pytest.approx(ahat, rel=1e-6)
    assert iv["n_jackknife"] == len(w) and iv["n_jackknife_failed"] == 0
    nd = __import__("statistics").NormalDist()
    z0 = nd.inv_cdf(np.mean(dark < dark_hat))
    assert iv["z0"] == pytest.approx(z0, rel=1e-9)
    bounds = []
    for alpha in (0.025, 0.975):
        za0 = nd.inv_cdf(alpha) + z0
        bounds.append(fit.n_obs + quantile_type8(dark, nd.cdf(z0 + za0 / (1 - ahat * za0))))
    assert iv["lower"] == pytest.approx(bounds[0], rel=1e-9)
    assert iv["upper"] == pytest.approx(bounds[1], rel=1e-9)
    # not the percentile interval (the correction does something here)
    _, pct = run_json(capsys, UK5, "--terms", "LA:NG,GO:GP", "--bootstrap", "120", "--seed", "5")
    assert pct["interval"]["lower"] != iv["lower"]


def test_reselect_repeats_the_selection_on_each_replicate_table(capsys):
    args = (KOREA, "--select", "backward-aic", "--bootstrap", "40", "--seed", "2", "--reselect", "--ci", "percentile")
    code, res = run_json(capsys, *args)
    iv = res["interval"]
    assert code == 0 and iv["reselect"] == "backward-aic"
    # by hand: each replicate table (drawn from the selected model) gets its own selection
    design = design_of(KOREA, three_factor="all")
    fit, _ = estimate.run_select(design, "backward-aic", None)
    dark, models = [], set()
    for b in range(40):
        y = replicate_counts(fit, 2, b)
        table = design.table.copy()
        table.loc[design.observed, "count"] = y
        sel, _ = estimate.run_select(Design(table, design.lists, (), three_factor="all"), "backward-aic", None)
        dark.append(sel.n_hat - sel.n_obs)
        models.add(sel.terms)
    assert len(models) > 1 and iv["n_models"] == len(models)  # the selection does vary
    assert iv["lower"] == pytest.approx(123 + np.quantile(dark, 0.025), rel=1e-9)
    assert iv["upper"] == pytest.approx(123 + np.quantile(dark, 0.975), rel=1e-9)
    # the same replicate tables without re-selection: a different (fixed-model) interval
    _, fixed = run_json(capsys, *args[:-3], "--ci", "percentile")
    assert fixed["interval"]["reselect"] is None and fixed["interval"]["n_models"] == 1
    assert fixed["interval"]["upper"] != iv["upper"]


def test_reselect_defaults_to_bca_and_the_text_says_so(capsys):
    code, out, _ = run_text(capsys, KOREA, "--select", "backward-aic", "--bootstrap", "30", "--seed", "4", "--reselect")
    assert code == 0
    line = next(s for s in out.splitlines() if "95% bootstrap interval" in s)
    assert "(bca, 30 of 30 replicates usable, " in line and "selected the same model" in line
    assert "backward-aic re-selected in each replicate" in out


def test_replicates_have_their_own_streams_whatever_the_order():
    design = design_of(KOREA)
    fit = fit_model(design, "b:c,c:d")
    groups = by_groups(design.strata, [])
    forward = resample.parametric_bootstrap(fit, 12, lambda b: seeds.rng(9, "estimate", 1, b), groups)
    backward = resample.parametric_bootstrap(fit, 12, lambda b: seeds.rng(9, "estimate", 1, 11 - b), groups)
    assert forward.n_failed == backward.n_failed == 0
    np.testing.assert_array_equal(forward.dark[::-1], backward.dark)
    # replicate 7 alone is replicate 7 of the run
    rf = fit_model(design, "b:c,c:d", counts=replicate_counts(fit, 9, 7))
    assert forward.dark[7, 0] == pytest.approx(rf.n_hat - rf.n_obs, rel=1e-9)


def test_one_stream_for_all_replicates_is_unchanged_for_the_pipeline():
    # the pipeline passes one Generator: replicate b continues the stream of replicate b - 1
    design = design_of(KOREA)
    fit = fit_model(design, "b:c,c:d")
    boot = resample.parametric_bootstrap(fit, 6, np.random.default_rng(5), by_groups(design.strata, []))
    g = np.random.default_rng(5)
    expected = []
    for _ in range(6):
        y = g.poisson(fit.fitted).astype(float)
        g.poisson(fit.m0)
        expected.append(fit_model(design, "b:c,c:d", counts=y).n_hat)
    np.testing.assert_allclose(boot.replicates[:, 0], expected, rtol=1e-9)


def test_failed_replicates_are_counted_and_the_interval_marked_unreliable(capsys):
    # New Orleans 8 lists, backward AIC from all pairs: most replicate tables of that large model have no MLE
    args = (NEWORL, "--select", "backward-aic", "--bootstrap", "60", "--seed", "1")
    code, res = run_json(capsys, *args)
    iv = res["interval"]
    dark, _, failed = by_hand_dark(design_of(NEWORL), tuple(res["terms"]), 1, 60)
    assert iv["n_failed"] == failed > 6 and iv["failed_share"] == pytest.approx(failed / 60)
    assert iv["failed_status"] == {"mle_does_not_exist": failed}
    assert iv["reliable"] is False
    assert iv["warning"].startswith(f"unreliable: {failed} of 60 replicates had no MLE (more than 10%)")
    code, out, _ = run_text(capsys, *args)
    assert f"({60 - failed} of 60 replicates usable)" in out.replace("percentile, ", "")
    assert f"    unreliable: {failed} of 60 replicates had no MLE" in out
    # a table where every replicate works: reliable, no warning
    _, ok = run_json(capsys, UK5, "--bootstrap", "20", "--seed", "1")
    assert ok["interval"]["reliable"] is True and ok["interval"]["warning"] is None
    assert ok["interval"]["n_failed"] == 0 and ok["interval"]["failed_share"] == 0


def test_reliable_up_to_the_stated_share():
    def boot(n_failed: int) -> resample.Bootstrap:
        empty = np.zeros((10 - n_failed, 1))
        return resample.Bootstrap(None, np.ones(1), np.ones(1), empty, empty, 10, {"mle_does_not_exist": n_failed}, 0)

    assert resample.MAX_FAILED_SHARE == 0.10
    assert boot(1).reliable and not boot(2).reliable


def test_bca_by_groups_stays_above_each_groups_n_obs(capsys, tmp_path):
    rows = ["A,B,C,S,count"]
    rng = np.random.default_rng(3)
    for s in ("F", "M"):
        for h in range(1, 8):
            a, b, c = (h >> 2) & 1, (h >> 1) & 1, h & 1
            rows.append(f"{a},{b},{c},{s},{rng.poisson(12 if s == 'F' else 4) + 1}")
    path = tmp_path / "strata.csv"
    path.write_text("\n".join(rows) + "\n")
    code, res = run_json(capsys, str(path), "--by", "S", "--bootstrap", "50", "--seed", "6", "--ci", "bca")
    assert code == 0 and set(res["by"]) == {"S=F", "S=M"}
    for g in res["by"].values():
        assert g["n_obs"] <= g["interval"]["lower"] < g["interval"]["upper"]
    assert res["n_obs"] <= res["interval"]["lower"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ("--reselect", "--bootstrap", "10", "--seed", "1"),
            "--reselect repeats the model selection: it needs --select",
        ),
        (("--select", "backward-aic", "--reselect"), "--reselect is an option of the bootstrap interval"),
        (("--ci", "bca"), "--ci bca is an option of the bootstrap interval: it needs --bootstrap B --seed S"),
    ],
)
def test_bootstrap_options_need_what_they_act_on(capsys, extra, message):
    code, out, err = run_text(capsys, KOREA, *extra)
    assert code == 2 and out == "" and message in err


def test_help_does_not_load_pandas_or_the_engine():
    code = (
        "import sys, contextlib, io\n"
        "from mse_helpers.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['estimate', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'mse_helpers.engine') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_json_interval_has_exactly_the_documented_keys(capsys):
    common = {
        "lower",
        "upper",
        "level",
        "method",
        "ci",
        "reselect",
        "n_boot",
        "n_failed",
        "failed_share",
        "failed_status",
        "reliable",
        "warning",
        "n_same_model",
        "n_models",
    }
    _, pct = run_json(capsys, KOREA, "--terms", "b:c", "--bootstrap", "10", "--seed", "1")
    assert set(pct["interval"]) == common
    _, bca = run_json(capsys, KOREA, "--terms", "b:c", "--bootstrap", "10", "--seed", "1", "--ci", "bca")
    assert set(bca["interval"]) == common | {"acceleration", "z0", "n_jackknife", "n_jackknife_failed"}
    assert bca["interval"]["n_jackknife"] == 6  # the observed histories with a count above 0 (0,1,1 has none)


def test_bca_is_undefined_when_every_replicate_is_on_one_side():
    from mse_helpers.engine.estimates import GroupMatrix

    groups = by_groups(design_of(KOREA).strata, [])
    assert isinstance(groups, GroupMatrix)
    above = np.array([[5.0], [6.0], [7.0]])  # every replicate's dark number above the estimate's 3
    boot = resample.Bootstrap(groups, np.array([123.0]), np.array([126.0]), 123 + above, above, 3, {}, 0)
    flat = resample.Jackknife(weights=np.array([2.0, 3.0]), dark=np.array([[3.0], [3.0]]), n_failed=0)
    assert flat.acceleration[0] == 0.0  # no spread in the jackknife: no acceleration
    iv = resample.bca_interval(boot, flat)
    assert np.isinf(iv["z0"].iloc[0]) and np.isnan(iv["lower"].iloc[0]) and np.isnan(iv["upper"].iloc[0])
    # with the estimate inside the replicates it is defined
    mid = resample.Bootstrap(groups, np.array([123.0]), np.array([129.0]), 123 + above, above, 3, {}, 0)
    iv = resample.bca_interval(mid, flat)
    assert iv["z0"].iloc[0] == pytest.approx(-0.4307, abs=1e-4)  # Phi^-1(1/3): one of 3 below 6
    assert 128.0 <= iv["lower"].iloc[0] < iv["upper"].iloc[0] <= 130.0


# R, SparseMSE 2.0.1: set.seed(5); x <- round(rexp(57) * 100, 3); bcaconfvalues(x, 80, a, alpha)
R_VALUES = [
    198.801, 37.044, 7.254, 40.211, 5.592, 61.587, 7.656, 87.516, 200.130, 124.325, 38.464, 14.649, 148.332,
    79.151, 4.115, 79.374, 347.577, 128.387, 128.047, 63.215, 175.607, 38.109, 217.560, 58.722, 26.561, 123.145,
    13.255, 64.673, 121.780, 71.540, 72.308, 196.139, 147.750, 24.793, 177.626, 68.388, 10.906, 57.318, 43.468,
    163.717, 67.092, 392.011, 2.705, 91.070, 64.749, 207.553, 254.551, 72.785, 56.631, 98.911, 22.297, 42.604,
    103.713, 188.659, 128.076, 98.383, 63.191,
]  # fmt: skip


@pytest.mark.parametrize(
    "acceleration,level,expected",
    [
        (0.031, 0.95, (6.872270731573, 392.011)),
        (0.031, 0.80, (25.444957119966, 249.894518283374)),
        (-0.05, 0.80, (21.443952414739, 215.504887002667)),
    ],
)
def test_bca_bounds_equal_sparsemse_bcaconfvalues(acceleration, level, expected):
    got = resample.bca_bounds(np.array(R_VALUES), 80.0, acceleration, level)
    assert got == pytest.approx(expected, rel=1e-11)


def test_acceleration_of_values_equal_up_to_rounding_is_zero():
    d = np.array([[0.1 + 0.2], [0.3], [0.3]])  # 0.30000000000000004, 0.3, 0.3
    jack = resample.Jackknife(weights=np.array([3.0, 1.0, 7.0]), dark=d, n_failed=0)
    assert jack.acceleration[0] == 0.0
    skewed = resample.Jackknife(weights=np.array([1.0, 1.0, 1.0]), dark=np.array([[0.0], [0.0], [3.0]]), n_failed=0)
    r = np.array([1.0, 1.0, -2.0])  # mean 1 minus the values
    assert skewed.acceleration[0] == pytest.approx(np.sum(r**3) / (6 * np.sum(r**2) ** 1.5), rel=1e-12)
