"""Readers and validation of the input files (docs/input-formats.md 1-3) and pseudonymisation (docs/input-formats.md 5)."""

from pathlib import Path

import pandas as pd
import pytest

from mse_helpers.stages import inputs

FIX = Path(__file__).parent / "fixtures"
MAP = FIX / "prep_register_map.csv"


@pytest.fixture(scope="module")
def rmap():
    return inputs.read_register_map(MAP)


def _where(exc):
    return {(v.row, v.column) for v in exc.violations}


def test_reports_rules_fixture_reads_typed_with_note(rmap):
    rep = inputs.read_reports(FIX / "prep_reports_rules.csv", rmap)
    assert len(rep) == 22
    assert str(rep["report_date"].dtype).startswith("datetime64")
    assert rep["age"].dtype == "Int64" and rep["age"].isna().sum() == 1
    assert rep["sex"].isna().sum() == 1  # the empty cell is missing, not ""
    assert rep["row"].iloc[0] == 2  # header is row 1
    assert any("comment" in n for n in rep.attrs["notes"])


def test_every_reports_violation_is_listed_with_row_and_column(rmap):
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(FIX / "prep_reports_bad.csv", rmap)
    where = _where(err.value)
    expected = {
        (3, "report_date"),
        (4, "report_id"),
        (5, "person_key"),
        (6, "sex"),
        (6, "age"),
        (6, "nationality"),
        (6, "exploitation"),
        (7, "report_date"),
        (7, "age"),
        (7, "nationality"),
    }
    assert expected <= where
    # row 7's "labour;sexual" is valid; row 2 is valid
    assert (7, "exploitation") not in where and not any(r == 2 for r, _ in where)
    unknown = [v for v in err.value.violations if "not in the register map" in v.rule]
    assert len(unknown) == 2  # one violation per unknown name, with its rows
    text = {v.rule for v in unknown}
    assert any("'Politie Utrecht'" in t and "rows 6, 7" in t for t in text)
    assert any("'Unknown Care'" in t and "row 8" in t for t in text)
    assert "prep_reports_bad.csv" in str(err.value) and "row 3, column report_date" in str(err.value)


def test_duplicate_report_id_names_the_first_row(rmap):
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(FIX / "prep_reports_bad.csv", rmap)
    dup = [v for v in err.value.violations if v.column == "report_id"]
    assert len(dup) == 1 and dup[0].row == 4 and "also row 2" in dup[0].rule


def test_missing_column_is_reported_on_the_header_row(tmp_path, rmap):
    path = tmp_path / "r.csv"
    pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str).drop(columns=["sex", "age"]).to_csv(path, index=False)
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(path, rmap)
    assert _where(err.value) == {(1, "sex"), (1, "age")}


def test_xlsx_reports_read_and_validated(tmp_path, rmap):
    good = pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str, keep_default_na=False)
    good["report_date"] = pd.to_datetime(good["report_date"])  # real Excel date cells
    good.to_excel(tmp_path / "good.xlsx", index=False)
    rep = inputs.read_reports(tmp_path / "good.xlsx", rmap)
    assert rep["report_date"].iloc[0] == pd.Timestamp("2016-12-20")
    assert len(rep) == 22
    bad = pd.read_csv(FIX / "prep_reports_bad.csv", dtype=str, keep_default_na=False)
    bad.to_excel(tmp_path / "bad.xlsx", index=False)
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(tmp_path / "bad.xlsx", rmap)
    assert (3, "report_date") in _where(err.value)


def test_register_map_rules(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("organisation,register,note\nA,P,\nB,X,\n,Z,\nA,K,\n", encoding="utf-8")
    with pytest.raises(inputs.InputError) as err:
        inputs.read_register_map(path)
    where = _where(err.value)
    assert (3, "register") in where and (4, "organisation") in where
    assert any("'A' is listed more than once (rows 2, 5)" in v.rule for v in err.value.violations)
    path.write_text("organisation,reg\nA,P\n", encoding="utf-8")
    with pytest.raises(inputs.InputError) as err:
        inputs.read_register_map(path)
    assert _where(err.value) == {(1, "register")}


def test_register_map_without_note_column(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("organisation,register\nPolice Unit 1,P\nHelpdesk,Z\nCopy Office,exclude\n", encoding="utf-8")
    m = inputs.read_register_map(path)
    assert list(m["register"]) == ["P", "Z", "exclude"] and list(m.columns) == ["organisation", "register", "note"]


def test_every_aggregates_violation(rmap):
    with pytest.raises(inputs.InputError) as err:
        inputs.read_aggregates(FIX / "prep_aggregates_bad.csv", rmap)
    where = _where(err.value)
    assert (2, "sex_F+sex_M") in where  # 64 + 150 > 210
    assert (4, "organisation") in where  # EMM is excluded
    assert (5, "total") in where  # -3
    assert (6, "organisation") in where  # FairWork 2018 twice
    assert (7, "year") in where and (7, "expl_other") in where
    assert any("'Nobody'" in v.rule and "row 3" in v.rule for v in err.value.violations)


def test_fairwork_aggregates_read(rmap):
    agg = inputs.read_aggregates(FIX / "prep_aggregates_fairwork.csv", rmap)
    assert agg.loc[0, "total"] == 210 and agg.loc[0, "sex_M"] == 146 and agg.loc[0, "row"] == 2


def test_missing_file_is_an_input_error(tmp_path, rmap):
    with pytest.raises(inputs.InputError, match="does not exist"):
        inputs.read_reports(tmp_path / "nope.csv", rmap)


def test_pseudonymise_is_keyed_and_stable():
    key = inputs.study_key_fields("Anna", "de Vries", 1994)
    assert key == "adev94"
    a = inputs.pseudonymise([key, key, "bjan90"], "a secret of enough length")
    assert a[0] == a[1] != a[2] and len(a[0]) == 64
    b = inputs.pseudonymise([key], "another secret, also long")
    assert b[0] != a[0]
    import hashlib

    assert a[0] != hashlib.sha256(key.encode()).hexdigest()  # keyed, not a plain hash
    with pytest.raises(ValueError, match="16 bytes"):
        inputs.pseudonymise([key], "short")
    with pytest.raises(ValueError):
        inputs.study_key_fields("Anna", "de Vries", 94)


# --- mse pseudonymise ------------------------------------------------------------------------


def _key(tmp_path, text="a-long-enough-secret-for-tests\n", name="mse.key"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pseudonymise_command_replaces_keys_and_keeps_the_rest(tmp_path, capsys, rmap):
    from mse_helpers.cli import main

    out = tmp_path / "out.csv"
    assert main(["pseudonymise", str(FIX / "prep_reports_rules.csv"), str(out), "--key-file", str(_key(tmp_path))]) == 0
    before = pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str, keep_default_na=False)
    after = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert after.drop(columns="person_key").equals(before.drop(columns="person_key").apply(lambda c: c.str.strip()))
    assert after["person_key"].tolist() == inputs.pseudonymise(before["person_key"], b"a-long-enough-secret-for-tests")
    assert after["person_key"].str.fullmatch(r"[0-9a-f]{64}").all()
    # one person, one key: the grouping is unchanged
    assert before.groupby("person_key").ngroups == after.groupby("person_key").ngroups
    assert len(inputs.read_reports(out, rmap)) == len(before)  # still a valid reports file
    assert "HMAC-SHA-256" in capsys.readouterr().out


def test_pseudonymise_xlsx_and_refusals(tmp_path, capsys):
    from mse_helpers.cli import main
    from mse_helpers.runner.params import PROJECT_ROOT

    key = _key(tmp_path)
    src = tmp_path / "in.xlsx"
    pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str, keep_default_na=False).to_excel(src, index=False)
    out = tmp_path / "out.xlsx"
    assert main(["pseudonymise", str(src), str(out), "--key-file", str(key)]) == 0
    assert pd.read_excel(out, dtype=str)["person_key"].str.len().eq(64).all()
    capsys.readouterr()

    def refused(*argv):
        assert main(["pseudonymise", *argv]) == 2
        return capsys.readouterr().err

    assert "is the input file" in refused(str(src), str(src), "--key-file", str(key))
    assert "exists; choose a new name or use --force" in refused(str(src), str(out), "--key-file", str(key))
    assert main(["pseudonymise", str(src), str(out), "--key-file", str(key), "--force"]) == 0
    assert "already looks like an HMAC-SHA-256 key" in refused(
        str(out), str(tmp_path / "o2.csv"), "--key-file", str(key)
    )
    assert "at least 16 are needed" in refused(
        str(src), str(tmp_path / "o3.csv"), "--key-file", str(_key(tmp_path, "short\n", "short.key"))
    )
    assert "no such file" in refused(str(src), str(tmp_path / "o4.csv"), "--key-file", str(tmp_path / "none"))
    inside = PROJECT_ROOT / ".pytest-key.tmp"
    inside.write_text("a-long-enough-secret-for-tests")
    try:
        assert "inside the repository" in refused(str(src), str(tmp_path / "o5.csv"), "--key-file", str(inside))
    finally:
        inside.unlink()
    bad = tmp_path / "bad.csv"
    bad.write_text("report_id,person_key\n1,a\n2,\n")
    assert "column person_key: empty in row 3" in refused(str(bad), str(tmp_path / "o6.csv"), "--key-file", str(key))
    assert not any((tmp_path / f"o{i}.csv").exists() for i in range(2, 7))


# --- reading files as Excel saves them ----------------------------------------------------------

RULES_TEXT = (FIX / "prep_reports_rules.csv").read_text(encoding="utf-8")


def test_utf8_bom_and_tab_separator_are_detected(tmp_path, rmap):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + RULES_TEXT.encode("utf-8"))
    frame = inputs.read_table(bom)
    assert frame.columns[0] == "report_id" and frame.attrs["format"].encoding == "utf-8-sig"
    assert inputs.read_table(bom, encoding="utf-8").columns[0] == "report_id"  # also when the encoding is set
    tab = tmp_path / "tab.txt"
    tab.write_text(
        pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str, keep_default_na=False).to_csv(sep="\t", index=False)
    )
    rep = inputs.read_reports(tab, rmap)
    assert len(rep) == 22 and any("separator tab (detected)" in n for n in rep.attrs["notes"])


def test_windows_1252_is_detected_and_named(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes("organisation,register,note\nZorgcoördinator Zuid,R,\nKMar,K,€ note\n".encode("cp1252"))
    rmap = inputs.read_register_map(path)
    assert rmap["organisation"].iloc[0] == "Zorgcoördinator Zuid" and rmap["note"].iloc[1] == "€ note"
    assert any("encoding Windows-1252" in n for n in rmap.attrs["notes"])
    # a byte undefined in Windows-1252 falls back to Latin-1 (every byte is a character there)
    path.write_bytes(b"organisation,register,note\nA\x81,R,\n")
    assert inputs.read_table(path).attrs["format"].encoding == "latin-1"


def test_forced_encoding_that_does_not_fit_names_the_row(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes("organisation,register\nKMar,K\nZorgcoördinator,R\n".encode("cp1252"))
    with pytest.raises(inputs.InputError, match=r"map.csv, row 3: cannot be read as utf-8"):
        inputs.read_table(path, encoding="utf-8")


def test_blank_lines_and_multiline_cells_keep_spreadsheet_rows(tmp_path, rmap):
    lines = RULES_TEXT.splitlines()
    # a quoted note over two lines in row 2 is one spreadsheet row; a blank line is row 4
    head = lines[0] + ",note"
    body = [lines[1] + ',"two\nlines"', lines[2] + ",", "", lines[3].replace(",M,", ",Q,", 1) + ","]
    path = tmp_path / "r.csv"
    path.write_text("\n".join([head] + body + [line + "," for line in lines[4:]]) + "\n")
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(path, rmap)
    assert [(v.row, v.column) for v in err.value.violations if v.column == "sex"] == [(5, "sex")]


def test_xlsx_header_lower_down_gives_excel_rows(tmp_path, rmap):
    import openpyxl

    frame = pd.read_csv(FIX / "prep_reports_rules.csv", dtype=str, keep_default_na=False)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Export of the registration, 2016-2017"])
    ws.append([])
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append(list(row))
    ws.cell(row=6, column=5, value="X")  # sex of the third data row, Excel row 6
    ws.title = "reports"
    wb.create_sheet("empty")
    wb.save(tmp_path / "r.xlsx")
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(tmp_path / "r.xlsx", rmap)
    # the title line is taken as the header: its other columns hold values but have no name
    assert {(1, "B"), (1, "H")} <= _where(err.value)
    ws.delete_rows(1, 2)
    wb.save(tmp_path / "r.xlsx")
    with pytest.raises(inputs.InputError) as err:
        inputs.read_reports(tmp_path / "r.xlsx", rmap)
    assert _where(err.value) == {(4, "sex")}


def test_one_column_header_says_the_separator_is_wrong(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("organisation|register\nKMar|K\n")
    with pytest.raises(inputs.InputError, match="header line was read as one column.*set the parameter separator"):
        inputs.read_register_map(path)


def test_shorten_and_column_letters():
    assert inputs.shorten("abc") == "'abc'"
    long = inputs.shorten("x" * 1000)
    assert len(long) < 80 and "(1000 characters)" in long
    assert [inputs.column_letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]


def test_input_paths_folder_rules(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(inputs.InputError, match="holds no CSV or .xlsx file"):
        inputs.input_paths(folder, "reports")
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "b.xlsx").write_bytes(b"PK\x03\x04")
    (folder / ".hidden.csv").write_text("x\n")
    with pytest.raises(inputs.InputError, match="mixes CSV and Excel files"):
        inputs.input_paths(folder, "reports")
    (folder / "b.xlsx").unlink()
    assert inputs.input_paths(folder, "reports") == [folder / "a.csv"]
    with pytest.raises(inputs.InputError, match="is given twice in reports"):
        inputs.input_paths([folder / "a.csv", folder], "reports")


def test_aggregates_in_two_files_duplicate_organisation_year(tmp_path, rmap):
    header = ",".join(inputs.AGGREGATE_COLUMNS)
    org = rmap["organisation"][rmap["register"] == "O"].iloc[0]
    (tmp_path / "a.csv").write_text(f"{header}\n2018,{org},10,5,5,0,10,0,10,0,10\n")
    (tmp_path / "b.csv").write_text(f"{header}\n2019,{org},4,2,2,0,4,0,4,0,4\n2018,{org},1,1,0,0,1,0,1,0,1\n")
    with pytest.raises(
        inputs.InputError,
        match=r"b.csv, row 3, column organisation: .* for year 2018 is also in "
        r".*a.csv row 2",
    ):
        inputs.read_aggregates([tmp_path / "a.csv", tmp_path / "b.csv"], rmap)
    (tmp_path / "b.csv").write_text(f"{header}\n2019,{org},4,2,2,0,4,0,4,0,4\n")
    agg = inputs.read_aggregates([tmp_path / "a.csv", tmp_path / "b.csv"], rmap)
    assert agg["year"].tolist() == [2018, 2019] and agg["row"].tolist() == [2, 2]
    assert any("aggregates: 2 file(s) read: a.csv (1 rows); b.csv (1 rows)" in n for n in agg.attrs["notes"])
