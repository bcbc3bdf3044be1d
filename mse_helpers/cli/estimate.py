"""``mse estimate COUNTS.csv``: log-linear MSE on an aggregated count table.

For researchers who only have a published table of list histories (and
possibly covariate strata). The CSV has one column per list (0/1), optional
categorical covariate columns, and ``count``; histories that are absent count
0, and a row with every list 0 is an error (that cell is what MSE estimates).
For a table without covariates the 95% profile-likelihood interval of N is
reported (the multinomial profile, as Rcapture's closedpCI.t computes it); with
covariates the Poisson profile interval of the total's N and of each ``--by``
group's (JSON ``profile.by``).

Exit codes: 0 an estimate was made; 1 the model's MLE does not exist or is not
identifiable (the status and the responsible terms are printed, no number);
2 bad input, or a request over the limits, refused before anything is built:
more than 15 lists, a design over 1 GiB, or a ``--select`` estimated at more
than 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
from math import comb
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..codes import group_label
from . import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from ..engine.design import Design

# pandas (about 0.25 s) is imported where a table is read, and the engine
# (pandas, scipy) inside main after the input checks: `mse estimate --help`
# loads neither, and a request that is refused is refused before the engine loads.

#: Fewest bootstrap replicates for an interval (as engine.resample.MIN_REPLICATES).
MIN_REPLICATES = 2
#: Bootstrap intervals of ``--ci``.
CI_METHODS = ("percentile", "bca")
#: Stream of bootstrap replicate b: ``seeds.rng(seed, "estimate", BOOT_STREAM, b)``.
BOOT_STREAM = 1

LEVEL = 0.95
SELECT_METHODS = ("backward-aic", "forward-bic", "study", "stepwise")
#: Limits of a request, checked before the design is built (a table of 20
#: lists has 2^20 cells; its design with the two-factor candidates needs
#: about 4 GB and minutes per fit).
MAX_LISTS = 15
MAX_DESIGN_BYTES = 1 << 30
#: Bytes per design entry: the float64 matrix, its observed/unobserved copies
#: and a float32 copy for the information matrix.
BYTES_PER_ENTRY = 8 + 8 + 4
#: Seconds per cell x squared design column of one fit, measured on a loaded
#: 2-core machine (14 lists with every two-factor term, 16,384 cells x 106
#: columns: 1.4 s); a rough scale for :func:`estimated_seconds`.
SECONDS_PER_CELL_COL2 = 8e-9
#: Fits per starting term of the bounded backward search in the size guard (each
#: step's bounds pass and the few candidates it cannot decide; generous).
BACKWARD_FITS_PER_TERM = 4
#: Longest request accepted, by that rough estimate.
MAX_SECONDS = 1800
#: Steps assumed for a forward search (each fits every remaining candidate).
FORWARD_STEPS = 10
#: A count above this is not a count of persons (and floats stop being exact
#: integers above 2^53).
MAX_COUNT = 10**12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse estimate``."""
    parser.description = __doc__.split("\n\n")[1].replace("\n", " ")
    parser.add_argument("counts", metavar="COUNTS.csv", help="table of list histories with a 'count' column")
    parser.add_argument(
        "--lists",
        help="comma-separated list columns (default: every 0/1 column but count); "
        "every other column except count is a covariate",
    )
    parser.add_argument(
        "--terms",
        default="",
        help="interaction terms: 'A:B,B:C', a formula 'A*B + C:D', or 'all2' for every "
        "two-factor term (default: main effects only)",
    )
    parser.add_argument("--by", help="covariate(s) to report estimates for, e.g. J or J,S")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="B",
        help="parametric bootstrap replicates (docs/engine.md 6): redraw every cell from the fitted "
        "model, refit, and report the 95%% interval of the dark number (N-hat - n_obs of each "
        "replicate) added to the observed count, so never below n_obs; replicates whose refit has "
        "no MLE are counted and left out, and with more than 10%% of them the interval is marked "
        "unreliable",
    )
    parser.add_argument(
        "--reselect",
        action="store_true",
        help="with --select and --bootstrap: repeat the whole model selection on every replicate "
        "(and on every jackknife table of --ci bca), so the interval includes the uncertainty of "
        "the choice of model, as SparseMSE's estimatepopulation does",
    )
    parser.add_argument(
        "--ci",
        choices=CI_METHODS,
        help="bootstrap interval: 'percentile' (2.5%% and 97.5%% of the replicates' dark numbers) or "
        "'bca' (bias-corrected and accelerated, acceleration from a delete-one-person jackknife, as "
        "SparseMSE); default bca with --reselect (selection biases the replicates, which BCa corrects), "
        "percentile otherwise",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the bootstrap (required with --bootstrap); replicate b draws from its own "
        "stream, so it is the same table with or without --reselect",
    )
    parser.add_argument(
        "--select",
        choices=SELECT_METHODS,
        help="select the model (docs/method.md 6): 'backward-aic' removes terms by AIC from --terms "
        "(default all two-factor terms); 'forward-bic' adds two- and three-factor terms by "
        "BIC to --terms (default main effects), a term only when its margins are in; "
        "'study' does both (backward AIC from all two-factor terms, then forward BIC over "
        "all three-factor terms); 'stepwise' is SparseMSE's method (Chan, Silverman and Vincent "
        "2021): from main effects, add the two-list term with the smallest Poisson p-value of its "
        "overlap while below 0.02 (tables without covariates). From a start without MLE, terms "
        "with a zero sufficient statistic go first, then one term at a time (the removal giving "
        "an existing model with the best criterion); refused terms are reported",
    )
    parser.add_argument(
        "--bias-correct",
        action="store_true",
        help="also report the bias-corrected estimate of Rivest and Levesque (2001), as Rcapture's "
        "closedp.bc computes it, where it applies: the main-effects model Mt (also with covariates "
        "the lists do not interact with, or stratified by one covariate every list interacts with)",
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def read_counts(path: str | Path) -> pd.DataFrame:
    """Read the CSV, with errors that name the file."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a readable CSV file ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if "count" not in frame.columns:
        raise UsageError(f"{path}: no 'count' column; columns are {list(frame.columns)}")
    return frame


def _plain(value) -> str:
    """A value as a user wrote it: ``-250``, ``2.5``, ``'x'`` (never ``np.int64(-250)``); cut when long."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def file_rows(path: str | Path, n_rows: int) -> list[int] | None:
    """The file row (header = row 1, as a spreadsheet shows it) of each data row.

    Comment lines (``#``) and blank lines are skipped, as :func:`read_counts`
    does; None when the lines cannot be matched to the rows read (e.g.
    quoted line breaks), then messages give the data row only.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    rows = [i + 1 for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    return rows[1:] if len(rows) == n_rows + 1 else None


def _where(source: str, row: int, rows: list[int] | None, column: str) -> str:
    """``FILE: row 5 (data row 4), column 'count'``."""
    if rows is None:
        return f"{source}: data row {row + 1}, column {column!r}"
    return f"{source}: row {rows[row]} (data row {row + 1}), column {column!r}"


def check_counts(frame: pd.DataFrame, source: str, rows: list[int] | None) -> None:
    """Every count a finite whole number from 0 to :data:`MAX_COUNT`.

    Raises
    ------
    UsageError
        Naming the row and column and showing the value as written.
    """
    import pandas as pd

    raw = frame["count"]
    y = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = ~np.isfinite(y.to_numpy()) | (y.to_numpy() < 0) | (y.to_numpy() > MAX_COUNT)
    bad |= np.isfinite(y.to_numpy()) & (y.to_numpy() != np.floor(y.to_numpy()))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = f"data row {row + 1}" + (f" (file row {rows[row]})" if rows else "")
        raise UsageError(
            f"{source}: column 'count' must be a whole number >= 0; {where} has "
            f"{_plain(raw.iloc[row])} (a count is finite and at most {MAX_COUNT:,}; "
            f"{int(bad.sum())} bad row(s))"
        )


def check_list_values(frame: pd.DataFrame, lists: list[str], source: str, rows: list[int] | None) -> None:
    """Every list column holds 0 or 1 in every row (row, column and value named)."""
    import pandas as pd

    for col in lists:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna().to_numpy() | ~values.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UsageError(
                f"{_where(source, row, rows, col)}: a list column holds 0 or 1, got "
                f"{_plain(frame[col].iloc[row])} ({int(bad.sum())} bad row(s))"
            )


def _looks_like_list(series: pd.Series) -> bool:
    """Numeric, and most values 0 or 1: a list column with a wrong value, not a covariate."""
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce")
    if values.isna().any() or values.empty:
        return False
    return bool(values.isin([0, 1]).mean() >= 0.5 and {0, 1} & set(values.unique()))


def request_size(frame: pd.DataFrame, lists: list[str], factors: list[str], select: bool) -> tuple[int, int]:
    """Cells and design columns of a request, without building anything.

    The design always holds every two-factor candidate term (and, with
    ``--select``, every three-factor one); a term's columns are the product
    of its variables' levels - 1.

    Returns
    -------
    n_cells, n_columns : int
    """
    df = [1] * len(lists) + [max(int(frame[f].nunique(dropna=True)) - 1, 1) for f in factors]
    n_cells = 2 ** len(lists) * int(np.prod([d + 1 for d in df[len(lists) :]], dtype=float))
    cols = 1 + sum(df)
    k = len(df)
    # sums of products of degrees of freedom over pairs (and triples), exact in integers
    e1, e2, e3 = sum(df), sum(d * d for d in df), sum(d**3 for d in df)
    cols += (e1 * e1 - e2) // 2
    if select and k >= 3:
        cols += (e1**3 - 3 * e1 * e2 + 2 * e3) // 6
    return n_cells, cols


def estimated_fits(n_variables: int, select: str | None, n_start_terms: int | None) -> int:
    """An upper estimate of the number of model fits of a request.

    Parameters
    ----------
    n_variables : int
        Lists plus covariates.
    select : str or None
        The ``--select`` method.
    n_start_terms : int or None
        Interaction terms of ``--terms`` (None: the method's default start).

    Returns
    -------
    int
        1 without ``--select``; backward elimination from T terms refits only
        the candidates its bounds cannot decide (docs/selection.md, engine/bounds.py:
        29 fits from 55 terms on the study table), counted as
        :data:`BACKWARD_FITS_PER_TERM` per term (at most T(T+1)/2, every candidate
        of every step); a forward search about :data:`FORWARD_STEPS` times the
        candidates; ``stepwise`` one fit and one existence check per step and
        at most one step per two-factor term (2 per term).
    """
    two, three = comb(n_variables, 2), comb(n_variables, 3)
    if not select:
        return 1
    fits = 0
    if select in ("backward-aic", "study"):
        t = two if n_start_terms is None or select == "study" else n_start_terms
        fits += min(t * (t + 1) // 2, BACKWARD_FITS_PER_TERM * t)
    if select == "stepwise":
        fits += 2 * two
    if select == "forward-bic":
        fits += (two + three) * FORWARD_STEPS
    if select == "study":
        fits += three * FORWARD_STEPS
    return max(fits, 1)


def estimated_seconds(n_cells: int, n_columns: int, n_fits: int) -> float:
    """Rough run time: ``n_fits`` fits of ``n_cells`` x ``n_columns`` (see :data:`SECONDS_PER_CELL_COL2`)."""
    return n_fits * n_cells * n_columns**2 * SECONDS_PER_CELL_COL2


def check_request_size(
    frame: pd.DataFrame, lists: list[str], factors: list[str], select: str | None = None, terms: str | None = None
) -> None:
    """Refuse, before anything is built, a request that is too big.

    Limits: :data:`MAX_LISTS` lists, a design of :data:`MAX_DESIGN_BYTES`,
    and :data:`MAX_SECONDS` by the rough time estimate.

    Raises
    ------
    UsageError
        Stating the size, the limit and what to do.
    """
    n_cells, cols = request_size(frame, lists, factors, bool(select))
    size = n_cells * cols * BYTES_PER_ENTRY
    if len(lists) > MAX_LISTS:
        raise UsageError(
            f"{len(lists)} lists ({', '.join(lists)}) is more than the limit of {MAX_LISTS}: the table would "
            f"have 2^{len(lists)} = {n_cells:,} cells and its design about {size / 2**30:,.1f} GiB; merge "
            f"small lists into one (or leave them out), or name fewer with --lists"
        )
    if size > MAX_DESIGN_BYTES:
        raise UsageError(
            f"the design would have {n_cells:,} cells x {cols:,} columns, about {size / 2**30:,.1f} GiB, "
            f"more than the limit of {MAX_DESIGN_BYTES / 2**30:,.0f} GiB; merge small lists, use fewer "
            f"covariates or covariate levels{', or leave out --select' if select else ''}"
        )
    n_start = None
    if terms:
        from ..engine.design import parse_terms

        try:
            n_start = len(parse_terms(terms, list(lists) + list(factors)))
        except ValueError:
            n_start = None  # reported with its reason when the design is built
    n_fits = estimated_fits(len(lists) + len(factors), select, n_start)
    seconds = estimated_seconds(n_cells, cols, n_fits)
    if seconds > MAX_SECONDS:
        raise UsageError(
            f"--select {select} on {len(lists)} lists and {len(factors)} covariate(s) would fit up to "
            f"{n_fits:,} models on {n_cells:,} cells, roughly {seconds / 60:,.0f} minutes (a rough estimate; "
            f"the limit is {MAX_SECONDS // 60} minutes); merge small lists, use fewer covariates, or start "
            f"backward-aic from a smaller model with --terms"
        )


def _is_binary(series: pd.Series) -> bool:
    import pandas as pd

    values = pd.unique(series.dropna())
    try:
        return len(values) > 0 and set(float(v) for v in values) <= {0.0, 1.0}
    except (TypeError, ValueError):
        return False


def split_columns(frame: pd.DataFrame, lists_opt: str | None, source: str) -> tuple[list[str], list[str]]:
    """Decide which columns are lists and which are covariates."""
    import pandas as pd

    others = [c for c in frame.columns if c != "count"]
    if lists_opt:
        lists = [c.strip() for c in lists_opt.split(",") if c.strip()]
        missing = [c for c in lists if c not in frame.columns]
        if missing:
            raise UsageError(f"--lists: column(s) {missing} not in {source}; columns are {others}")
        if len(set(lists)) != len(lists):
            raise UsageError(f"--lists: a column is named twice: {lists}")
    else:
        lists = [c for c in others if _is_binary(frame[c])]
        for c in others:
            if c not in lists and _looks_like_list(frame[c]):
                values = pd.to_numeric(frame[c], errors="coerce")
                row = int(np.flatnonzero(~values.isin([0, 1]).to_numpy())[0])
                rows = file_rows(source, len(frame))
                raise UsageError(
                    f"{_where(source, row, rows, c)}: column {c!r} looks like a list (0/1) but holds "
                    f"{_plain(frame[c].iloc[row])}; a list column holds only 0 and 1. Correct the value, "
                    f"or name the lists with --lists if {c!r} is a covariate"
                )
    if len(lists) < 2:
        raise UsageError(f"{source}: MSE needs at least two list columns (0/1); found {lists}")
    factors = [c for c in others if c not in lists]
    return lists, factors


def _labels(frame: pd.DataFrame, by: list[str]) -> list[str]:
    """``J=2018&S=F`` per row (records keep each column's type: 2018, not 2018.0)."""
    return [group_label(**{b: str(r[b]) for b in by}) for r in frame[by].to_dict("records")]


def _num(x: float) -> float | None:
    """JSON-safe number (NaN -> null)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def check_bootstrap_options(args: argparse.Namespace) -> None:
    """``--reselect`` and ``--ci`` only with what they act on (checked before the engine loads)."""
    if args.reselect and not args.select:
        raise UsageError("--reselect repeats the model selection: it needs --select (the method to repeat)")
    if (args.reselect or args.ci) and not args.bootstrap:
        option = "--reselect" if args.reselect else f"--ci {args.ci}"
        raise UsageError(f"{option} is an option of the bootstrap interval: it needs --bootstrap B --seed S")


def replicate_design(design: Design, counts: np.ndarray) -> Design:
    """The design's table with other observed-cell counts, as a new Design (same cells, same strata order).

    The selection functions read the counts of their design, so a replicate
    whose model is selected anew needs its own.
    """
    from ..engine.design import Design

    table = design.table.copy()
    table.loc[design.observed, design.count] = counts
    return Design(table, design.lists, design.factors, three_factor="all")


def reselect_refit(design: Design, method: str, start: tuple[str, ...] | None):
    """A ``refit`` for :func:`engine.resample.parametric_bootstrap` that repeats ``--select`` on each replicate.

    Returns
    -------
    callable
        Counts -> (selected Fit or None, status, False); a replicate where the
        selection finds no starting model with an MLE fails with status
        ``mle_does_not_exist``.
    """
    from ..engine.status import FitStatus

    def refit(counts: np.ndarray):
        try:
            fit, _ = run_select(replicate_design(design, counts), method, start)
        except RuntimeError:  # no starting model with an MLE
            return None, FitStatus.NO_MLE, False
        return (fit, FitStatus.OK, False) if fit.ok else (None, fit.status, False)

    return refit


#: How a failed replicate's status reads in "175 of 200 replicates had no MLE".
FAILED_WORDS = {"mle_does_not_exist": "had no MLE", "not_identifiable": "were not identifiable"}


def failed_text(failed_status: dict, n_boot: int) -> str:
    """``175 of 200 replicates had no MLE`` (statuses named one by one when they differ)."""
    n_failed = sum(failed_status.values())
    if len(failed_status) == 1:
        ((status, n),) = failed_status.items()
        return f"{n:,} of {n_boot:,} replicates {FAILED_WORDS.get(status, f'failed ({status})')}"
    parts = ", ".join(f"{n:,} {status}" for status, n in sorted(failed_status.items()))
    return f"{n_failed:,} of {n_boot:,} replicates failed ({parts})"


def bootstrap_result(
    fit, groups, *, n_boot: int, seed: int, ci: str, reselect: tuple[str, tuple[str, ...] | None] | None
) -> dict:
    """The JSON ``interval`` entry: the bootstrap interval of the dark number, with its failures.

    Parameters
    ----------
    fit : Fit
        The model fitted (or selected) on the data: the replicates are drawn from it.
    groups : GroupMatrix
        The total and the ``--by`` groups.
    n_boot, seed : int
    ci : {"percentile", "bca"}
    reselect : (method, start) or None
        Repeat ``run_select(method, start)`` on every replicate (and jackknife table).

    Returns
    -------
    dict
        ``lower``, ``upper``, ``level``, ``method``, ``ci``, ``reselect``,
        ``n_boot``, ``n_failed``, ``failed_share``, ``failed_status``,
        ``reliable``, ``warning``, ``n_same_model``, ``n_models``, with BCa
        ``acceleration``, ``z0``, ``n_jackknife``, ``n_jackknife_failed``;
        and ``groups`` (label -> ``lower``, ``upper``) for the ``--by`` groups.
    """
    from .. import seeds
    from ..engine.resample import MAX_FAILED_SHARE, bca_interval, jackknife, parametric_bootstrap

    refit = reselect_refit(fit.design, *reselect) if reselect else None
    boot = parametric_bootstrap(fit, n_boot, lambda b: seeds.rng(seed, "estimate", BOOT_STREAM, b), groups, refit=refit)
    bca: dict = {}
    if ci == "bca":
        jack = jackknife(fit, groups, refit=refit)
        iv = bca_interval(boot, jack, LEVEL)
        bca.update(
            acceleration=_num(float(iv["acceleration"].iloc[0])),
            z0=_num(float(iv["z0"].iloc[0])),
            n_jackknife=int(jack.weights.size),
            n_jackknife_failed=jack.n_failed,
        )
    else:
        iv = boot.interval(LEVEL)
    iv = iv.set_index("group")
    warning = None
    if not boot.reliable:
        warning = (
            f"unreliable: {failed_text(boot.failed_status, boot.n_boot)} (more than {MAX_FAILED_SHARE:.0%}); "
            "the interval describes only the tables where the estimate exists"
        )
    if ci == "bca" and np.isnan(iv.loc["total", "lower"]) and boot.n_ok:
        why = (
            "no jackknife table had an estimate (no acceleration)"
            if bca["acceleration"] is None
            else "every replicate is on one side of the estimate"
        )
        warning = (warning + "; " if warning else "") + f"no BCa interval: {why}"
    method = "parametric bootstrap of the dark number" + (
        f", {reselect[0]} re-selected in each replicate" if reselect else ""
    )
    out = {
        "lower": _num(float(iv.loc["total", "lower"])),
        "upper": _num(float(iv.loc["total", "upper"])),
        "level": LEVEL,
        "method": f"{method}, {ci}",
        "ci": ci,
        "reselect": reselect[0] if reselect else None,
        "n_boot": boot.n_boot,
        "n_failed": boot.n_failed,
        "failed_share": boot.failed_share,
        "failed_status": {str(k): v for k, v in boot.failed_status.items()},
        "reliable": boot.reliable,
        "warning": warning,
        "n_same_model": boot.models.get(tuple(fit.terms), 0),
        "n_models": len(boot.models),
        **bca,
    }
    out["groups"] = {
        label: {"lower": _num(float(iv.loc[label, "lower"])), "upper": _num(float(iv.loc[label, "upper"]))}
        for label in iv.index
        if label != "total"
    }
    return out


def main(args: argparse.Namespace) -> int:
    """Run ``mse estimate``; see the module docstring for exit codes."""
    source = str(args.counts)
    frame = read_counts(source)
    rows = file_rows(source, len(frame))
    check_counts(frame, source, rows)
    lists, factors = split_columns(frame, args.lists, source)
    check_list_values(frame, lists, source, rows)
    check_request_size(frame, lists, factors, getattr(args, "select", None), args.terms or None)
    by = [b.strip() for b in args.by.split(",") if b.strip()] if args.by else []
    bad_by = [b for b in by if b not in factors]
    if bad_by:
        raise UsageError(f"--by: {bad_by} are not covariate columns of {source}; covariates are {factors}")
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise UsageError(f"--bootstrap: must be 0 (no interval) or at least {MIN_REPLICATES}, got {args.bootstrap}")
    if args.bootstrap and args.seed is None:
        raise UsageError("--bootstrap needs --seed (the interval must be reproducible)")
    check_bootstrap_options(args)
    from ..engine.cells import complete_table
    from ..engine.design import Design
    from ..engine.estimates import by_groups, n_hat_by
    from ..engine.fit import fit_model
    from ..engine.profile import profile_interval

    select = args.select
    try:
        table = complete_table(frame, lists, factors, source=source)
        design = Design(table, lists, factors, three_factor="all" if select else None)
        terms = design.terms(args.terms or None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    selected = None
    if select:
        try:
            fit, selected = run_select(design, select, terms if args.terms else None)
        except RuntimeError as exc:  # no starting model with an MLE
            raise UsageError(f"--select {select}: {exc}") from None
    else:
        fit = fit_model(design, terms)
    result = {
        "n_obs": int(round(fit.n_obs)),
        "n_hat": _num(fit.n_hat),
        "terms": list(terms),
        "loglik": _num(fit.llf),
        "aic": _num(fit.aic),
        "bic": _num(fit.bic),
        "deviance": _num(fit.deviance),
        "df": int(fit.df_resid),
        "status": fit.status,
        "by": {},
        "interval": None,
        "profile": None,
    }
    if selected is not None:
        result["terms"] = list(fit.terms)
        result["selection"] = selected
    if fit.status != "ok":
        result["message"] = fit.message
        result["responsible"] = list(fit.responsible)
    groups = n_hat_by(fit, by) if by else None
    if groups is not None:
        for label, n_obs, n_hat in zip(_labels(groups, by), groups["n_obs"], groups["n_hat"]):
            result["by"][label] = {"n_obs": int(round(n_obs)), "n_hat": _num(n_hat)}
    if fit.ok:
        result["profile"] = profile_result(fit, factors, profile_interval, by)
    if getattr(args, "bias_correct", False):
        result["bias_corrected"] = bias_result(fit)
    if args.bootstrap and fit.ok:
        result["interval"] = bootstrap_result(
            fit,
            by_groups(design.strata[list(factors)], by),
            n_boot=args.bootstrap,
            seed=args.seed,
            ci=args.ci or ("bca" if args.reselect else "percentile"),
            reselect=(select, terms if args.terms else None) if args.reselect else None,
        )
        group_intervals = result["interval"].pop("groups")
        for label in result["by"]:
            result["by"][label]["interval"] = group_intervals[label]
    if args.json:
        print(json.dumps(result))
    else:
        print(render(result, source, lists, factors, by))
    return 0 if fit.ok else 1


def bias_result(fit) -> dict:
    """The JSON ``bias_corrected`` entry: the estimate of :mod:`mse_helpers.engine.bias`, or why there is none."""
    from ..engine.bias import NotApplicable, bias_corrected

    try:
        bc = bias_corrected(fit)
    except NotApplicable as exc:
        return {"available": False, "reason": f"no bias-corrected estimate: {exc}"}
    out = {
        "available": True,
        "n_hat": _num(bc.n_hat),
        "stderr": _num(bc.stderr),
        "model": bc.model,
        "method": "Rivest and Levesque (2001), as Rcapture closedp.bc",
    }
    if bc.by is not None:
        g = bc.by.columns[0]
        out["by"] = {
            f"{g}={r[g]}": {"n_obs": int(round(r["n_obs"])), "n_hat": _num(r["n_hat"]), "stderr": _num(r["stderr"])}
            for r in bc.by.to_dict("records")
        }
    return out


def profile_result(fit, factors: list[str], profile_interval, by: list[str] | tuple[str, ...] = ()) -> dict:
    """The JSON ``profile`` entry of an ok fit: the interval, or why there is none.

    Without covariates: the multinomial profile of N (:func:`engine.profile.profile_interval`,
    Rcapture's). With covariates: the Poisson profile of the total's N and, under
    ``by``, of each group's (:func:`engine.profile.group_profile_intervals`),
    the latter under ``by`` with the labels of the estimates (``S=F``).
    """
    if not factors:
        try:
            prof = profile_interval(fit, LEVEL)
        except (RuntimeError, ValueError) as exc:  # a profile fit failed: say so, keep the estimate
            return {"available": False, "reason": f"no profile-likelihood interval: {exc}"}
        return {
            "available": True,
            "lower": _num(prof.lower),
            "upper": _num(prof.upper),
            "lower_open": prof.lower_open,
            "upper_open": prof.upper_open,
            "n_hat_multinomial": _num(prof.n_hat_multinomial),
            "level": LEVEL,
            "method": "profile likelihood, multinomial",
            "search_limit": _num(prof.search_limit),
        }
    from ..engine.estimates import by_groups
    from ..engine.profile import group_profile_intervals

    groups = by_groups(fit.design.strata[list(fit.design.factors)], list(by))
    try:
        profs = group_profile_intervals(fit, groups.matrix, LEVEL)
    except (RuntimeError, ValueError) as exc:
        return {"available": False, "reason": f"no profile-likelihood interval: {exc}"}

    def entry(prof) -> dict:
        return {
            "lower": _num(prof.lower),
            "upper": _num(prof.upper),
            "lower_open": prof.lower_open,
            "upper_open": prof.upper_open,
            "search_limit": _num(prof.search_limit),
        }

    total = profs[groups.group.index("total")]
    return {
        "available": True,
        **entry(total),
        "level": LEVEL,
        "method": "profile likelihood, Poisson (of the strata's summed dark numbers)",
        "by": {label: entry(prof) for label, prof in zip(groups.group, profs) if label != "total"},
    }


def run_select(design: Design, method: str, start: tuple[str, ...] | None):
    """Run one of the ``--select`` methods (see :mod:`mse_helpers.stages.selection`).

    Parameters
    ----------
    design : Design
        Built with ``three_factor="all"``.
    method : {"backward-aic", "forward-bic", "study", "stepwise"}
    start : tuple of str or None
        The ``--terms`` model, or None for the method's default start
        (``stepwise`` always starts from main effects).

    Returns
    -------
    fit : Fit
        The selected model (checked: its MLE exists).
    selection : dict
        ``method``, ``removed`` and ``added`` (terms in order), ``refused``
        (term, status, reason, step), ``fits``, ``checks``.

    Raises
    ------
    RuntimeError
        No starting model with an MLE, or ``stepwise`` asked for what it does
        not do (a start from ``--terms``, covariates).
    """
    from ..stages import selection

    if method == "stepwise":
        from ..stages.stepwise import stepwise

        if start:
            raise RuntimeError("SparseMSE's stepwise method starts from main effects; leave out --terms")
        try:
            sw = stepwise(design)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        return sw.fit, {
            "method": method,
            "removed": [],
            "added": list(sw.path),
            "refused": [dict(r, type="stepwise") for r in sw.refused],
            "fits": sw.counter.fits,
            "checks": sw.counter.checks,
        }

    two_factor = tuple(t for t in design.candidate_terms if t.count(":") == 1)
    removed: list[str] = []
    added: list[str] = []
    refused: list[dict] = []
    fits = checks = 0
    if method in ("backward-aic", "study"):
        back = selection.backward(design, start if start is not None else two_factor, criterion="aic")
        fit, removed, refused = back.fit, back.path, [dict(r, type="backward") for r in back.refused]
        fits, checks = back.counter.fits, back.counter.checks
    if method in ("forward-bic", "study"):
        if method == "study":
            base, cands = fit, [t for t in design.candidate_terms if t.count(":") == 2]
        else:
            base, cands = (start or ()), list(design.candidate_terms)
        fwd = selection.forward(design, base, cands, criterion="bic")
        fit, added = fwd.fit, fwd.path
        refused += [dict(r, type="forward") for r in fwd.refused]
        fits, checks = fits + fwd.counter.fits, checks + fwd.counter.checks
    return fit, {
        "method": method,
        "removed": removed,
        "added": added,
        "refused": refused,
        "fits": fits,
        "checks": checks,
    }


def _bound(value: float | None, is_open: bool, limit: float | None, side: str) -> str:
    """One bound rounded to the person; an open bound as "> limit" (never as a number)."""
    if is_open:
        return f"> {limit:,.0f}" if side == "upper" else "open"
    return f"{value:,.0f}"


def _profile_text(prof: dict) -> str:
    """The profile interval as text: ``9,982 - 13,182``, an open upper bound as ``> 123,000``."""
    lower = _bound(prof["lower"], prof["lower_open"], None, "lower")
    upper = _bound(prof["upper"], prof["upper_open"], prof["search_limit"], "upper")
    if prof["upper_open"]:
        limit = f"{prof['search_limit']:,.0f}"
        return f"{lower} - {upper}  (open: the profile deviance stays below 3.84 up to N = {limit})"
    return f"{lower} - {upper}"


def _person(x: float | None) -> str:
    """A bound rounded to the person (``-`` when there is none)."""
    return "-" if x is None else f"{x:,.0f}"


def _bootstrap_lines(iv: dict) -> list[str]:
    """The bootstrap interval: bounds to the person, the method, the usable replicates, a warning."""
    usable = f"{iv['n_boot'] - iv['n_failed']:,} of {iv['n_boot']:,} replicates usable"
    if iv["reselect"]:
        usable += f", {iv['n_same_model']:,} selected the same model"
    lines = [f"  95% bootstrap interval {_person(iv['lower'])} - {_person(iv['upper'])}  ({iv['ci']}, {usable})"]
    if iv["warning"]:
        lines.append(f"    {iv['warning']}")
    lines.append(f"    {iv['method'].removesuffix(', ' + iv['ci'])}")
    return lines


def render(result: dict, source: str, lists: list[str], factors: list[str], by: list[str]) -> str:
    """The readable report of ``mse estimate``."""

    def f(x, nd=1):
        return "-" if x is None else f"{x:,.{nd}f}"

    lines = [
        f"MSE estimate from {source}",
        f"  lists:      {' '.join(lists)}",
        f"  covariates: {' '.join(factors) if factors else '(none)'}",
        f"  model:      main effects{' + ' + ' + '.join(result['terms']) if result['terms'] else ' only'}",
        f"  status:     {result['status']}",
    ]
    sel = result.get("selection")
    if sel:
        lines.append(f"  selection:  {sel['method']} ({sel['fits']} fits, {sel['checks']} existence checks)")
        if sel["removed"]:
            lines.append(f"    removed (in order): {' '.join(sel['removed'])}")
        if sel["added"]:
            lines.append(f"    added (in order):   {' '.join(sel['added'])}")
        for r in sel["refused"]:
            lines.append(f"    refused {r['term']} ({r['type']}, step {r['step']}): {r['reason']}")
    if result["status"] != "ok":
        lines.append(f"  {result.get('message', '')}")
        lines.append("  no estimate is reported for this model")
    lines += ["", f"  observed (n_obs)   {result['n_obs']:,}", f"  estimated (N-hat)  {f(result['n_hat'])}"]
    prof = result.get("profile")
    if prof and prof["available"]:
        lines.append(f"  95% profile-likelihood interval {_profile_text(prof)}")
    elif prof:
        lines.append(f"  {prof['reason']}")
    bc = result.get("bias_corrected")
    if bc and bc["available"]:
        lines.append(
            f"  bias-corrected     {f(bc['n_hat'])}  (model {bc['model']}, standard error {f(bc['stderr'])}; "
            f"{bc['method']})"
        )
        for label, g in bc.get("by", {}).items():
            lines.append(f"    {label:<16} {f(g['n_hat']):>12}  (standard error {f(g['stderr'])})")
    elif bc:
        lines.append(f"  {bc['reason']}")
    if result["interval"]:
        lines += _bootstrap_lines(result["interval"])
    lines += [
        f"  log-likelihood     {f(result['loglik'], 3)}",
        f"  deviance           {f(result['deviance'], 3)} on {result['df']} df",
        f"  AIC / BIC          {f(result['aic'], 3)} / {f(result['bic'], 3)}",
    ]
    if by:
        lines += ["", f"  by {','.join(by)}:", f"  {'group':<20}{'n_obs':>10}{'N-hat':>14}{'interval':>26}"]
        for label, g in result["by"].items():
            giv = g.get("interval")
            ivs = f"{_person(giv['lower'])} - {_person(giv['upper'])}" if giv else ""
            lines.append(f"  {label:<20}{g['n_obs']:>10,}{f(g['n_hat']):>14}{ivs:>26}")
    return "\n".join(lines)
