"""What the local search of ``uncertainty: reselect`` misses: local against full search on replicates.

For a few models of a run's ``work/models.json`` and a few of their bootstrap
replicates (the same replicates ``uncertainty: reselect`` draws: the same
streams), re-select the model type twice:

- **local** (what ``reselect`` does, :func:`mse_helpers.stages.uncertainty.reselect`):
  from the selected model, backward and forward AIC until nothing improves
  (then forward BIC over the screened three-factor terms for that type);
- **full** (the study's selection, :func:`mse_helpers.stages.uncertainty.full_search`):
  backward AIC from all two-factor terms (repaired until the MLE exists), then
  forward BIC.

Prints per replicate: whether the two chose the same terms, their AIC (BIC for
the three-factor type; columns ``local`` and ``full``) on the replicate, N-hat in total (and the difference)
and the seconds of each search.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/reselect_check.py --work reports/<run>/work --models 0 1 --replicates 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from mse_helpers import runfolder, seeds  # noqa: E402
from mse_helpers.codes import model_factors  # noqa: E402
from mse_helpers.engine.cells import dataset_table  # noqa: E402
from mse_helpers.engine.design import Design  # noqa: E402
from mse_helpers.engine.fit import fit_model  # noqa: E402
from mse_helpers.runner.params import load_params  # noqa: E402
from mse_helpers.stages import bootstrap, selection  # noqa: E402
from mse_helpers.stages import uncertainty as unc  # noqa: E402


def compare(work: Path, model_ids: list[int], n_rep: int, seed: int, registers, covariates) -> pd.DataFrame:
    """Local and full re-selection on replicates ``0..n_rep-1`` of the given models."""
    models = bootstrap.read_models(work)
    years = runfolder.analysed_years(runfolder.read_prep_summary(work))
    candidates = unc.screened_candidates(work)
    rows = []
    for k in model_ids:
        mod = models[k]
        persons = runfolder.read_imputed(runfolder.imputed_path(work, mod["dataset"]))
        table = dataset_table(persons, registers, covariates, years)
        three = sorted({*candidates, *(t for t in mod["terms"] if t.count(":") >= 2)})
        design = Design(table, list(registers), list(model_factors(covariates, years)), three_factor=three or None)
        y0 = table["count"].to_numpy()[table["observed"].to_numpy().astype(bool)].astype(float)
        fit = fit_model(design, design.canonical(tuple(mod["terms"])), counts=y0, explain=False)
        crit = "aic" if mod["type"] == selection.TWO_FACTOR else "bic"
        for b in range(n_rep):
            rng = seeds.rng(seed, "bootstrap", k, unc.RESELECT_STREAM, b)
            y = rng.poisson(fit.fitted).astype(float)
            t0 = time.perf_counter()
            local, status = unc.reselect(design, fit, mod["type"], y, candidates)
            t1 = time.perf_counter()
            full = unc.full_search(design, mod["type"], y, candidates)
            t2 = time.perf_counter()
            lf = local.fit if local is not None else None
            rows.append(
                {
                    "model": k,
                    "type": mod["type"],
                    "replicate": b,
                    "status": status,
                    "same_terms": lf is not None and set(lf.terms) == set(full.terms),
                    "terms_local_only": ";".join(sorted(set(lf.terms) - set(full.terms))) if lf else "",
                    "terms_full_only": ";".join(sorted(set(full.terms) - set(lf.terms))) if lf else "",
                    "criterion": crit,
                    "local": getattr(lf, crit) if lf else float("nan"),
                    "full": getattr(full, crit),
                    "n_hat_local": lf.n_hat if lf else float("nan"),
                    "n_hat_full": full.n_hat,
                    "rel_diff": (lf.n_hat - full.n_hat) / full.n_hat if lf else float("nan"),
                    "s_local": t1 - t0,
                    "s_full": t2 - t1,
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a run's work folder (models.json, screening.csv, imputed/)")
    parser.add_argument("--models", type=int, nargs="+", default=[0, 1], help="positions in models.json")
    parser.add_argument("--replicates", type=int, default=3, help="replicates per model")
    parser.add_argument("--seed", type=int, help="master seed of the run (default: the default seed)")
    args = parser.parse_args(argv)
    p = load_params(None, {} if args.seed is None else {"seed": args.seed})
    start = time.perf_counter()
    out = compare(Path(args.work), args.models, args.replicates, p.seed, tuple(p.registers), tuple(p.covariates))
    print(
        f"local against full re-selection: models {args.models}, {args.replicates} replicates each, "
        f"seed {p.seed}; {time.perf_counter() - start:.0f} s\n"
    )
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        print(out.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    crit = out["local"] - out["full"]
    print(
        f"\nsame terms: {int(out['same_terms'].sum())} of {len(out)}; criterion local - full: "
        f"lower {int((crit < -1e-6).sum())}, equal {int((crit.abs() <= 1e-6).sum())}, higher {int((crit > 1e-6).sum())}; "
        f"mean |N-hat difference| "
        f"{out['rel_diff'].abs().mean():.2%}; seconds per replicate: local {out['s_local'].mean():.2f}, "
        f"full {out['s_full'].mean():.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
