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

from mse_helpers.codes import COVARIATES, REGISTERS  # noqa: E402
from mse_helpers.engine.pooling import pool_estimates  # noqa: E402
from mse_helpers.runner.params import load_params  # noqa: E402
from mse_helpers.stages import (
    bootstrap,  # noqa: E402
    impute,
    prepare,
    selection,
)
from mse_helpers.synthetic import simulator as simulate

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
) -> pd.DataFrame:
    """Simulate population ``s``, run the method, return estimates beside the truth.

    With ``oracle``, preparation and imputation are replaced by the true
    registered persons (see :func:`write_oracle_data`; m = 1). ``linking`` is
    the parameter of that name (docs/method.md 3.5, docs/estimation.md 5).

    Returns
    -------
    DataFrame
        ``population``, ``year``, ``group``, ``n_true``, ``n_obs``, ``n_hat``,
        ``lower_t``, ``upper_t`` (rubin-t), ``lower_log``, ``upper_log`` (log-scale),
        ``n_models``, ``n_boot_failed``.
    """
    seed = population_seed(base_seed, s)
    folder = tmp / f"pop_{s:03d}"
    data = simulate.simulate(years, seed)
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
    out["n_boot_failed"] = int(res.failed["n_boot_failed"].sum())
    return out


# --- summary ------------------------------------------------------------------------


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Coverage and mean relative error per year (group total), and over all groups.

    Parameters
    ----------
    results : DataFrame
        Concatenated :func:`one_population` frames.

    Returns
    -------
    DataFrame
        ``year``, ``groups``, ``n`` (estimates compared), ``coverage_t``,
        ``coverage_log``, ``mean_rel_error``, ``mean_abs_rel_error``,
        ``mean_rel_width`` (interval width / true number, rubin-t).
    """
    r = results.assign(
        cov_t=(results["lower_t"] <= results["n_true"]) & (results["n_true"] <= results["upper_t"]),
        cov_log=(results["lower_log"] <= results["n_true"]) & (results["n_true"] <= results["upper_log"]),
        rel=(results["n_hat"] - results["n_true"]) / results["n_true"],
        width=(results["upper_t"] - results["lower_t"]) / results["n_true"],
    )
    rows = []
    for label, part in [(y, r[(r["year"] == y) & (r["group"] == "total")]) for y in sorted(r["year"].unique())] + [
        ("every year and group", r[r["year"] != "all"])
    ]:
        rows.append(
            {
                "year": label,
                "groups": "total" if label != "every year and group" else "all",
                "n": len(part),
                "coverage_t": part["cov_t"].mean(),
                "coverage_log": part["cov_log"].mean(),
                "mean_rel_error": part["rel"].mean(),
                "mean_abs_rel_error": part["rel"].abs().mean(),
                "mean_rel_width": part["width"].mean(),
            }
        )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (for docs/estimation.md)."""
    lines = [
        "| year | groups | estimates | coverage (rubin-t) | coverage (log-scale) | mean rel. error | "
        "mean abs. rel. error | mean width / truth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.year} | {row.groups} | {row.n} | {row.coverage_t:.0%} | {row.coverage_log:.0%} | "
            f"{row.mean_rel_error:+.1%} | {row.mean_abs_rel_error:.1%} | {row.mean_rel_width:.2f} |"
        )
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
    args = parser.parse_args(argv)
    if args.populations < 1:
        parser.error("--populations must be at least 1")
    a, _, b = args.years.partition("-")
    years = list(range(int(a), int(b or a) + 1))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mse_coverage_") as tmp:
        done = Parallel(n_jobs=args.n_jobs)(
            delayed(one_population)(s, years, args.m, args.bootstrap, args.seed, Path(tmp), args.oracle, args.linking)
            for s in range(args.populations)
        )
    results = pd.concat(done, ignore_index=True)
    if args.out:
        results.to_csv(args.out, index=False)
    print(
        f"coverage check{' (ORACLE DATA: true registered persons)' if args.oracle else ''}: "
        f"{args.populations} simulated populations, years {years[0]}-{years[-1]}, "
        f"m = {1 if args.oracle else args.m}, B = {args.bootstrap}, seed {args.seed}"
        + ("" if args.oracle else f", linking = {args.linking}")
    )
    print(
        f"models pooled per population: {results.groupby('population')['n_models'].max().min()}-"
        f"{results.groupby('population')['n_models'].max().max()}; bootstrap replicates failed "
        f"(no MLE) per population: {results.groupby('population')['n_boot_failed'].first().tolist()}"
    )
    print(f"duration {time.perf_counter() - start:.0f} s\n")
    print(markdown(summarise(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
