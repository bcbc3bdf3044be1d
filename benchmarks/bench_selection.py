"""Benchmark: the 2m model selections on the bundled data (m = 25 by default).

Makes the completed data sets with ``prepare.run_stage`` and ``impute.run_stage``
in a temporary folder, then runs the screening and the 50 selections (backward
AIC and forward BIC on every data set) with 1 and with 2 joblib workers, side by
side in this one run, checks that both give identical models, and prints wall
times and the numbers of fits and existence checks (LPs). The sensitivity
analyses are timed separately (with ``--sensitivity``).

Usage: ``python benchmarks/bench_selection.py [--m 25] [--repeat 2] [--sensitivity]``
"""

from __future__ import annotations

import os

# single-threaded BLAS before numpy loads (docs/engine.md: threaded BLAS is far slower here)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mse_helpers.runner.params import load_params  # noqa: E402
from mse_helpers.stages import (
    impute,  # noqa: E402
    prepare,
    selection,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, default=25)
    ap.add_argument("--sensitivity", action="store_true", help="also time the sensitivity analyses")
    ap.add_argument("--repeat", type=int, default=2, help="runs per number of workers (best is shown)")
    args = ap.parse_args()
    p = load_params(None, {"m": args.m, "sensitivity": []})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        t = time.perf_counter()
        prepare.run_stage(p, work)
        impute.run_stage(p, work)
        print(f"data: m = {p.m} completed data sets of the bundled data made in {time.perf_counter() - t:.1f} s")
        print(
            f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
            f"three-factor candidates k = {p.three_factor_candidates}; cores: {os.cpu_count()}"
        )
        runs: dict[int, selection.SelectionResult] = {}
        times: dict[int, list[float]] = {1: [], 2: []}
        # ABBA order, best of the repeats: the machine is shared, other jobs come and go
        order = [1, 2, 2, 1] * ((args.repeat + 1) // 2)
        for n_jobs in order[: 2 * args.repeat]:
            q = dataclasses.replace(p, n_jobs=n_jobs)
            selection._DESIGNS.clear()  # no head start from the previous run's designs
            t = time.perf_counter()
            res = selection.run_stage(q, work)
            res.stats["wall"] = time.perf_counter() - t
            times[n_jobs].append(res.stats["seconds_main"])
            if n_jobs not in runs or res.stats["seconds_main"] < runs[n_jobs].stats["seconds_main"]:
                if n_jobs in runs and runs[n_jobs].models != res.models:
                    raise SystemExit("repeated runs gave different models")
                runs[n_jobs] = res
        same = runs[1].models == runs[2].models
        print(
            f"runs of the {2 * p.m} selections (s): n_jobs=1: {', '.join(f'{x:.1f}' for x in times[1])}; "
            f"n_jobs=2: {', '.join(f'{x:.1f}' for x in times[2])}; the table shows the fastest of each"
        )
        print()
        print(f"{'':38}{'n_jobs=1':>12}{'n_jobs=2':>12}")
        rows = [
            ("screening on data set 0 (s)", "seconds_screening", "{:.1f}"),
            (f"{2 * p.m} selections (s)", "seconds_main", "{:.1f}"),
            ("whole stage incl. writing (s)", "wall", "{:.1f}"),
            ("fits, screening", "fits_screening", "{:,}"),
            ("existence checks (LP), screening", "checks_screening", "{:,}"),
            (f"fits, {2 * p.m} selections", "fits_main", "{:,}"),
            (f"existence checks (LP), {2 * p.m} selections", "checks_main", "{:,}"),
        ]
        for label, key, fmt in rows:
            print(f"{label:38}{fmt.format(runs[1].stats[key]):>12}{fmt.format(runs[2].stats[key]):>12}")
        r = runs[1].stats["seconds_main"] / runs[2].stats["seconds_main"]
        print(f"speed-up of the {2 * p.m} selections with 2 workers: {r:.2f}x; identical models: {same}")
        per_fit = runs[1].stats["seconds_main"] / max(runs[1].stats["fits_main"], 1) * 1e3
        print(f"mean time per fit incl. everything (n_jobs=1): {per_fit:.2f} ms")
        if args.sensitivity:
            for analysis in ("drop:K", "no-covariates"):
                q = dataclasses.replace(p, n_jobs=2, sensitivity=(analysis,), sensitivity_datasets=None)
                res = selection.run_stage(q, work)
                print(
                    f"sensitivity {analysis:>14}: {res.stats['seconds_sensitivity']:.1f} s for both "
                    f"selections on {p.m} data sets (n_jobs=2), {res.stats['fits_sensitivity']:,} fits"
                )


if __name__ == "__main__":
    main()
