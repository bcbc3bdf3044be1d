"""Benchmark: the grouped profile-likelihood interval, fast path against the slow oracle, side by side.

On a study-size table (6 lists x S L N U x 4 years: 64 strata, 4,032 observed
cells; ``bench_loglinear.study_table``) and two models (every two-factor term,
89 parameters; a selected-size model of 24), it times:

1. :func:`engine.profile.group_profile_intervals` for all 165 report groups
   (:func:`engine.estimates.group_matrix`): per group and model, both bounds;
2. the slow way for a few groups (the total, ``S=F``, one year's ``N=O&U=O``):
   ``Oracle`` of tests/test_profile.py, imported from there: the profile
   log-likelihood maximised at each dark number by a general optimiser (scipy's
   SLSQP under the constraint ``log sum_{s in g} exp(x0_s beta) = log D``;
   statsmodels with an offset for a group of one stratum), and ``brentq`` in
   ``log D`` for the 3.84 drop,

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

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from bench_loglinear import FACTORS, REGISTERS, study_table  # noqa: E402
from test_profile import Oracle  # noqa: E402  (the slow oracle of the tests: one copy)

from mse_helpers.engine.design import Design  # noqa: E402
from mse_helpers.engine.estimates import group_matrix  # noqa: E402
from mse_helpers.engine.fit import fit_model  # noqa: E402
from mse_helpers.engine.profile import group_profile_intervals  # noqa: E402

SMALL = "P:R,O:R,K:P,I:Z,P:S,R:L,O:U,J:P"


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
        oracle = Oracle(fit)
        slow = [oracle.bounds(groups.matrix[i]) for i in slow_rows]
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
