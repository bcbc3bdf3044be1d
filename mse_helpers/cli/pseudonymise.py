"""``mse pseudonymise``: replace the person keys of a reports file by keyed hashes.

::

    mse pseudonymise reports_raw.csv reports.csv --key-file /secure/mse.key

Every value of ``person_key`` becomes its HMAC-SHA-256 (64 hexadecimal
characters) under the secret in the key file (:func:`inputs.pseudonymise`).
The same value and key always give the same hash, so the reports of one person
keep one key and next year's file, hashed with the same key file, links to
this year's; without the key the hash cannot be traced back by hashing guessed
names. Keep the key file outside the repository and away from the data.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from . import UsageError

#: Fewest bytes of secret accepted (the HMAC helper's minimum).
MIN_KEY_BYTES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mse pseudonymise``."""
    parser.add_argument("input", metavar="IN", help="reports file (CSV or .xlsx) with identifying person keys")
    parser.add_argument("output", metavar="OUT", help="file to write (.csv: UTF-8 with commas; .xlsx: a workbook)")
    parser.add_argument(
        "--key-file",
        required=True,
        metavar="K",
        help=f"file holding the secret (at least {MIN_KEY_BYTES} bytes), kept outside the "
        f"repository; use the same file every year so that keys link across years",
    )
    parser.add_argument("--column", default="person_key", help="column to replace (default person_key)")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing OUT, or hash keys that already look hashed"
    )


def read_key(path: str | Path) -> bytes:
    """The secret in a key file, without a trailing line break.

    Raises
    ------
    UsageError
        The file is missing, a folder, inside the repository, or shorter than
        :data:`MIN_KEY_BYTES`.
    """
    from ..runner.params import PROJECT_ROOT

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--key-file {path}: is a folder, not a file")
    if not path.is_file():
        raise UsageError(f"--key-file {path}: no such file")
    if path.resolve().is_relative_to(PROJECT_ROOT.resolve()):
        raise UsageError(
            f"--key-file {path}: the key file is inside the repository; keep it outside it "
            f"(anyone with the key and the data can recompute the keys)"
        )
    key = path.read_bytes().rstrip(b"\r\n")
    if len(key.strip()) < MIN_KEY_BYTES:
        raise UsageError(
            f"--key-file {path}: holds {len(key.strip())} byte(s) of secret; at least "
            f'{MIN_KEY_BYTES} are needed (e.g. python -c "import secrets; '
            f'print(secrets.token_hex(32))" > {path.name})'
        )
    return key


def _check_paths(source: Path, target: Path, key_file: Path, force: bool) -> None:
    if target.resolve() == source.resolve() or (target.exists() and source.exists() and target.samefile(source)):
        raise UsageError(f"OUT {target}: is the input file; write the pseudonymised file to a new name")
    if target.resolve() == key_file.resolve():
        raise UsageError(f"OUT {target}: is the key file")
    if target.is_dir():
        raise UsageError(f"OUT {target}: is a folder, not a file")
    if target.exists() and not force:
        raise UsageError(f"OUT {target}: exists; choose a new name or use --force to overwrite it")
    if not target.parent.is_dir():
        raise UsageError(f"OUT {target}: the folder {target.parent} does not exist")


def _write(frame, target: Path) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    suffix = target.suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix or ".csv")
    os.close(fd)
    try:
        if suffix in (".xlsx", ".xlsm"):
            frame.to_excel(tmp, index=False, engine="openpyxl")
        else:
            frame.to_csv(tmp, index=False, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(args: argparse.Namespace) -> int:
    """Pseudonymise one file; exit 0, or 2 on bad input (nothing written)."""
    from ..stages.inputs import InputError, Violation, _rows_text, pseudonymise, read_table

    source, target, key_file = Path(args.input), Path(args.output), Path(args.key_file)
    _check_paths(source, target, key_file, args.force)
    key = read_key(key_file)
    try:
        frame = read_table(source)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    column = args.column
    if column not in frame.columns:
        raise UsageError(str(InputError([Violation(str(source), 1, column, "required column is missing")])))
    empty = [int(r) for r in frame.index[frame[column] == ""]]
    if empty:
        raise UsageError(
            f"{source}, column {column}: empty in {_rows_text(empty)}; every report needs the "
            f"person's identifying key (an empty one would make all of them one person)"
        )
    hashed = frame[column].str.fullmatch(r"[0-9a-f]{64}")
    if hashed.all() and not args.force:
        raise UsageError(
            f"{source}, column {column}: every value already looks like an HMAC-SHA-256 key; "
            f"use --force to hash them again"
        )
    persons = frame[column].nunique()
    frame[column] = pseudonymise(frame[column], key)
    _write(frame, target)
    fmt = frame.attrs.get("format")
    read_as = f" (read as {fmt.describe()})" if fmt is not None else ""
    print(
        f"mse pseudonymise: wrote {target}: {len(frame)} rows, {persons} distinct {column} value(s) replaced by "
        f"HMAC-SHA-256 keys{read_as}"
    )
    print(
        f"mse pseudonymise: keep {key_file} secret and outside the repository; the same key file gives the "
        f"same keys next year"
    )
    return 0
