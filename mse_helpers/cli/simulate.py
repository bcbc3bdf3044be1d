"""``mse simulate``: write synthetic registration data (see :mod:`mse_helpers.synthetic.simulator`).

Each year is drawn from its own random stream ``seeds.rng(seed, "simulate",
year)``, so::

    mse simulate --years 2016-2019 --seed 20161231 --out data
    mse simulate --years 2020 --seed 20161231 --out data --append

first writes the bundled data, then adds a 2020 that is the same as in a run
of ``--years 2016-2020``: the bundled years are not changed.

``--generator second`` draws from :mod:`mse_helpers.synthetic.second` instead
(logistic capture, latent heterogeneity, referrals, year-varying effects,
organisations that withhold), writing the same four files.
"""

from __future__ import annotations

import argparse

from ..runner.params import parse_years_text
from . import UsageError

DEFAULT_SEED = 20161231  # the seed of the bundled data (data/defaults.yaml's master seed)


def parse_years(text: str) -> list[int]:
    """``2016-2019``, ``2020`` or ``2016,2018`` to a sorted list of years."""
    try:
        return sorted(set(parse_years_text(text)))
    except ValueError as exc:
        raise UsageError(f"--years: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse simulate``."""
    parser.add_argument("--years", default="2016-2019", help="years to simulate, e.g. 2016-2019 or 2020")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"master seed (default {DEFAULT_SEED})")
    parser.add_argument(
        "--out", required=True, help="folder for reports.csv, aggregates.csv, truth.csv, register_map.csv"
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the years to the files already in --out (rows of these years are replaced)",
    )
    parser.add_argument(
        "--generator",
        choices=("simulator", "second"),
        default="simulator",
        help="simulator: the log-linear generator of the bundled data (default); second: an "
        "independent generator the log-linear model does not describe exactly",
    )
    parser.add_argument(
        "--calibration", action="store_true", help="also print the target-versus-generated table (Markdown)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``mse simulate``."""
    from ..synthetic import simulator as simulate

    years = parse_years(args.years)
    if args.seed < 0:
        raise UsageError("--seed must be a non-negative whole number")
    generator = getattr(args, "generator", "simulator")
    if generator == "second":
        if args.calibration:
            raise UsageError("--calibration: only for --generator simulator (the second generator has no targets)")
        from ..synthetic import second

        data = second.simulate(years, args.seed)
    else:
        data = simulate.simulate(years, args.seed)
    paths = simulate.write_data(data, args.out, append=args.append)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(
        f"years {years[0]}-{years[-1]}: {len(data.reports)} reports, "
        f"{int(data.aggregates['total'].sum()) if len(data.aggregates) else 0} persons in aggregates"
    )
    if args.calibration:
        print(simulate.calibration_markdown(simulate.calibration_table(data)))
    return 0
