"""Run Rcapture and SparseMSE on the published capture-history tables and write a reference file.

Not part of the test suite and not needed to use the package: it needs R. It

1. exports the published capture-history tables shipped with the R packages SparseMSE and
   Rcapture to ``tests/fixtures/published/<name>.csv`` in the format ``mse estimate`` reads
   (one 0/1 column per list and ``count``; sources in ``tests/fixtures/published/README.md``);
2. fits, in R, for every table (those above plus ``tests/fixtures/korea.csv`` and ``uk2013.csv``):
   Rcapture ``closedp.t`` (M0, Mt, Mh, Mth, Mb, Mbh), the profile-likelihood intervals of M0 and
   Mt (``closedpCI.t``), fixed log-linear models with given two-list interactions
   (``closedpCI.t`` with ``mX``: main effects, the model this project's ``--select backward-aic``
   reaches, the model SparseMSE's stepwise method reaches, and all two-list terms) with their
   multinomial profile-likelihood intervals, Rcapture ``closedp.bc`` (the bias-corrected Mt
   estimate of Rivest and Levesque 2001), and SparseMSE ``estimatepopulation`` (stepwise
   selection and its BCa bootstrap interval);
3. writes ``tests/fixtures/r_reference.csv``, which ``tests/test_r_reference.py``,
   ``tests/test_stepwise.py`` and ``tests/test_bias.py`` read (no R needed there), and prints
   Markdown tables of this project's ``--select backward-aic``, ``--select stepwise`` and
   ``--bias-correct`` results beside the R packages' (for docs/r_comparison.md).

When ``Rscript`` or one of the R packages is missing it says how to install them and exits 0
("skipped").

Usage::

    python scripts/compare_r.py [--nboot 100] [--no-export]
    python scripts/compare_r.py --tables   # the Markdown tables from the reference, no R
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PUBLISHED = FIXTURES / "published"
REFERENCE = FIXTURES / "r_reference.csv"

log = logging.getLogger("compare_r")

INSTALL_HELP = """\
This script needs R with the packages Rcapture and SparseMSE.
On Debian or Ubuntu:
  1. install R and the packages SparseMSE needs from Debian:
       apt-get install r-base-core r-cran-mice r-cran-lpsolve
  2. get the packages' public sources (CRAN, or the GitHub mirrors cran/Rcapture and
     cran/SparseMSE; the comparison used Rcapture 1.4-4 and SparseMSE 2.0.1) and install them
     into a library folder of your choice:
       R CMD INSTALL -l ~/rlib Rcapture_1.4-4.tar.gz
       R CMD INSTALL -l ~/rlib SparseMSE_2.0.1.tar.gz
  3. run again with that folder in R_LIBS:
       R_LIBS=~/rlib python scripts/compare_r.py
"""

# Tables exported from the R packages: name -> (package, data set, kind); sources in HEADERS
# and in tests/fixtures/published/README.md.
# kind "freq": one row per history with its count in the last column; "units": one row per unit.
TABLES = {
    "UKdat": ("SparseMSE", "UKdat", "freq"),
    "UKdat_5": ("SparseMSE", "UKdat_5", "freq"),
    "NewOrl": ("SparseMSE", "NewOrl", "freq"),
    "NewOrl_5": ("SparseMSE", "NewOrl_5", "freq"),
    "Western": ("SparseMSE", "Western", "freq"),
    "Ned": ("SparseMSE", "Ned", "freq"),
    "Ned_5": ("SparseMSE", "Ned_5", "freq"),
    "Artificial_3": ("SparseMSE", "Artificial_3", "freq"),
    "HIV": ("Rcapture", "HIV", "freq"),
    "lesbian": ("Rcapture", "lesbian", "freq"),
    "hare": ("Rcapture", "hare", "units"),
}

# First comment line of each exported file (the README has the full references).
HEADERS = {
    "UKdat": "UK National Crime Agency strategic assessment 2013, six lists (Home Office 2014)",
    "UKdat_5": "UK 2013, five lists (PF and NCA merged into PFNCA), Home Office 2014",
    "NewOrl": "Greater New Orleans, eight lists (Bales, Murphy and Silverman 2020)",
    "NewOrl_5": "Greater New Orleans, five lists (B, E, F, G merged into BEFG; Bales, Murphy and Silverman 2020)",
    "Western": "Sex-trafficking victims, a U.S. Western site, five lists (Farrell et al. 2019)",
    "Ned": "Victims of human trafficking in the Netherlands, six lists (Silverman 2020)",
    "Ned_5": "The Netherlands, five lists (I and O merged into IO; Silverman 2020)",
    "Artificial_3": "Artificial three-list table (Chan, Silverman and Vincent 2021, Table 2)",
    "HIV": "HIV-1 infection, four reporting centres in Rome (Abeni, Brancato and Perucci 1994)",
    "lesbian": "Lesbian population, four mailing lists, Allegheny County (Aaron et al. 2003)",
    "hare": "Snowshoe hares, six trapping occasions (Cormack 1989; Agresti 1994)",
}

# Tables already in tests/fixtures (not exported from R).
REPO_TABLES = {"korea": FIXTURES / "korea.csv", "uk2013": FIXTURES / "uk2013.csv"}

R_EXPORT = r"""
args <- commandArgs(trailingOnly = TRUE)
spec <- read.csv(args[1], stringsAsFactors = FALSE)
for (i in seq_len(nrow(spec))) {
  e <- new.env()
  data(list = spec$dataset[i], package = spec$package[i], envir = e)
  X <- as.data.frame(get(spec$dataset[i], envir = e))
  if (spec$kind[i] == "units") {
    X$count <- 1
  } else {
    names(X)[ncol(X)] <- "count"
  }
  lists <- setdiff(names(X), "count")
  X <- aggregate(X["count"], by = X[lists], FUN = sum)
  X <- X[rowSums(X[lists]) > 0 & X$count > 0, c(lists, "count")]
  X <- X[do.call(order, c(list(-rowSums(X[lists])), X[rev(lists)])), ]
  write.csv(X, spec$out[i], row.names = FALSE, quote = FALSE)
}
"""

R_FIT = r"""
suppressPackageStartupMessages({library(Rcapture); library(SparseMSE)})
args <- commandArgs(trailingOnly = TRUE)
tasks <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = character(0))
nboot <- as.integer(args[3])
out <- list()
num <- function(x) if (is.null(x) || length(x) == 0 || is.na(x)) "" else sprintf("%.17g", as.numeric(x))
add <- function(...) out[[length(out) + 1]] <<- data.frame(..., stringsAsFactors = FALSE)
ver <- function(p) as.character(packageVersion(p))
pairs_of <- function(terms) if (terms == "") character(0) else strsplit(terms, ",")[[1]]
rename <- function(term, lists) {
  v <- strsplit(term, ":")[[1]]
  paste0("c", match(v, lists), collapse = ":")
}
profile <- function(r) {
  CI <- r$CI
  up <- CI[1, 3]
  open <- is.character(up) && startsWith(up, ">")
  list(nmult = as.numeric(CI[1, 1]), lower = as.numeric(CI[1, 2]),
       upper = if (open) NA else as.numeric(up),
       note = if (open) paste0("profile upper bound above ", sub(">", "", up), " (3 N-hat)") else "",
       info = as.numeric(CI[1, 4]))
}
for (ds in unique(tasks$dataset)) {
  tk <- tasks[tasks$dataset == ds, ]
  X <- read.csv(tk$path[1], comment.char = "#", check.names = FALSE)
  lists <- setdiff(names(X), "count")
  Xr <- X[, c(lists, "count")]
  names(Xr) <- c(paste0("c", seq_along(lists)), "freq")
  n <- sum(Xr$freq)
  # Rcapture closedp.t: the classical closed-population models
  cp <- tryCatch(suppressWarnings(closedp.t(Xr, dfreq = TRUE)), error = function(e) NULL)
  if (!is.null(cp)) {
    res <- cp$results
    for (m in rownames(res)) {
      add(dataset = ds, n_obs = n, package = "Rcapture", version = ver("Rcapture"),
          func = "closedp.t", kind = "closedp", model = m, terms = "",
          n_hat = num(res[m, "abundance"]), lower = "", upper = "", interval = "none",
          n_hat_multinomial = "", info = num(res[m, "infoFit"]), note = "")
    }
    for (m in c("M0", "Mt")) {
      r <- tryCatch(suppressWarnings(closedpCI.t(Xr, dfreq = TRUE, m = m)), error = function(e) NULL)
      if (is.null(r)) next
      p <- profile(r)
      add(dataset = ds, n_obs = n, package = "Rcapture", version = ver("Rcapture"),
          func = "closedpCI.t", kind = "closedp", model = m, terms = "",
          n_hat = num(r$results[1, "abundance"]), lower = num(p$lower), upper = num(p$upper),
          interval = "profile-multinomial-95", n_hat_multinomial = num(p$nmult),
          info = num(r$results[1, "infoFit"]), note = p$note)
    }
  }
  # Rcapture closedp.bc: the bias-corrected Mt estimate (Rivest and Levesque 2001); its root
  # of Darroch's equation comes from uniroot with the default tolerance (about 1.2e-4)
  bc <- tryCatch(suppressWarnings(closedp.bc(Xr, dfreq = TRUE, m = "Mt")), error = function(e) e)
  add(dataset = ds, n_obs = n, package = "Rcapture", version = ver("Rcapture"),
      func = "closedp.bc", kind = "bias-corrected", model = "Mt", terms = "",
      n_hat = if (inherits(bc, "error")) "" else num(bc$results[1, "abundance"]),
      lower = "", upper = "", interval = "none", n_hat_multinomial = "", info = "",
      stderr = if (inherits(bc, "error")) "" else num(bc$results[1, "stderr"]),
      note = if (inherits(bc, "error")) paste("error:", conditionMessage(bc)) else "")
  # Rcapture Poisson fit of fixed log-linear models, with profile intervals
  for (i in which(tk$task == "fixed")) {
    terms <- tk$terms[i]
    pr <- pairs_of(terms)
    f <- if (length(pr) == 0) ~ . else
      as.formula(paste("~ . +", paste(vapply(pr, rename, "", lists = lists), collapse = " + ")))
    r <- tryCatch(suppressWarnings(closedpCI.t(Xr, dfreq = TRUE, mX = f)), error = function(e) e)
    if (inherits(r, "error")) {
      add(dataset = ds, n_obs = n, package = "Rcapture", version = ver("Rcapture"),
          func = "closedpCI.t(mX)", kind = "fixed", model = tk$source[i], terms = terms,
          n_hat = "", lower = "", upper = "", interval = "none", n_hat_multinomial = "",
          info = "-1", glm_warning = "", note = paste("error:", conditionMessage(r)))
      next
    }
    # Poisson N-hat at full precision: n + exp(intercept) (Rcapture's definition)
    nhat <- n + exp(unname(coef(r$fit)[1]))
    p <- profile(r)
    add(dataset = ds, n_obs = n, package = "Rcapture", version = ver("Rcapture"),
        func = "closedpCI.t(mX)", kind = "fixed", model = tk$source[i], terms = terms,
        n_hat = num(nhat), lower = num(p$lower), upper = num(p$upper),
        interval = "profile-multinomial-95", n_hat_multinomial = num(p$nmult),
        info = num(r$results[1, "infoFit"]),
        glm_warning = as.integer(any(grepl("^glm", r$fit.warn))),
        note = paste(c(p$note, if (!is.null(r$fit.warn)) paste(r$fit.warn, collapse = "; ")),
                     collapse = if (p$note == "") "" else "; "))
  }
  # SparseMSE: stepwise selection, its estimate, and the BCa bootstrap interval
  zdat <- X[, c(lists, "count")]
  t0 <- proc.time()[["elapsed"]]
  e0 <- tryCatch(estimatepopulation.0(zdat, method = "stepwise"), error = function(e) e)
  el <- proc.time()[["elapsed"]] - t0
  if (inherits(e0, "error")) {
    add(dataset = ds, n_obs = n, package = "SparseMSE", version = ver("SparseMSE"),
        func = "estimatepopulation.0", kind = "stepwise", model = "stepwise", terms = "",
        n_hat = "", lower = "", upper = "", interval = "none", n_hat_multinomial = "",
        info = "-1", note = paste("error:", conditionMessage(e0)))
    next
  }
  cf <- coef(e0$MSEfit$fit)
  sel <- names(cf)[grepl(":", names(cf))]
  eo <- e0$MSEfit$emptyoverlaps
  empty <- if (is.null(eo) || length(eo) == 0) character(0) else colnames(eo)
  est <- e0$estimate
  add(dataset = ds, n_obs = n, package = "SparseMSE", version = ver("SparseMSE"),
      func = "estimatepopulation.0", kind = "stepwise", model = "stepwise", terms = paste(sel, collapse = ","),
      n_hat = num(est[["point est."]]), lower = num(est[["2.5%"]]), upper = num(est[["97.5%"]]),
      interval = "normal-log-dark-95", n_hat_multinomial = "", info = "0",
      note = paste0(if (length(empty)) paste0("pairs with no overlap kept at minus infinity: ",
                                            paste(gsub(" *, *|\\.", ":", empty), collapse = ","), "; ") else "",
                    sprintf("stepwise took %.3f s", el)))
  if (nboot > 0) {
    t0 <- proc.time()[["elapsed"]]
    b <- tryCatch(suppressWarnings(estimatepopulation(zdat, nboot = nboot, iseed = 1234)),
                  error = function(e) e)
    el <- proc.time()[["elapsed"]] - t0
    if (inherits(b, "error")) {
      add(dataset = ds, n_obs = n, package = "SparseMSE", version = ver("SparseMSE"),
          func = "estimatepopulation", kind = "stepwise", model = "stepwise", terms = paste(sel, collapse = ","),
          n_hat = "", lower = "", upper = "", interval = "bca-95", n_hat_multinomial = "",
          info = "-1", note = paste("error:", conditionMessage(b)))
    } else {
      q <- b$BCaquantiles
      add(dataset = ds, n_obs = n, package = "SparseMSE", version = ver("SparseMSE"),
          func = "estimatepopulation", kind = "stepwise", model = "stepwise", terms = paste(sel, collapse = ","),
          n_hat = num(b$popest), lower = num(q[["0.025"]]), upper = num(q[["0.975"]]),
          interval = paste0("bca-95 (nboot=", nboot, ", iseed=1234)"), n_hat_multinomial = "",
          info = "0", note = sprintf("bootstrap with re-selection took %.1f s", el))
    }
  }
}
for (i in seq_along(out)) {
  if (is.null(out[[i]]$glm_warning)) out[[i]]$glm_warning <- ""
  if (is.null(out[[i]]$stderr)) out[[i]]$stderr <- ""
}
res <- do.call(rbind, out)
write.csv(res, args[2], row.names = FALSE)
"""

COLUMNS = [
    "dataset",
    "n_obs",
    "package",
    "version",
    "func",
    "kind",
    "model",
    "terms",
    "n_hat",
    "lower",
    "upper",
    "interval",
    "n_hat_multinomial",
    "info",
    "glm_warning",
    "stderr",
    "note",
]


#: R code shared by the benchmarks that time R on the published tables: load both packages and
#: read the task table (``args[1]``: columns dataset, path, terms) ...
R_TASKS_HEAD = r"""
suppressPackageStartupMessages({library(Rcapture); library(SparseMSE)})
args <- commandArgs(trailingOnly = TRUE)
tasks <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = character(0))
"""
#: ... and, inside ``for (i in seq_len(nrow(tasks)))``, read table i as ``X`` (this project's
#: columns), ``Xr`` (Rcapture's c1, c2, ..., freq) and its model formula ``f`` from ``tasks$terms``.
R_READ_TASK = r"""
  X <- read.csv(tasks$path[i], comment.char = "#", check.names = FALSE)
  lists <- setdiff(names(X), "count")
  Xr <- X[, c(lists, "count")]
  names(Xr) <- c(paste0("c", seq_along(lists)), "freq")
  pr <- if (tasks$terms[i] == "") character(0) else strsplit(tasks$terms[i], ",")[[1]]
  ren <- vapply(pr, function(t) paste0("c", match(strsplit(t, ":")[[1]], lists), collapse = ":"), "")
  f <- if (length(pr) == 0) ~ . else as.formula(paste("~ . +", paste(ren, collapse = " + ")))
"""


def r_available() -> str | None:
    """Return why R cannot be used, or None when Rscript and both packages load."""
    if shutil.which("Rscript") is None:
        return "Rscript is not on PATH"
    probe = subprocess.run(
        ["Rscript", "-e", "suppressPackageStartupMessages({library(Rcapture); library(SparseMSE)})"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        lines = [x for x in probe.stderr.splitlines() if "no package" in x] or ["Rcapture or SparseMSE"]
        return "an R package is missing (" + lines[0].split(":")[-1].strip() + ")"
    return None


def run_r(code: str, *args: str) -> dict[str, list[str]]:
    """Run an R script given as text; raise with R's error output when it fails.

    Returns its output lines tagged by their first word (tag -> the rest of each line).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(code)
    try:
        done = subprocess.run(["Rscript", fh.name, *args], capture_output=True, text=True, check=False)
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"R failed:\n{done.stderr}")
    out: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        tag, _, rest = line.partition(" ")
        out.setdefault(tag, []).append(rest.strip())
    return out


def export_tables() -> None:
    """Write the R packages' tables to tests/fixtures/published/<name>.csv with a source line."""
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.csv"
        with spec.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["dataset", "package", "kind", "out"])
            for name, (pkg, data, kind) in TABLES.items():
                w.writerow([data, pkg, kind, str(Path(tmp) / f"{name}.csv")])
        run_r(R_EXPORT, str(spec))
        for name, (pkg, data, _) in TABLES.items():
            body = (Path(tmp) / f"{name}.csv").read_text()
            head = f"# {HEADERS[name]}.\n# Data set {data} of the R package {pkg}; see README.md in this folder.\n"
            (PUBLISHED / f"{name}.csv").write_text(head + body)
            log.info("exported %s", name)


def table_paths() -> dict[str, Path]:
    """Every table compared: the exported ones and the two already in tests/fixtures."""
    paths = {name: PUBLISHED / f"{name}.csv" for name in TABLES}
    paths.update(REPO_TABLES)
    return paths


def mse_estimate(path: Path, *argv: str) -> dict:
    """Run this project's ``mse estimate --json`` in-process and return its JSON object."""
    from mse_helpers import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["estimate", str(path), *argv, "--json"])
    text = buf.getvalue().strip()
    if code != 0 or not text:
        return {"status": f"exit {code}", "terms": None, "n_hat": None}
    return json.loads(text)


def stepwise_terms(path: Path) -> str | None:
    """SparseMSE's stepwise model for one table (a quick R run without bootstrap)."""
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.csv"
        tasks.write_text(f"dataset,path,task,terms,source\nx,{path},stepwise,,\n")
        out = Path(tmp) / "out.csv"
        run_r(R_FIT, str(tasks), str(out), "0")
        with out.open() as fh:
            for row in csv.DictReader(fh):
                if row["func"] == "estimatepopulation.0":
                    return row["terms"] if row["n_hat"] else None
    return None


def our_results(paths: dict[str, Path]) -> dict[str, dict]:
    """This project's results per table: ``backward`` (``--select backward-aic``), ``stepwise``
    (``--select stepwise``) and ``mt`` (main effects with ``--bias-correct``)."""
    return {
        name: {
            "backward": mse_estimate(path, "--select", "backward-aic"),
            "stepwise": mse_estimate(path, "--select", "stepwise"),
            "mt": mse_estimate(path, "--bias-correct"),
        }
        for name, path in paths.items()
    }


def _terms(res: dict) -> str | None:
    """The model of an ``mse estimate --json`` result as ``--terms`` takes it (None when refused)."""
    return None if res.get("terms") is None else ",".join(res["terms"])


def build_tasks(paths: dict[str, Path]) -> tuple[list[dict], dict]:
    """The fixed models to fit in R per table, and this project's results (:func:`our_results`)."""
    import pandas as pd  # with the project's other imports: only when R is there

    tasks, ours = [], our_results(paths)
    for name, path in paths.items():
        lists = [c for c in pd.read_csv(path, comment="#").columns if c != "count"]
        every = ",".join(f"{a}:{b}" for i, a in enumerate(lists) for b in lists[i + 1 :])
        sw = stepwise_terms(path)
        candidates = [
            ("", "main effects"),
            (_terms(ours[name]["backward"]), "mse backward-aic"),
            (sw, "terms of SparseMSE stepwise"),
            (_terms(ours[name]["stepwise"]), "mse stepwise"),
            (every, "all two-list terms"),
        ]
        seen: set[frozenset] = set()  # a model is fitted once, under the first source that gives it
        for terms, source in candidates:
            if terms is None or frozenset(terms.split(",")) in seen:
                continue
            seen.add(frozenset(terms.split(",")))
            tasks.append({"dataset": name, "path": str(path), "task": "fixed", "terms": terms, "source": source})
    return tasks, ours


def main(argv: list[str] | None = None) -> int:
    """Export the tables, run R, write the reference; exit 0 with "skipped" without R."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--nboot",
        type=int,
        default=100,
        help="SparseMSE bootstrap replicates (0: no BCa interval; 100 took ~10 min for all tables)",
    )
    ap.add_argument("--no-export", action="store_true", help="use the tables already in tests/fixtures/published")
    ap.add_argument(
        "--tables",
        action="store_true",
        help="only print the Markdown tables from tests/fixtures/r_reference.csv (no R)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.tables:
        return print_tables()
    why = r_available()
    if why:
        print(f"{why}.\n{INSTALL_HELP}skipped")
        return 0
    if not args.no_export:
        export_tables()
    paths = table_paths()
    tasks, ours = build_tasks(paths)
    with tempfile.TemporaryDirectory() as tmp:
        tfile = Path(tmp) / "tasks.csv"
        with tfile.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["dataset", "path", "task", "terms", "source"])
            w.writeheader()
            w.writerows(tasks)
        out = Path(tmp) / "out.csv"
        log.info("running R on %d tables (nboot=%d)", len(paths), args.nboot)
        run_r(R_FIT, str(tfile), str(out), str(args.nboot))
        with out.open() as fh:
            rows = list(csv.DictReader(fh))
    for row in rows:  # paths in the reference would be machine paths: keep the file name only
        row["note"] = row["note"].replace(str(ROOT) + "/", "")
    with REFERENCE.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    log.info("wrote %s (%d rows)", REFERENCE.relative_to(ROOT), len(rows))
    print(all_tables(rows, ours))
    return 0


def all_tables(rows: list[dict], ours: dict) -> str:
    """The three Markdown tables of docs/r_comparison.md."""
    return "\n\n".join([side_by_side(rows, ours), markdown_table(rows, ours), stepwise_table(rows, ours)])


def _interval(row: dict | None) -> str:
    """'[lo, hi]' to the whole person, '> x' for an open upper bound, '' without an interval."""
    if row is None or not row["lower"]:
        return ""
    lo = f"{float(row['lower']):,.0f}"
    if row["upper"]:
        return f"[{lo}, {float(row['upper']):,.0f}]"
    above = row["note"].split("above ")[1].split(" ")[0] if "above " in row["note"] else "?"
    return f"[{lo}, > {float(above):,.0f}]"


def _nhat(row: dict | None) -> str:
    return f"{float(row['n_hat']):,.1f}" if row and row["n_hat"] else ""


def _pick(rows: list[dict], name: str, **kw) -> dict | None:
    hits = [r for r in rows if r["dataset"] == name and all(r[k] == v for k, v in kw.items())]
    return hits[0] if hits else None


def _fixed(rows: list[dict], name: str, terms: str) -> dict | None:
    """Rcapture's fit of the model with these terms (in any order: each model is fitted once)."""
    want = frozenset(terms.split(","))
    hits = [
        r for r in rows if r["dataset"] == name and r["kind"] == "fixed" and frozenset(r["terms"].split(",")) == want
    ]
    return hits[0] if hits else None


def _ours_nhat(res: dict) -> str:
    return f"{res['n_hat']:,.1f}" if res.get("n_hat") is not None else str(res.get("status"))


def side_by_side(rows: list[dict], ours: dict) -> str:
    """Per table: SparseMSE stepwise (BCa) and ours, Rcapture's fit of its terms and of our
    backward-AIC model (profile), main effects, and the bias-corrected Mt estimate."""
    pick = functools.partial(_pick, rows)
    lines = [
        (
            "| data set | n_obs | SparseMSE stepwise N-hat | BCa 95% | mse stepwise N-hat "
            "| Rcapture, SparseMSE's terms: N-hat "
            "| profile 95% | mse backward-aic N-hat | Rcapture, same terms: N-hat | profile 95% "
            "| main effects (Mt): Rcapture = mse | profile 95% | Mt bias-corrected: Rcapture | mse |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in ours.items():
        back = res["backward"]
        sw = pick(name, func="estimatepopulation.0")
        bca = pick(name, func="estimatepopulation")
        sw_fix = _fixed(rows, name, sw["terms"]) if sw else None
        our_terms = ",".join(back["terms"]) if back.get("terms") is not None else None
        our_fix = _fixed(rows, name, our_terms) if our_terms is not None else None
        main = pick(name, kind="fixed", terms="")
        bc = pick(name, kind="bias-corrected")
        our_bc = (res["mt"].get("bias_corrected") or {}).get("n_hat")
        lines.append(
            f"| {name} | {sw['n_obs'] if sw else ''} | {_nhat(sw)} | {_interval(bca)} "
            f"| {_ours_nhat(res['stepwise'])} "
            f"| {_nhat(sw_fix)} | {_interval(sw_fix)} | {_ours_nhat(back)} | {_nhat(our_fix)} "
            f"| {_interval(our_fix)} | {_nhat(main)} | {_interval(main)} "
            f"| {_nhat(bc)} | {'' if our_bc is None else f'{our_bc:,.1f}'} |"
        )
    return "\n".join(lines)


def stepwise_table(rows: list[dict], ours: dict) -> str:
    """``--select stepwise`` against SparseMSE's stepwise method, per table."""
    lines = [
        "| data set | SparseMSE stepwise terms (in order added) | N-hat | mse stepwise terms | N-hat | difference |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in ours.items():
        sw = _pick(rows, name, func="estimatepopulation.0")
        mine = res["stepwise"]
        if sw is None or not sw["n_hat"] or mine.get("n_hat") is None:
            diff = "n/a"
        else:
            d = mine["n_hat"] - float(sw["n_hat"])
            diff = (
                "same" if abs(d) <= 1e-6 * abs(mine["n_hat"]) else f"{d:+,.1f} ({100 * d / float(sw['n_hat']):+.1f}%)"
            )
        empty = sw["note"].split(";")[0].split(": ")[1] if sw and "minus infinity" in sw["note"] else ""
        sw_terms = (sw["terms"] or "main effects") + (f" (+ {empty} at minus infinity)" if empty else "") if sw else ""
        mine_terms = ",".join(mine["selection"]["added"]) if mine.get("selection") else str(mine.get("status"))
        lines.append(
            f"| {name} | {sw_terms} | {_nhat(sw)} | {mine_terms or 'main effects'} | {_ours_nhat(mine)} | {diff} |"
        )
    return "\n".join(lines)


def print_tables() -> int:
    """The Markdown tables from the reference already written (no R needed)."""
    with REFERENCE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    print(all_tables(rows, our_results(table_paths())))
    return 0


def markdown_table(rows: list[dict], ours: dict) -> str:
    """This project's backward-AIC result beside SparseMSE's stepwise estimate, per table."""
    lines = [
        (
            "| data set | n_obs | mse backward-aic terms | N-hat | SparseMSE stepwise terms | N-hat "
            "| BCa 95% | difference |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in ours.items():
        back = res["backward"]
        sw = [r for r in rows if r["dataset"] == name and r["func"] == "estimatepopulation.0"]
        bca = [r for r in rows if r["dataset"] == name and r["func"] == "estimatepopulation"]
        n_obs = sw[0]["n_obs"] if sw else ""
        sw_terms = sw[0]["terms"] if sw else ""
        sw_n = float(sw[0]["n_hat"]) if sw and sw[0]["n_hat"] else None
        ci = (
            f"[{float(bca[0]['lower']):,.0f}, {float(bca[0]['upper']):,.0f}]"
            if bca and bca[0]["lower"] and bca[0]["upper"]
            else ""
        )
        our_n = back.get("n_hat")
        if our_n is not None and sw_n is not None:
            diff = f"{our_n - sw_n:+,.1f} ({100 * (our_n - sw_n) / sw_n:+.1f}%)"
        else:
            diff = "n/a"
        our_terms = ",".join(back["terms"]) if back.get("terms") is not None else back.get("status")
        lines.append(
            f"| {name} | {n_obs} | {our_terms or 'main effects'} | "
            f"{'' if our_n is None else f'{our_n:,.1f}'} | {sw_terms or 'main effects'} | "
            f"{'' if sw_n is None else f'{sw_n:,.1f}'} | {ci} | {diff} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
