"""Readers and validation of the input files (data.md sections 1-3, 5).

Every reader checks *all* rows and collects every broken rule before it
raises, so a user fixes a file in one go. A violation names the file, the row
as a spreadsheet shows it (the header is row 1, the first data row is row 2),
the column and the rule. Nothing is dropped silently: an organisation that is
not in the register map is an error listing every unknown name with its rows.

Also the pseudonymisation helper of data.md section 5: a keyed hash
(HMAC-SHA256) of identifying fields with a secret the user keeps outside the
repository.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..codes import EXCLUDE, REGISTERS

REPORT_COLUMNS: tuple[str, ...] = ("report_id", "person_key", "report_date", "organisation",
                                   "sex", "age", "nationality", "exploitation")
MAP_COLUMNS: tuple[str, ...] = ("organisation", "register", "note")
AGGREGATE_COLUMNS: tuple[str, ...] = ("year", "organisation", "total", "sex_F", "sex_M",
                                      "age_minor", "age_adult", "nat_NL", "nat_other",
                                      "expl_sexual", "expl_other")
#: Pairs of aggregate columns that split ``total`` (their sum may be less).
AGGREGATE_PAIRS: tuple[tuple[str, str], ...] = (("sex_F", "sex_M"), ("age_minor", "age_adult"),
                                                ("nat_NL", "nat_other"), ("expl_sexual", "expl_other"))
EXPLOITATION_FORMS: tuple[str, ...] = ("sexual", "labour", "criminal", "organ_removal", "other", "unknown")
MAX_LISTED_ROWS = 20


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
    """An input file breaks rules; ``violations`` lists every one of them."""

    def __init__(self, violations: list[Violation]):
        self.violations = list(violations)
        lines = [f"{len(self.violations)} problem(s) in the input:"] + [f"  {v}" for v in self.violations]
        super().__init__("\n".join(lines))


def _rows_text(rows: Iterable[int]) -> str:
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED_ROWS])
    more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, comma) or .xlsx file (first sheet) as text.

    Every cell is a string ('' when empty), so validation sees what the
    user typed; Excel date cells become ``YYYY-MM-DD``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DataFrame
        Column names stripped of surrounding spaces.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Violation(str(path), None, None, "file does not exist")])
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            raw = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
            frame = raw.apply(lambda col: col.map(_excel_text)).astype(str)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise InputError([Violation(str(path), None, None, f"cannot be read as "
                                    f"{'Excel' if path.suffix.lower() == '.xlsx' else 'UTF-8 CSV'}: {exc}")]) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.fillna("").astype(str).apply(lambda col: col.str.strip())


def _excel_text(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp) or hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing_columns(frame: pd.DataFrame, required: Iterable[str], file: str) -> list[Violation]:
    return [Violation(file, 1, c, "required column is missing") for c in required if c not in frame.columns]


def read_register_map(path: str | Path) -> pd.DataFrame:
    """Read and check the register map (data.md section 2).

    Rules: columns ``organisation`` and ``register`` (``note`` optional);
    organisation non-empty and listed once; register one of I K O P R Z or
    ``exclude``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    DataFrame
        ``organisation, register, note``.

    Raises
    ------
    InputError
    """
    file = str(path)
    frame = read_table(path)
    bad = _missing_columns(frame, MAP_COLUMNS[:2], file)
    if bad:
        raise InputError(bad)
    if "note" not in frame.columns:
        frame["note"] = ""
    allowed = set(REGISTERS) | {EXCLUDE}
    for i, row in enumerate(frame.itertuples(index=False)):
        r = i + 2
        if row.organisation == "":
            bad.append(Violation(file, r, "organisation", "must not be empty"))
        if row.register not in allowed:
            bad.append(Violation(file, r, "register",
                                 f"{row.register!r} is not one of {' '.join(REGISTERS)} or {EXCLUDE}"))
    dup = frame["organisation"].duplicated(keep=False) & (frame["organisation"] != "")
    for name, rows in frame[dup].groupby("organisation").groups.items():
        bad.append(Violation(file, None, "organisation",
                             f"{name!r} is listed more than once ({_rows_text(r + 2 for r in rows)})"))
    if bad:
        raise InputError(bad)
    return frame[list(MAP_COLUMNS)].reset_index(drop=True)


def _unknown_organisations(frame: pd.DataFrame, known: set[str], file: str) -> list[Violation]:
    unknown = frame[~frame["organisation"].isin(known) & (frame["organisation"] != "")]
    return [Violation(file, None, "organisation",
                      f"organisation {name!r} is not in the register map ({_rows_text(r + 2 for r in rows)})")
            for name, rows in unknown.groupby("organisation", sort=True).groups.items()]


def read_reports(path: str | Path, register_map: pd.DataFrame) -> pd.DataFrame:
    """Read and check the reports file (data.md section 1).

    Parameters
    ----------
    path : str or Path
        CSV or .xlsx.
    register_map : DataFrame
        From :func:`read_register_map` (organisations must be in it).

    Returns
    -------
    DataFrame
        The data.md columns, typed: ``report_date`` datetime64, ``age``
        Int64, texts as strings with <NA> for empty; plus ``row`` (the row in
        the file). Extra columns are dropped and named in
        ``frame.attrs["notes"]``.

    Raises
    ------
    InputError
        With every violation of every row.
    """
    file = str(path)
    frame = read_table(path)
    bad = _missing_columns(frame, REPORT_COLUMNS, file)
    if bad:
        raise InputError(bad)
    extra = [c for c in frame.columns if c not in REPORT_COLUMNS]
    rows = pd.Series(range(2, len(frame) + 2), index=frame.index)

    def check(mask: pd.Series, column: str, rule: str) -> None:
        for r in rows[mask]:
            bad.append(Violation(file, int(r), column, rule))

    check(frame["report_id"] == "", "report_id", "must not be empty")
    dup = frame["report_id"].duplicated(keep="first") & (frame["report_id"] != "")
    for r, rid in zip(rows[dup], frame.loc[dup, "report_id"]):
        first = int(rows[frame["report_id"] == rid].iloc[0])
        bad.append(Violation(file, int(r), "report_id", f"report_id {rid!r} is not unique (also row {first})"))
    check(frame["person_key"] == "", "person_key", "must not be empty")
    iso = frame["report_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}")
    dates = pd.to_datetime(frame["report_date"].where(iso), format="%Y-%m-%d", errors="coerce")
    for r, v in zip(rows[dates.isna()], frame.loc[dates.isna(), "report_date"]):
        bad.append(Violation(file, int(r), "report_date", f"{v!r} is not a date YYYY-MM-DD"))
    check(frame["organisation"] == "", "organisation", "must not be empty")
    bad_sex = ~frame["sex"].isin(["F", "M", ""])
    for r, v in zip(rows[bad_sex], frame.loc[bad_sex, "sex"]):
        bad.append(Violation(file, int(r), "sex", f"{v!r} is not F, M or empty"))
    age_ok = frame["age"].str.fullmatch(r"\d{1,3}") & (pd.to_numeric(frame["age"], errors="coerce") <= 110)
    bad_age = ~(age_ok | (frame["age"] == ""))
    for r, v in zip(rows[bad_age], frame.loc[bad_age, "age"]):
        bad.append(Violation(file, int(r), "age", f"{v!r} is not a whole number from 0 to 110 or empty"))
    bad_nat = ~(frame["nationality"].str.fullmatch(r"[A-Z]{2}") | (frame["nationality"] == ""))
    for r, v in zip(rows[bad_nat], frame.loc[bad_nat, "nationality"]):
        bad.append(Violation(file, int(r), "nationality", f"{v!r} is not a two-letter ISO 3166-1 code"))
    for r, v in zip(rows, frame["exploitation"]):
        if v == "":
            continue
        forms = [f.strip() for f in v.split(";")]
        wrong = [f for f in forms if f not in EXPLOITATION_FORMS]
        if wrong:
            bad.append(Violation(file, int(r), "exploitation",
                                 f"{', '.join(repr(w) for w in wrong)} not in {';'.join(EXPLOITATION_FORMS)}"))
    bad.extend(_unknown_organisations(frame, set(register_map["organisation"]), file))
    if bad:
        raise InputError(sorted(bad, key=lambda v: (v.row is not None, v.row or 0)))
    out = pd.DataFrame({
        "report_id": frame["report_id"], "person_key": frame["person_key"], "report_date": dates,
        "organisation": frame["organisation"],
        "sex": frame["sex"].replace("", pd.NA), "age": pd.to_numeric(frame["age"].replace("", pd.NA)).astype("Int64"),
        "nationality": frame["nationality"].replace("", pd.NA),
        "exploitation": frame["exploitation"].str.replace(" ", "").replace("", pd.NA),
        "row": rows,
    })
    out.attrs["notes"] = [f"{file}: extra column {c!r} ignored" for c in extra]
    return out


def read_aggregates(path: str | Path, register_map: pd.DataFrame) -> pd.DataFrame:
    """Read and check the aggregates file (data.md section 3).

    Rules: all columns present; year a whole number; counts non-negative
    whole numbers; each pair sums to at most ``total``; the organisation is
    in the register map and not excluded; one row per organisation and year.

    Parameters
    ----------
    path : str or Path
    register_map : DataFrame

    Returns
    -------
    DataFrame
        Integer counts plus ``row``.

    Raises
    ------
    InputError
    """
    file = str(path)
    frame = read_table(path)
    bad = _missing_columns(frame, AGGREGATE_COLUMNS, file)
    if bad:
        raise InputError(bad)
    numbers = {}
    for c in AGGREGATE_COLUMNS:
        if c == "organisation":
            continue
        ok = frame[c].str.fullmatch(r"\d+")
        for i in frame.index[~ok]:
            rule = "must be a year (whole number)" if c == "year" else "must be a non-negative whole number"
            bad.append(Violation(file, int(i) + 2, c, f"{frame.at[i, c]!r}: {rule}"))
        numbers[c] = pd.to_numeric(frame[c].where(ok), errors="coerce")
    for a, b in AGGREGATE_PAIRS:
        over = (numbers[a] + numbers[b]) > numbers["total"]
        for i in frame.index[over.fillna(False)]:
            bad.append(Violation(file, int(i) + 2, f"{a}+{b}",
                                 f"{int(numbers[a][i])} + {int(numbers[b][i])} exceeds total {int(numbers['total'][i])}"))
    bad.extend(_unknown_organisations(frame, set(register_map["organisation"]), file))
    excluded = set(register_map.loc[register_map["register"] == EXCLUDE, "organisation"])
    for i in frame.index[frame["organisation"].isin(excluded)]:
        bad.append(Violation(file, int(i) + 2, "organisation",
                             f"{frame.at[i, 'organisation']!r} is excluded in the register map; its counts cannot be used"))
    dup = frame.duplicated(["year", "organisation"], keep="first")
    for i in frame.index[dup]:
        bad.append(Violation(file, int(i) + 2, "organisation",
                             f"{frame.at[i, 'organisation']!r} appears twice for year {frame.at[i, 'year']}"))
    if bad:
        raise InputError(sorted(bad, key=lambda v: (v.row is not None, v.row or 0)))
    out = pd.DataFrame({c: numbers[c].astype("int64") for c in numbers})
    out.insert(1, "organisation", frame["organisation"])
    out = out[list(AGGREGATE_COLUMNS)]
    out["row"] = range(2, len(out) + 2)
    return out


def empty_aggregates() -> pd.DataFrame:
    """An aggregates frame with no rows (when ``p.aggregates`` is null)."""
    out = pd.DataFrame({c: pd.Series(dtype="int64") for c in AGGREGATE_COLUMNS + ("row",)})
    out["organisation"] = out["organisation"].astype("string")
    return out


# --- pseudonymisation (data.md section 5) ------------------------------------------

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
