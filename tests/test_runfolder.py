"""The run folder layout: one definition, one reader per work file, one message when one is missing."""

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from mse_helpers import runfolder

PACKAGE = Path(runfolder.__file__).parent


def test_missing_file_message_names_file_and_notebook(tmp_path):
    with pytest.raises(runfolder.WorkFileMissing) as info:
        runfolder.read_prep_summary(tmp_path)
    assert str(info.value) == "work/prep_summary.json is missing: run notebook 01_data_preparation first"
    assert str(tmp_path) not in str(info.value)  # no machine path
    with pytest.raises(FileNotFoundError, match=r"^work/models\.json is missing: run notebook 03_model_selection"):
        runfolder.read_models_json(tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"work/imputed/imp_000\.parquet is missing \(m = 3\): run notebook "
        r"02_imputation first",
    ):
        runfolder.imputed_files(tmp_path, range(3), detail="m = 3")


def test_prep_summary_without_years_is_refused(tmp_path):
    (tmp_path / "prep_summary.json").write_text(json.dumps({"years": []}))
    with pytest.raises(runfolder.WorkFileError, match="work/prep_summary.json: no 'years' entry"):
        runfolder.read_prep_summary(tmp_path)
    (tmp_path / "prep_summary.json").write_text("{not json")
    with pytest.raises(runfolder.WorkFileError, match="not valid JSON"):
        runfolder.read_prep_summary(tmp_path)
    (tmp_path / "prep_summary.json").write_text(json.dumps({"years": [2019, 2017]}))
    assert runfolder.analysed_years(runfolder.read_prep_summary(tmp_path)) == [2017, 2019]


def test_write_imputed_names_files_and_removes_stale_ones(tmp_path):
    frame = pd.DataFrame({"year": [2016], "P": [1]})
    first = runfolder.write_imputed(tmp_path, [(i, frame) for i in range(3)])
    assert [f.name for f in first] == ["imp_000.parquet", "imp_001.parquet", "imp_002.parquet"]
    runfolder.write_imputed(tmp_path, [(0, frame)])
    assert sorted(f.name for f in (tmp_path / "imputed").iterdir()) == ["imp_000.parquet"]
    assert runfolder.imputed_files(tmp_path, [0]) == [runfolder.imputed_path(tmp_path, 0)]
    pd.testing.assert_frame_equal(runfolder.read_imputed(first[0]), frame)


def test_make_run_folder(tmp_path):
    runfolder.make_run_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(runfolder.SUBFOLDERS)
    assert "PRIVATE" in (tmp_path / "work" / "README.txt").read_text()


def test_every_work_file_names_a_notebook_of_the_run():
    names = [f.name for f in runfolder.WORK_FILES]
    assert len(set(names)) == len(names)
    assert {f.written_by for f in runfolder.WORK_FILES} <= set(runfolder.NOTEBOOKS)


def test_write_results_keeps_the_schema(tmp_path):
    cols = list(runfolder.ESTIMATE_COLUMNS)
    est = pd.DataFrame([range(len(cols))], columns=cols[::-1])  # any order in, the schema's order out
    runfolder.write_results(tmp_path, est.assign(extra=1), pd.DataFrame({"dataset": [0]}))
    assert list(pd.read_csv(tmp_path / "estimates.csv").columns) == cols
    with pytest.raises(KeyError):
        runfolder.write_results(tmp_path, est.drop(columns="ratio"), pd.DataFrame())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_runfolder_is_a_base_layer():
    imports = _imports(PACKAGE / "runfolder.py")
    assert not [m for m in imports if m.startswith(".") or m.startswith("mse_helpers")], imports


def test_work_file_names_are_spelled_only_in_runfolder():
    # The layout is defined once: no other module spells a work file's name as a path.
    spelled = [
        "imp_{",
        '/ "prep_summary.json"',
        '/ "models.json"',
        '/ "persons.parquet"',
        '/ "partial.parquet"',
        '/ "impute_traces',
        '/ "bootstrap.parquet"',
        '/ "estimates.csv"',
    ]
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "runfolder.py":
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(PACKAGE)}: {s}" for s in spelled if s in text]
    assert offenders == []
