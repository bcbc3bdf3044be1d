"""``mse run``: validate the parameters and inputs, then run the notebook pipeline."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
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


class _CliFormatter(logging.Formatter):
    """``mse run: warning: ...``, as the command's other messages."""

    def format(self, record: logging.LogRecord) -> str:
        return f"mse run: {record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def _progress_to_stdout():
    """While the run lasts, print the runner's log: progress (INFO) on stdout, warnings on stderr."""
    logger = logging.getLogger("mse_helpers.runner")
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    out.setFormatter(logging.Formatter("%(message)s"))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(_CliFormatter())
    old_level = logger.level
    for h in (out, err):
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for h in (out, err):
            h.flush()
            logger.removeHandler(h)
        logger.setLevel(old_level)


def main(args: argparse.Namespace) -> int:
    """Run the pipeline; exit 0 when every notebook ran, 1 when one failed, 2 on bad input.

    A stop signal (SIGINT, SIGTERM, SIGHUP) during the checks ends with one
    line and nothing written; during the run it stops the notebook and marks
    the run failed. Either way the exit code is 128 + the signal's number.
    """
    try:
        return _main(args)
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed (while importing)
        print("mse run: interrupted; nothing was run", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    from ..runner.pipeline import OutputLocationError, RunInterrupted, StopSignals, check_reports_location, \
        run_pipeline

    if args.cell_timeout < 1:
        raise UsageError("--cell-timeout: must be at least 1 second")
    reports = Path(args.reports).expanduser().resolve()
    with StopSignals() as stop:
        try:
            with stop.armed():
                check_reports_location(reports)
                try:
                    p = load_params(args.params, parse_set(args.set))
                except ParameterError as exc:
                    raise UsageError(str(exc)) from None
                check_inputs(p)
        except OutputLocationError as exc:
            raise UsageError(f"--reports: {exc}") from None
        except RunInterrupted as exc:
            print(f"mse run: stopped by {exc.name} while checking the inputs; nothing was run or written",
                  file=sys.stderr)
            return exc.exit_code
        with _progress_to_stdout():
            try:
                result = run_pipeline(p, reports, cell_timeout=args.cell_timeout, stop=stop)
            except OutputLocationError as exc:  # changed since the check above
                raise UsageError(f"--reports: {exc}") from None
    if result.index_error:
        print(f"mse run: warning: {result.index_error}; the run itself is {result.status} "
              f"(see {result.run_dir / 'manifest.json'})", file=sys.stderr)
    if result.interrupted:
        print(f"mse run: stopped by {result.interrupted.name}: the run folder {result.run_dir} is marked failed",
              file=sys.stderr)
        return result.interrupted.exit_code
    if result.failure:
        print(f"mse run: FAILED: {result.failure}", file=sys.stderr)
        print(f"mse run: the run folder {result.run_dir} is marked failed; "
              f"see {result.run_dir / 'html_code'} for the notebook with the error", file=sys.stderr)
        return 1
    print(f"mse run: done: {result.run_dir}")
    print(f"mse run: reports: {result.run_dir / 'index.html'}; all runs: {result.run_dir.parent / 'index.html'}")
    return 0
