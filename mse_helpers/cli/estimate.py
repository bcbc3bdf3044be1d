"""``mse estimate COUNTS.csv``: log-linear MSE on an aggregated count table.

For researchers who only have a published table of list histories (and
possibly covariate strata). The CSV has one column per list (0/1), optional
categorical covariate columns, and ``count``; histories that are absent count
0, and a row with every list 0 is an error (that cell is what MSE estimates).

Exit codes: 0 an estimate was made; 1 the model's MLE does not exist or is not
identifiable (the status and the responsible terms are printed, no number);
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from .. import seeds
from ..stages import selection
from . import UsageError
from ..codes import group_label
from ..engine.cells import complete_table
from ..engine.design import Design
from ..engine.estimates import by_groups, n_hat_by
from ..engine.fit import fit_model
from ..engine.resample import MIN_REPLICATES, parametric_bootstrap

LEVEL = 0.95
SELECT_METHODS = ("backward-aic", "forward-bic", "study")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse estimate``."""
    parser.description = __doc__.split("\n\n")[1].replace("\n", " ")
    parser.add_argument("counts", metavar="COUNTS.csv", help="table of list histories with a 'count' column")
    parser.add_argument("--lists", help="comma-separated list columns (default: every 0/1 column but count); "
                                        "every other column except count is a covariate")
    parser.add_argument("--terms", default="",
                        help="interaction terms: 'A:B,B:C', a formula 'A*B + C:D', or 'all2' for every "
                             "two-factor term (default: main effects only)")
    parser.add_argument("--by", help="covariate(s) to report estimates for, e.g. J or J,S")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="B",
                        help="parametric bootstrap replicates (method.md 7): redraw every cell from the fitted "
                             "model, refit, and report the 2.5%% and 97.5%% percentiles of the B N-hats; "
                             "replicates whose refit has no MLE are counted and left out")
    parser.add_argument("--seed", type=int, help="seed of the bootstrap (required with --bootstrap)")
    parser.add_argument("--select", choices=SELECT_METHODS,
                        help="select the model (method.md 6): 'backward-aic' removes terms by AIC from --terms "
                             "(default all two-factor terms); 'forward-bic' adds two- and three-factor terms by "
                             "BIC to --terms (default main effects), a term only when its margins are in; "
                             "'study' does both (backward AIC from all two-factor terms, then forward BIC over "
                             "all three-factor terms). A start without MLE first loses the terms the existence "
                             "check blames; refused terms are reported")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def read_counts(path: str | Path) -> pd.DataFrame:
    """Read the CSV, with errors that name the file."""
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


def _is_binary(series: pd.Series) -> bool:
    values = pd.unique(series.dropna())
    try:
        return len(values) > 0 and set(float(v) for v in values) <= {0.0, 1.0}
    except (TypeError, ValueError):
        return False


def split_columns(frame: pd.DataFrame, lists_opt: str | None, source: str) -> tuple[list[str], list[str]]:
    """Decide which columns are lists and which are covariates."""
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


def main(args: argparse.Namespace) -> int:
    """Run ``mse estimate``; see the module docstring for exit codes."""
    source = str(args.counts)
    frame = read_counts(source)
    lists, factors = split_columns(frame, args.lists, source)
    by = [b.strip() for b in args.by.split(",") if b.strip()] if args.by else []
    bad_by = [b for b in by if b not in factors]
    if bad_by:
        raise UsageError(f"--by: {bad_by} are not covariate columns of {source}; covariates are {factors}")
    if args.bootstrap < 0 or args.bootstrap == 1:
        raise UsageError(f"--bootstrap: must be 0 (no interval) or at least {MIN_REPLICATES}, got {args.bootstrap}")
    if args.bootstrap and args.seed is None:
        raise UsageError("--bootstrap needs --seed (the interval must be reproducible)")
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
        "n_obs": int(round(fit.n_obs)), "n_hat": _num(fit.n_hat), "terms": list(terms),
        "loglik": _num(fit.llf), "aic": _num(fit.aic), "bic": _num(fit.bic),
        "deviance": _num(fit.deviance), "df": int(fit.df_resid), "status": fit.status,
        "by": {}, "interval": None,
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
    if args.bootstrap and fit.ok:
        rng = seeds.rng(args.seed, "estimate", 0)
        boot = parametric_bootstrap(fit, args.bootstrap, rng, by_groups(design.strata[list(factors)], by))
        iv = boot.interval(LEVEL).set_index("group")
        result["interval"] = {
            "lower": _num(iv.loc["total", "lower"]), "upper": _num(iv.loc["total", "upper"]),
            "level": LEVEL, "method": "parametric bootstrap, percentile",
            "n_boot": boot.n_boot, "n_failed": boot.n_failed,
        }
        for label in result["by"]:
            result["by"][label]["interval"] = {"lower": _num(iv.loc[label, "lower"]),
                                               "upper": _num(iv.loc[label, "upper"])}
    if args.json:
        print(json.dumps(result))
    else:
        print(render(result, source, lists, factors, by))
    return 0 if fit.ok else 1


def run_select(design: Design, method: str, start: tuple[str, ...] | None):
    """Run one of the ``--select`` methods (see :mod:`mse_helpers.stages.selection`).

    Parameters
    ----------
    design : Design
        Built with ``three_factor="all"``.
    method : {"backward-aic", "forward-bic", "study"}
    start : tuple of str or None
        The ``--terms`` model, or None for the method's default start.

    Returns
    -------
    fit : Fit
        The selected model (checked: its MLE exists).
    selection : dict
        ``method``, ``removed`` and ``added`` (terms in order), ``refused``
        (term, status, reason, step), ``fits``, ``checks``.
    """
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
    return fit, {"method": method, "removed": removed, "added": added, "refused": refused,
                 "fits": fits, "checks": checks}


def render(result: dict, source: str, lists: list[str], factors: list[str], by: list[str]) -> str:
    """The readable report of ``mse estimate``."""
    def f(x, nd=1):
        return "-" if x is None else f"{x:,.{nd}f}"

    lines = [f"MSE estimate from {source}",
             f"  lists:      {' '.join(lists)}",
             f"  covariates: {' '.join(factors) if factors else '(none)'}",
             f"  model:      main effects{' + ' + ' + '.join(result['terms']) if result['terms'] else ' only'}",
             f"  status:     {result['status']}"]
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
    lines += ["",
              f"  observed (n_obs)   {result['n_obs']:,}",
              f"  estimated (N-hat)  {f(result['n_hat'])}"]
    iv = result["interval"]
    if iv:
        lines.append(f"  95% interval       {f(iv['lower'])} - {f(iv['upper'])}  "
                     f"({iv['method']}, {iv['n_boot'] - iv['n_failed']} of {iv['n_boot']} replicates usable)")
    lines += [f"  log-likelihood     {f(result['loglik'], 3)}",
              f"  deviance           {f(result['deviance'], 3)} on {result['df']} df",
              f"  AIC / BIC          {f(result['aic'], 3)} / {f(result['bic'], 3)}"]
    if by:
        lines += ["", f"  by {','.join(by)}:", f"  {'group':<20}{'n_obs':>10}{'N-hat':>14}{'interval':>26}"]
        for label, g in result["by"].items():
            giv = g.get("interval")
            ivs = f"{f(giv['lower'])} - {f(giv['upper'])}" if giv else ""
            lines.append(f"  {label:<20}{g['n_obs']:>10,}{f(g['n_hat']):>14}{ivs:>26}")
    return "\n".join(lines)

