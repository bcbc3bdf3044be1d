"""Where the error of the aggregate years comes from: linking targets versus the rest.

For each of S simulated populations (:func:`mse_helpers.synthetic.simulator.simulate`,
the same population seeds as ``scripts/coverage.py``) one *fixed* log-linear
model is fitted: the simulator's own structure (every two-factor term between
covariates and year, every register x covariate and register x year term, and
the register pairs of ``simulate.DELTA``; a term the existence check blames
in a sparse data set is left out). No model selection, so what differs
between the variants is only the data the model sees:

- ``oracle``: the true registered persons (nothing withheld, nothing missing);
- ``linking expected``: data preparation, linking with the study's fixed targets
  round(q(p) T) (docs/method.md 3.5), imputation;
- ``linking draw``: the same with the default drawn targets (``linking: draw``);
- ``linking true q``: the same, but the targets use the *year's own true*
  pattern distribution of the withholding register (known only in a
  simulation): what linking could do at best.

Prints the mean and SD over populations of the relative error of N-hat per
year, each variant's N-hat being the mean over its m completed data sets.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/linking_check.py --populations 12 --m 3
"""

from __future__ import annotations

import argparse
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

from mse_helpers.codes import COVARIATES, REGISTERS, YEAR  # noqa: E402
from mse_helpers.engine.cells import dataset_table
from mse_helpers.engine.design import Design
from mse_helpers.engine.estimates import n_hat_by
from mse_helpers.engine.fit import fit_model
from mse_helpers.runner.params import load_params  # noqa: E402
from mse_helpers.stages import (
    impute,  # noqa: E402
    prepare,
)
from mse_helpers.synthetic import simulator as simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coverage import population_seed, write_oracle_data  # noqa: E402

VARIANTS = ("oracle", "linking expected", "linking draw", "linking true q")


def true_model_terms(design: Design) -> list[str]:
    """The simulator's structure: all two-factor terms except register pairs not in DELTA."""
    pairs = {frozenset(p) for p in simulate.DELTA}
    out = []
    for term in design.terms("all2"):
        a, b = term.split(":")
        if a in REGISTERS and b in REGISTERS and frozenset((a, b)) not in pairs:
            continue
        out.append(term)
    return out


def n_hat_per_year(persons: pd.DataFrame, years: list[int]) -> dict[int, float]:
    """N-hat per year of the fixed model on one completed person-level file."""
    table = dataset_table(persons, list(REGISTERS), list(COVARIATES), years)
    design = Design(table, list(REGISTERS), list(COVARIATES) + [YEAR])
    terms = true_model_terms(design)
    fit = fit_model(design, terms)
    while not fit.ok:  # sparse data: leave out the terms the existence check blames (docs/method.md 5)
        blamed = set(fit.responsible) & set(terms)
        if not blamed:
            raise RuntimeError(f"fixed model: {fit.status}, no term blamed")
        terms = [t for t in terms if t not in blamed]
        fit = fit_model(design, terms)
    by = n_hat_by(fit, YEAR)
    return dict(zip(by[YEAR].astype(int), by["n_hat"]))


def true_q_linking(true_persons: pd.DataFrame):
    """A linking function whose targets use each year's true pattern distribution."""

    def link(persons, partial, reference_years, rng):
        out = persons
        for year in sorted(partial["year"].unique()):
            out = prepare.link_partial_records(
                out, partial[partial["year"] == year], [int(year)], rng, targets="expected", reference=true_persons
            )
        return out

    return link


def one_population(s: int, years: list[int], m: int, base_seed: int, tmp: Path) -> list[dict]:
    seed = population_seed(base_seed, s)
    data = simulate.simulate(years, seed)
    folder = tmp / f"pop_{s:03d}"
    paths = simulate.write_data(data, folder / "data")
    p = load_params(
        None,
        {
            "reports": str(paths["reports"]),
            "aggregates": str(paths["aggregates"]),
            "register_map": str(paths["register_map"]),
            "years": list(years),
        },
    )
    prep = prepare.build(p)
    write_oracle_data(data, years, folder / "oracle")
    oracle = pd.read_parquet(folder / "oracle" / impute.IMPUTED_DIR / "imp_000.parquet")
    truth = data.truth[data.truth["group"] == "total"].set_index("year")["n_true"]
    links = {
        "linking expected": lambda a, b, c, rng: prepare.link_partial_records(a, b, c, rng, targets="expected"),
        "linking draw": lambda a, b, c, rng: prepare.link_partial_records(a, b, c, rng, targets="draw"),
        "linking true q": true_q_linking(oracle),
    }
    estimates = {"oracle": n_hat_per_year(oracle, years)}
    for name, link in links.items():
        per_set = [
            n_hat_per_year(
                impute.complete_dataset(
                    i,
                    prep.persons,
                    prep.partial,
                    p.reference_years or prep.summary["reference_years"],
                    years,
                    list(REGISTERS),
                    list(COVARIATES),
                    seed,
                    p.maxit,
                    link,
                ).completed,
                years,
            )
            for i in range(m)
        ]
        estimates[name] = {y: float(np.mean([e[y] for e in per_set])) for y in years}
    return [
        {"population": s, "variant": v, "year": y, "rel_error": estimates[v][y] / truth[y] - 1}
        for v in VARIANTS
        for y in years
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, default=12)
    parser.add_argument("--years", default="2016-2019")
    parser.add_argument("--m", type=int, default=3, help="completed data sets per population and variant")
    parser.add_argument("--seed", type=int, default=20240607, help="seed of the population seeds")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    a, _, b = args.years.partition("-")
    years = list(range(int(a), int(b or a) + 1))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mse_linking_") as tmp:
        rows = Parallel(n_jobs=args.n_jobs)(
            delayed(one_population)(s, years, args.m, args.seed, Path(tmp)) for s in range(args.populations)
        )
    df = pd.DataFrame([r for rs in rows for r in rs])
    print(
        f"linking check: {args.populations} populations, years {years[0]}-{years[-1]}, m = {args.m}, "
        f"seed {args.seed}; fixed model = the simulator's structure; {time.perf_counter() - start:.0f} s\n"
    )
    mean = df.pivot_table(index="variant", columns="year", values="rel_error", aggfunc="mean").loc[list(VARIANTS)]
    sd = df.pivot_table(index="variant", columns="year", values="rel_error", aggfunc="std").loc[list(VARIANTS)]
    print("| variant | " + " | ".join(str(y) for y in years) + " |")
    print("|---|" + "---|" * len(years))
    for v in VARIANTS:
        print(f"| {v} | " + " | ".join(f"{mean.loc[v, y]:+.1%} (SD {sd.loc[v, y]:.1%})" for y in years) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
