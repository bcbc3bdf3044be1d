"""The ``mse`` command line.

Sub-commands live in their own modules and are imported only when used, so
that ``mse --help`` is quick and one sub-command's dependencies never break
another:

- ``mse run``: the whole notebook pipeline into a dated report folder
  (:mod:`mse_helpers.runner.pipeline`);
- ``mse estimate``: log-linear MSE on an aggregated count table
  (:mod:`mse_helpers.cli.estimate`);
- ``mse simulate``: synthetic registration data (:mod:`mse_helpers.cli.simulate`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command name -> (module, one-line help). Each module defines
#: ``add_arguments(parser)`` and ``main(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("mse_helpers.cli.run", "run the four notebooks into a dated report folder"),
    "estimate": ("mse_helpers.cli.estimate", "estimate population size from an aggregated count table"),
    "simulate": ("mse_helpers.cli.simulate", "generate synthetic registration data"),
    "pseudonymise": ("mse_helpers.cli.pseudonymise", "replace person keys by keyed hashes (HMAC-SHA-256)"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mse`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="mse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)  # prints help / errors with exit 2
        parser.print_help()
        return 2
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sp = argparse.ArgumentParser(prog=f"mse {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sp)
    args = sp.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except UsageError as exc:
        print(f"mse {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
