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

A second table compares, again in alternating blocks, issue 14's engine
(``--baseline``, default commit d17393a: ``git archive`` of it imported as the
package ``mse_baseline``, same table), the dense design of this engine
(``lattice=False``, the tested reference) and the lattice path (the default:
subset sums over the binary lattice, no design columns copied per model), for
the same fits and a bootstrap replicate refit; then (unless ``--no-selection``)
backward AIC from all two-factor terms with every candidate refitted and with
the bounded search (``selection.backward``, the default).

With ``--scaling`` a third table gives the time per fit and per backward
selection for 4, 8 and 16 years and 6 and 8 registers (issue 14 item 4).

BLAS threads are set to 1 for both (unless the caller set them): the machine
is shared, and multi-threaded BLAS on small matrices is slower and noisier.

Run: ``.venv/bin/python benchmarks/bench_loglinear.py [--repeats 7] [--scaling] [--baseline COMMIT]``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

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
ROOT = Path(__file__).resolve().parents[1]
#: The engine of issue 14 (the dense path, every candidate refitted).
BASELINE = "d17393a"
FACTORS = ("S", "L", "N", "U", "J")


def study_table(seed: int, persons_per_year: float, registers=REGISTERS, years=YEARS) -> pd.DataFrame:
    """A synthetic table of the study's shape, drawn from a log-linear model.

    Inclusion probabilities of the six registers between 3% and 30% (extra
    registers, for the scaling table, about 8-12%), a few referral interactions
    (P-R, O-R, P-K, I-Z), covariate and year effects; scaled so that
    ``persons_per_year`` are observed per year on average.
    """
    rng = np.random.default_rng(seed)
    regs = list(registers)
    levels = [(0, 1)] * len(regs) + [COVARIATES[c] for c in "SLNU"] + [tuple(years)]
    frame = pd.DataFrame(list(itertools.product(*levels)), columns=regs + list(FACTORS))
    logit = {"I": -3.0, "K": -3.3, "O": -1.6, "P": -0.9, "R": -1.5, "Z": -1.9, "X": -2.5, "Y": -2.0}
    eta = np.full(len(frame), np.log(persons_per_year / 16))
    for r in regs:
        eta += logit[r] * frame[r].to_numpy()
    for a, b, g in (("P", "R", 1.2), ("O", "R", 0.9), ("P", "K", 0.8), ("I", "Z", 0.5)):
        eta += g * frame[a].to_numpy() * frame[b].to_numpy()
    for c, (lo, hi) in {"S": ("F", "M"), "L": ("A", "M"), "N": ("NL", "O"), "U": ("S", "O")}.items():
        eta += rng.normal(0, 0.5) * (frame[c] == hi).to_numpy()
        eta += rng.normal(0, 0.3, len(regs)) @ (frame[regs].to_numpy().T * (frame[c] == hi).to_numpy())
    eta += frame["J"].map(dict(zip(years, rng.normal(0, 0.2, len(years))))).to_numpy()
    observed = frame[regs].sum(axis=1).to_numpy() > 0
    # scale so that the expected number observed per year is persons_per_year
    eta += np.log(persons_per_year * len(years) / np.exp(eta[observed]).sum())
    frame["count"] = rng.poisson(np.exp(eta))
    frame = frame[frame[regs].sum(axis=1) > 0]
    return complete_table(frame, regs, list(FACTORS))


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
    parser.add_argument("--baseline", default=BASELINE, help='git commit of issue 14\'s engine ("": none)')
    parser.add_argument("--scaling", action="store_true", help="also time 4/8/16 years and 6/8 registers")
    parser.add_argument(
        "--persons",
        type=float,
        default=1500.0,
        help="persons observed per year in the synthetic table (the study: about 1,300-1,900)",
    )
    args = parser.parse_args()

    table = study_table(args.seed, args.persons)
    t0 = time.perf_counter()
    design = Design(table, list(REGISTERS), list(FACTORS), lattice=True)  # the bootstrap's path
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
    compare_paths(table, scenarios, args)
    if args.scaling:
        scaling(args)


def baseline_engine(commit: str, tmp: Path):
    """Issue 14's engine (``git archive`` of ``commit``) importable as the package ``mse_baseline``.

    The package imports itself only relatively, so renamed it runs side by side with this one.
    """
    archive = subprocess.run(["git", "archive", commit, "mse_helpers"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    (tmp / "mse_helpers").rename(tmp / "mse_baseline")
    sys.path.insert(0, str(tmp))
    mods = {
        m: importlib.import_module(f"mse_baseline.{m}") for m in ("engine.design", "engine.fit", "stages.selection")
    }
    mods["engine.resample"] = importlib.import_module("mse_baseline.engine.resample")
    return mods


def compare_paths(table: pd.DataFrame, scenarios: list, args) -> None:
    """Issue 14's engine, the dense path and the lattice path, side by side in alternating blocks."""
    engines = {
        "dense": (Design(table, list(REGISTERS), list(FACTORS), lattice=False), fit_model, parametric_bootstrap),
        "lattice": (Design(table, list(REGISTERS), list(FACTORS), lattice=True), fit_model, parametric_bootstrap),
    }
    assert engines["lattice"][0].uses_lattice and not engines["dense"][0].uses_lattice
    backward = {"dense": selection.backward, "lattice": selection.backward}
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            base = baseline_engine(args.baseline, Path(tmp))
            d = base["engine.design"].Design(table, list(REGISTERS), list(FACTORS))
            engines = {
                "issue": (d, base["engine.fit"].fit_model, base["engine.resample"].parametric_bootstrap)
            } | engines
            backward["issue"] = base["stages.selection"].backward
            _compare(engines, backward, scenarios, args)
    else:
        _compare(engines, backward, scenarios, args)


def _compare(engines: dict, backward: dict, scenarios: list, args) -> None:
    names = list(engines)
    dense = engines["dense"][0]
    full = dense.terms("all2")
    groups = group_matrix(dense.strata, list(FACTORS[:-1]))
    n_rep = 20
    fits = {k: fm(d, full, check=False) for k, (d, fm, _) in engines.items()}

    def job_fit(k, terms, start):
        d, fm, _ = engines[k]
        return fm(d, terms, start=start, check=False)

    def job_boot(k):
        # n_rep replicates of the stage's bootstrap (existence decided exactly, warm refit), same draws
        return engines[k][2](fits[k], n_rep, np.random.default_rng(1), groups)

    jobs = [(name, (lambda k, t=terms, s=start: job_fit(k, t, s)), 1) for name, terms, start, _ in scenarios]
    jobs.append((f"bootstrap replicate (of {n_rep})", job_boot, n_rep))
    head = "".join(f"{('issue 14' if k == 'issue' else k):>11}" for k in names)
    ref = "issue" if "issue" in engines else "dense"
    header = f"\n{'engine path':<38}{head}{f'{ref}/lattice':>15}{'rel.diff N-hat':>16}"
    print(header)
    print("-" * (len(header) - 1))
    for name, job, per in jobs:
        times = {k: [] for k in names}
        out = {}
        for _ in range(args.rounds):
            for k in names:  # alternating blocks
                for _ in range(args.repeats if per == 1 else 1):
                    engines[k][0].clear_caches()
                    dt, out[k] = timed(lambda: job(k))
                    times[k].append(dt / per)
        n_hat = {k: (o.n_hat if per == 1 else o.replicates[:, 0]) for k, o in out.items()}
        diff = max(
            float(np.max(np.abs(np.asarray(n_hat[k]) - np.asarray(n_hat[ref])) / np.abs(n_hat[ref]))) for k in names
        )
        med = {k: float(np.median(v)) for k, v in times.items()}
        cells = "".join(f"{med[k] * 1e3:>8.2f} ms" for k in names)
        print(f"{name:<38}{cells}{med[ref] / med['lattice']:>14.1f}x{diff:>16.1e}")
    if args.no_selection:
        return
    runs = {}
    order = [(k, b) for k in names for b in ((False,) if k == "issue" else (False, True))]
    for key in order + order[::-1]:  # ABBA, best of 2 each
        k, bounded = key
        d = engines[k][0]
        d.clear_caches()
        kw = {"bounded": bounded} if k != "issue" else {}
        dt, sel = timed(lambda: backward[k](d, "all2", criterion="aic", **kw))
        if key not in runs or dt < runs[key][0]:
            runs[key] = (dt, sel)
    t_ref, s_ref = runs[(ref, False)]
    print(f"\nbackward AIC from all two-factor terms (best of 2 runs each; {ref}: every candidate refitted)")
    print(f"{'engine path, search':<38}{'seconds':>9}{'fits':>8}{f'{ref}/this':>11}  same removals and N-hat")
    for (k, bounded), (dt, sel) in runs.items():
        same = sel.path == s_ref.path and abs(sel.fit.n_hat - s_ref.fit.n_hat) <= 1e-9 * s_ref.fit.n_hat
        label = f"{'issue 14' if k == 'issue' else k}, {'bounded' if bounded else 'full search'}"
        print(f"{label:<38}{dt:>9.3f}{sel.counter.fits:>8,}{t_ref / dt:>10.1f}x  {same}")
    print(f"  N-hat {s_ref.fit.n_hat:,.3f}; {len(s_ref.path)} terms removed")


def scaling(args) -> None:
    """Time per fit and per backward selection for 4, 8 and 16 years and 6 and 8 registers (item 4)."""
    print(
        "\nhow cost grows (lattice path, bounded backward AIC from all two-factor terms): synthetic tables, "
        "4 binary covariates, about 1,500 persons observed per year"
    )
    print(
        f"{'registers':>9}{'years':>6}{'cells':>8}{'params':>7}{'cold fit':>11}{'warm refit':>12}"
        f"{'backward AIC':>14}{'fits':>6}{'steps':>6}{'us/(cell x param)':>19}"
    )
    for n_reg, n_years in ((6, 4), (6, 8), (6, 16), (8, 4), (8, 8), (8, 16)):
        regs = list(REGISTERS) + ["X", "Y"][: n_reg - 6]
        years = tuple(range(2016, 2016 + n_years))
        table = study_table(args.seed, args.persons, registers=regs, years=years)
        d = Design(table, regs, ["S", "L", "N", "U", "J"], lattice=True)
        full = d.terms("all2")
        p = d.n_params(full)
        t_cold, f = timed(lambda: fit_model(d, full, check=False))
        smaller = tuple(t for t in full if t != full[0])
        d.clear_caches()
        t_warm, _ = timed(lambda: fit_model(d, smaller, start=f.params, check=False))
        d.clear_caches()
        t_sel, sel = timed(lambda: selection.backward(d, "all2", criterion="aic"))
        print(
            f"{n_reg:>9}{n_years:>6}{d.n_cells:>8,}{p:>7}{t_cold * 1e3:>8.0f} ms{t_warm * 1e3:>9.0f} ms"
            f"{t_sel:>12.2f} s{sel.counter.fits:>6}{len(sel.path) + 1:>6}{t_warm / (d.n_cells * p) * 1e6:>19.4f}"
        )


if __name__ == "__main__":
    main()
