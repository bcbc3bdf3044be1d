"""Benchmark: the log-linear engine against statsmodels GLM Poisson, side by side.

On a study-size table (6 lists x S L N U x 4 years = 4,096 cells, 4,032
observed) with every two-factor term (89 parameters) it times:

1. a cold fit (no start values; the engine's per-model caches cleared);
2. a warm-started refit after dropping one term;
3. a warm-started refit after adding it back;

in alternating blocks (statsmodels, engine, statsmodels, ...) so that
machine noise hits both alike, and prints the median time of each, the ratio,
and the largest relative difference in log-likelihood and N-hat between the
two. statsmodels gets the
same design matrix and, for the refits, the same start values
(``start_params``) as the engine, so the ratios are like for like.

A second table compares the engine's two paths side by side, again in
alternating blocks: the dense design (the default and the reference) and the
lattice path (``Design(..., lattice=True)``: subset sums over the binary
lattice, no design columns copied per model), for the same fits, a bootstrap
replicate refit, and (unless ``--no-selection``) backward AIC from all
two-factor terms on the table.

BLAS threads are set to 1 for both (unless the caller set them): the machine
is shared, and multi-threaded BLAS on small matrices is slower and noisier.

Run: ``.venv/bin/python benchmarks/bench_loglinear.py [--repeats 7]``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

from mse_helpers.codes import COVARIATES, REGISTERS  # noqa: E402
from mse_helpers.engine.cells import complete_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import group_matrix  # noqa: E402
from mse_helpers.engine.existence import check_existence  # noqa: E402
from mse_helpers.engine.fit import fit_model
from mse_helpers.engine.resample import parametric_bootstrap  # noqa: E402
from mse_helpers.stages import selection  # noqa: E402 - the benchmark times the stage's search

YEARS = (2016, 2017, 2018, 2019)
FACTORS = ("S", "L", "N", "U", "J")


def study_table(seed: int, persons_per_year: float) -> pd.DataFrame:
    """A synthetic table of the study's shape, drawn from a log-linear model.

    Inclusion probabilities of the six registers between 3% and 30%, a few
    referral interactions (P-R, O-R, P-K, I-Z), covariate and year effects;
    scaled so that ``persons_per_year`` are observed per year on average.
    """
    rng = np.random.default_rng(seed)
    levels = [(0, 1)] * 6 + [COVARIATES[c] for c in "SLNU"] + [YEARS]
    frame = pd.DataFrame(list(itertools.product(*levels)), columns=list(REGISTERS) + list(FACTORS))
    logit = {"I": -3.0, "K": -3.3, "O": -1.6, "P": -0.9, "R": -1.5, "Z": -1.9}
    eta = np.full(len(frame), np.log(persons_per_year / 16))
    for r, a in logit.items():
        eta += a * frame[r].to_numpy()
    for a, b, g in (("P", "R", 1.2), ("O", "R", 0.9), ("P", "K", 0.8), ("I", "Z", 0.5)):
        eta += g * frame[a].to_numpy() * frame[b].to_numpy()
    for c, (lo, hi) in {"S": ("F", "M"), "L": ("A", "M"), "N": ("NL", "O"), "U": ("S", "O")}.items():
        eta += rng.normal(0, 0.5) * (frame[c] == hi).to_numpy()
        eta += rng.normal(0, 0.3, 6) @ (frame[list(REGISTERS)].to_numpy().T * (frame[c] == hi).to_numpy())
    eta += frame["J"].map(dict(zip(YEARS, rng.normal(0, 0.2, 4)))).to_numpy()
    observed = frame[list(REGISTERS)].sum(axis=1).to_numpy() > 0
    # scale so that the expected number observed per year is persons_per_year
    eta += np.log(persons_per_year * len(YEARS) / np.exp(eta[observed]).sum())
    frame["count"] = rng.poisson(np.exp(eta))
    frame = frame[frame[list(REGISTERS)].sum(axis=1) > 0]
    return complete_table(frame, list(REGISTERS), list(FACTORS))


def sm_fit(design: Design, terms: tuple[str, ...], start: np.ndarray | None):
    cols = design.columns(terms)
    X = design.X_obs[:, cols]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(design.y, X, family=sm.families.Poisson()).fit(start_params=start)
    n_hat = design.y.sum() + np.exp(design.X_unobs[:, cols] @ res.params).sum()
    return res, n_hat


def start_vector(design: Design, terms: tuple[str, ...], coef: pd.Series) -> np.ndarray:
    names = [design.column_names[c] for c in design.columns(terms)]
    return coef.reindex(names).fillna(0.0).to_numpy()


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fits per block (median of all shown)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks of statsmodels and engine fits")
    parser.add_argument("--seed", type=int, default=20161231)
    parser.add_argument("--no-selection", action="store_true", help="skip the backward-AIC timing (about 15 s)")
    parser.add_argument(
        "--persons",
        type=float,
        default=1500.0,
        help="persons observed per year in the synthetic table (the study: about 1,300-1,900)",
    )
    args = parser.parse_args()

    table = study_table(args.seed, args.persons)
    t0 = time.perf_counter()
    design = Design(table, list(REGISTERS), list(FACTORS))
    t_design = time.perf_counter() - t0
    full = design.terms("all2")
    drop = "O:P"
    smaller = tuple(t for t in full if t != drop)
    y = design.y
    print(
        f"table: {len(table)} cells, {design.n_cells} observed, {int(y.sum())} persons observed, "
        f"{int((y == 0).sum())} observed cells are 0"
    )
    print(
        f"model: all {len(full)} two-factor terms, {design.n_params(full)} parameters; "
        f"design built once in {t_design * 1e3:.0f} ms"
    )
    for terms in (full, smaller):
        t_ex, exist = timed(lambda: check_existence(design, terms))
        if exist.status != "ok":
            raise SystemExit(f"benchmark table unusable: {exist.message}")
    print(f"existence + rank check (LP, not part of the timed fits): {t_ex * 1e3:.0f} ms")
    print(
        f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; median of "
        f"{args.rounds} x {args.repeats} fits each, in alternating blocks\n"
    )

    ours_full = fit_model(design, full, check=False)
    ours_small = fit_model(design, smaller, check=False)
    scenarios = [
        ("cold fit, all two-factor terms", full, None, None),
        (
            f"warm refit after dropping {drop}",
            smaller,
            ours_full.params,
            start_vector(design, smaller, ours_full.params),
        ),
        (
            f"warm refit after adding {drop} back",
            full,
            ours_small.params,
            start_vector(design, full, ours_small.params),
        ),
    ]
    header = (
        f"{'fit':<38}{'statsmodels':>12}{'ours':>10}{'ratio':>7}{'vs sm cold':>12}"
        f"{'rel.diff loglik':>17}{'rel.diff N-hat':>16}"
    )
    print(header)
    print("-" * len(header))
    sm_cold = None
    for name, terms, start, start_sm in scenarios:
        t_sm, t_us = [], []
        for _ in range(args.rounds):  # alternate blocks, so noise hits both alike
            for _ in range(args.repeats):
                dt, (res, n_hat_sm) = timed(lambda: sm_fit(design, terms, start_sm))
                t_sm.append(dt)
            for _ in range(args.repeats):
                design.clear_caches()  # every timed fit pays for its model matrix and plan
                dt, fit = timed(lambda: fit_model(design, terms, start=start, check=False))
                t_us.append(dt)
        m_sm, m_us = float(np.median(t_sm)), float(np.median(t_us))
        sm_cold = m_sm if sm_cold is None else sm_cold
        print(
            f"{name:<38}{m_sm * 1e3:>9.1f} ms{m_us * 1e3:>7.1f} ms{m_sm / m_us:>6.0f}x{sm_cold / m_us:>11.0f}x"
            f"{rel(fit.llf, res.llf):>17.1e}{rel(fit.n_hat, n_hat_sm):>16.1e}"
        )
    print("\nratio: statsmodels time / ours, statsmodels given the same start values;")
    print("vs sm cold: statsmodels' cold fit time / ours (what a refit saves over refitting from scratch)")
    print(
        f"N-hat (all two-factor terms): ours {ours_full.n_hat:,.3f}; "
        f"observed {y.sum():,.0f}; Newton iterations: cold {ours_full.n_iter}"
    )
    compare_paths(table, design, scenarios, args)


def compare_paths(table: pd.DataFrame, dense: Design, scenarios: list, args) -> None:
    """The dense design against the lattice path, side by side in alternating blocks."""
    lattice = Design(table, list(REGISTERS), list(FACTORS), lattice=True)
    assert lattice.uses_lattice
    full = dense.terms("all2")
    groups = group_matrix(dense.strata, list(FACTORS[:-1]))
    n_rep = 10

    fits = {id(d): fit_model(d, full, check=False) for d in (dense, lattice)}

    def replicate(design):
        # n_rep replicates of the stage's bootstrap (existence decided exactly, warm refit), same draws
        return parametric_bootstrap(fits[id(design)], n_rep, np.random.default_rng(1), groups)

    jobs = [
        (name, (lambda d, t=terms, s=start: fit_model(d, t, start=s, check=False)), 1)
        for name, terms, start, _ in scenarios
    ]
    jobs.append((f"bootstrap replicate (of {n_rep})", replicate, n_rep))
    header = f"\n{'engine path':<38}{'dense':>10}{'lattice':>10}{'ratio':>7}{'rel.diff N-hat':>16}"
    print(header)
    print("-" * (len(header) - 1))
    for name, job, per in jobs:
        t_d, t_l = [], []
        for _ in range(args.rounds):
            for times, design in ((t_d, dense), (t_l, lattice)):
                for _ in range(args.repeats if per == 1 else 1):
                    design.clear_caches()
                    dt, out_ = timed(lambda: job(design))
                    times.append(dt / per)
                    if design is dense:
                        out_d = out_
                    else:
                        out_l = out_
        n_d = out_d.n_hat if per == 1 else out_d.replicates[:, 0]
        n_l = out_l.n_hat if per == 1 else out_l.replicates[:, 0]
        diff = float(np.max(np.abs(np.asarray(n_l) - np.asarray(n_d)) / np.abs(n_d)))
        m_d, m_l = float(np.median(t_d)), float(np.median(t_l))
        print(f"{name:<38}{m_d * 1e3:>7.2f} ms{m_l * 1e3:>7.2f} ms{m_d / m_l:>6.1f}x{diff:>16.1e}")
    if not args.no_selection:
        out = {}
        for label, design in (("dense", dense), ("lattice", lattice), ("dense", dense), ("lattice", lattice)):
            design.clear_caches()
            dt, sel = timed(lambda: selection.backward(design, "all2", criterion="aic"))
            out.setdefault(label, []).append((dt, sel))
        (td, sd), (tl, sl) = min(out["dense"], key=lambda x: x[0]), min(out["lattice"], key=lambda x: x[0])
        print(
            f"{'backward AIC from all two-factor terms':<38}{td:>8.2f} s{tl:>8.2f} s{td / tl:>6.1f}x"
            f"{abs(sl.fit.n_hat - sd.fit.n_hat) / sd.fit.n_hat:>16.1e}"
        )
        print(
            f"  {sd.counter.fits:,} fits; removed terms identical: {sd.path == sl.path}; "
            f"N-hat {sd.fit.n_hat:,.3f} (dense) {sl.fit.n_hat:,.3f} (lattice); best of 2 runs each"
        )


if __name__ == "__main__":
    main()
