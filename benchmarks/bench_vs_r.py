"""Benchmark: this project's engine and imputer side by side with R, in one run (not part of CI).

On one study-size completed data set made by this project from the bundled data (data
preparation and one imputation, m = 1), counted into a table of 6 registers x S L N U x years
(written to a temporary folder, zeros included), it times

1. the log-linear fit with every two-factor term but those the existence check blames (the
   start model): R ``glm(family = poisson)`` against ``mse estimate --terms ...`` (in-process,
   start-up not counted);
2. backward AIC from the start model: R ``step(direction = "backward")`` against the
   stage's ``selection.backward`` (design built inside the timing; ``mse estimate --select``
   refuses this table by its rough size guard), and whether the removed terms and N-hat
   agree;
3. chained-equation imputation of the bundled person-level file (after data preparation, no
   linking of partial records, so that both do the same): R ``mice(m = 25, maxit = 10,
   method = "logreg")`` against :func:`mse_helpers.stages.impute.impute_datasets` with the
   same m and maxit (1 worker, as R), and the mean imputed level shares of both;
4. on the published tables in tests/fixtures (when Rcapture and SparseMSE are installed):
   Rcapture ``closedpCI.t`` (fit and profile interval) against ``mse estimate --terms`` for the
   same model, and SparseMSE's stepwise selection against ``mse estimate --select backward-aic``.

R's times are measured inside R (``system.time``; R's start-up not counted). Each part is run
once: R takes minutes. When ``Rscript`` or the R package mice is missing it says how to
install them and exits 0 ("skipped"); part 4 is skipped, with a note, without Rcapture and
SparseMSE. Usage::

    python benchmarks/bench_vs_r.py [--m 25] [--maxit 10] [--skip-mice] [--only-published]
"""

from __future__ import annotations

import os

# single-threaded BLAS before numpy loads (docs/engine.md), as R's reference BLAS
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import io
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from compare_r import R_READ_TASK, R_TASKS_HEAD, r_available, run_r, table_paths  # noqa: E402  (one R runner, one table list)

INSTALL_HELP = """\
This benchmark needs R and the R package mice. On Debian or Ubuntu:
  apt-get install r-base-core r-cran-mice
(elsewhere: install R from https://cran.r-project.org and run install.packages("mice") in R).
"""

R_GLM = r"""
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
regs <- strsplit(args[2], ",")[[1]]
facs <- strsplit(args[3], ",")[[1]]
for (f in facs) d[[f]] <- factor(d[[f]])
obs <- d[d$observed == 1, c(regs, facs, "count")]
zero <- d[d$observed == 0, c(regs, facs)]
n_obs <- sum(obs$count)
start <- strsplit(args[4], ",")[[1]]  # the two-factor terms to start from
form <- as.formula(paste("count ~", paste(c(regs, facs, start), collapse = " + ")))
nhat <- function(fit) n_obs + sum(predict(fit, newdata = zero, type = "response"))
t_fit <- system.time(fit <- glm(form, family = poisson, data = obs))[["elapsed"]]
lower <- as.formula(paste("~", paste(c(regs, facs), collapse = " + ")))
t_step <- system.time(sel <- step(fit, scope = list(lower = lower), direction = "backward",
                                  k = 2, trace = 0))[["elapsed"]]
full <- attr(terms(fit), "term.labels")
kept <- attr(terms(sel), "term.labels")
cat(sprintf("FIT %.3f %.10g %.10g %d\n", t_fit, nhat(fit), AIC(fit), length(coef(fit))))
cat(sprintf("STEP %.3f %.10g %.10g\n", t_step, nhat(sel), AIC(sel)))
cat("REMOVED", paste(setdiff(full, kept), collapse = ","), "\n")
"""

R_MICE = r"""
suppressPackageStartupMessages(library(mice))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
m <- as.integer(args[2]); maxit <- as.integer(args[3])
for (v in names(d)) d[[v]] <- factor(d[[v]])
meth <- ifelse(colSums(is.na(d)) > 0, "logreg", "")
t <- system.time(imp <- mice(d, m = m, maxit = maxit, method = meth, printFlag = FALSE,
                             seed = 1))[["elapsed"]]
cat(sprintf("MICE %.3f\n", t))
for (v in names(meth)[meth != ""]) {
  miss <- is.na(d[[v]])
  share <- mean(sapply(seq_len(m), function(i) mean(complete(imp, i)[[v]][miss] == "1")))
  cat(sprintf("SHARE %s %.4f\n", v, share))
}
"""


R_SMALL = (
    R_TASKS_HEAD
    + r"""reps <- as.integer(args[2])
for (i in seq_len(nrow(tasks))) {
"""
    + R_READ_TASK
    + r"""  t_rc <- system.time(for (k in seq_len(reps))
    r <- suppressWarnings(closedpCI.t(Xr, dfreq = TRUE, mX = f)))[["elapsed"]] / reps
  t_sw <- system.time(for (k in seq_len(reps))
    e <- estimatepopulation.0(X[, c(lists, "count")], method = "stepwise"))[["elapsed"]] / reps
  cat(sprintf("SMALL %s %.5f %.5f %.10g\n", tasks$dataset[i], t_rc, t_sw,
              sum(Xr$freq) + exp(unname(coef(r$fit)[1]))))
}
"""
)


def bench_published(reps: int) -> None:
    """Small published tables: Rcapture's fit + profile interval and SparseMSE's stepwise
    selection against ``mse estimate`` (fit of the same model; backward AIC), per table."""
    why = r_available()
    if why:
        print(f"published tables: skipped ({why}; scripts/compare_r.py says how to install Rcapture and SparseMSE)")
        return
    paths = table_paths()
    ours = {}
    for name, path in paths.items():
        sel, _ = estimate_json(str(path), "--select", "backward-aic")  # warm-up, and the model
        terms = ",".join(sel["terms"]) if sel.get("n_hat") is not None else ""
        t_sel = sum(estimate_json(str(path), "--select", "backward-aic")[1] for _ in range(reps)) / reps
        fit, _ = estimate_json(str(path), "--terms", terms)
        t_fit = sum(estimate_json(str(path), "--terms", terms)[1] for _ in range(reps)) / reps
        ours[name] = (terms, t_fit, t_sel, fit["n_hat"])
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.csv"
        pd.DataFrame([{"dataset": k, "path": str(paths[k]), "terms": v[0]} for k, v in ours.items()]).to_csv(
            tasks, index=False
        )
        r = run_r(R_SMALL, str(tasks), str(reps))
    t = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mse"), "estimate", str(paths["Western"]), "--select", "backward-aic"],
        capture_output=True,
        check=False,
    )
    cold = time.perf_counter() - t if done.returncode == 0 else float("nan")
    print(
        f"published tables (mean time per call over {reps} calls after a warm-up, ours in-process; "
        "Rcapture's time includes its profile interval, which we lack):"
    )
    print(
        f"{'':14}{'Rcapture':>10}{'mse fit':>9}{'ratio':>7}{'SparseMSE':>11}{'mse b-aic':>11}{'ratio':>7}"
        f"{'same N-hat':>12}"
    )
    for line in r.get("SMALL", []):
        name, t_rc, t_sw, n_rc = line.split()
        terms, t_fit, t_sel, n_ours = ours[name]
        same = n_ours is not None and abs(n_ours / float(n_rc) - 1) < 1e-6
        print(
            f"{name:14}{float(t_rc) * 1e3:>8.1f}ms{t_fit * 1e3:>7.1f}ms{float(t_rc) / t_fit:>6.1f}x"
            f"{float(t_sw) * 1e3:>9.1f}ms{t_sel * 1e3:>9.1f}ms{float(t_sw) / t_sel:>6.1f}x{same!s:>12}"
        )
    print(f"one whole `mse estimate --select backward-aic` process on Western (start-up included): {cold:.2f} s")


def r_missing() -> str | None:
    """Why R cannot be used here, or None."""
    if shutil.which("Rscript") is None:
        return "Rscript is not on PATH"
    probe = subprocess.run(
        ["Rscript", "-e", "suppressPackageStartupMessages(library(mice))"], capture_output=True, text=True, check=False
    )
    return None if probe.returncode == 0 else "the R package mice is missing"


def estimate_json(*argv: str) -> tuple[dict, float]:
    """``mse estimate ... --json`` in-process; returns the JSON object and the seconds taken."""
    from mse_helpers import cli

    buf = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["estimate", *argv, "--json"])
    elapsed = time.perf_counter() - t
    if code not in (0, 1):  # 1: the model's MLE does not exist (the JSON says which terms)
        raise RuntimeError(f"mse estimate exited {code}: {buf.getvalue()}")
    return json.loads(buf.getvalue()), elapsed


def backward_aic(counts: pd.DataFrame, regs: list[str], factors: list[str], start: list[str]) -> tuple[dict, float]:
    """Backward AIC from ``start`` with the engine the stage uses (``Design``, ``selection.backward``),
    design built inside the timing; the selected model's terms, N-hat and AIC, and the seconds.

    Not through ``mse estimate --select``: its size guard (a rough time per fit times the
    fits of refitting every candidate) refuses this table, although the search takes a
    fraction of a second.
    """
    from mse_helpers.engine.cells import complete_table
    from mse_helpers.engine.design import Design
    from mse_helpers.stages import selection

    t0 = time.perf_counter()
    design = Design(complete_table(counts, regs, factors), regs, factors)
    sel = selection.backward(design, tuple(design.terms(start)), criterion="aic")
    seconds = time.perf_counter() - t0
    return {"terms": list(sel.fit.terms), "n_hat": sel.fit.n_hat, "aic": sel.fit.aic, "fits": sel.counter.fits}, seconds


def norm_term(term: str) -> str:
    """A two-factor term with its parts sorted, so that R's and ours compare."""
    return ":".join(sorted(term.split(":")))


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, default=25, help="imputations (mice m)")
    ap.add_argument("--maxit", type=int, default=10, help="chained-equation iterations")
    ap.add_argument("--skip-mice", action="store_true", help="time only the log-linear parts")
    ap.add_argument(
        "--only-published",
        action="store_true",
        help="time only the published tables (part 4; needs Rcapture and SparseMSE)",
    )
    ap.add_argument("--reps", type=int, default=5, help="repetitions per call on the published tables")
    ap.add_argument(
        "--max-start-terms",
        type=int,
        default=None,
        help="start from only the first N two-factor terms (a quick check of the script)",
    )
    args = ap.parse_args()
    why = r_missing()
    if why:
        print(f"{why}.\n{INSTALL_HELP}skipped")
        return 0
    if args.only_published:
        print(f"{time.strftime('%Y-%m-%d %H:%M')} UTC; {os.cpu_count()} cores, load average {load_average()}")
        bench_published(args.reps)
        print(f"load average at the end: {load_average()}")
        return 0
    from mse_helpers.engine.cells import complete_table
    from mse_helpers.runner.params import load_params
    from mse_helpers.stages import impute, prepare

    r_version = subprocess.run(
        ["Rscript", "-e", "cat(R.version.string, as.character(packageVersion('mice')))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC; {os.cpu_count()} cores, "
        f"load average {load_average()} at start; Python {platform.python_version()}; {r_version}"
    )
    p = load_params(None, {"m": 1})
    regs, covs = list(p.registers), list(p.covariates)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        t = time.perf_counter()
        prepare.run_stage(p, work)
        impute.run_stage(p, work)
        completed = pd.read_parquet(work / "imputed" / "imp_000.parquet")
        factors = [*covs, "year"]
        counts = completed.groupby(regs + factors, observed=True).size().rename("count").reset_index()
        counts = counts[counts[regs].sum(axis=1) > 0]
        table_csv = Path(tmp) / "counts.csv"  # aggregated counts, no person-level rows
        counts.to_csv(table_csv, index=False)
        full = complete_table(counts, regs, factors)
        full_csv = Path(tmp) / "full.csv"
        full.assign(observed=full["observed"].astype(int)).to_csv(full_csv, index=False)
        print(
            f"data: one completed data set of the bundled data in {time.perf_counter() - t:.1f} s; "
            f"{len(full):,} cells ({int(full['observed'].sum()):,} observed), "
            f"n_obs = {int(counts['count'].sum()):,}"
        )
        print()

        # 1 + 2: log-linear fit and backward AIC. The start is every two-factor term whose
        # MLE exists: R's glm would "fit" a term with a zero margin at minus infinity, which
        # this project refuses (method.md 5), so both start from the same model.
        lists = ["--lists", ",".join(regs)]
        probe, _ = estimate_json(str(table_csv), *lists, "--terms", "all2")
        blamed = set(probe.get("responsible") or [])
        start = [x for x in probe["terms"] if x not in blamed][: args.max_start_terms]
        if blamed:
            print(
                f"all two-factor terms: no MLE, the existence check blames {sorted(blamed)}; both start "
                f"from the other {len(start)} two-factor terms"
            )
        t = time.perf_counter()
        r = run_r(R_GLM, str(full_csv), ",".join(regs), ",".join(factors), ",".join(start))
        print(
            f"R output ({time.perf_counter() - t:.0f} s wall incl. start-up): "
            + "; ".join(f"{k} {' '.join(v)}" for k, v in r.items())
        )
        r_fit_t, r_fit_n, r_fit_aic, r_k = r["FIT"][0].split()
        r_step_t, r_step_n, r_step_aic = r["STEP"][0].split()
        r_removed = {norm_term(x) for x in r["REMOVED"][0].split(",") if x} if r.get("REMOVED") else set()
        ours_fit, t_fit = estimate_json(str(table_csv), *lists, "--terms", ",".join(start))
        ours_sel, t_sel = backward_aic(counts, regs, factors, start)
        all_terms = {norm_term(x) for x in start}
        our_removed = all_terms - {norm_term(x) for x in ours_sel["terms"]}
        rows = [
            ("fit of the start model", float(r_fit_t), t_fit, float(r_fit_n), ours_fit["n_hat"]),
            ("backward AIC (step)", float(r_step_t), t_sel, float(r_step_n), ours_sel["n_hat"]),
        ]
        print(f"{'':24}{'R (s)':>10}{'ours (s)':>10}{'ratio':>9}{'N-hat R':>14}{'N-hat ours':>14}")
        for label, tr, to, nr, no in rows:
            print(f"{label:24}{tr:>10.2f}{to:>10.2f}{tr / to:>8.1f}x{nr:>14.2f}{no:>14.2f}")
        print(
            f"parameters of the start model: R {r_k}; AIC R {float(r_fit_aic):.4f}, ours {ours_fit['aic']:.4f}; "
            f"after selection AIC R {float(r_step_aic):.4f}, ours {ours_sel['aic']:.4f}"
        )
        same = r_removed == our_removed
        print(f"our backward search: {ours_sel['fits']} exact fits (bounded search, docs/engine.md 3)")
        print(
            f"backward AIC removed {len(r_removed)} terms in R, {len(our_removed)} here; "
            f"same removed terms: {same}; N-hat difference {ours_sel['n_hat'] - float(r_step_n):+.4f}"
        )
        if not same:
            print(
                f"  only R removed: {sorted(r_removed - our_removed)}; "
                f"only ours removed: {sorted(our_removed - r_removed)}"
            )
        print(flush=True)

        # 3: imputation
        if not args.skip_mice:
            persons, _, summary = impute.read_stage_inputs(work)
            years = sorted(int(y) for y in summary["years"])
            values = impute.encode_binary(persons, regs, covs).astype("Int64")  # 0/1 and <NA>
            person_csv = Path(tmp) / "persons.csv"  # temporary; deleted with the folder
            pd.concat([persons[["year"]].reset_index(drop=True), values.reset_index(drop=True)], axis=1).to_csv(
                person_csv, index=False, na_rep="NA"
            )
            r = run_r(R_MICE, str(person_csv), str(args.m), str(args.maxit))
            t_mice = float(r["MICE"][0])
            print(f"R mice: {t_mice:.1f} s", flush=True)
            t = time.perf_counter()
            sets = impute.impute_datasets(
                persons, persons.iloc[:0], None, years, regs, covs, seed=p.seed, m=args.m, maxit=args.maxit, n_jobs=1
            )
            t_ours = time.perf_counter() - t
            print(
                f"imputation of {len(persons):,} persons, m = {args.m}, maxit = {args.maxit}: "
                f"R mice {t_mice:.1f} s, ours {t_ours:.1f} s, ratio {t_mice / t_ours:.1f}x"
            )
            miss = values.isna()
            from mse_helpers.codes import COVARIATES

            print(f"{'mean share of level 1 among imputed values':44}{'mice':>8}{'ours':>8}")
            for line in r.get("SHARE", []):
                var, share = line.split()
                ours_share = sum(
                    impute.encode_binary(ds.completed, regs, covs)[var][miss[var].to_numpy()].mean() for ds in sets
                ) / len(sets)
                print(f"{var + ' = ' + COVARIATES[var][1]:44}{float(share):>8.3f}{ours_share:>8.3f}")
        bench_published(args.reps)
        print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
