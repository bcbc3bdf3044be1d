"""Benchmark: ``mse estimate`` on the published tables against Rcapture and SparseMSE, in one run.

For every table of ``scripts/compare_r.py`` (tests/fixtures/published and the two tables beside
it) it times

1. ``mse estimate TABLE --select backward-aic`` (selection plus the profile-likelihood interval
   of the selected model): in-process (``cli.main``, after a warm-up; the best of ``--reps``
   calls) and as a whole process (Python start-up and imports included; the median of three);
2. ``mse estimate TABLE --terms <that model>`` in-process (one fit plus its profile interval)
   against Rcapture ``closedpCI.t`` with the same terms (fit plus profile interval);
3. SparseMSE ``estimatepopulation.0(method = "stepwise")`` (its selection with a normal
   interval) against our selection of 1. (and ``--select stepwise`` too when this checkout has it);
4. the start-up targets: ``mse estimate --help`` and a main-effects call on the 5-list table
   UKdat_5, as processes.

R's in-session times are measured inside R (``system.time`` over ``--reps`` calls, R's start-up
not counted); R's process time is one ``Rscript`` run (start-up, loading both packages and one
call) timed from here. Ratios are R's time over ours (above 1: ours is faster). With
``--reselect-boot B`` it also times the bootstrap with re-selection: ``--select backward-aic
--bootstrap B --reselect --ci bca`` against SparseMSE ``estimatepopulation(nboot = B)`` (slow in R:
minutes on the 6- and 8-list tables; limit with ``--tables``).

Without ``Rscript`` or the R packages (R_LIBS must name the library holding Rcapture and
SparseMSE) the R columns are skipped with a message and only this project's times are printed.
Usage::

    python benchmarks/bench_estimate.py [--reps 5] [--tables korea,Western] [--reselect-boot 100]
"""

from __future__ import annotations

import os

# single-threaded BLAS before numpy loads (docs/engine.md), as R's reference BLAS
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import csv
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from compare_r import R_READ_TASK, R_TASKS_HEAD, r_available, run_r, table_paths  # noqa: E402  (the one R runner and table list)

# Rcapture's closedpCI.t with given two-list terms, and SparseMSE's stepwise selection, timed
# inside R over `reps` calls per table (the tables are read once, outside the timing)
R_TIMES = (
    R_TASKS_HEAD
    + r"""reps <- as.integer(args[2]); nboot <- as.integer(args[3])
for (i in seq_len(nrow(tasks))) {
"""
    + R_READ_TASK
    + r"""  # a call that fails in R is reported as NA (not timed)
  r <- NULL; e <- NULL
  t_rc <- system.time(for (k in seq_len(reps))
    r <- tryCatch(suppressWarnings(closedpCI.t(Xr, dfreq = TRUE, mX = f)), error = function(x) NULL)
  )[["elapsed"]] / reps
  t_sw <- system.time(for (k in seq_len(reps))
    e <- tryCatch(estimatepopulation.0(X[, c(lists, "count")], method = "stepwise"), error = function(x) NULL)
  )[["elapsed"]] / reps
  t_bt <- NA_real_
  if (nboot > 0) t_bt <- system.time(b <- estimatepopulation(X[, c(lists, "count")], nboot = nboot,
                                                             iseed = 1234))[["elapsed"]]
  if (is.null(r)) t_rc <- NA_real_
  if (is.null(e)) t_sw <- NA_real_
  lo <- if (is.null(r)) NA_real_ else as.numeric(r$CI[1, 2])
  hi <- if (is.null(r)) NA_real_ else as.numeric(r$CI[1, 3])
  cat(sprintf("TIMES %s %.6f %.6f %.6f %.10g %.10g %.10g\n", tasks$dataset[i], t_rc, t_sw, t_bt,
              lo, hi, if (is.null(e)) NA_real_ else as.numeric(e$estimate)))
}
"""
)

# one whole R process: start-up, both packages, one closedpCI.t call
R_ONE = r"""
suppressPackageStartupMessages({library(Rcapture); library(SparseMSE)})
args <- commandArgs(trailingOnly = TRUE)
X <- read.csv(args[1], comment.char = "#", check.names = FALSE)
names(X) <- c(paste0("c", seq_len(ncol(X) - 1)), "freq")
r <- closedpCI.t(X, dfreq = TRUE, mX = ~ .)
cat("DONE\n")
"""


#: Processes that only import what a default ``mse estimate`` call needs, cumulatively: the
#: libraries the engine loads at its top level (pandas with pyarrow; scipy.special and
#: scipy.linalg, which bring scipy's array-API shim) set the floor of a call's start-up.
#: scipy.optimize is not among them since the profile interval's searches moved to
#: engine/scalar.py and the existence LP imports it on first use; the last entry shows what
#: it would add.
IMPORT_FLOOR = {
    "python": "pass",
    "+ numpy": "import numpy",
    "+ pandas": "import numpy, pandas",
    "+ scipy.special, linalg": "import numpy, pandas, scipy.special, scipy.linalg",
    "+ the engine a call loads": "import mse_helpers.cli.estimate, mse_helpers.engine.cells, "
    "mse_helpers.engine.estimates, mse_helpers.engine.fit, mse_helpers.engine.profile",
    "(that + scipy.optimize, not loaded)": "import mse_helpers.cli.estimate, mse_helpers.engine.cells, "
    "mse_helpers.engine.estimates, mse_helpers.engine.fit, mse_helpers.engine.profile, scipy.optimize",
}


def estimate_json(*argv: str) -> tuple[dict, float]:
    """``mse estimate ... --json`` in-process: its JSON object and the seconds it took."""
    from mse_helpers import cli

    buf = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["estimate", *argv, "--json"])
    seconds = time.perf_counter() - t
    text = buf.getvalue().strip()
    return (json.loads(text) if text else {"status": f"exit {code}"}), seconds


def best_of(reps: int, *argv: str) -> float:
    """Fastest of ``reps`` in-process calls (after one warm-up): the least disturbed by other load."""
    estimate_json(*argv)
    return min(estimate_json(*argv)[1] for _ in range(reps))


def mse_command() -> list[str]:
    """The ``mse`` console script of this interpreter, or the same entry point through ``-c``."""
    script = Path(sys.executable).parent / "mse"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from mse_helpers.cli import main; sys.exit(main())"]


#: Environment of the timed processes: Python's usual bytecode caches (``__pycache__`` beside
#: the modules, as an installed package has them; set in main). A PYTHONPYCACHEPREFIX is not
#: used: it moves every module's cache, the standard library's too, and measured 0.06 s more for
#: ``python -c pass`` alone. With PYTHONDONTWRITEBYTECODE=1 (as in some sandboxes) every process
#: compiles the package's modules again, which is reported apart.
PROCESS_ENV: dict[str, str] | None = None


def process_seconds(argv: list[str], runs: int = 3, env: dict[str, str] | None = None) -> float:
    """Median wall time of a whole process (start-up and imports included), after one warm-up run."""
    env = env or PROCESS_ENV
    subprocess.run(argv, capture_output=True, check=False, env=env)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def ours(paths: dict[str, Path], reps: int, nboot: int) -> dict[str, dict]:
    """This project's times per table (see the module docstring, parts 1-3)."""
    from mse_helpers.cli.estimate import SELECT_METHODS

    out = {}
    for name, path in paths.items():
        sel, _ = estimate_json(str(path), "--select", "backward-aic")
        terms = ",".join(sel.get("terms") or [])
        row = {
            "lists": len([c for c in next(csv.reader(_data_lines(path))) if c.strip() != "count"]),
            "n_obs": sel.get("n_obs"),
            "terms": terms,
            "n_hat": sel.get("n_hat"),
            "profile": sel.get("profile") or {},
            "t_select": best_of(reps, str(path), "--select", "backward-aic"),
            "t_fixed": best_of(reps, str(path), "--terms", terms),
            "t_process": process_seconds([*mse_command(), "estimate", str(path), "--select", "backward-aic"]),
        }
        if "stepwise" in SELECT_METHODS:
            row["t_stepwise"] = best_of(reps, str(path), "--select", "stepwise")
        if nboot:
            boot, row["t_boot"] = estimate_json(
                str(path), "--select", "backward-aic", "--bootstrap", str(nboot), "--seed", "1", "--reselect"
            )
            row["boot"] = boot.get("interval")
        out[name] = row
    return out


def _data_lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip() and not x.startswith("#")]


def r_times(paths: dict[str, Path], mine: dict[str, dict], reps: int, nboot: int) -> dict[str, dict]:
    """R's in-session times per table and one R process per table (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.csv"
        with tasks.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["dataset", "path", "terms"])
            for name, path in paths.items():
                w.writerow([name, str(path), mine[name]["terms"]])
        r = run_r(R_TIMES, str(tasks), str(reps), str(nboot))
    out = {}
    for line in r.get("TIMES", []):
        name, *values = line.split()
        t_rc, t_sw, t_bt, lo, hi, n_sw = (float("nan") if v == "NA" else float(v) for v in values)
        t = time.perf_counter()
        run_r(R_ONE, str(paths[name]))
        out[name] = {
            "t_rcapture": t_rc,
            "t_sparsemse": t_sw,
            "t_boot": t_bt,
            "rc_lower": lo,
            "rc_upper": hi,
            "n_hat_stepwise": n_sw,
            "t_process": time.perf_counter() - t,
        }
    return out


def _ms(seconds: float | None) -> str:
    return "" if seconds is None or seconds != seconds else f"{seconds * 1e3:,.1f}"


def _ratio(r: float | None, ours_: float | None) -> str:
    return "" if not r or not ours_ or r != r else f"{r / ours_:,.1f}x"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="calls per timing (ours: the fastest; R: the mean)")
    ap.add_argument("--tables", help="comma-separated table names (default: all)")
    ap.add_argument(
        "--reselect-boot", type=int, default=0, metavar="B", help="also time the bootstrap with re-selection"
    )
    args = ap.parse_args(argv)
    paths = table_paths()
    if args.tables:
        wanted = [t.strip() for t in args.tables.split(",")]
        unknown = [t for t in wanted if t not in paths]
        if unknown:
            ap.error(f"--tables: unknown {unknown}; tables are {sorted(paths)}")
        paths = {k: paths[k] for k in wanted}
    print(f"bench_estimate: load average {load_average()} (2 shared cores), Python {sys.version.split()[0]}")
    global PROCESS_ENV
    PROCESS_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    no_cache = {**PROCESS_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = mse_command()
    t_help = process_seconds([*cmd, "estimate", "--help"], runs=5)
    uk5 = table_paths()["UKdat_5"]
    t_uk5 = process_seconds([*cmd, "estimate", str(uk5)], runs=5)
    t_uk5_nc = process_seconds([*cmd, "estimate", str(uk5)], runs=5, env=no_cache)
    print(
        f"start-up (median of 5 processes): `mse estimate --help` {t_help:.3f} s, "
        f"`mse estimate UKdat_5.csv` (5 lists, profile interval) {t_uk5:.3f} s "
        f"({t_uk5_nc:.3f} s without a bytecode cache); target 0.5 s each"
    )
    floor = {what: process_seconds([sys.executable, "-c", code], runs=5) for what, code in IMPORT_FLOOR.items()}
    print(
        "  where a call's start-up goes (median of 5 processes each): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in floor.items())
    )
    mine = ours(paths, args.reps, args.reselect_boot)
    why = r_available()
    if why:
        print(
            f"R skipped: {why}. Set R_LIBS to the library holding Rcapture and SparseMSE (scripts/compare_r.py says how to install them)."
        )
        theirs: dict[str, dict] = {}
    else:
        theirs = r_times(paths, mine, args.reps, args.reselect_boot)
    print()
    print(
        f"Times in ms; ours in-process the fastest of {args.reps} calls, R's the mean of {args.reps} inside R; "
        "processes include start-up (ours: the median of 3; R: one Rscript run, loading both packages)."
    )
    print()
    step = any("t_stepwise" in r for r in mine.values())
    head = (
        "| table | lists | backward AIC + profile | fixed model + profile | Rcapture closedpCI.t | ratio "
        "| SparseMSE stepwise | ratio |"
        + (" --select stepwise | ratio |" if step else "")
        + " process: ours | process: Rcapture | ratio | profile bounds: ours / Rcapture |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, m in mine.items():
        r = theirs.get(name, {})
        prof = m["profile"]
        bounds = ""
        if prof.get("available"):
            upper = "open" if prof.get("upper_open") else f"{prof['upper']:,.0f}"
            bounds = f"{prof['lower']:,.0f}-{upper}"
            if r and r["rc_lower"] == r["rc_lower"]:
                # Rcapture gives no upper bound (NA) when it is above 3 N-hat
                rc_upper = "open" if r["rc_upper"] != r["rc_upper"] else f"{r['rc_upper']:,.0f}"
                bounds += f" / {r['rc_lower']:,.0f}-{rc_upper}"
        cells = [
            name,
            str(m["lists"]),
            _ms(m["t_select"]),
            _ms(m["t_fixed"]),
            _ms(r.get("t_rcapture")),
            _ratio(r.get("t_rcapture"), m["t_fixed"]),
            _ms(r.get("t_sparsemse")),
            _ratio(r.get("t_sparsemse"), m["t_select"]),
        ]
        if step:
            cells += [_ms(m.get("t_stepwise")), _ratio(r.get("t_sparsemse"), m.get("t_stepwise"))]
        cells += [_ms(m["t_process"]), _ms(r.get("t_process")), _ratio(r.get("t_process"), m["t_process"]), bounds]
        print("| " + " | ".join(cells) + " |")
    slowest = max(mine.items(), key=lambda kv: kv[1]["t_select"])
    print()
    print(
        f"slowest backward AIC + profile interval in-process: {slowest[0]} ({slowest[1]['lists']} lists) "
        f"{slowest[1]['t_select']:.3f} s; target 0.3 s on tables of up to 8 lists"
    )
    if args.reselect_boot:
        print()
        print(f"Bootstrap with re-selection, B = {args.reselect_boot} (one call each; s):")
        print()
        print("| table | ours: --reselect --ci bca | SparseMSE estimatepopulation | ratio | our interval | failed |")
        print("|---|---|---|---|---|---|")
        for name, m in mine.items():
            r, iv = theirs.get(name, {}), m.get("boot") or {}
            t_r = r.get("t_boot")
            text = "" if iv.get("lower") is None else f"{iv['lower']:,.0f}-{iv['upper']:,.0f}"
            print(
                f"| {name} | {m['t_boot']:.2f} | {'' if t_r is None else f'{t_r:.2f}'} | "
                f"{_ratio(t_r, m['t_boot'])} | {text} | {iv.get('n_failed', '')} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
