"""Write (or check) data/defaults.yaml and the README's parameter table from ``Params``.

Each parameter is described once, on :class:`mse_helpers.runner.params.Params`;
this script renders that description into the two places a user reads it.

    python scripts/params_doc.py          # rewrite both files
    python scripts/params_doc.py --check  # exit 1 if either is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mse_helpers.runner.params import defaults_yaml, readme_table  # noqa: E402

DEFAULTS = ROOT / "data" / "defaults.yaml"
README = ROOT / "README.md"
TABLE_HEADER = "| parameter |"


def replace_table(readme: str, table: str) -> str:
    """``readme`` with its parameter table (the block of lines from :data:`TABLE_HEADER`) replaced."""
    lines = readme.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(TABLE_HEADER))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "".join(lines[:start]) + table + "".join(lines[end:])


def main(argv: list[str] | None = None) -> int:
    """Rewrite or check the files; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if a file is out of date")
    args = ap.parse_args(argv)
    wanted = {DEFAULTS: defaults_yaml(), README: replace_table(README.read_text(encoding="utf-8"), readme_table())}
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python scripts/params_doc.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
