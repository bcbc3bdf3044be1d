"""Benchmark: the grouped profile-likelihood interval, fast path against the slow oracle, side by side.

On a study-size table (6 lists x S L N U x 4 years: 64 strata, 4,032 observed
cells; ``bench_loglinear.study_table``) and two models (every two-factor term,
89 parameters; a selected-size model of 24), it times:

1. :func:`engine.profile.group_profile_intervals` for all 165 report groups
   (:func:`engine.estimates.group_matrix`): per group and model, both bounds;
2. the slow way for a few groups (the total, ``S=F``, one year's ``N=O&U=O``):
   the profile log-likelihood maximised at each dark number by scipy's SLSQP
   under the constraint ``log sum_{s in g} exp(x0_s beta) = log D``, and
   ``brentq`` in ``log D`` for the 3.84 drop (the oracle of tests/test_profile.py),

and prints the time per group of each, the ratio, and the largest relative
difference of the bounds. One run, same machine, same groups.

Run: ``.venv/bin/python benchmarks/bench_profile.py``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import optimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_loglinear import FACTORS, REGISTERS, study_table  # noqa: E402

from mse_helpers.engine.design import Design  # noqa: E402
from mse_helpers.engine.estimates import group_matrix  # noqa: E402
from mse_helpers.engine.fit import fit_model  # noqa: E402
from mse_helpers.engine.profile import group_profile_intervals  # noqa: E402

CRIT = 3.841458820694124
SMALL = "P:R,O:R,K:P,I:Z,P:S,R:L,O:U,J:P"


def slow_bounds(fit, mask: np.ndarray) -> tuple[float, float]:
    """The dark number's profile bounds by SLSQP at each D and brentq (the test oracle)."""
    X, X0 = fit.design.X_obs[:, fit.cols], fit.design.X_unobs[:, fit.cols][mask]
    y = fit.y

    def llf(b):
        eta = X @ b
        return float(y @ eta - np.exp(eta).sum())

    l_hat = llf(fit.beta)
    scale = abs(l_hat)

    def log_g(b):
        e = X0 @ b
        return e.max() + np.log(np.exp(e - e.max()).sum())

    def grad_log_g(b):
        e = X0 @ b
        w = np.exp(e - e.max())
        return (w / w.sum()) @ X0

    def dev(log_d):
        res = optimize.minimize(
            lambda b: -llf(b) / scale,
            fit.beta,
            jac=lambda b: -(X.T @ (y - np.exp(X @ b))) / scale,
            method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda b: log_g(b) - log_d, "jac": grad_log_g}],
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        return 2 * (l_hat - llf(res.x)) - CRIT

    d = np.log(np.exp(X0 @ fit.beta).sum())
    lo = optimize.brentq(dev, d - 1.0, d, xtol=1e-10)
    hi = optimize.brentq(dev, d, d + 1.0, xtol=1e-10)
    return float(np.exp(lo)), float(np.exp(hi))


def main() -> None:
    table = study_table(20161231, 1500.0)
    design = Design(table, list(REGISTERS), list(FACTORS))
    groups = group_matrix(design.strata, ["S", "L", "N", "U"], "J")
    slow_rows = [0, groups.group.index("S=F"), len(groups.group) - 1]
    print(
        f"table: {design.n_cells} observed cells, {design.n_strata} strata; {len(groups.group)} report groups; "
        f"slow oracle on groups {[f'{groups.year[i]} {groups.group[i]}' for i in slow_rows]}"
    )
    print(
        f"{'model':<28}{'params':>7}{'fast ms/group':>15}{'iters/group':>13}{'slow ms/group':>15}{'ratio':>9}{'max rel diff':>14}"
    )
    for terms in ("all2", SMALL):
        fit = fit_model(design, design.terms(terms))
        t0 = time.perf_counter()
        fast = group_profile_intervals(fit, groups.matrix)
        t_fast = (time.perf_counter() - t0) / len(fast)
        t0 = time.perf_counter()
        slow = [slow_bounds(fit, groups.matrix[i] > 0) for i in slow_rows]
        t_slow = (time.perf_counter() - t0) / len(slow_rows)
        diff = max(
            max(abs(fast[i].lower - fast[i].n_obs - lo) / lo, abs(fast[i].upper - fast[i].n_obs - hi) / hi)
            for i, (lo, hi) in zip(slow_rows, slow)
        )
        name = "all two-factor terms" if terms == "all2" else "8 terms (selected size)"
        iters = np.mean([f.n_iter for f in fast])
        print(
            f"{name:<28}{fit.n_params:>7}{t_fast * 1e3:>15.2f}{iters:>13.1f}{t_slow * 1e3:>15.0f}"
            f"{t_slow / t_fast:>9.0f}{diff:>14.1e}"
        )


if __name__ == "__main__":
    main()
