"""A corpus of bad inputs: each refused by ``mse run`` before anything runs.

Every case runs the real CLI entry in-process (``main(["run", ...])``) on a
small valid data set with one thing broken, and asserts exit status 2, a
message naming the file and row/column (or the parameter) and the rule, and
that no run folder was made. The pre-flight refuses, so no notebook runs.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mse_helpers.cli import main
from mse_helpers.cli.run import check_inputs
from mse_helpers.runner.params import load_params
from mse_helpers.stages import inputs, prepare

REPORT_HEADER = "report_id,person_key,report_date,organisation,sex,age,nationality,exploitation"
AGG_HEADER = "year,organisation,total,sex_F,sex_M,age_minor,age_adult,nat_NL,nat_other,expl_sexual,expl_other"
MAP_TEXT = (
    "organisation,register,note\nPolitie Noord,P,\nKMar,K,\nISZW,I,\nRegio Zuid,R,\nOpvang Oost,O,\n"
    "Jeugdzorg,Z,\nIND,exclude,copies of police reports\n"
)
ORGS = ["Politie Noord", "KMar", "ISZW", "Regio Zuid", "Opvang Oost", "Jeugdzorg", "IND"]


def _reports(persons_per_year: dict[int, int], seed: int = 7) -> pd.DataFrame:
    """A valid reports table: each person one to three reports in their year."""
    rng = np.random.default_rng(seed)
    rows = []
    for year, n in persons_per_year.items():
        for i in range(n):
            key = f"p{year}_{i:04d}"
            sex, age = rng.choice(["F", "M"]), int(rng.integers(12, 60))
            nat, expl = rng.choice(["NL", "RO", "NG", ""]), rng.choice(["sexual", "labour", "criminal;sexual", ""])
            for k in range(int(rng.integers(1, 4))):
                day = dt.date(year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 200)) + 30 * k)
                rows.append(
                    dict(
                        report_id=f"r{len(rows) + 1:05d}",
                        person_key=key,
                        report_date=day.isoformat(),
                        organisation=ORGS[int(rng.choice(7, p=[0.4, 0.05, 0.1, 0.2, 0.15, 0.07, 0.03]))],
                        sex=sex,
                        age=str(age),
                        nationality=nat,
                        exploitation=expl,
                    )
                )
    return pd.DataFrame(rows)


def _write_case(
    folder: Path,
    reports: pd.DataFrame | None = None,
    *,
    aggregates: str | None = None,
    register_map: str = MAP_TEXT,
    extra: str = "",
) -> Path:
    """Write the inputs and a parameters file naming them; returns the parameters file."""
    folder.mkdir(parents=True, exist_ok=True)
    rep = _reports({2016: 80, 2017: 80}) if reports is None else reports
    rep.to_csv(folder / "reports.csv", index=False)
    (folder / "map.csv").write_text(register_map, encoding="utf-8")
    (folder / "agg.csv").write_text(
        aggregates if aggregates is not None else f"{AGG_HEADER}\n2017,Opvang Oost,10,6,4,1,9,2,8,5,5\n",
        encoding="utf-8",
    )
    params = folder / "params.yaml"
    params.write_text(
        "reports: reports.csv\naggregates: agg.csv\nregister_map: map.csv\ntruth: null\n"
        "earlier_estimates: null\n" + extra,
        encoding="utf-8",
    )
    return params


def _refused(tmp_path: Path, params: Path, capsys, *sets: str) -> str:
    """Run ``mse run``; assert exit 2 and no run folder; return the message."""
    out = tmp_path / "out"
    argv = ["run", "--params", str(params), "--reports", str(out)]
    for s in sets:
        argv += ["--set", s]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists() or not any(out.iterdir()), "a run folder was made"
    return err


@pytest.fixture
def case(tmp_path):
    return tmp_path / "in"


def test_the_base_case_passes_the_preflight(case):
    params = _write_case(case)
    check_inputs(load_params(params))  # raises UsageError if anything is wrong


# --- reports file: structure ----------------------------------------------------------------


def _text(case: Path, name: str, text: str | bytes) -> None:
    path = case / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))


def _edit_reports(case, edit, capsys, tmp_path, *sets):
    """Write the base case, let ``edit(frame)`` change the reports, expect refusal."""
    rep = _reports({2016: 80, 2017: 80})
    rep = edit(rep) if edit is not None else rep
    params = _write_case(case, rep)
    return _refused(tmp_path, params, capsys, *sets)


def test_header_only_reports(case, tmp_path, capsys):
    params = _write_case(case)
    _text(case, "reports.csv", REPORT_HEADER + "\n")
    assert re.search(r"reports.csv: has a header line but no data rows", _refused(tmp_path, params, capsys))


def test_empty_reports_file(case, tmp_path, capsys):
    params = _write_case(case)
    _text(case, "reports.csv", "")
    assert re.search(r"reports.csv: is empty", _refused(tmp_path, params, capsys))


def test_one_row_reports(case, tmp_path, capsys):
    err = _edit_reports(case, lambda r: r.head(1), capsys, tmp_path)
    assert "parameter years: no year has at least 50 persons" in err and "2016: 1" in err


def test_csv_named_xlsx(case, tmp_path, capsys):
    params = _write_case(case, extra="")
    (case / "reports.csv").rename(case / "reports.xlsx")
    params.write_text(params.read_text().replace("reports.csv", "reports.xlsx"))
    err = _refused(tmp_path, params, capsys)
    assert "reports.xlsx: is named .xlsx but its content is a text (CSV) file" in err


def test_xlsx_named_csv(case, tmp_path, capsys):
    params = _write_case(case)
    _reports({2016: 80, 2017: 80}).to_excel(case / "reports.csv", index=False, engine="openpyxl")
    assert "reports.csv: is an Excel workbook" in _refused(tmp_path, params, capsys)


def test_old_xls_named_xlsx(case, tmp_path, capsys):
    params = _write_case(case)
    _text(case, "reports.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    params.write_text(params.read_text().replace("reports.csv", "reports.xlsx"))
    assert "old Excel .xls workbook" in _refused(tmp_path, params, capsys)


def test_duplicated_header_line_inside(case, tmp_path, capsys):
    params = _write_case(case)
    lines = (case / "reports.csv").read_text().splitlines()
    lines.insert(11, lines[0])  # as `cat a.csv b.csv` leaves it: the line becomes spreadsheet row 12
    _text(case, "reports.csv", "\n".join(lines) + "\n")
    assert "reports.csv, row 12: repeats the header line" in _refused(tmp_path, params, capsys)


def test_duplicated_column_name(case, tmp_path, capsys):
    rep = _reports({2016: 80, 2017: 80})
    rep["sex2"] = rep["sex"]
    params = _write_case(case, rep)
    text = (case / "reports.csv").read_text().replace("exploitation,sex2", "exploitation,sex", 1)
    _text(case, "reports.csv", text)
    err = _refused(tmp_path, params, capsys)
    assert "reports.csv, row 1, column sex: the column name 'sex' appears 2 times (columns E and I)" in err


def test_missing_column(case, tmp_path, capsys):
    err = _edit_reports(case, lambda r: r.drop(columns=["nationality"]), capsys, tmp_path)
    assert "reports.csv, row 1, column nationality: required column is missing" in err


def test_row_with_more_values_than_columns(case, tmp_path, capsys):
    params = _write_case(case)
    lines = (case / "reports.csv").read_text().splitlines()
    lines[4] = lines[4] + ",extra"
    _text(case, "reports.csv", "\n".join(lines) + "\n")
    assert "reports.csv, row 5: has 9 values but the header has 8 columns" in _refused(tmp_path, params, capsys)


def test_value_with_a_name_but_no_column(case, tmp_path, capsys):
    params = _write_case(case)
    lines = (case / "reports.csv").read_text().splitlines()
    lines = [lines[0] + ","] + [line + ("," if i != 3 else ",oops") for i, line in enumerate(lines[1:])]
    _text(case, "reports.csv", "\n".join(lines) + "\n")
    assert "reports.csv, row 1, column I: this column holds values but has no name" in _refused(
        tmp_path, params, capsys
    )


def test_second_data_sheet_in_xlsx(case, tmp_path, capsys):
    params = _write_case(case)
    with pd.ExcelWriter(case / "reports.xlsx", engine="openpyxl") as xl:
        _reports({2016: 80, 2017: 80}).to_excel(xl, sheet_name="2016-2017", index=False)
        _reports({2018: 60}).to_excel(xl, sheet_name="2018", index=False)
    params.write_text(params.read_text().replace("reports.csv", "reports.xlsx"))
    err = _refused(tmp_path, params, capsys)
    assert "reports.xlsx: the workbook has 2 sheets with data ('2016-2017', '2018')" in err


def test_semicolon_file_with_one_bad_row_still_names_row(case, tmp_path, capsys):
    rep = _reports({2016: 80, 2017: 80})
    rep.loc[2, "sex"] = "V"
    rep["comment"] = "café"  # not ASCII: the Windows-1252 byte of é is not UTF-8
    params = _write_case(case, rep)
    rep.to_csv(case / "reports.csv", index=False, sep=";", encoding="cp1252")
    err = _refused(tmp_path, params, capsys)
    assert "reports.csv, row 4, column sex: 'V' is not F, M or empty" in err
    assert "1 problem(s)" in err  # the note on the format is not counted as a problem
    assert re.search(r"note: .*reports.csv was read as CSV, encoding Windows-1252, separator ';'", err)


def test_header_of_a_file_with_other_column_order_inside(case, tmp_path, capsys):
    params = _write_case(case)
    lines = (case / "reports.csv").read_text().splitlines()
    other = ",".join(reversed(lines[0].split(",")))
    _text(case, "reports.csv", "\n".join(lines[:30] + [other] + lines[30:]) + "\n")
    assert "reports.csv, row 31: repeats the header line" in _refused(tmp_path, params, capsys)


# --- reports file: values ------------------------------------------------------------------


def _set(row: int, column: str, value: str):
    """An edit that puts ``value`` in spreadsheet row ``row``."""

    def edit(frame):
        frame = frame.copy()
        frame.loc[row - 2, column] = value
        return frame

    return edit


@pytest.mark.parametrize(
    "row, column, value, message",
    [
        (2, "report_date", "04-01-2016", r"'04-01-2016' is not a date in the format YYYY-MM-DD.*day-month-year.*Excel"),
        (3, "report_date", "2016/01/04", r"'2016/01/04' is not a date in the format YYYY-MM-DD.*use - between"),
        (4, "report_date", "42373", r"'42373' is not a date.*Excel date serial number"),
        (5, "report_date", "1600-05-01", r"1600-05-01 is before 1900"),
        (6, "report_date", "2099-01-01", r"2099-01-01 lies in the future"),
        (7, "report_date", "2016-02-30", r"'2016-02-30' is not a calendar date"),
        (8, "report_date", "", r"must not be empty"),
        (9, "report_id", "", r"must not be empty"),
        (10, "person_key", "", r"must not be empty"),
        (11, "sex", "X", r"'X' is not F, M or empty"),
        (12, "age", "150", r"'150' is not a whole number from 0 to 110"),
        (13, "age", "abc", r"'abc' is not a whole number"),
        (14, "age", "-3", r"'-3' is not a whole number"),
        (15, "nationality", "XX", r"'XX' is not an ISO 3166-1 alpha-2 country code"),
        (16, "nationality", "UK", r"'UK' is not an ISO 3166-1 .*use GB"),
        (17, "nationality", "nl", r"'nl' is not an ISO 3166-1"),
        (18, "exploitation", "slavery", r"'slavery' not in sexual;labour"),
        (19, "organisation", "", r"must not be empty"),
    ],
)
def test_bad_value_names_row_and_column(case, tmp_path, capsys, row, column, value, message):
    err = _edit_reports(case, _set(row, column, value), capsys, tmp_path)
    assert re.search(rf"reports.csv, row {row}, column {column}: {message}", err), err


def test_duplicate_report_id_names_both_rows(case, tmp_path, capsys):
    err = _edit_reports(case, _set(9, "report_id", "r00003"), capsys, tmp_path)
    assert "reports.csv, row 9, column report_id: report_id 'r00003' is not unique (also row 4)" in err


def test_unknown_organisation_names_map_and_fix(case, tmp_path, capsys):
    err = _edit_reports(
        case,
        lambda r: _set(7, "organisation", "Politie Zuid")(_set(5, "organisation", "Politie Zuid")(r)),
        capsys,
        tmp_path,
    )
    assert "organisation 'Politie Zuid' is not in the register map (rows 5, 7)" in err
    assert "map.csv" in err and "exclude" in err and "Politie Zuid,P" in err


def test_huge_value_gives_a_short_message(case, tmp_path, capsys):
    err = _edit_reports(case, _set(3, "organisation", "A" * 2_000_000), capsys, tmp_path)
    assert "reports.csv" in err and "(2000000 characters)" in err
    assert len(err) < 5000


def test_many_bad_rows_give_a_bounded_message(case, tmp_path, capsys):
    def edit(frame):
        frame = frame.copy()
        frame["sex"] = "X"
        return frame

    err = _edit_reports(case, edit, capsys, tmp_path)
    assert "more problem(s)" in err and err.count("\n") < 120


def test_every_broken_file_listed_at_once(case, tmp_path, capsys):
    params = _write_case(
        case,
        _set(2, "sex", "Q")(_reports({2016: 80, 2017: 80})),
        aggregates=f"{AGG_HEADER}\n2017,Opvang Oost,10,11,4,1,9,2,8,5,5\n",
        register_map=MAP_TEXT + "Nieuw,Y,\n",
    )
    err = _refused(tmp_path, params, capsys)
    assert "reports.csv, row 2, column sex" in err
    assert "agg.csv, row 2, column sex_F+sex_M: 11 + 4 exceeds total 10" in err
    assert "map.csv, row 9, column register: 'Y' is not one of" in err


# --- register map and aggregates ------------------------------------------------------------


@pytest.mark.parametrize(
    "map_text, message",
    [
        (MAP_TEXT + "KMar,P,\n", r"map.csv, column organisation: 'KMar' is listed more than once \(rows 3, 9\)"),
        ("organisation,register,note\n", r"map.csv: has a header line but no data rows"),
        ("organisation,note\nKMar,x\n", r"map.csv, row 1, column register: required column is missing"),
        (MAP_TEXT + ",P,\n", r"map.csv, row 9, column organisation: must not be empty"),
    ],
)
def test_bad_register_map(case, tmp_path, capsys, map_text, message):
    params = _write_case(case, register_map=map_text)
    assert re.search(message, _refused(tmp_path, params, capsys))


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "2017,Opvang Oost,10,6,4,1,9,2,8,5,-5",
            r"row 2, column expl_other: '-5': must be a non-negative whole number",
        ),
        ("2017,Opvang Oost,10,6,4,1,9,2,8,5,6", r"row 2, column expl_sexual\+expl_other: 5 \+ 6 exceeds total 10"),
        ("2017,IND,10,6,4,1,9,2,8,5,5", r"row 2, column organisation: 'IND' is excluded in the register map"),
        ("2017,Nowhere,10,6,4,1,9,2,8,5,5", r"column organisation: organisation 'Nowhere' is not in the register map"),
        ("1850,Opvang Oost,10,6,4,1,9,2,8,5,5", r"row 2, column year: 1850 is not a year from 1900"),
        ("2017,Opvang Oost,ten,6,4,1,9,2,8,5,5", r"row 2, column total: 'ten': must be a non-negative whole number"),
        (
            "2017,Opvang Oost,10,6,4,1,9,2,8,5,5\n2017,Opvang Oost,3,1,1,1,1,1,1,1,1",
            r"row 3, column organisation: 'Opvang Oost' appears twice for year 2017",
        ),
    ],
)
def test_bad_aggregates(case, tmp_path, capsys, row, message):
    params = _write_case(case, aggregates=f"{AGG_HEADER}\n{row}\n")
    assert re.search(r"agg.csv, " + message, _refused(tmp_path, params, capsys))


def test_header_only_aggregates_means_none_with_a_note(case):
    # as `mse simulate` writes it for years without aggregates: accepted, and said
    params = _write_case(case, aggregates=AGG_HEADER + "\n")
    p = load_params(params)
    check_inputs(p)
    prep = prepare.build(p)
    assert prep.partial.empty and prep.summary["reference_years"] == []
    assert "agg.csv: no data rows, so no aggregate counts are used" in prep.summary["notes"]


def test_aggregates_without_their_columns(case, tmp_path, capsys):
    params = _write_case(case, aggregates="year,organisation,total\n2017,Opvang Oost,10\n")
    err = _refused(tmp_path, params, capsys)
    assert "agg.csv, row 1, column sex_F: required column is missing" in err


# --- years, registers, parameters -------------------------------------------------------------


@pytest.mark.parametrize(
    "years, message",
    [
        (
            "2015-2017",
            r"parameter years: 2015 has no persons in the reports; the data have persons in 2016-2017.*"
            r"use --set years=2016-2017",
        ),
        ("2016-2018", r"parameter years: 2018 has no persons"),
        ("2030-2031", r"parameter years: 2030-2031 have no persons"),
    ],
)
def test_years_without_data(case, tmp_path, capsys, years, message):
    params = _write_case(case)
    assert re.search(message, _refused(tmp_path, params, capsys, f"years={years}"))


def test_year_with_too_few_persons_asked_for(case, tmp_path, capsys):
    params = _write_case(case, _reports({2016: 80, 2017: 80, 2018: 3}))
    err = _refused(tmp_path, params, capsys, "years=2016-2018")
    assert "parameter years: 2018 has 3 person(s) in the reports, fewer than 50" in err
    assert "--set years=2016-2017" in err


def test_year_with_too_few_persons_left_out_under_years_null(case):
    params = _write_case(case, _reports({2016: 80, 2017: 80, 2018: 1}))
    p = load_params(params)
    check_inputs(p)  # accepted: the stray year is left out, not refused
    prep = prepare.build(p)
    assert prep.summary["years"] == [2016, 2017]
    assert prep.summary["years_left_out"] == [{"year": 2018, "persons": 1}]
    assert any("years left out: 2018 (1 person)" in n for n in prep.summary["notes"])
    assert 2018 not in set(prep.persons["year"])


def test_fewer_than_three_registers(case, tmp_path, capsys):
    params = _write_case(case)
    err = _refused(tmp_path, params, capsys, "registers=[I,K]")
    assert "parameter registers: 2 register(s) I K; at least 3 are needed" in err
    assert "interaction" in err


def test_reference_years_not_in_data(case, tmp_path, capsys):
    params = _write_case(case)
    err = _refused(tmp_path, params, capsys, "reference_years=[2015]")
    assert "parameter reference_years: [2015] not in the data" in err


def test_first_year_with_aggregates_has_no_reference_years(case, tmp_path, capsys):
    params = _write_case(case)
    err = _refused(tmp_path, params, capsys, "years=2017")
    assert "parameter reference_years: the first analysed year 2017 already has aggregates" in err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("m=abc", r"parameter m: must be a whole number"),
        ("interval=wide", r"parameter interval: must be one of"),
        ("colour=red", r"unknown parameter\(s\): colour"),
        ("linkage_window_days=-1", r"parameter linkage_window_days"),
        ("years=2019-2016", r"parameter years: range '2019-2016' runs backwards"),
    ],
)
def test_bad_parameter_value(case, tmp_path, capsys, setting, message):
    params = _write_case(case)
    assert re.search(message, _refused(tmp_path, params, capsys, setting))


def test_bad_parameters_file(case, tmp_path, capsys):
    params = _write_case(case)
    params.write_text("reports: [unclosed\n")
    assert re.search(r"parameters file .*params.yaml: not valid YAML", _refused(tmp_path, params, capsys))


# --- truth and earlier estimates ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("year,group,N\n2016,total,100\n", r"truth file .*truth.csv: missing column\(s\) n_true, n_registered"),
        (
            "year,group,n_true,n_registered\n2020,total,100,50\n",
            r"truth file .*truth.csv, column year: no rows for the analysed year\(s\) 2016, 2017",
        ),
        ("year,group,n_true,n_registered\n", r"truth file .*truth.csv: has a header line but no data rows"),
        ("year,group,n_true,n_registered\n2016,total,many,50\n2017,total,1,1\n", r"row 2, column n_true"),
    ],
)
def test_bad_truth_file(case, tmp_path, capsys, text, message):
    params = _write_case(case)
    _text(case, "truth.csv", text)
    assert re.search(message, _refused(tmp_path, params, capsys, f"truth={case / 'truth.csv'}"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("year,group,n_hat,lower,upper\n2016,total,4200,,\n", r"missing column\(s\) source"),
        ("year,group,n_hat,lower,upper,source\n20x6,total,4200,,,a\n", r"row 2, column year"),
        ("year,group,n_hat,lower,upper,source\n", r"has a header line but no data rows"),
    ],
)
def test_bad_earlier_estimates(case, tmp_path, capsys, text, message):
    params = _write_case(case)
    _text(case, "earlier.csv", text)
    err = _refused(tmp_path, params, capsys, f"earlier_estimates={case / 'earlier.csv'}")
    assert re.search(r"earlier estimates file .*earlier.csv.*" + message, err), err


# --- files from Excel that are accepted, with the format named ---------------------------------


def test_windows_1252_semicolon_file_is_read_and_named(case):
    rep = _reports({2016: 80, 2017: 80})
    rep.loc[0, "organisation"] = "Opvang Oost"
    params = _write_case(case, rep, register_map=MAP_TEXT.replace("Jeugdzorg", "Jeugdzorg Zuidoöst"))
    rep["organisation"] = rep["organisation"].replace("Jeugdzorg", "Jeugdzorg Zuidoöst")
    rep.to_csv(case / "reports.csv", index=False, sep=";", encoding="cp1252")
    p = load_params(params)
    check_inputs(p)
    notes = prepare.build(p).summary["notes"]
    assert any("reports.csv: read as CSV, encoding Windows-1252, separator ';' (detected)" in n for n in notes)
    assert not any(str(case) in n for n in notes)  # file names only: the notes are published


def test_several_report_files_read_as_one(case, tmp_path):
    rep = _reports({2016: 80, 2017: 80})
    one = inputs.read_reports(_write_case(case, rep).parent / "reports.csv", inputs.read_register_map(case / "map.csv"))
    half = len(rep) // 2
    rep.iloc[:half].to_csv(tmp_path / "a.csv", index=False)
    rep.iloc[half:].to_excel(tmp_path / "b.xlsx", index=False)
    both = inputs.read_reports([tmp_path / "a.csv", tmp_path / "b.xlsx"], inputs.read_register_map(case / "map.csv"))
    cols = ["report_id", "person_key", "report_date", "organisation", "sex", "age", "nationality", "exploitation"]
    pd.testing.assert_frame_equal(one[cols], both[cols])
    assert both["row"].iloc[half] == 2  # rows count per file
    assert any("2 file(s) read: a.csv" in n and "b.xlsx" in n for n in both.attrs["notes"])


def test_folder_of_report_files_and_duplicate_ids_across_files(tmp_path):
    rmap_path = tmp_path / "map.csv"
    rmap_path.write_text(MAP_TEXT)
    rmap = inputs.read_register_map(rmap_path)
    folder = tmp_path / "deliveries"
    folder.mkdir()
    rep = _reports({2016: 80})
    rep.iloc[:50].to_csv(folder / "2016a.csv", index=False)
    rep.iloc[49:].to_csv(folder / "2016b.csv", index=False)  # row 49 twice
    (folder / "~$2016a.csv").write_text("lock")  # Excel's lock file: left out
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(folder, rmap)
    assert re.search(
        r"2016b.csv, row 2, column report_id: report_id 'r\d+' is also in .*2016a.csv row 51", str(err.value)
    )
    (folder / "notes.docx").write_text("x")
    with pytest.raises(inputs.InputError, match="holds files that are not CSV or .xlsx: 'notes.docx'"):
        inputs.read_reports(folder, rmap)


def test_folder_where_a_file_is_expected():
    with pytest.raises(inputs.InputError, match="is a folder, not a file"):
        inputs.read_table(Path(__file__).parent)


def test_earlier_estimates_and_truth_saved_by_dutch_excel_are_read(case):
    params = _write_case(case)
    (case / "earlier.csv").write_bytes(
        "year;group;n_hat;lower;upper;source\n2015;total;6250;5000;7500;Rapportage Mensenhandel – schatting\n".encode(
            "cp1252"
        )
    )
    (case / "truth.csv").write_text("year;group;n_true;n_registered\n2016;total;400;80\n2017;total;420;80\n")
    p = load_params(params, {"earlier_estimates": str(case / "earlier.csv"), "truth": str(case / "truth.csv")})
    check_inputs(p)
    from mse_helpers.report import tables

    earlier = tables.read_earlier_estimates(p.earlier_estimates)
    assert earlier["n_hat"].tolist() == [6250.0] and "–" in earlier["source"].iloc[0]
    assert tables.read_truth(p.truth)["n_true"].tolist() == [400, 420]
