"""``mse run``: validate the parameters and inputs, then run the notebook pipeline."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from ..runner.params import ParameterError, default_reports_dir, load_params, parse_set
from . import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse run``."""
    parser.add_argument(
        "--params",
        metavar="FILE",
        help="YAML file with the parameters to change (the rest come "
        "from the bundled defaults, data/defaults.yaml), or 'synthetic': the bundled synthetic data "
        "with their truth (data/synthetic.yaml). Without it: the bundled synthetic data, no truth",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one parameter, e.g. --set m=5 --set years=2016-2019 (repeatable)",
    )
    parser.add_argument(
        "--reports",
        metavar="DIR",
        default=str(default_reports_dir()),
        help="folder for run folders and index.html (default: the project's reports/ in a "
        "checkout, else reports/ in the current folder)",
    )
    parser.add_argument(
        "--cell-timeout",
        metavar="SECONDS",
        type=int,
        default=1800,
        help="seconds one notebook cell may take before the run fails (default 1800)",
    )


#: Fewest registers ``mse run`` models (issue: two registers gave N-hat 9,152 with no spread).
MIN_REGISTERS = 3


def check_inputs(p) -> None:
    """Read, validate and prepare every input in memory before a run folder is made.

    Checks, all at once: the number of registers; the register map, reports
    and aggregates (every row, :func:`mse_helpers.stages.prepare.build`);
    the years asked for (persons in each, at least the minimum); the truth
    file (columns, and rows for every analysed year) and the earlier
    estimates file.

    Raises
    ------
    UsageError
        Listing every problem (file, row, column and rule, or the parameter).
    """
    problems = _check_registers(p)
    years = None
    prep, found, notes = _check_prepare(p)
    problems += found
    if prep is not None:
        years = [int(y) for y in prep.summary["years"]]
    problems += _check_truth(p, years)
    problems += _check_earlier_estimates(p)
    if problems:
        from ..stages.inputs import MAX_LISTED_PROBLEMS

        shown = problems[:MAX_LISTED_PROBLEMS]
        if len(problems) > MAX_LISTED_PROBLEMS:  # a file broken in every row: keep the message readable
            shown.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problem(s)")
        shown += [f"note: {n}" for n in notes]
        lines = "\n".join(f"  {line}" for line in shown)
        raise UsageError(f"nothing was run: {len(problems)} problem(s) in the input:\n{lines}")


def _check_registers(p) -> list[str]:
    if len(p.registers) >= MIN_REGISTERS:
        return []
    return [
        f"parameter registers: {len(p.registers)} register(s) {' '.join(p.registers)}; at least "
        f"{MIN_REGISTERS} are needed: with two registers the model cannot estimate how they depend on each "
        f"other (the interaction terms are not identified), and three is the literature's minimum for "
        f"modelling that dependence"
    ]


def _check_prepare(p):
    """Data preparation in memory: its result (or None), the problems and notes on how files were read."""
    from ..stages.inputs import InputError
    from ..stages.prepare import YearsError, build

    try:
        return build(p), [], []
    except InputError as exc:
        return None, [str(v) for v in exc.violations], list(exc.notes)
    except YearsError as exc:
        return None, list(exc.problems), []
    except ValueError as exc:
        return None, [str(exc)], []


def _check_truth(p, years) -> list[str]:
    """The truth file: readable, its columns, and rows for every analysed year."""
    if p.truth is None:
        return []
    from ..report.tables import read_truth

    try:
        truth = read_truth(p.truth)
    except (ValueError, OSError) as exc:
        return [_one_line(exc, f"truth file {p.truth}")]
    if truth.empty:
        return [f"truth file {p.truth}: has a header line but no data rows; set truth: null if there is no truth"]
    if years is None:
        return []
    have = sorted({str(y) for y in truth["year"]})
    missing = [str(y) for y in years if str(y) not in have]
    if missing:
        return [
            f"truth file {p.truth}, column year: no rows for the analysed year(s) {', '.join(missing)}; "
            f"it has {', '.join(have)}. A truth file (synthetic data only) must cover every analysed "
            f"year; set truth: null for real data"
        ]
    return []


def _check_earlier_estimates(p) -> list[str]:
    if p.earlier_estimates is None:
        return []
    from ..report.tables import read_earlier_estimates

    try:
        earlier = read_earlier_estimates(p.earlier_estimates)
    except (ValueError, OSError) as exc:
        return [_one_line(exc, f"earlier estimates file {p.earlier_estimates}")]
    if earlier.empty:
        return [f"earlier estimates file {p.earlier_estimates}: has a header line but no data rows"]
    return []


def _one_line(exc: Exception, where: str) -> str:
    """A reader's message, prefixed with the file when it does not name it, and kept short."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return text if where.split(" ", 3)[-1] in text else f"{where}: {text}"


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
    from ..runner.pipeline import OutputLocationError, RunInterrupted, StopSignals, check_reports_location, run_pipeline

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
            print(
                f"mse run: stopped by {exc.name} while checking the inputs; nothing was run or written", file=sys.stderr
            )
            return exc.exit_code
        with _progress_to_stdout():
            try:
                result = run_pipeline(p, reports, cell_timeout=args.cell_timeout, stop=stop)
            except OutputLocationError as exc:  # changed since the check above
                raise UsageError(f"--reports: {exc}") from None
    if result.index_error:
        print(
            f"mse run: warning: {result.index_error}; the run itself is {result.status} "
            f"(see {result.run_dir / 'manifest.json'})",
            file=sys.stderr,
        )
    if result.interrupted:
        print(
            f"mse run: stopped by {result.interrupted.name}: the run folder {result.run_dir} is marked failed",
            file=sys.stderr,
        )
        return result.interrupted.exit_code
    if result.failure:
        print(f"mse run: FAILED: {result.failure}", file=sys.stderr)
        print(
            f"mse run: the run folder {result.run_dir} is marked failed; "
            f"see {result.run_dir / 'html_code'} for the notebook with the error",
            file=sys.stderr,
        )
        return 1
    print(f"mse run: done: {result.run_dir}")
    print(f"mse run: reports: {result.run_dir / 'index.html'}; all runs: {result.run_dir.parent / 'index.html'}")
    return 0
