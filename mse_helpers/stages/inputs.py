"""Readers and validation of the input files (input-formats.md sections 1-3, 5).

Every reader checks *all* rows and collects every broken rule before it
raises, so a user fixes a file in one go. A violation names the file, the row
as a spreadsheet shows it (the header is row 1, the first data row is row 2),
the column and the rule. Nothing is dropped silently: an organisation that is
not in the register map is an error listing every unknown name with its rows.

Files saved by Excel are read as they come: the encoding (UTF-8, or
Windows-1252 as Excel's "CSV" on Windows writes it) and the separator (``,``,
``;`` as Excel writes with Dutch settings, or a tab) are detected and named in
the run's data decisions; an ``.xlsx`` is read from its one sheet with data.
``reports`` and ``aggregates`` may be several files (a list, or a folder of
files of one format), each validated on its own.

Also the pseudonymisation helper of input-formats.md section 5: a keyed hash
(HMAC-SHA256) of identifying fields with a secret the user keeps outside the
repository (``mse pseudonymise``).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import hmac
import io
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from ..codes import EXCLUDE, REGISTERS
from .iso3166 import LIKELY_MEANT, NATIONALITY_CODES

REPORT_COLUMNS: tuple[str, ...] = (
    "report_id",
    "person_key",
    "report_date",
    "organisation",
    "sex",
    "age",
    "nationality",
    "exploitation",
)
MAP_COLUMNS: tuple[str, ...] = ("organisation", "register", "note")
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "year",
    "organisation",
    "total",
    "sex_F",
    "sex_M",
    "age_minor",
    "age_adult",
    "nat_NL",
    "nat_other",
    "expl_sexual",
    "expl_other",
)
#: Pairs of aggregate columns that split ``total`` (their sum may be less).
AGGREGATE_PAIRS: tuple[tuple[str, str], ...] = (
    ("sex_F", "sex_M"),
    ("age_minor", "age_adult"),
    ("nat_NL", "nat_other"),
    ("expl_sexual", "expl_other"),
)
EXPLOITATION_FORMS: tuple[str, ...] = ("sexual", "labour", "criminal", "organ_removal", "other", "unknown")
MAX_LISTED_ROWS = 20
#: Problems printed in one error message (the rest are counted).
MAX_LISTED_PROBLEMS = 100
#: Characters of a value shown in a message (a 2 MB cell must not give a 2 MB message).
MAX_VALUE_CHARS = 40
#: Earliest report date and aggregate year accepted (input-formats.md 1, 3).
FIRST_YEAR = 1900
#: File name endings read as Excel workbooks; every other name is read as a text (CSV) file.
EXCEL_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm")
#: File name endings taken from a folder given as ``reports`` or ``aggregates``.
DATA_SUFFIXES: tuple[str, ...] = (".csv", ".txt") + EXCEL_SUFFIXES
#: Separators tried on a CSV's header line.
SEPARATORS: tuple[str, ...] = (",", ";", "\t")
ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls (and other Office 97-2003 files)


@dataclasses.dataclass(frozen=True)
class Violation:
    """One broken rule: where (file, row, column) and what (rule)."""

    file: str
    row: int | None
    column: str | None
    rule: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.rule}"


class InputError(ValueError):
    """An input file breaks rules; ``violations`` lists every one of them.

    The message lists at most :data:`MAX_LISTED_PROBLEMS` of them and counts
    the rest, so that a file broken in every row still gives a readable message.
    ``notes`` (not problems) follow, e.g. how a file was read when that was not
    UTF-8 with commas.
    """

    def __init__(self, violations: list[Violation], notes: Sequence[str] = ()):
        self.violations = list(violations)
        self.notes = list(dict.fromkeys(notes))
        shown = [f"  {v}" for v in self.violations[:MAX_LISTED_PROBLEMS]]
        if len(self.violations) > MAX_LISTED_PROBLEMS:
            shown.append(f"  ... and {len(self.violations) - MAX_LISTED_PROBLEMS} more problem(s)")
        lines = [f"{len(self.violations)} problem(s) in the input:"] + shown + [f"  note: {n}" for n in self.notes]
        super().__init__("\n".join(lines))


def _format_notes(frame: pd.DataFrame, file: str) -> list[str]:
    """How a file was read, for an error message, when it was not UTF-8 with commas."""
    fmt = frame.attrs.get("format")
    if fmt is None or fmt.kind != "csv" or (fmt.encoding in ("utf-8", "utf-8-sig") and fmt.separator == ","):
        return []
    return [f"{file} was read as {fmt.describe()}; if that is wrong, set the parameters encoding and separator"]


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """How a file was read: ``kind`` "csv" or "xlsx"; encoding and separator of
    a CSV, the sheet of a workbook."""

    kind: str
    encoding: str | None = None
    separator: str | None = None
    sheet: str | None = None
    detected: bool = True

    def describe(self) -> str:
        """E.g. ``"CSV, Windows-1252 (not UTF-8), separator ';'"``."""
        if self.kind == "xlsx":
            return f"Excel workbook, sheet {self.sheet!r}"
        names = {
            "utf-8": "UTF-8",
            "utf-8-sig": "UTF-8 (with byte-order mark)",
            "cp1252": "Windows-1252",
            "latin-1": "Latin-1",
            "utf-16": "UTF-16",
        }
        enc = names.get(self.encoding, self.encoding)
        sep = {",": "','", ";": "';'", "\t": "tab"}.get(self.separator, repr(self.separator))
        how = "detected" if self.detected else "as set"
        return f"CSV, encoding {enc}, separator {sep} ({how})"


def shorten(value, limit: int = MAX_VALUE_CHARS) -> str:
    """A value quoted for a message, cut to ``limit`` characters.

    Examples
    --------
    >>> shorten("Politie")
    "'Politie'"
    >>> shorten("x" * 100, 5)
    "'xxxxx...' (100 characters)"
    """
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}"[:-1] + "...' (" + f"{len(text)} characters)"


def _rows_text(rows: Iterable[int]) -> str:
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED_ROWS])
    more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def column_letter(position: int) -> str:
    """Spreadsheet column letter of a 0-based position: 0 -> A, 26 -> AA."""
    letters = ""
    n = position + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# --- reading one file -----------------------------------------------------------------


def _decode(raw: bytes, file: str, encoding: str | None) -> tuple[str, str]:
    """Text and encoding of a CSV file's bytes (``encoding`` None: detect).

    Detection: a byte-order mark (UTF-8 or UTF-16) wins; then UTF-8; then
    Windows-1252 (Excel's "CSV" on Windows), then Latin-1.
    """
    if encoding is not None:
        try:
            # Excel's "CSV UTF-8" starts with a byte-order mark; it is not part of the first column's name
            return raw.decode(encoding).removeprefix("\ufeff"), encoding
        except LookupError:
            raise InputError(
                [Violation(file, None, None, f"encoding {encoding!r} is not known (use e.g. utf-8, cp1252 or latin-1)")]
            ) from None
        except UnicodeDecodeError as exc:
            row = raw[: exc.start].count(b"\n") + 1
            raise InputError(
                [
                    Violation(
                        file,
                        row,
                        None,
                        f"cannot be read as {encoding}: byte "
                        f"0x{raw[exc.start]:02x} is not valid in that encoding; "
                        f"leave the encoding parameter unset to detect it",
                    )
                ]
            ) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw.decode("utf-8-sig", errors="strict"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    for enc in ENCODINGS:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _sniff_separator(text: str) -> str:
    """The separator of the header line: ``,``, ``;`` or tab (csv.Sniffer, then counting)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return csv.Sniffer().sniff(header, delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        counts = {s: header.count(s) for s in SEPARATORS}
        best = max(counts, key=counts.get)
        return best if counts[best] > 0 else ","


def _csv_cells(
    path: Path, file: str, encoding: str | None, separator: str | None
) -> tuple[list[list[str]], FileFormat]:
    raw = path.read_bytes()
    if raw.startswith(_ZIP_MAGIC):
        raise InputError(
            [
                Violation(
                    file,
                    None,
                    None,
                    "is an Excel workbook (or another zip file), not a CSV "
                    "text file: give it the name ending .xlsx, or save it from Excel as CSV",
                )
            ]
        )
    if raw.startswith(_OLE_MAGIC):
        raise InputError(
            [
                Violation(
                    file,
                    None,
                    None,
                    "is an old Excel .xls workbook, not a CSV text file: open it in Excel and save it as .xlsx or CSV",
                )
            ]
        )
    text, enc = _decode(raw, file, encoding)
    if "\x00" in text:
        raise InputError(
            [
                Violation(
                    file, None, None, "is not a text file (it contains NUL bytes); a reports file must be CSV or .xlsx"
                )
            ]
        )
    sep = separator if separator is not None else _sniff_separator(text)
    # Values may be long (a pasted document); the csv module's default limit is 128 kB.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    except csv.Error as exc:
        raise InputError([Violation(file, None, None, f"cannot be read as CSV: {exc}")]) from None
    fmt = FileFormat("csv", encoding=enc, separator=sep, detected=separator is None and encoding is None)
    return rows, fmt


def _excel_text(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp) or hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_cells(path: Path, file: str) -> tuple[list[list[str]], FileFormat]:
    raw_head = path.open("rb").read(8)
    if not raw_head.startswith(_ZIP_MAGIC):
        kind = (
            "an old Excel .xls workbook"
            if raw_head.startswith(_OLE_MAGIC)
            else "a text (CSV) file"
            if raw_head and b"\x00" not in raw_head
            else "not an Excel workbook"
        )
        fix = (
            "open it in Excel and save it as .xlsx"
            if raw_head.startswith(_OLE_MAGIC)
            else "give it the name ending .csv, or open it in Excel and save it as .xlsx"
        )
        raise InputError([Violation(file, None, None, f"is named {path.suffix} but its content is {kind}: {fix}")])
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=object, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds (zip, XML, key errors) for a broken workbook
        raise InputError(
            [
                Violation(
                    file, None, None, f"cannot be read as an Excel workbook: {type(exc).__name__}: {shorten(exc, 200)}"
                )
            ]
        ) from None
    with_data = {name: frame for name, frame in sheets.items() if frame.notna().any().any()}
    if len(with_data) > 1:
        names = ", ".join(repr(n) for n in with_data)
        raise InputError(
            [
                Violation(
                    file,
                    None,
                    None,
                    f"the workbook has {len(with_data)} sheets with data "
                    f"({names}); only one sheet can be read: move the data onto one sheet "
                    f"and delete the others, or save each sheet as its own file",
                )
            ]
        )
    if not with_data:
        return [], FileFormat("xlsx", sheet=next(iter(sheets), None))
    name, frame = next(iter(with_data.items()))
    rows = [[_excel_text(v) for v in row] for row in frame.itertuples(index=False)]
    return rows, FileFormat("xlsx", sheet=str(name))


def read_table(path: str | Path, *, encoding: str | None = None, separator: str | None = None) -> pd.DataFrame:
    """Read a CSV or .xlsx file as text, checking its structure.

    Every cell is a string ('' when empty), stripped of surrounding spaces,
    so validation sees what the user typed; Excel date cells become
    ``YYYY-MM-DD``. The index is the spreadsheet row (header = row 1, first
    data row = row 2; in a workbook whose header is lower down, the row Excel
    shows). Entirely empty rows are skipped (counted in the notes).

    Parameters
    ----------
    path : str or Path
        A ``.xlsx``/``.xlsm`` workbook (its one sheet with data), or a CSV
        text file (any other name).
    encoding : str, optional
        Of a CSV; None detects UTF-8 / Windows-1252 (see :func:`_decode`).
    separator : str, optional
        Of a CSV; None detects ``,``, ``;`` or tab from the header line.

    Returns
    -------
    DataFrame
        ``attrs["format"]`` the :class:`FileFormat` found, ``attrs["notes"]``
        what a user should know (format not the default, rows skipped), naming
        the file by its name only (notes are published in the data decisions).

    Raises
    ------
    InputError
        A folder or missing file; content that does not match the name; a
        file with no header; duplicated or missing column names; a header
        line repeated inside the file; a row with more values than columns.
    """
    path = Path(path)
    file = str(path)
    if path.is_dir():
        raise InputError([Violation(file, None, None, "is a folder, not a file")])
    if not path.is_file():
        raise InputError([Violation(file, None, None, "file does not exist")])
    if path.suffix.lower() in EXCEL_SUFFIXES:
        cells, fmt = _xlsx_cells(path, file)
    else:
        cells, fmt = _csv_cells(path, file, encoding, separator)
    filled = [i for i, row in enumerate(cells) if any(str(c).strip() for c in row)]
    if not filled:
        raise InputError([Violation(file, None, None, "is empty: no header line and no data")])
    head_at = filled[0]
    header = [str(c).strip() for c in cells[head_at]]
    header_row = head_at + 1
    bad: list[Violation] = []
    notes: list[str] = []
    width = len(header)
    body = {i + 1: [str(c).strip() for c in cells[i]] for i in filled[1:]}
    # columns without a name: ignored when empty, refused when they hold values
    unnamed = [j for j, name in enumerate(header) if name == ""]
    for j in unnamed:
        if any(j < len(v) and v[j] != "" for v in body.values()):
            bad.append(
                Violation(
                    file, header_row, column_letter(j), "this column holds values but has no name in the header row"
                )
            )
    for r, values in body.items():
        extra = [v for v in values[width:] if v != ""]
        if extra:
            sep = (
                f" (a value containing the separator {fmt.separator!r} must be in double quotes)"
                if fmt.kind == "csv"
                else ""
            )
            bad.append(
                Violation(file, r, None, f"has {width + len(extra)} values but the header has {width} columns{sep}")
            )
    names = [n for n in header if n != ""]
    for name in sorted({n for n in names if names.count(n) > 1}):
        letters = [column_letter(j) for j, n in enumerate(header) if n == name]
        bad.append(
            Violation(
                file,
                header_row,
                name,
                f"the column name {shorten(name)} appears "
                f"{len(letters)} times (columns {' and '.join(letters)}); rename or delete "
                f"all but one",
            )
        )
    keep = [j for j, name in enumerate(header) if name != ""]
    named_header = [header[j] for j in keep]
    header_names = set(named_header)
    for r, values in body.items():
        vals = [values[j] if j < len(values) else "" for j in keep]
        # the same line, or the header of a file with its columns in another order
        if named_header and (
            vals == named_header
            or (len(named_header) > 1 and sorted(vals) == sorted(named_header) and set(vals) == header_names)
        ):
            bad.append(
                Violation(
                    file,
                    r,
                    None,
                    "repeats the header line (were two files joined into one?); "
                    "delete this line, or give the files as a list (reports: [a.csv, b.csv])",
                )
            )
    if bad:
        raise InputError(bad)
    data = {
        name: [values[j] if j < len(values) else "" for values in body.values()] for name, j in zip(named_header, keep)
    }
    frame = pd.DataFrame(data, index=pd.Index(list(body), name="row", dtype="int64"), dtype=object)
    frame = (
        frame.astype(str)
        if len(frame)
        else pd.DataFrame(
            {c: pd.Series(dtype=str) for c in named_header}, index=pd.Index([], name="row", dtype="int64")
        )
    )
    filled_set = set(filled)
    skipped = [i + 1 for i in range(head_at + 1, len(cells)) if i not in filled_set]
    inner = [r for r in skipped if r < filled[-1] + 1]
    if inner:
        notes.append(f"{path.name}: {len(inner)} empty row(s) skipped ({_rows_text(inner)})")
    if unnamed:
        notes.append(
            f"{path.name}: {len(unnamed)} empty column(s) without a name ignored "
            f"(column {', '.join(column_letter(j) for j in unnamed)})"
        )
    if fmt.kind == "csv" and (fmt.encoding not in ("utf-8", "utf-8-sig") or fmt.separator != ","):
        notes.append(f"{path.name}: read as {fmt.describe()}")
    elif fmt.kind == "xlsx":
        notes.append(f"{path.name}: read as {fmt.describe()}")
    frame.attrs["format"] = fmt
    frame.attrs["notes"] = notes
    return frame


def _missing_columns(frame: pd.DataFrame, required: Iterable[str], file: str) -> list[Violation]:
    fmt = frame.attrs.get("format")
    found = [c for c in frame.columns]
    out = [Violation(file, 1, c, "required column is missing") for c in required if c not in frame.columns]
    if out and len(found) == 1 and fmt is not None and fmt.kind == "csv":
        # one column holding the whole header: the separator is not the one detected
        out.append(
            Violation(
                file,
                1,
                None,
                f"the header line was read as one column {shorten(found[0])}; "
                f"the file's separator is not {fmt.separator!r}: set the parameter separator",
            )
        )
    return out


def _no_rows(frame: pd.DataFrame, file: str, what: str) -> list[Violation]:
    if len(frame):
        return []
    return [Violation(file, None, None, f"has a header line but no data rows ({what})")]


# --- several files: a list or a folder --------------------------------------------------


def input_paths(value: str | Path | Sequence[str | Path], name: str) -> list[Path]:
    """The files of an input given as one file, a list of files or a folder.

    A folder gives its files ending ``.csv``, ``.txt``, ``.xlsx`` or
    ``.xlsm``, sorted by name, all of one format; hidden files and Excel's
    lock files (``~$...``) are left out.

    Parameters
    ----------
    value : path, or list of paths
    name : str
        The parameter (``reports``), for messages.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        A folder with no data files, with files of two formats or with other
        files; a file listed twice.
    """
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise InputError([Violation(f"parameter {name}", None, None, "the list of files is empty")])
    out: list[Path] = []
    bad: list[Violation] = []
    for item in items:
        path = Path(item)
        if not path.is_dir():
            out.append(path)
            continue
        files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith((".", "~$")))
        other = [f.name for f in files if f.suffix.lower() not in DATA_SUFFIXES]
        data = [f for f in files if f.suffix.lower() in DATA_SUFFIXES]
        if other:
            bad.append(
                Violation(
                    str(path),
                    None,
                    None,
                    f"folder given as {name} holds files that are not CSV "
                    f"or .xlsx: {', '.join(shorten(n) for n in other[:10])}; move them elsewhere",
                )
            )
        kinds = {"xlsx" if f.suffix.lower() in EXCEL_SUFFIXES else "csv" for f in data}
        if len(kinds) > 1:
            bad.append(
                Violation(
                    str(path), None, None, f"folder given as {name} mixes CSV and Excel files; use files of one format"
                )
            )
        if not data and not other:
            bad.append(Violation(str(path), None, None, f"folder given as {name} holds no CSV or .xlsx file"))
        out.extend(data)
    seen: set[Path] = set()
    for path in out:
        key = path.resolve()
        if key in seen:
            bad.append(Violation(str(path), None, None, f"is given twice in {name}"))
        seen.add(key)
    if bad:
        raise InputError(bad)
    return out


def _read_each(paths: Sequence[Path], read_one, what: str) -> list[pd.DataFrame]:
    """Read every file with ``read_one``, collecting the violations of all of them."""
    frames, bad, notes = [], [], []
    for path in paths:
        try:
            frames.append(read_one(path))
        except InputError as exc:
            bad.extend(exc.violations)
            notes.extend(exc.notes)
    if bad:
        raise InputError(bad, notes)
    return frames


def _files_read_note(what: str, frames: Sequence[pd.DataFrame]) -> str:
    parts = [f"{Path(f.attrs['file']).name} ({len(f)} rows)" for f in frames]
    return f"{what}: {len(frames)} file(s) read: {'; '.join(parts)}"


# --- register map ------------------------------------------------------------------


def read_register_map(path: str | Path, *, encoding: str | None = None, separator: str | None = None) -> pd.DataFrame:
    """Read and check the register map (input-formats.md section 2).

    Rules: columns ``organisation`` and ``register`` (``note`` optional);
    at least one row; organisation non-empty and listed once; register one of
    I K O P R Z or ``exclude``.

    Parameters
    ----------
    path : str or Path
    encoding, separator : str, optional
        See :func:`read_table`.

    Returns
    -------
    DataFrame
        ``organisation, register, note``; ``attrs["file"]`` the file.

    Raises
    ------
    InputError
    """
    file = str(path)
    frame = read_table(path, encoding=encoding, separator=separator)
    bad = _missing_columns(frame, MAP_COLUMNS[:2], file) or _no_rows(frame, file, "no organisations")
    if bad:
        raise InputError(bad, _format_notes(frame, file))
    if "note" not in frame.columns:
        frame["note"] = ""
    allowed = set(REGISTERS) | {EXCLUDE}
    for r, row in zip(frame.index, frame.itertuples(index=False)):
        if row.organisation == "":
            bad.append(Violation(file, int(r), "organisation", "must not be empty"))
        if row.register not in allowed:
            bad.append(
                Violation(
                    file,
                    int(r),
                    "register",
                    f"{shorten(row.register)} is not one of {' '.join(REGISTERS)} or {EXCLUDE}",
                )
            )
    dup = frame["organisation"].duplicated(keep=False) & (frame["organisation"] != "")
    for name, rows in frame[dup].groupby("organisation").groups.items():
        bad.append(
            Violation(
                file,
                None,
                "organisation",
                f"{shorten(name)} is listed more than once ({_rows_text(int(r) for r in rows)})",
            )
        )
    if bad:
        raise InputError(bad, _format_notes(frame, file))
    out = frame[list(MAP_COLUMNS)].reset_index(drop=True)
    out.attrs["file"] = file
    out.attrs["notes"] = list(frame.attrs.get("notes", []))
    return out


def _unknown_organisations(frame: pd.DataFrame, register_map: pd.DataFrame | None, file: str) -> list[Violation]:
    if register_map is None:  # the map itself is broken; its violations are listed instead
        return []
    known = set(register_map["organisation"])
    map_file = register_map.attrs.get("file", "the register map")
    unknown = frame[~frame["organisation"].isin(known) & (frame["organisation"] != "")]
    out = [
        Violation(
            file,
            None,
            "organisation",
            f"organisation {shorten(name)} is not in the register map ({_rows_text(int(r) for r in rows)})",
        )
        for name, rows in unknown.groupby("organisation", sort=True).groups.items()
    ]
    if out:
        example = str(unknown["organisation"].iloc[0])[:MAX_VALUE_CHARS]
        out.append(
            Violation(
                file,
                None,
                "organisation",
                f"{len(out)} organisation name(s) missing from the register map in use, {map_file}: add "
                f"a line name,register for each to that file (or to your own copy, named by the "
                f"parameter register_map), with a register code ({' '.join(REGISTERS)}) or "
                f"{EXCLUDE}, e.g. the line {example},P or {example},{EXCLUDE}",
            )
        )
    return out


# --- reports -------------------------------------------------------------------------


def _date_rule(value: str) -> str:
    """Why a report_date is not an ISO date, with a hint for Excel's usual forms."""
    hint = ""
    if re.fullmatch(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{4}", value):
        hint = " (it looks like day-month-year)"
    elif re.fullmatch(r"\d{4}[/.]\d{1,2}[/.]\d{1,2}", value):
        hint = " (use - between year, month and day)"
    elif re.fullmatch(r"\d{5}(\.\d+)?", value):
        hint = " (it looks like an Excel date serial number)"
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return f"{shorten(value)} is not a calendar date"
    return (
        f"{shorten(value)} is not a date in the format YYYY-MM-DD, e.g. 2016-01-04{hint}; Excel writes "
        f"this format when the column is formatted as yyyy-mm-dd (Format Cells, Custom) before saving "
        f"as CSV, or keep the file as .xlsx with date cells"
    )


def _check_reports(
    frame: pd.DataFrame, file: str, register_map: pd.DataFrame | None, today: _dt.date
) -> tuple[list[Violation], pd.Series]:
    """Every rule of input-formats.md 1 on one reports file; returns the violations and the dates."""
    bad: list[Violation] = []
    rows = pd.Series(frame.index, index=frame.index)

    def check(mask: pd.Series, column: str, rule: str) -> None:
        for r in rows[mask]:
            bad.append(Violation(file, int(r), column, rule))

    check(frame["report_id"] == "", "report_id", "must not be empty")
    dup = frame["report_id"].duplicated(keep="first") & (frame["report_id"] != "")
    first_row = frame.reset_index().drop_duplicates("report_id").set_index("report_id")["row"]
    for r, rid in zip(rows[dup], frame.loc[dup, "report_id"]):
        bad.append(
            Violation(
                file, int(r), "report_id", f"report_id {shorten(rid)} is not unique (also row {int(first_row[rid])})"
            )
        )
    check(frame["person_key"] == "", "person_key", "must not be empty")
    iso = frame["report_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}")
    dates = pd.to_datetime(frame["report_date"].where(iso), format="%Y-%m-%d", errors="coerce")
    for r, v in zip(rows[dates.isna()], frame.loc[dates.isna(), "report_date"]):
        bad.append(Violation(file, int(r), "report_date", _date_rule(v) if v else "must not be empty"))
    early = dates.notna() & (dates.dt.year < FIRST_YEAR)
    for r, v in zip(rows[early], frame.loc[early, "report_date"]):
        bad.append(Violation(file, int(r), "report_date", f"{v} is before {FIRST_YEAR}: not a possible report date"))
    late = dates.notna() & (dates > pd.Timestamp(today))
    for r, v in zip(rows[late], frame.loc[late, "report_date"]):
        bad.append(Violation(file, int(r), "report_date", f"{v} lies in the future (today is {today.isoformat()})"))
    check(frame["organisation"] == "", "organisation", "must not be empty")
    bad_sex = ~frame["sex"].isin(["F", "M", ""])
    for r, v in zip(rows[bad_sex], frame.loc[bad_sex, "sex"]):
        bad.append(Violation(file, int(r), "sex", f"{shorten(v)} is not F, M or empty"))
    age_ok = frame["age"].str.fullmatch(r"\d{1,3}") & (pd.to_numeric(frame["age"], errors="coerce") <= 110)
    bad_age = ~(age_ok | (frame["age"] == ""))
    for r, v in zip(rows[bad_age], frame.loc[bad_age, "age"]):
        bad.append(Violation(file, int(r), "age", f"{shorten(v)} is not a whole number from 0 to 110 or empty"))
    bad_nat = ~(frame["nationality"].isin(NATIONALITY_CODES) | (frame["nationality"] == ""))
    for r, v in zip(rows[bad_nat], frame.loc[bad_nat, "nationality"]):
        meant = LIKELY_MEANT.get(v)
        hint = f" (for this country use {meant})" if meant else ""
        bad.append(
            Violation(
                file,
                int(r),
                "nationality",
                f"{shorten(v)} is not an ISO 3166-1 alpha-2 country "
                f"code such as NL, NG or RO{hint}; leave it empty when unknown",
            )
        )
    for r, v in zip(rows, frame["exploitation"]):
        if v == "":
            continue
        forms = [f.strip() for f in v.split(";")]
        wrong = [f for f in forms if f not in EXPLOITATION_FORMS]
        if wrong:
            bad.append(
                Violation(
                    file,
                    int(r),
                    "exploitation",
                    f"{', '.join(shorten(w) for w in wrong)} not in {';'.join(EXPLOITATION_FORMS)}",
                )
            )
    bad.extend(_unknown_organisations(frame, register_map, file))
    return bad, dates


def _read_reports_file(
    path: Path, register_map: pd.DataFrame | None, *, encoding: str | None, separator: str | None, today: _dt.date
) -> pd.DataFrame:
    file = str(path)
    frame = read_table(path, encoding=encoding, separator=separator)
    bad = _missing_columns(frame, REPORT_COLUMNS, file) or _no_rows(frame, file, "no reports")
    if bad:
        raise InputError(bad, _format_notes(frame, file))
    extra = [c for c in frame.columns if c not in REPORT_COLUMNS]
    bad, dates = _check_reports(frame, file, register_map, today)
    if bad:
        raise InputError(sorted(bad, key=lambda v: (v.row is not None, v.row or 0)), _format_notes(frame, file))
    out = pd.DataFrame(
        {
            "report_id": frame["report_id"],
            "person_key": frame["person_key"],
            "report_date": dates,
            "organisation": frame["organisation"],
            "sex": frame["sex"].replace("", pd.NA),
            "age": pd.to_numeric(frame["age"].replace("", pd.NA)).astype("Int64"),
            "nationality": frame["nationality"].replace("", pd.NA),
            "exploitation": frame["exploitation"].str.replace(" ", "").replace("", pd.NA),
            "row": frame.index.to_numpy(),
            "file": file,
        }
    ).reset_index(drop=True)
    out.attrs["file"] = file
    out.attrs["notes"] = list(frame.attrs["notes"]) + [f"{path.name}: extra column {shorten(c)} ignored" for c in extra]
    return out


def read_reports(
    path: str | Path | Sequence[str | Path],
    register_map: pd.DataFrame | None,
    *,
    encoding: str | None = None,
    separator: str | None = None,
    today: _dt.date | None = None,
) -> pd.DataFrame:
    """Read and check the reports (input-formats.md section 1): one file, a list or a folder.

    Parameters
    ----------
    path : path, list of paths, or folder
        CSV or .xlsx files (see :func:`input_paths`), each validated on its
        own; a ``report_id`` must be unique across all of them.
    register_map : DataFrame or None
        From :func:`read_register_map` (organisations must be in it); None
        when the map itself is broken (organisations are then not checked).
    encoding, separator : str, optional
        See :func:`read_table`.
    today : date, optional
        Report dates after it are refused (default: today).

    Returns
    -------
    DataFrame
        The input-formats.md columns, typed: ``report_date`` datetime64,
        ``age`` Int64, texts as strings with <NA> for empty; plus ``row`` (the
        spreadsheet row) and ``file``. Extra columns are dropped and named in
        ``attrs["notes"]``, with the format of each file and the files read.

    Raises
    ------
    InputError
        With every violation of every row of every file.
    """
    today = today or _dt.date.today()
    paths = input_paths(path, "reports")
    frames = _read_each(
        paths,
        lambda f: _read_reports_file(f, register_map, encoding=encoding, separator=separator, today=today),
        "reports",
    )
    return _combine(
        frames,
        "reports",
        ["report_id"],
        "report_id",
        lambda r, file, row: (
            f"report_id {shorten(r['report_id'])} is also in {file} row {row}: report ids must be unique across "
            "the files"
        ),
    )


def _combine(
    frames: list[pd.DataFrame],
    name: str,
    key: list[str],
    column: str,
    describe: Callable[[pd.Series, str, int], str],
) -> pd.DataFrame:
    """The files of one input, read one by one (:func:`_read_each`), as one frame.

    A ``key`` found in two files is refused at its second place, naming the
    first (``describe(row, first_file, first_row)`` says it); the notes of the
    files are joined and the files read listed (``attrs["files"]``).
    """
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    notes = [n for f in frames for n in f.attrs.get("notes", [])]
    if len(frames) > 1:
        first = out.drop_duplicates(key).set_index(key)[["file", "row"]]
        bad = []
        for i in out.index[out.duplicated(key, keep="first")]:
            k = tuple(out.loc[i, key]) if len(key) > 1 else out.at[i, key[0]]
            bad.append(
                Violation(
                    out.at[i, "file"],
                    int(out.at[i, "row"]),
                    column,
                    describe(out.loc[i], first.at[k, "file"], int(first.at[k, "row"])),
                )
            )
        if bad:
            raise InputError(bad)
    notes.append(_files_read_note(name, frames))
    out.attrs["notes"] = notes
    out.attrs["files"] = [(f.attrs["file"], len(f)) for f in frames]
    return out


# --- aggregates ------------------------------------------------------------------------


def _read_aggregates_file(
    path: Path, register_map: pd.DataFrame | None, *, encoding: str | None, separator: str | None, today: _dt.date
) -> pd.DataFrame:
    file = str(path)
    frame = read_table(path, encoding=encoding, separator=separator)
    bad = _missing_columns(frame, AGGREGATE_COLUMNS, file)
    if bad:
        raise InputError(bad, _format_notes(frame, file))
    if not len(frame):
        # a header and no rows means no organisation sent only totals (as `mse simulate` writes it
        # for years without aggregates): the same as `aggregates: null`, said in the data decisions
        out = empty_aggregates()
        out.attrs["file"] = file
        out.attrs["notes"] = list(frame.attrs["notes"]) + [
            f"{path.name}: no data rows, so no aggregate counts are used"
        ]
        return out
    numbers = {}
    for c in AGGREGATE_COLUMNS:
        if c == "organisation":
            continue
        ok = frame[c].str.fullmatch(r"\d{1,9}")
        for r in frame.index[~ok]:
            rule = "must be a year (whole number)" if c == "year" else "must be a non-negative whole number"
            bad.append(Violation(file, int(r), c, f"{shorten(frame.at[r, c])}: {rule}"))
        numbers[c] = pd.to_numeric(frame[c].where(ok), errors="coerce")
    year = numbers["year"]
    out_of_range = year.notna() & ((year < FIRST_YEAR) | (year > today.year))
    for r in frame.index[out_of_range]:
        bad.append(Violation(file, int(r), "year", f"{int(year[r])} is not a year from {FIRST_YEAR} to {today.year}"))
    for a, b in AGGREGATE_PAIRS:
        over = (numbers[a] + numbers[b]) > numbers["total"]
        for r in frame.index[over.fillna(False)]:
            bad.append(
                Violation(
                    file,
                    int(r),
                    f"{a}+{b}",
                    f"{int(numbers[a][r])} + {int(numbers[b][r])} exceeds total {int(numbers['total'][r])}",
                )
            )
    check_empty = frame["organisation"] == ""
    for r in frame.index[check_empty]:
        bad.append(Violation(file, int(r), "organisation", "must not be empty"))
    bad.extend(_unknown_organisations(frame, register_map, file))
    if register_map is not None:
        excluded = set(register_map.loc[register_map["register"] == EXCLUDE, "organisation"])
        for r in frame.index[frame["organisation"].isin(excluded)]:
            bad.append(
                Violation(
                    file,
                    int(r),
                    "organisation",
                    f"{shorten(frame.at[r, 'organisation'])} is excluded "
                    f"in the register map; its counts cannot be used",
                )
            )
    dup = frame.duplicated(["year", "organisation"], keep="first")
    for r in frame.index[dup]:
        bad.append(
            Violation(
                file,
                int(r),
                "organisation",
                f"{shorten(frame.at[r, 'organisation'])} appears twice for year {frame.at[r, 'year']}",
            )
        )
    if bad:
        raise InputError(sorted(bad, key=lambda v: (v.row is not None, v.row or 0)), _format_notes(frame, file))
    out = pd.DataFrame({c: numbers[c].astype("int64") for c in numbers})
    out.insert(1, "organisation", frame["organisation"])
    out = out[list(AGGREGATE_COLUMNS)]
    out["row"] = frame.index.to_numpy()
    out["file"] = file
    out = out.reset_index(drop=True)
    out.attrs["file"] = file
    out.attrs["notes"] = list(frame.attrs["notes"])
    return out


def read_aggregates(
    path: str | Path | Sequence[str | Path],
    register_map: pd.DataFrame | None,
    *,
    encoding: str | None = None,
    separator: str | None = None,
    today: _dt.date | None = None,
) -> pd.DataFrame:
    """Read and check the aggregates (input-formats.md section 3): one file, a list or a folder.

    Rules: all columns present (a file with no rows means no aggregates); year a whole number from
    1900 to this year; counts non-negative whole numbers; each pair sums to
    at most ``total``; the organisation is in the register map and not
    excluded; one row per organisation and year (across all files).

    Parameters
    ----------
    path : path, list of paths, or folder
    register_map : DataFrame or None
    encoding, separator : str, optional
    today : date, optional

    Returns
    -------
    DataFrame
        Integer counts plus ``row`` and ``file``.

    Raises
    ------
    InputError
    """
    today = today or _dt.date.today()
    paths = input_paths(path, "aggregates")
    frames = _read_each(
        paths,
        lambda f: _read_aggregates_file(f, register_map, encoding=encoding, separator=separator, today=today),
        "aggregates",
    )
    return _combine(
        frames,
        "aggregates",
        ["year", "organisation"],
        "organisation",
        lambda r, file, row: f"{shorten(r['organisation'])} for year {r['year']} is also in {file} row {row}",
    )


def empty_aggregates() -> pd.DataFrame:
    """An aggregates frame with no rows (when ``p.aggregates`` is null)."""
    out = pd.DataFrame({c: pd.Series(dtype="int64") for c in AGGREGATE_COLUMNS + ("row",)})
    out["organisation"] = out["organisation"].astype("string")
    out["file"] = pd.Series(dtype="string")
    return out


# --- pseudonymisation (docs/input-formats.md section 5) ------------------------------------------


def study_key_fields(first_name: str, last_name: str, birth_year: int | str) -> str:
    """The study's identifying string: first letter of the first name, first
    three letters of the last name, last two digits of the birth year.

    Parameters
    ----------
    first_name, last_name : str
    birth_year : int or str

    Returns
    -------
    str
        E.g. ``("Anna", "de Vries", 1994)`` -> ``"adev94"`` (letters only,
        lower case, so spelling variants of spaces and case agree).
    """
    first = re.sub(r"[^a-z]", "", first_name.lower())
    last = re.sub(r"[^a-z]", "", last_name.lower())
    year = str(birth_year).strip()
    if not first or len(last) < 1 or not re.fullmatch(r"\d{4}", year):
        raise ValueError("study_key_fields: need a first name, a last name and a four-digit birth year")
    return f"{first[0]}{last[:3]}{year[-2:]}"


def pseudonymise(values: Iterable[str], secret: str | bytes) -> list[str]:
    """Keyed hash (HMAC-SHA256, hex) of identifying strings.

    The same value and secret always give the same key, so reports of one
    person share a key; without the secret the key cannot be traced back by
    hashing guessed names. Keep the secret outside the repository.

    Parameters
    ----------
    values : iterable of str
        Identifying strings, e.g. from :func:`study_key_fields`.
    secret : str or bytes
        At least 16 bytes.

    Returns
    -------
    list of str
        64-character hexadecimal keys.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        raise ValueError("pseudonymise: the secret must be at least 16 bytes long")
    return [hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest() for v in values]
