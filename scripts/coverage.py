"""Calibration check of the whole method on simulated populations.

For each of S populations: simulate registration data with a known truth
(:func:`mse_helpers.synthetic.simulator.simulate`, its own seed), write it to a temporary
folder, and run the stages of ``mse run`` on it (data preparation, imputation,
model selection, bootstrap and pooling) with small m and B; then compare the
pooled estimates with the true numbers. Prints, per year (and over all years
and groups), how often the 95% intervals contain the true number (rubin-t and
log-scale) and the mean relative error of N-hat.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/coverage.py --populations 20 --m 5 --bootstrap 30

It takes minutes (about 10-30 s per population and core). Not a unit test: a
coverage of 19 of 20 and one of 15 of 20 are both consistent with 95%.

Model selection is ``mse_helpers.stages.selection.run_stage`` (docs/method.md 6), as in
``mse run``. ``--linking expected`` runs the study's fixed linking targets
instead of the default draw (docs/estimation.md 5).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: small matrices, see docs/engine.md
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from mse_helpers import runfolder  # noqa: E402
from mse_helpers.codes import COVARIATES, REGISTERS  # noqa: E402
from mse_helpers.engine.pooling import pool_estimates  # noqa: E402
from mse_helpers.runner.params import load_params  # noqa: E402
from mse_helpers.stages import (
    bootimpute,  # noqa: E402
    bootstrap,
    impute,
    prepare,
    selection,
    uncertainty,  # noqa: E402
)
from mse_helpers.synthetic import second  # noqa: E402
from mse_helpers.synthetic import simulator as simulate  # noqa: E402

#: ``--generator``: the project's simulator (bundled data) or the structurally different second one.
GENERATORS = {"simulator": simulate.simulate, "second": second.simulate}

# --- one population --------------------------------------------------------------------


def population_seed(base_seed: int, s: int) -> int:
    """Seed of simulated population ``s`` (independent streams for every s)."""
    return int(np.random.SeedSequence([base_seed, s]).generate_state(1)[0])


def write_oracle_data(data, years: list[int], work: Path) -> None:
    """The true registered persons as the one completed data set (``--oracle``).

    Nothing withheld, every covariate known: what the pipeline would see with
    perfect data. Model selection and the bootstrap then run as usual, so the
    difference from a normal run is what linking and imputation add.
    """
    pop = data.population
    registered = pop[pop[list(REGISTERS)].sum(axis=1) > 0].copy()
    for c, levels in COVARIATES.items():
        registered[c] = pd.array([levels[int(v)] for v in registered[c]], dtype="string")
    for g in REGISTERS:
        registered[g] = registered[g].astype("Int8")
    registered["source"] = pd.array(["reports"] * len(registered), dtype="string")
    (work / impute.IMPUTED_DIR).mkdir(parents=True, exist_ok=True)
    registered.reset_index(drop=True).to_parquet(work / impute.IMPUTED_DIR / "imp_000.parquet", index=False)
    (work / "prep_summary.json").write_text(json.dumps({"years": list(years), "reference_years": []}))


def one_population(
    s: int,
    years: list[int],
    m: int,
    n_boot: int,
    base_seed: int,
    tmp: Path,
    oracle: bool = False,
    linking: str = "draw",
    generator: str = "simulator",
    n_reselect: int = 0,
    n_resamples: int = 0,
    n_imputations: int = 2,
) -> pd.DataFrame:
    """Simulate population ``s``, run the method, return estimates beside the truth.

    With ``oracle``, preparation and imputation are replaced by the true
    registered persons (see :func:`write_oracle_data`; m = 1). ``linking`` is
    the parameter of that name (docs/method.md 3.5, docs/estimation.md 5).
    ``generator`` is a key of :data:`GENERATORS`. With ``n_reselect`` > 0 the
    intervals of ``uncertainty: reselect`` (``n_reselect`` replicates per model,
    ``interval`` rubin-t and log-scale) are computed too, on the same completed
    data sets and selections: only the within variances differ
    (docs/estimation.md 6). With ``n_resamples`` > 0 the intervals of
    bootstrap-then-impute (:mod:`mse_helpers.stages.bootimpute`: ``n_resamples``
    resamples of the input files, ``n_imputations`` completed data sets each,
    the whole analysis repeated on each) are computed too, around the same
    point estimates.

    Returns
    -------
    DataFrame
        ``population``, ``year``, ``group``, ``n_true``, ``n_obs``, ``n_hat``,
        ``lower_t``, ``upper_t`` (rubin-t), ``lower_log``, ``upper_log`` (log-scale),
        ``n_models``, ``n_boot_failed``, ``seconds_study`` (preparation to pooling)
        and with ``n_reselect``: ``lower_rt``, ``upper_rt`` (reselect, rubin-t),
        ``lower_rlog``, ``upper_rlog`` (reselect, log-scale), ``n_rep_failed``,
        ``n_rep_changed``, ``n_rep``, ``seconds_reselect`` (the re-selection step alone);
        with ``n_resamples``: ``lower_bt``, ``upper_bt`` (t interval), ``lower_blog``,
        ``upper_blog`` (log-scale), ``n_bti_failed`` (resamples left out), ``seconds_bti``.
    """
    t0 = time.perf_counter()
    seed = population_seed(base_seed, s)
    folder = tmp / f"pop_{s:03d}"
    data = GENERATORS[generator](years, seed)
    paths = simulate.write_data(data, folder / "data")
    p = load_params(
        None,
        {
            "reports": str(paths["reports"]),
            "aggregates": str(paths["aggregates"]),
            "register_map": str(paths["register_map"]),
            "truth": str(paths["truth"]),
            "m": 1 if oracle else m,
            "bootstrap": n_boot,
            "seed": seed,
            "n_jobs": 1,
            "years": list(years),
            "linking": linking,
            "uncertainty": "study",  # the study's bootstrap; reselect's pooling is added below
            "sensitivity": [],
        },
    )  # no sensitivity analyses here
    work, results = folder / "work", folder / "results"
    if oracle:
        write_oracle_data(data, years, work)
    else:
        prepare.run_stage(p, work)
        impute.run_stage(p, work)
    selection.run_stage(p, work)
    res = bootstrap.run_stage(p, work, results)
    per_model = res.per_model
    t_int = pool_estimates(per_model, ["year", "group"], interval="rubin-t")
    log_int = pool_estimates(per_model, ["year", "group"], interval="log-scale")
    out = t_int[["year", "group", "n_obs", "n_hat", "lower", "upper", "n_models"]].rename(
        columns={"lower": "lower_t", "upper": "upper_t"}
    )
    out = out.merge(
        log_int[["year", "group", "lower", "upper"]].rename(columns={"lower": "lower_log", "upper": "upper_log"}),
        on=["year", "group"],
    )
    truth = data.truth.assign(year=data.truth["year"].astype(str))[["year", "group", "n_true"]]
    all_years = truth.groupby("group", as_index=False)["n_true"].sum().assign(year="all")
    out = out.merge(pd.concat([truth, all_years]), on=["year", "group"], how="inner")
    out.insert(0, "population", s)
    out = out.merge(pooled_bias(per_model), on=["year", "group"], how="left")
    out["n_boot_failed"] = int(res.failed["n_boot_failed"].sum())
    out["seconds_study"] = time.perf_counter() - t0
    if n_reselect:
        t1 = time.perf_counter()
        models = bootstrap.read_models(work)
        pooled = [(int(k), models[int(k)]) for k in res.failed.loc[res.failed["status"] == "ok", "model"]]
        years_run = runfolder.analysed_years(runfolder.read_prep_summary(work))
        resel = uncertainty.run_reselection(p, work, pooled, years_run, n_rep=n_reselect)
        frame = uncertainty.reselect_per_model(resel, per_model)
        for suffix, interval in (("rt", "rubin-t"), ("rlog", "log-scale")):
            iv = uncertainty.pool_reselected(frame, ["year", "group"], interval=interval)
            out = out.merge(
                iv[["year", "group", "lower", "upper"]].rename(
                    columns={"lower": f"lower_{suffix}", "upper": f"upper_{suffix}"}
                ),
                on=["year", "group"],
                how="left",
            )
        out["n_rep_failed"] = sum(r.n_failed for r in resel)
        out["n_rep_changed"] = sum(r.n_changed for r in resel)
        out["n_rep"] = sum(r.n_rep for r in resel)
        out["seconds_reselect"] = time.perf_counter() - t1
    if n_resamples:
        t2 = time.perf_counter()
        summary = runfolder.read_prep_summary(work)
        bti = bootimpute.run_resamples(
            p,
            runfolder.analysed_years(summary),
            summary.get("reference_years"),
            n_resamples=n_resamples,
            n_imputations=n_imputations,
        )
        for suffix, interval in (("bt", "rubin-t"), ("blog", "log-scale")):
            iv = bootimpute.pool_boot_impute(per_model, bti, interval=interval)
            out = out.merge(
                iv[["year", "group", "lower", "upper"]].rename(
                    columns={"lower": f"lower_{suffix}", "upper": f"upper_{suffix}"}
                ),
                on=["year", "group"],
                how="left",
            )
        out["n_bti_failed"] = bti.n_resamples - bti.n_usable
        out["seconds_bti"] = time.perf_counter() - t2
    return out


#: Column suffix (``lower_X``, ``upper_X``) -> the interval's name in the tables.
INTERVAL_NAMES = {
    "t": "study rubin-t",
    "log": "study log-scale",
    "rt": "reselect rubin-t",
    "rlog": "reselect log-scale",
    "bt": "boot-impute rubin-t",
    "blog": "boot-impute log-scale",
}


# --- the bootstrap bias correction (evaluated, not applied by the pipeline) ---------------


def pooled_bias(per_model: pd.DataFrame) -> pd.DataFrame:
    """Per year and group: the mean over the pooled models of their bootstrap bias (``bias_boot``).

    Rubin's point estimate is the mean of the models' N-hat, so the mean of
    ``N-hat - bias`` (each model's bias-corrected N-hat, ``2 N-hat - mean N-hat*``)
    is the pooled N-hat minus this mean.
    """
    return per_model.groupby(["year", "group"], as_index=False)["bias_boot"].mean()


def bias_corrected(results: pd.DataFrame) -> pd.DataFrame:
    """Add the bias-corrected estimate and intervals: ``n_hat_bc`` and ``lower_X_bc``, ``upper_X_bc``.

    Each interval is shifted by the same amount as the point estimate (the
    correction moves the estimate, not its spread), its lower end kept at n_obs
    at least, as the pipeline's intervals are.
    """
    out = results.copy()
    out["n_hat_bc"] = np.maximum(out["n_hat"] - out["bias_boot"], out["n_obs"])
    for suffix in INTERVAL_NAMES:
        if f"lower_{suffix}" in out.columns:
            out[f"lower_{suffix}_bc"] = np.maximum(out[f"lower_{suffix}"] - out["bias_boot"], out["n_obs"])
            out[f"upper_{suffix}_bc"] = out[f"upper_{suffix}"] - out["bias_boot"]
    return out


def bias_correction_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error and coverage without and with the bootstrap bias correction.

    Rows as :func:`summarise` (each year's total, each covariate level over the
    years, every yearly group); columns ``mean_rel_error``, ``mean_rel_error_bc``,
    ``mean_abs_rel_error``, ``mean_abs_rel_error_bc``, and ``coverage_X``,
    ``coverage_X_bc`` for each interval X run (t, log: study; rt, rlog: reselect).
    """
    r = bias_corrected(results)
    truth = r["n_true"]
    r["rel"], r["rel_bc"] = (r["n_hat"] - truth) / truth, (r["n_hat_bc"] - truth) / truth
    suffixes = [x for x in INTERVAL_NAMES if f"lower_{x}" in r.columns]
    for x in suffixes:
        for tail in ("", "_bc"):
            r[f"cov_{x}{tail}"] = (r[f"lower_{x}{tail}"] <= truth) & (truth <= r[f"upper_{x}{tail}"])
    parts = _parts(r)
    rows = []
    for label, group, part in parts:
        row = {"year": label, "groups": group, "n": len(part)}
        for tail in ("", "_bc"):
            row[f"mean_rel_error{tail}"] = part[f"rel{tail}"].mean()
            row[f"mean_abs_rel_error{tail}"] = part[f"rel{tail}"].abs().mean()
        for x in suffixes:
            for tail in ("", "_bc"):
                row[f"coverage_{x}{tail}"] = part[f"cov_{x}{tail}"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def bias_correction_markdown(summary: pd.DataFrame) -> str:
    """:func:`bias_correction_summary` as Markdown: each figure as ``without -> with`` the correction."""
    suffixes = [x for x in INTERVAL_NAMES if f"coverage_{x}" in summary.columns]
    head = ["year", "groups", "estimates", "mean rel. error", "mean abs. rel. error"]
    head += [f"coverage {INTERVAL_NAMES[x]}" for x in suffixes]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in summary.to_dict("records"):
        cells = [
            str(row["year"]),
            str(row["groups"]),
            str(row["n"]),
            f"{row['mean_rel_error']:+.1%} -> {row['mean_rel_error_bc']:+.1%}",
            f"{row['mean_abs_rel_error']:.1%} -> {row['mean_abs_rel_error_bc']:.1%}",
        ]
        cells += [f"{_pct(row[f'coverage_{x}'])} -> {_pct(row[f'coverage_{x}_bc'])}" for x in suffixes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_bias_correction(results: pd.DataFrame) -> None:
    """The bias-correction table, when the results carry ``bias_boot`` (runs since it was added)."""
    if "bias_boot" not in results.columns:
        return
    print(
        "\nbootstrap bias correction (each model's N-hat - (mean N-hat* - N-hat), intervals shifted alike), "
        "without -> with:\n"
    )
    print(bias_correction_markdown(bias_correction_summary(results)))


# --- summary ------------------------------------------------------------------------

ALL_GROUPS = "every year and group"


def _parts(r: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The rows of a summary: each year's total, each covariate level over the years, all yearly groups."""
    yearly = r[r["year"] != "all"]
    parts = [(y, "total", r[(r["year"] == y) & (r["group"] == "total")]) for y in sorted(r["year"].unique())]
    parts += [("each year", g, yearly[yearly["group"] == g]) for g in yearly["group"].unique() if g != "total"]
    parts += [(ALL_GROUPS, "all", yearly)]
    return parts


def _flags(results: pd.DataFrame) -> pd.DataFrame:
    """Per estimate: covered by each interval run (``cov_X``), relative error and relative widths (``width_X``)."""
    r = results.assign(rel=(results["n_hat"] - results["n_true"]) / results["n_true"])
    for suffix in INTERVAL_NAMES:
        if f"lower_{suffix}" in results.columns:
            lo, up = results[f"lower_{suffix}"], results[f"upper_{suffix}"]
            r[f"cov_{suffix}"] = (lo <= results["n_true"]) & (results["n_true"] <= up)
            r[f"width_{suffix}"] = (up - lo) / results["n_true"]
    return r


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Coverage, mean relative error and width: per year (group total), per covariate level
    (its yearly rows), and over every yearly group.

    Parameters
    ----------
    results : DataFrame
        Concatenated :func:`one_population` frames.

    Returns
    -------
    DataFrame
        ``year``, ``groups``, ``n`` (estimates compared), ``mean_rel_error``,
        ``mean_abs_rel_error``, and for every interval X of :data:`INTERVAL_NAMES`
        ``coverage_X`` and ``mean_rel_width_X`` (width / true number; NaN when not run).
    """
    r = _flags(results)
    rows = []
    for label, group, part in _parts(r):
        row = {
            "year": label,
            "groups": group,
            "n": len(part),
            "mean_rel_error": part["rel"].mean(),
            "mean_abs_rel_error": part["rel"].abs().mean(),
        }
        for suffix in INTERVAL_NAMES:
            run = f"cov_{suffix}" in part
            row[f"coverage_{suffix}"] = part[f"cov_{suffix}"].mean() if run else float("nan")
            row[f"mean_rel_width_{suffix}"] = part[f"width_{suffix}"].mean() if run else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.0%}"


#: A mean width above this is shown as such: a few intervals with few degrees of freedom dominate it
#: (the medians are in :func:`widths`).
HUGE = 100.0


def _w(v: float) -> str:
    if pd.isna(v):
        return ""
    return f"> {HUGE:g}" if v > HUGE else f"{v:.2f}"


def markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (for docs/estimation.md): the intervals that were run."""
    run = [x for x in INTERVAL_NAMES if summary[f"coverage_{x}"].notna().any()]
    head = ["year", "groups", "estimates"] + [f"coverage {INTERVAL_NAMES[x]}" for x in run]
    head += ["mean rel. error", "mean abs. rel. error"] + [f"width / truth {INTERVAL_NAMES[x]}" for x in run]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in summary.to_dict("records"):
        cells = [str(row["year"]), str(row["groups"]), str(row["n"])]
        cells += [_pct(row[f"coverage_{x}"]) for x in run]
        cells += [f"{row['mean_rel_error']:+.1%}", f"{row['mean_abs_rel_error']:.1%}"]
        cells += [_w(row[f"mean_rel_width_{x}"]) for x in run]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: An interval wider than this many times the true number says little (``widths``).
WIDE = 3.0


def widths(results: pd.DataFrame) -> pd.DataFrame:
    """Per interval run, over every yearly group: how wide (width / truth), robust to open intervals.

    The mean width of :func:`summarise` is infinite once one interval is open
    (an upper end of ``inf``, which few degrees of freedom can give), so this
    table gives the median, the 90th percentile, the share of intervals wider
    than :data:`WIDE` times the truth and the share that are open, and the
    coverage of the intervals that are not that wide.

    Returns
    -------
    DataFrame
        One row per interval: ``interval``, ``median``, ``p90``, ``share_wide``,
        ``share_open``, ``coverage``, ``coverage_not_wide``.
    """
    r = _flags(results)
    yearly = r[r["year"] != "all"]
    rows = []
    for x, name in INTERVAL_NAMES.items():
        if f"width_{x}" not in yearly:
            continue
        w, cov = yearly[f"width_{x}"], yearly[f"cov_{x}"]
        rows.append(
            {
                "interval": name,
                "median": w.median(),
                "p90": w.quantile(0.9),
                "share_wide": (w > WIDE).mean(),
                "share_open": np.isinf(yearly[f"upper_{x}"]).mean(),
                "coverage": cov.mean(),
                "coverage_not_wide": cov[w <= WIDE].mean(),
            }
        )
    return pd.DataFrame(rows)


def widths_markdown(table: pd.DataFrame) -> str:
    """:func:`widths` as Markdown."""
    lines = [
        f"| interval | median width / truth | 90th percentile | wider than {WIDE:g}x truth | open (upper inf) | "
        f"coverage | coverage of those not wider than {WIDE:g}x |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.interval} | {row.median:.2f} | {row.p90:.2f} | {row.share_wide:.1%} | {row.share_open:.1%} | "
            f"{_pct(row.coverage)} | {_pct(row.coverage_not_wide)} |"
        )
    return "\n".join(lines)


def print_tables(results: pd.DataFrame) -> None:
    """Every table of the check: coverage and error, widths, bias per group and year, the bias correction."""
    print(markdown(summarise(results)))
    print("\nwidths over every yearly group:\n")
    print(widths_markdown(widths(results)))
    print("\nmean relative error of N-hat (standard error in points) per group and year:\n")
    print(bias_markdown(bias_table(results)))
    print_bias_correction(results)


def bias_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error of N-hat (its standard error over populations) per group and year.

    Returns
    -------
    DataFrame
        Index: group; columns: the years and ``all``; values ``"+2.4% (3.1)"``.
    """
    r = _flags(results)
    stats = r.groupby(["group", "year"])["rel"].agg(["mean", "std", "count"])
    text = [
        f"{m:+.1%} ({100 * sd / np.sqrt(n):.1f})" if n > 1 else f"{m:+.1%}"
        for m, sd, n in zip(stats["mean"], stats["std"], stats["count"])
    ]
    table = pd.Series(text, index=stats.index).unstack("year")
    order = ["total"] + [g for g in results["group"].drop_duplicates() if g != "total"]
    return table.loc[[g for g in order if g in table.index]]


def bias_markdown(table: pd.DataFrame) -> str:
    """:func:`bias_table` as Markdown."""
    lines = ["| group | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [f"| {g} | " + " | ".join(row) + " |" for g, row in zip(table.index, table.to_numpy())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, default=10, help="simulated populations (at least 5)")
    parser.add_argument("--years", default="2016-2019", help="years to simulate, e.g. 2016-2019")
    parser.add_argument("--m", type=int, default=5, help="completed data sets per population")
    parser.add_argument("--bootstrap", type=int, default=30, help="bootstrap replicates per model")
    parser.add_argument("--seed", type=int, default=20240607, help="seed of the population seeds")
    parser.add_argument("--n-jobs", type=int, default=2, help="populations run in parallel")
    parser.add_argument("--out", help="CSV file for every population's estimates beside the truth")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="fit the true registered persons (nothing withheld, no missing values) instead of "
        "prepared and imputed data: separates linking/imputation error from the rest",
    )
    parser.add_argument(
        "--linking",
        choices=prepare.LINKING,
        default="draw",
        help="linking targets (parameter linking): draw (default) or expected (the study)",
    )
    parser.add_argument(
        "--generator",
        choices=sorted(GENERATORS),
        default="simulator",
        help="simulator (the bundled data's generator, default) or second (mse_helpers.synthetic.second)",
    )
    parser.add_argument(
        "--reselect",
        type=int,
        default=0,
        metavar="B_R",
        help="also the intervals of uncertainty: reselect (rubin-t, log-scale) with B_R replicates per model, on the same "
        "completed data sets and selections (0: not run)",
    )
    parser.add_argument(
        "--boot-impute",
        type=int,
        default=0,
        metavar="B_I",
        help="also the intervals of bootstrap-then-impute (mse_helpers.stages.bootimpute) with B_I resamples of the "
        "input files, the whole analysis repeated on each (0: not run)",
    )
    parser.add_argument(
        "--boot-impute-m",
        type=int,
        default=2,
        metavar="D",
        help="completed data sets per resample of --boot-impute (default 2, as Bartlett and Hughes recommend)",
    )
    parser.add_argument(
        "--from-csv",
        nargs="+",
        metavar="CSV",
        help="summarise saved --out files (e.g. two batches with different --seed) instead of running; "
        "columns missing from one file are left out of the summary",
    )
    args = parser.parse_args(argv)
    if args.from_csv:
        frames = [pd.read_csv(f, dtype={"year": str}) for f in args.from_csv]
        common = [c for c in frames[0].columns if all(c in fr.columns for fr in frames)]
        results = pd.concat(
            [fr[common].assign(population=fr["population"] + 1000 * i) for i, fr in enumerate(frames)],
            ignore_index=True,
        )
        print(f"summary of {', '.join(args.from_csv)}: {results['population'].nunique()} populations\n")
        print_tables(results)
        return 0
    if args.populations < 1:
        parser.error("--populations must be at least 1")
    if args.boot_impute and args.oracle:
        parser.error("--boot-impute resamples the input files, which --oracle does not use")
    a, _, b = args.years.partition("-")
    years = list(range(int(a), int(b or a) + 1))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mse_coverage_") as tmp:
        done = Parallel(n_jobs=args.n_jobs)(
            delayed(one_population)(
                s,
                years,
                args.m,
                args.bootstrap,
                args.seed,
                Path(tmp),
                args.oracle,
                args.linking,
                args.generator,
                args.reselect,
                args.boot_impute,
                args.boot_impute_m,
            )
            for s in range(args.populations)
        )
    results = pd.concat(done, ignore_index=True)
    if args.out:
        results.to_csv(args.out, index=False)
    print(
        f"coverage check{' (ORACLE DATA: true registered persons)' if args.oracle else ''}: "
        f"{args.populations} populations of the {args.generator}, years {years[0]}-{years[-1]}, "
        f"m = {1 if args.oracle else args.m}, B = {args.bootstrap}, seed {args.seed}"
        + ("" if args.oracle else f", linking = {args.linking}")
        + (f", reselect B_r = {args.reselect}" if args.reselect else "")
        + (f", boot-impute B_i = {args.boot_impute} x D = {args.boot_impute_m}" if args.boot_impute else "")
    )
    print(
        f"models pooled per population: {results.groupby('population')['n_models'].max().min()}-"
        f"{results.groupby('population')['n_models'].max().max()}; bootstrap replicates failed "
        f"(no MLE) per population: {results.groupby('population')['n_boot_failed'].first().tolist()}"
    )
    per_pop = results.groupby("population").first()
    line = f"seconds per population (one core): study {per_pop['seconds_study'].mean():.0f}"
    if args.reselect:
        line += (
            f", reselect step {per_pop['seconds_reselect'].mean():.0f} more "
            f"({per_pop['seconds_reselect'].sum() / per_pop['n_rep'].sum():.2f} s per replicate); "
            f"replicates failed {int(per_pop['n_rep_failed'].sum())} of {int(per_pop['n_rep'].sum())}, "
            f"re-selected another model {int(per_pop['n_rep_changed'].sum())}"
        )
    if args.boot_impute:
        line += (
            f", boot-impute step {per_pop['seconds_bti'].mean():.0f} more "
            f"({per_pop['seconds_bti'].sum() / (args.boot_impute * len(per_pop)):.1f} s per resample); "
            f"resamples left out {int(per_pop['n_bti_failed'].sum())} of {args.boot_impute * len(per_pop)}"
        )
    print(line)
    print(f"duration {time.perf_counter() - start:.0f} s\n")
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
