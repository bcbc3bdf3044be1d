"""Speed of the chained-equations imputer (mse_helpers.stages.impute), side by side.

Usage: .venv/bin/python benchmarks/bench_impute.py [--m 25] [--maxit 10]

Prints, measured in one run on the same data (the machine is shared and noisy,
so compare the ratios, not the absolute times):

1. one logistic-regression posterior, as the imputer does it (records collapsed
   into patterns with frequency weights) versus statsmodels' GLM on the
   records themselves plus mice's pseudo-records (same estimate and covariance,
   see tests/test_impute.py);
2. per data set, data preparation's linking of ~650 partial records (redone
   for every data set) versus the chained equations themselves;
3. the whole imputation of a bundled-size file (4 years x ~1,250 persons, with
   partial-record-like missingness) for m data sets and maxit iterations, with
   1 and 2 joblib workers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_impute import COVS, REGISTERS, YEARS, make_partial, mask, simulate_persons  # noqa: E402

from mse_helpers import seeds
from mse_helpers.stages import impute  # noqa: E402


def bundled_size_file(rng: np.random.Generator):
    """~5,000 persons; covariates missing at the rates of reports plus aggregate records."""
    frame = simulate_persons(5000, rng)
    for var, rate in (("S", 0.05), ("L", 0.03), ("N", 0.05), ("U", 0.08)):
        frame, _ = mask(frame, var, np.full(len(frame), rate), rng)
    # ~700 records of 2018 as after linking aggregates: S and L mostly unknown
    agg = (frame["year"] == 2018).to_numpy() & (rng.random(len(frame)) < 0.55)
    frame, _ = mask(frame, "S", np.where(agg, 0.9, 0.0), rng)
    frame, _ = mask(frame, "L", np.where(agg, 0.5, 0.0), rng)
    return frame


def time_it(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=25)
    parser.add_argument("--maxit", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    frame = bundled_size_file(rng)
    values = impute.encode_binary(frame, REGISTERS, COVS).to_numpy()
    year = frame["year"].to_numpy()
    # one fit: S from everything else, with starting values filled in
    filled = np.where(np.isnan(values), 0.0, values)
    j = REGISTERS.__len__()  # S
    observed = ~np.isnan(values[:, j])
    x = np.column_stack([np.delete(filled, j, axis=1), impute.year_dummies(year, YEARS)])
    y = filled[:, j]

    def records_fit():
        x_aug, y_aug, w_aug = impute.augment(x)
        design = sm.add_constant(np.vstack([x[observed], x_aug]), has_constant="add")
        sm.GLM(
            np.concatenate([y[observed], y_aug]),
            design,
            family=sm.families.Binomial(),
            freq_weights=np.concatenate([np.ones(observed.sum()), w_aug]),
        ).fit().cov_params()

    def patterns_fit():
        impute.logreg_posterior(y, observed, x)

    for _ in range(2):  # warm up both
        records_fit(), patterns_fit()
    t_records, t_patterns = time_it(records_fit, 20), time_it(patterns_fit, 20)
    n_patterns = len(impute.collapse_patterns(x[observed], y[observed])[0])
    print(f"records: {len(frame)}, missing cells: {int(np.isnan(values).sum())}")
    print(f"one posterior fit, GLM on {observed.sum()} records: {t_records * 1e3:.1f} ms")
    print(f"one posterior fit, GLM on {n_patterns} patterns:   {t_patterns * 1e3:.1f} ms")
    print(f"ratio records / patterns: {t_records / t_patterns:.1f}x")

    try:
        from mse_helpers.stages.prepare import link_partial_records
    except ImportError:
        link_partial_records = None
    if link_partial_records is not None:
        partial = make_partial(650, rng)
        complete = frame.copy()
        for var in COVS:  # linking needs persons; give it a complete file of the same size
            complete[var] = complete[var].fillna(complete[var].mode()[0])
        t_link = time_it(lambda: link_partial_records(complete, partial, [2016, 2017], seeds.rng(1, "link", 0)), 2)
        t_chain = time_it(
            lambda: impute.complete_dataset(
                0, frame, frame.iloc[:0], None, YEARS, REGISTERS, COVS, 1, args.maxit, None
            ),
            2,
        )
        print(f"per data set: linking {t_link:.2f} s, chained equations {t_chain:.2f} s, ratio {t_link / t_chain:.1f}x")

    empty = frame.iloc[:0]
    times = {}
    for n_jobs in (1, 2):
        start = time.perf_counter()
        impute.impute_datasets(
            frame, empty, None, YEARS, REGISTERS, COVS, seed=1, m=args.m, maxit=args.maxit, n_jobs=n_jobs
        )
        times[n_jobs] = time.perf_counter() - start
        print(f"m={args.m}, maxit={args.maxit}, n_jobs={n_jobs}: {times[n_jobs]:.1f} s")
    print(f"ratio n_jobs 1 / 2: {times[1] / times[2]:.2f}x")
    n_fits = args.m * args.maxit * len(COVS)
    print(
        f"estimated with GLM on records instead: ~{n_fits * t_records / 2:.0f} s on 2 workers "
        f"({n_fits} fits x {t_records * 1e3:.0f} ms / 2)"
    )


if __name__ == "__main__":
    main()
