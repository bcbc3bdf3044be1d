"""``mse run``: validate the parameters and inputs, then run the notebook pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import UsageError
from ..runner.params import ParameterError, default_reports_dir, load_params, parse_set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse run``."""
    parser.add_argument("--params", metavar="FILE", help="YAML file with the parameters to change (the rest come "
                        "from the bundled defaults, data/defaults.yaml), or 'synthetic': the bundled synthetic data "
                        "with their truth (data/synthetic.yaml). Without it: the bundled synthetic data, no truth")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="override one parameter, e.g. --set m=5 --set years=2016-2019 (repeatable)")
    parser.add_argument("--reports", metavar="DIR", default=str(default_reports_dir()),
                        help="folder for run folders and index.html (default: the project's reports/ in a "
                        "checkout, else reports/ in the current folder)")
    parser.add_argument("--cell-timeout", metavar="SECONDS", type=int, default=1800,
                        help="seconds one notebook cell may take before the run fails (default 1800)")


def check_inputs(p) -> None:
    """Read, validate and prepare the inputs in memory before a run folder is made.

    Raises :class:`UsageError` listing every violation (file, row, column,
    rule), or naming the years that cannot be resolved.
    """
    from ..stages.inputs import InputError
    from ..stages.prepare import build

    try:
        build(p)
    except InputError as exc:
        raise UsageError(f"nothing was run: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    """Run the pipeline; exit 0 when every notebook ran, 1 when one failed, 2 on bad input."""
    from ..runner.pipeline import run_pipeline

    if args.cell_timeout < 1:
        raise UsageError("--cell-timeout: must be at least 1 second")
    try:
        p = load_params(args.params, parse_set(args.set))
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    check_inputs(p)
    result = run_pipeline(p, Path(args.reports).resolve(), cell_timeout=args.cell_timeout,
                          progress=lambda line: print(line, flush=True))
    if result.failure:
        print(f"mse run: FAILED: {result.failure}", file=sys.stderr)
        print(f"mse run: the run folder {result.run_dir} is marked failed; "
              f"see {result.run_dir / 'html_code'} for the notebook with the error", file=sys.stderr)
        return 1
    print(f"mse run: done: {result.run_dir}")
    print(f"mse run: reports: {result.run_dir / 'index.html'}; all runs: {result.run_dir.parent / 'index.html'}")
    return 0
