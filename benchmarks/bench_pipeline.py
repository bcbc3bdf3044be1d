"""Benchmark: the whole default run (``make report``) against issue 14's 176 s and its 60 s target.

1. Runs ``mse run`` with the default parameters (m = 25, B = 100, both model
   types) into a temporary reports folder, as ``make report`` does (same
   single-threaded BLAS; kernel start-up and HTML rendering included), and
   prints the duration of every notebook from the run's ``manifest.json`` and
   the total, with the ratio to the 176 s the issue measured and to the run of
   issue 14's engine (``--baseline``, a ``git archive`` of that commit run the
   same way right after, on the same machine) unless ``--baseline ""``; and
   whether both runs give the same models and estimates (largest relative
   difference of ``results/estimates.csv``).
2. Runs the bootstrap stage alone on that run's work folder with n_jobs = 1
   and n_jobs = 2, alternating (the machine is shared and noisy), prints the
   times side by side and checks that both give identical results.

3. With ``--lab``: the four notebooks with the defaults of their parameters cells
   (the exploratory settings JupyterLab runs: m = 3, B = 20, ...) into a
   temporary exploration folder, one after the other as a user runs them, and
   prints each notebook's time against issue 15's target of 1 minute per notebook.
   ``--lab-only`` skips parts 1 and 2.

If the run's notebooks do not yet call model selection or the bootstrap stage
(no ``work/models.json`` / ``results/estimates.csv`` after the run), those
stages are run here on the run's work folder and their times are added to the
projected total; the output says so.

Usage: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_pipeline.py [--uncertainty study|reselect|boot-impute]
[--rounds 2] [--baseline d17393a] [--lab | --lab-only]``. The target is issue 14's 60 s for
``--uncertainty study`` (today's method then; the comparison with issue 14's engine is made only
for it) and issue 15's 3 minutes for ``reselect``, the default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as the Makefile: small matrices, parallel workers

import pandas as pd  # noqa: E402

from mse_helpers.runner.params import PROJECT_ROOT, load_params  # noqa: E402
from mse_helpers.stages import bootstrap  # noqa: E402

#: Target for the whole default run (s) by its interval method: issue 14's with the study's
#: (``uncertainty: study``), issue 15's with the model selection repeated (``reselect``, and
#: ``boot-impute``, the default, which repeats the whole analysis on resampled data).
BUDGETS_S = {"study": 60.0, "reselect": 180.0, "boot-impute": 180.0}
#: The default run as issue 14 measured it on a quiet 2-core machine (s).
ISSUE_S = 176.0
#: Target of issue 15 for each notebook with its JupyterLab defaults (s).
LAB_BUDGET_S = 60.0
#: The engine of issue 14.
BASELINE = "d17393a"


def run_pipeline(reports: Path, tree: Path | None = None, options: tuple[str, ...] = ()) -> tuple[Path, float, dict]:
    """``mse run`` with the defaults (and ``options``, e.g. ``--set uncertainty=study``) into ``reports``
    (with ``mse_helpers`` of ``tree``, default this checkout); the run folder, wall time, manifest."""
    root = PROJECT_ROOT if tree is None else tree
    # the console script's function, imported from the tree on PYTHONPATH
    cmd = [sys.executable, "-c", "import sys; from mse_helpers.cli import main; sys.exit(main())"]
    jupyter = os.environ.get("JUPYTER_PATH") or str(Path(sys.executable).parents[1] / "share" / "jupyter")
    env = dict(os.environ, MPLBACKEND="Agg", JUPYTER_PATH=jupyter, PYTHONPATH=str(root))
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd + ["run", "--reports", str(reports), *options], cwd=root, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise SystemExit(f"mse run failed with exit code {proc.returncode}")
    run_dir = next(d for d in sorted(reports.iterdir()) if (d / "manifest.json").is_file())
    return run_dir, wall, json.loads((run_dir / "manifest.json").read_text())


def time_stage(p, work: Path, results: Path) -> tuple[float, bootstrap.BootstrapResult]:
    """Wall time of the bootstrap stage (design cache cleared: every run pays for it)."""
    bootstrap._DESIGN_CACHE.clear()
    t0 = time.perf_counter()
    res = bootstrap.run_stage(p, work, results)
    return time.perf_counter() - t0, res


def load() -> str:
    """The load average (the machine is shared)."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def compare_baseline(tmp: Path, commit: str, run_dir: Path, manifest: dict, wall: float) -> None:
    """The same default run with the engine of ``commit``, per notebook side by side, and its results."""
    base = tmp / "baseline"
    base.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=PROJECT_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    b_dir, b_wall, b_manifest = run_pipeline(tmp / "reports_baseline", tree=base)
    print(f"\n1b. the same run with issue 14's engine ({commit}), run right after")
    print(f"{'notebook':<24}{'issue (s)':>10}{'now (s)':>10}{'ratio':>8}")
    for name, entry in b_manifest["notebooks"].items():
        now = manifest["notebooks"].get(name, {}).get("duration_s", float("nan"))
        print(f"{name:<24}{entry['duration_s']:>10.1f}{now:>10.1f}{entry['duration_s'] / now:>7.1f}x")
    bt, nt = float(b_manifest["duration_s"]), float(manifest["duration_s"])
    print(f"{'run total (manifest)':<24}{bt:>10.1f}{nt:>10.1f}{bt / nt:>7.1f}x")
    print(f"{'mse run wall time':<24}{b_wall:>10.1f}{wall:>10.1f}{b_wall / wall:>7.1f}x")
    models = [json.loads((d / "work" / "models.json").read_text()) for d in (b_dir, run_dir)]
    same = [[(x["dataset"], x["type"], x["terms"]) for x in m] for m in models]
    est = [pd.read_csv(d / "results" / "estimates.csv") for d in (b_dir, run_dir)]
    num = est[0].select_dtypes("number").columns
    rel = ((est[0][num] - est[1][num]).abs() / est[0][num].abs().clip(lower=1e-300)).max().max()
    print(
        f"same selected models: {same[0] == same[1]}; estimates.csv largest relative difference: {rel:.1e}; "
        f"load average: {load()}"
    )


def lab_notebooks(folder: Path) -> dict[str, float]:
    """The four notebooks with their own parameters cells' defaults, exploring into ``folder``: seconds each.

    Only ``run_dir`` is set (the defaults write to ``reports/lab`` of the checkout); the
    kernels are started as ``mse run`` starts them.
    """
    import papermill as pm  # noqa: PLC0415 - only for this part

    from mse_helpers.runner.pipeline import NOTEBOOK_DIR, NOTEBOOKS, _kernel_env  # noqa: PLC0415

    _kernel_env()
    os.environ.setdefault("MPLBACKEND", "Agg")
    seconds = {}
    for name in NOTEBOOKS:
        t0 = time.perf_counter()
        pm.execute_notebook(
            str(NOTEBOOK_DIR / f"{name}.ipynb"),
            str(folder / f"executed_{name}.ipynb"),
            parameters={"run_dir": str(folder / "lab")},
            kernel_name="python3",
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
        )
        seconds[name] = time.perf_counter() - t0
    return seconds


def print_lab(tmp: Path) -> bool:
    """Part 3: prints the notebooks' times with their JupyterLab defaults; True when each is within budget."""
    print("\n3. the notebooks with their JupyterLab defaults (parameters cells), one after the other")
    seconds = lab_notebooks(tmp)
    print(f"{'notebook':<24}{'seconds':>10}{'target':>10}")
    for name, t in seconds.items():
        print(f"{name:<24}{t:>10.1f}{LAB_BUDGET_S:>10.0f}   {'ok' if t <= LAB_BUDGET_S else 'over'}")
    print(f"load average after the notebooks: {load()}")
    return all(t <= LAB_BUDGET_S for t in seconds.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of n_jobs 1 and 2")
    parser.add_argument("--baseline", default=BASELINE, help='git commit of the engine to compare with ("": none)')
    parser.add_argument(
        "--uncertainty",
        choices=sorted(BUDGETS_S),
        help="the interval method of the timed run (default: the default parameters'); issue 14's 60 s "
        "target and the comparison with its engine are for `study`, issue 15's 3 minutes for `reselect`",
    )
    parser.add_argument("--lab", action="store_true", help="also time the notebooks with their JupyterLab defaults")
    parser.add_argument("--lab-only", action="store_true", help="only part 3 (the JupyterLab defaults)")
    args = parser.parse_args()
    if args.lab_only:
        with tempfile.TemporaryDirectory(prefix="mse_bench_lab_") as tmp:
            return 0 if print_lab(Path(tmp)) else 1
    u = args.uncertainty or load_params(None, None).uncertainty
    p = load_params(None, {"uncertainty": u})
    budget = BUDGETS_S[u]
    print(f"interval method: uncertainty = {u} (target {budget:.0f} s)")
    print(
        f"default parameters: m = {p.m}, B = {p.bootstrap}, n_jobs = {p.n_jobs}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, cores: {os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory(prefix="mse_bench_") as tmp:
        run_dir, wall, manifest = run_pipeline(Path(tmp) / "reports", options=("--set", f"uncertainty={u}"))
        print(f"\n1. mse run (as make report), run folder {run_dir.name}")
        print(f"{'notebook':<24}{'status':>8}{'seconds':>10}")
        for name, entry in manifest["notebooks"].items():
            print(f"{name:<24}{entry['status']:>8}{entry['duration_s']:>10.1f}")
        total = float(manifest["duration_s"])
        print(f"{'run total (manifest)':<24}{'':>8}{total:>10.1f}")
        print(f"{'mse run wall time':<24}{'':>8}{wall:>10.1f}   (with input checks and start-up)")
        print(f"load average after the run: {load()}")
        if args.baseline and u != "study":
            print(f"(no comparison with issue 14's engine: it has only the study's method, this run is {u})")
        elif args.baseline:
            compare_baseline(Path(tmp), args.baseline, run_dir, manifest, wall)
        # a finished run is read-only (runfolder.check_writable): the stages below run on a copy
        work, results = Path(tmp) / "work", run_dir / "results"
        shutil.copytree(run_dir / "work", work)
        for f in work.rglob("*"):
            f.chmod(f.stat().st_mode | stat.S_IWUSR)
        extra = 0.0
        if not (work / "models.json").is_file():
            from mse_helpers.stages import selection  # noqa: PLC0415 - only when notebook 03 did not run it

            t0 = time.perf_counter()
            selection.run_stage(p, work)
            extra += time.perf_counter() - t0
            print(
                f"{'  + selection (here)':<24}{'':>8}{time.perf_counter() - t0:>10.1f}   "
                "(notebook 03 did not write work/models.json)"
            )
        stage_ran = (results / "estimates.csv").is_file()

        print(f"\n2. bootstrap stage alone ({p.bootstrap} replicates x models of work/models.json)")
        times: dict[int, list[float]] = {1: [], 2: []}
        outs = {}
        for r in range(args.rounds):
            for n_jobs in (2, 1) if r % 2 else (1, 2):
                q = load_params(None, {"n_jobs": n_jobs, "uncertainty": u})
                t, res = time_stage(q, work, Path(tmp) / f"results_{n_jobs}")
                times[n_jobs].append(t)
                outs[n_jobs] = res
        same = all(outs[1].__dict__[k].equals(outs[2].__dict__[k]) for k in ("estimates", "per_model", "failed"))
        f = outs[2].failed
        print(
            f"models pooled: {len(outs[2].models)} (not used: {outs[2].n_models_skipped}); replicates: "
            f"{int(f['n_boot'].sum())}, failed (no MLE, left out): {int(f['n_boot_failed'].sum())}, "
            f"needing the engine's LP: {int(f['n_lp_checks'].sum())}"
        )
        print(f"{'round':<8}{'n_jobs=1 (s)':>14}{'n_jobs=2 (s)':>14}{'ratio':>8}")
        for r in range(args.rounds):
            print(f"{r + 1:<8}{times[1][r]:>14.1f}{times[2][r]:>14.1f}{times[1][r] / times[2][r]:>8.2f}")
        print(f"identical results for n_jobs 1 and 2: {same}")
        if not stage_ran:
            extra += min(times[p.n_jobs])
            print(f"(notebook 04 did not run the bootstrap stage; its n_jobs={p.n_jobs} time is added below)")
        projected = total + extra
        versus = f"; issue 14 measured {ISSUE_S:.0f} s with the study's method: {ISSUE_S / projected:.1f}x"
        here = f"; {extra:.1f} s of it measured here" if extra else ""
        print(
            f"\nwhole default run: {projected:.1f} s (target {budget:.0f} s: {projected / budget:.0%})"
            f"{versus if u == 'study' else ''}{here}"
        )
        totals = outs[2].estimates.query("group == 'total'")[["year", "n_obs", "n_hat", "lower", "upper"]]
        print("\nheadline estimates (n_jobs=2 run):")
        print(totals.round(0).to_string(index=False))
        lab_ok = print_lab(Path(tmp)) if args.lab else True
    return 0 if projected <= budget and lab_ok else 1


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    sys.exit(main())
