"""Benchmark: backward AIC on one completed data set and the 2m model selections, against the issue's engine.

Makes the completed data sets of the bundled data (``prepare.run_stage`` and
``impute.run_stage``, m = 25 by default) in a temporary folder, then times, side by
side in this one run and in alternating order (the machine is shared):

1. backward AIC from all two-factor terms on completed data set 0 (the start repaired
   by the existence check first, as the stage does; best of 3): this engine (bounded
   search on the lattice path), its full search (every candidate refitted), and the
   engine of issue 14 (git commit ``--baseline``, run from ``git archive`` of that
   commit in a child process with the same data);
2. the screening and the 2m selections of the stage (``selection.run_stage``,
   sensitivity analyses off) with 2 workers, both engines, and with 1 worker this engine;

and prints times, ratios, numbers of fits and existence checks, and whether the removed
terms, the selected models and their N-hat are identical.

Usage: ``python benchmarks/bench_selection.py [--m 25] [--baseline d17393a | --baseline ""]``
"""

from __future__ import annotations

import os

# single-threaded BLAS before numpy loads (docs/engine.md: threaded BLAS is far slower here)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The engine of issue 14 (the dense path, every candidate refitted).
BASELINE = "d17393a"


def child_backward(work: Path, full: bool) -> dict:
    """Backward AIC on data set 0 with whatever ``mse_helpers`` is importable (best of 3)."""
    from mse_helpers import runfolder
    from mse_helpers.codes import model_factors
    from mse_helpers.engine.cells import dataset_table
    from mse_helpers.runner.params import load_params
    from mse_helpers.stages import selection

    p = load_params(None, None)
    years = runfolder.analysed_years(runfolder.read_prep_summary(work))
    persons = runfolder.read_imputed(runfolder.imputed_files(work, range(1))[0])
    table = dataset_table(persons, p.registers, p.covariates, years)
    factors = model_factors(p.covariates, years)
    # the issue's engine has no bounded search: it always refits every candidate
    kw = {"bounded": False} if full and "bounded" in inspect.signature(selection.backward).parameters else {}
    times = []
    for _ in range(3):
        selection._DESIGNS.clear()  # every run builds its design
        t0 = time.perf_counter()
        d, y = selection.design_for(table, p.registers, factors)
        sel = selection.backward(d, "all2", counts=y, criterion="aic", **kw)
        times.append(time.perf_counter() - t0)
    return {
        "seconds": min(times),
        "fits": sel.counter.fits,
        "checks": sel.counter.checks,
        "removed": [r["term"] for r in sel.refused] + list(sel.path),
        "n_hat": sel.fit.n_hat,
        "params": int(d.n_params(d.terms("all2"))),
        "cells": int(d.n_cells),
    }


def child_selections(work: Path, m: int, n_jobs: int) -> dict:
    """The stage's screening and 2m selections (sensitivity off) in a copy of ``work``."""
    from mse_helpers.runner.params import load_params
    from mse_helpers.stages import selection

    p = load_params(None, {"m": m, "n_jobs": n_jobs, "sensitivity": []})
    res = selection.run_stage(p, work)
    models = [(x.dataset, x.type, list(x.terms), x.n_hat.get("total")) for x in res.models]
    return {k: res.stats[k] for k in ("seconds_screening", "seconds_main", "fits_main", "checks_main")} | {
        "models": models
    }


def run_child(tree: Path, *argv: str) -> dict:
    """This script in child mode with ``mse_helpers`` from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *argv],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {argv} in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, default=25)
    ap.add_argument("--baseline", default=BASELINE, help='git commit of the engine to compare with ("": none)')
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, work = args.child[0], Path(args.child[1])
        if kind == "backward":
            out = child_backward(work, full=args.child[2] == "full")
        else:
            out = child_selections(work, int(args.child[2]), int(args.child[3]))
        print(json.dumps(out))
        return

    from mse_helpers.runner.params import load_params
    from mse_helpers.stages import impute, prepare

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"now": ROOT}
        if args.baseline:
            base = tmp / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            trees["issue"] = base
        work = tmp / "work"
        p = load_params(None, {"m": args.m, "sensitivity": []})
        t = time.perf_counter()
        prepare.run_stage(p, work)
        impute.run_stage(p, work)
        print(f"data: m = {p.m} completed data sets of the bundled data made in {time.perf_counter() - t:.1f} s")
        print(
            f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; cores: {os.cpu_count()}; "
            f"load average at start: {load()}; baseline: {args.baseline or 'none'}"
        )

        # 1. backward AIC on data set 0
        jobs = [("now", "bounded"), ("now", "full")] + ([("issue", "full")] if "issue" in trees else [])
        back = {}
        for key in jobs + jobs[::-1]:  # ABBA: each twice, the best kept
            r = run_child(trees[key[0]], "backward", str(work), key[1])
            if key not in back or r["seconds"] < back[key]["seconds"]:
                back[key] = r
        ref = back[("now", "full")]
        print(
            f"\n1. backward AIC from all two-factor terms, completed data set 0 "
            f"({ref['cells']:,} observed cells, {ref['params']} parameters), best of 3 x 2 runs"
        )
        print(f"{'engine':<44}{'seconds':>9}{'fits':>7}{'LPs':>5}  same removals and N-hat as issue's")
        issue = back.get(("issue", "full"), ref)
        labels = {
            ("now", "bounded"): "now: bounded search (default)",
            ("now", "full"): "now: full search (bounded=False)",
            ("issue", "full"): f"issue 14's engine ({args.baseline}), full search",
        }
        for key in jobs:
            r = back[key]
            same = r["removed"] == issue["removed"] and abs(r["n_hat"] - issue["n_hat"]) <= 1e-9 * issue["n_hat"]
            print(f"{labels[key]:<44}{r['seconds']:>9.3f}{r['fits']:>7,}{r['checks']:>5}  {same}")
        t_new = back[("now", "bounded")]["seconds"]
        print(
            f"ratio issue's engine / now: {issue['seconds'] / t_new:.1f}x; full search / bounded: "
            f"{ref['seconds'] / t_new:.1f}x; N-hat {back[('now', 'bounded')]['n_hat']:,.3f}; "
            f"{len(ref['removed'])} terms removed"
        )

        # 2. the stage's selections
        runs = [("now", 2), ("now", 1)] + ([("issue", 2)] if "issue" in trees else [])
        sel = {}
        for i, (name, n_jobs) in enumerate(runs):
            w = tmp / f"work_{i}"
            shutil.copytree(work, w)
            sel[(name, n_jobs)] = run_child(trees[name], "selections", str(w), str(p.m), str(n_jobs))
        print(f"\n2. the stage: screening on data set 0 and the {2 * p.m} selections (sensitivity off)")
        print(f"{'engine':<30}{'n_jobs':>7}{'screening s':>13}{'selections s':>14}{'fits':>8}{'LPs':>6}")
        for key in runs:
            r = sel[key]
            label = "now" if key[0] == "now" else f"issue 14's engine ({args.baseline})"
            print(
                f"{label:<30}{key[1]:>7}{r['seconds_screening']:>13.1f}{r['seconds_main']:>14.1f}"
                f"{r['fits_main']:>8,}{r['checks_main']:>6,}"
            )
        now2 = sel[("now", 2)]
        same_12 = now2["models"] == sel[("now", 1)]["models"]
        print(f"identical models with 1 and 2 workers: {same_12}")
        if ("issue", 2) in sel:
            old = sel[("issue", 2)]
            terms_same = [m[:3] for m in old["models"]] == [m[:3] for m in now2["models"]]
            rel = max(abs(a[3] - b[3]) / abs(a[3]) for a, b in zip(old["models"], now2["models"]))
            print(
                f"ratio issue's engine / now (n_jobs=2): selections {old['seconds_main'] / now2['seconds_main']:.1f}x, "
                f"screening {old['seconds_screening'] / now2['seconds_screening']:.1f}x; "
                f"same {2 * p.m} models: {terms_same}; largest relative difference of N-hat: {rel:.1e}"
            )
        print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
