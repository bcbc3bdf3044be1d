"""Exploring in JupyterLab: finished runs stay as they are, one parameters file, stale work files refused.

The checks run on small stand-in work files written through the run folder's
writers (what the notebooks compute is tested elsewhere); the two tests at the
end execute the real notebooks 01, 03 and 04 on a finished quick run.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import stat

import pandas as pd
import pytest
import yaml

from mse_helpers import runfolder
from mse_helpers.runfolder import IMPUTATION, PREPARATION, RESULTS, SELECTION
from mse_helpers.runner import lab
from mse_helpers.runner.params import FIELDS, PROJECT_ROOT, ParameterError
from mse_helpers.runner.pipeline import RUN_ENV
from mse_helpers.runner.runindex import runner_identity

FRAME = pd.DataFrame({"year": [2016, 2017], "P": [1, 0]})
QUICK = {"m": 2, "maxit": 2, "bootstrap": 10, "three_factor_candidates": 3}


@pytest.fixture(autouse=True)
def _not_inside_mse_run(monkeypatch):
    monkeypatch.delenv(RUN_ENV, raising=False)


def _write_outputs(session, content=FRAME):
    """What each notebook writes, with stand-in content, then its last cell."""
    work, nb = session.work_dir, session.notebook
    if nb == PREPARATION:
        runfolder.write_preparation(work, content, content.iloc[:0], {"years": [2016, 2017]})
    elif nb == IMPUTATION:
        runfolder.write_imputed(work, [(i, content) for i in range(session.params.m)])
        runfolder.write_traces(work, content)
    elif nb == SELECTION:
        runfolder.write_selection(work, [{"dataset": 0}], content, content, content)
    else:
        runfolder.write_bootstrap(work, content)
        runfolder.write_results(
            session.run_dir / runfolder.RESULTS_DIR,
            pd.DataFrame([range(len(runfolder.ESTIMATE_COLUMNS))], columns=list(runfolder.ESTIMATE_COLUMNS)),
            content,
        )
    return session.record()


def _run(notebook, folder, overrides=None, params_file=None):
    session = lab.open_session(notebook, params_file, overrides or {}, folder)
    _write_outputs(session)
    return session


def _explore(folder, upto=SELECTION, **first):
    """Notebooks 01 to ``upto`` in an exploration folder, 01 with ``first`` as overrides."""
    sessions = [_run(PREPARATION, folder, {**QUICK, **first})]
    for nb in runfolder.NOTEBOOKS[1 : runfolder.NOTEBOOKS.index(upto) + 1]:
        sessions.append(_run(nb, folder))
    return sessions


def _refusal(notebook, folder, overrides=None):
    with pytest.raises(lab.StaleWorkFile) as info:
        lab.open_session(notebook, None, overrides or {}, folder)
    message = str(info.value)
    assert "\n" not in message and str(folder) not in message  # one line, no machine path
    return message


def _tree(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- one set of parameters ---------------------------------------------------------------------


def test_later_notebooks_read_the_parameters_the_first_one_wrote(tmp_path):
    first = _run(PREPARATION, tmp_path / "lab", {**QUICK, "covariates": ["S", "L"]})
    assert first.params_path == tmp_path / "lab" / "params.yaml" and first.run_dir == tmp_path / "lab"
    written = yaml.safe_load(first.params_path.read_text())
    assert written["covariates"] == ["S", "L"] and written["m"] == 2
    second = lab.open_session(IMPUTATION, None, {}, tmp_path / "lab")
    assert second.params.covariates == ("S", "L") and second.params.m == 2
    assert "params.yaml" in second.note and second.work_dir == tmp_path / "lab" / "work"


def test_a_later_notebook_changes_only_parameters_it_uses_first(tmp_path):
    _explore(tmp_path, upto=SELECTION)
    with pytest.raises(ParameterError) as info:
        lab.open_session(SELECTION, None, {"m": 3}, tmp_path)
    assert str(info.value) == (
        "overrides of 03_model_selection: m is first used by 02_imputation: change it there "
        "(or in 01_data_preparation) and re-run from 02_imputation"
    )
    with pytest.raises(ParameterError, match="covariates is first used by 01_data_preparation: change it there and"):
        lab.open_session(RESULTS, None, {"covariates": ["S"]}, tmp_path)
    # its own parameters (and the number of workers) it may change; they are kept for the exploration
    s = lab.open_session(RESULTS, None, {"interval": "log-scale", "n_jobs": 1}, tmp_path)
    assert s.params.interval == "log-scale" and s.params.n_jobs == 1
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["interval"] == "log-scale"


def test_every_parameter_names_the_first_notebook_that_uses_it():
    stages = {k: f.metadata["stage"] for k, f in FIELDS.items()}
    assert set(stages.values()) <= set(runfolder.NOTEBOOKS) | {None}
    assert [k for k, v in stages.items() if v is None] == ["n_jobs", "backend", "scheduler"]
    assert stages["covariates"] == PREPARATION and stages["m"] == IMPUTATION
    assert stages["three_factor_candidates"] == SELECTION and stages["interval"] == RESULTS


# --- stale work files ------------------------------------------------------------------------


def test_notebook_02_refuses_persons_made_with_other_parameters(tmp_path):
    _explore(tmp_path, upto=PREPARATION)
    assert lab.open_session(IMPUTATION, None, {}, tmp_path).read  # made with these parameters: fine
    text = (tmp_path / "params.yaml").read_text().replace("- N\n", "")
    (tmp_path / "params.yaml").write_text(text)  # a change without re-running 01
    assert _refusal(IMPUTATION, tmp_path) == (
        "covariates = [S, L, U] differs from the [S, L, N, U] that work/persons.parquet was made with: "
        "re-run 01_data_preparation"
    )


def test_notebook_03_refuses_completed_data_sets_of_other_covariates(tmp_path):
    # the case: covariates changed in notebook 01 and 01 re-run, then 03 without 02
    _explore(tmp_path, upto=IMPUTATION)
    _run(PREPARATION, tmp_path, {**QUICK, "covariates": ["S", "L"]})
    assert _refusal(SELECTION, tmp_path) == (
        "covariates = [S, L] differs from the [S, L, N, U] that work/imputed/imp_000.parquet was made with: "
        "re-run 02_imputation"
    )
    _run(IMPUTATION, tmp_path)  # re-running 02 makes 03 possible again
    assert set(lab.open_session(SELECTION, None, {}, tmp_path).read) == {
        "work/prep_summary.json",
        "work/imputed/imp_000.parquet",
        "work/imputed/imp_001.parquet",
    }


def test_notebook_04_refuses_models_of_other_parameters_or_of_an_unfinished_notebook(tmp_path):
    sessions = _explore(tmp_path, upto=SELECTION)
    p = sessions[-1].params
    work = tmp_path / "work"
    assert lab.check_work_files(p, work, RESULTS)
    with pytest.raises(lab.StaleWorkFile) as info:
        lab.check_work_files(dataclasses.replace(p, three_factor_candidates=7), work, RESULTS)
    assert str(info.value) == (
        "three_factor_candidates = 7 differs from the 3 that work/models.json was made with: re-run 03_model_selection"
    )
    with pytest.raises(lab.StaleWorkFile, match=r"^m = 3 differs from the 2 that work/imputed/imp_000.parquet"):
        lab.check_work_files(dataclasses.replace(p, m=3), work, RESULTS)
    lab.check_work_files(dataclasses.replace(p, n_jobs=1), work, RESULTS)  # no result depends on it
    # notebook 03 started again but did not finish: its files have no fingerprint
    lab.open_session(SELECTION, None, {}, tmp_path)
    assert _refusal(RESULTS, tmp_path) == (
        "work/models.json has no fingerprint (made before they were recorded, or its notebook did not finish): "
        "re-run 03_model_selection"
    )


def test_a_changed_input_file_or_work_file_is_named(tmp_path):
    reports = tmp_path / "reports.csv"
    shutil.copyfile(PROJECT_ROOT / "data" / "reports.csv", reports)
    folder = tmp_path / "lab"
    _explore(folder, upto=IMPUTATION, reports=str(reports))
    assert lab.open_session(SELECTION, None, {}, folder)
    with reports.open("a") as fh:  # the data file changed after notebook 01 read it
        fh.write(reports.read_text().splitlines()[-1] + "\n")
    assert _refusal(IMPUTATION, folder) == (
        "reports.csv (reports) differs from the file work/persons.parquet was made from: re-run 01_data_preparation"
    )
    _run(PREPARATION, folder, {**QUICK, "reports": str(reports)})  # 01 re-run on the new file
    assert _refusal(SELECTION, folder) == (
        "reports.csv (reports) differs from the file work/imputed/imp_000.parquet was made from: re-run 02_imputation"
    )
    _run(IMPUTATION, folder)
    # 01 re-run with the same parameters but other content (here: by hand) leaves 02's files stale
    s = lab.open_session(PREPARATION, None, {}, folder)
    _write_outputs(s, FRAME.assign(P=[1, 1]))
    assert _refusal(SELECTION, folder) == (
        "work/persons.parquet is not the file work/imputed/imp_000.parquet was made from: re-run 02_imputation"
    )
    runfolder.write_traces(folder / "work", FRAME)
    (folder / "work" / "persons.parquet").write_bytes(b"changed by hand")
    assert _refusal(IMPUTATION, folder) == (
        "work/persons.parquet was changed after 01_data_preparation wrote it: re-run 01_data_preparation"
    )


def test_a_missing_work_file_names_the_notebook_to_run(tmp_path):
    _explore(tmp_path, upto=IMPUTATION)
    with pytest.raises(runfolder.WorkFileMissing, match=r"^work/models.json is missing: run notebook 03_model"):
        lab.open_session(RESULTS, None, {}, tmp_path)


# --- finished runs ---------------------------------------------------------------------------


def _finished_run(tmp_path, status="ok", fingerprints=True):
    """A run folder made from an exploration, with the manifest of a finished run."""
    run = tmp_path / "reports" / "2026-12-01"
    sessions = _explore(run, upto=SELECTION)
    p = sessions[-1].params
    manifest = {
        "status": status,
        "parameters": p.to_dict(),
        "inputs": {k: {"path": str(v), "sha256": lab.sha256_file(v)} for k, v in p.input_files().items()},
    }
    if status == "running":
        manifest["runner"] = runner_identity()
    (run / "manifest.json").write_text(json.dumps(manifest))
    for sub in (runfolder.HTML_DIR, runfolder.RESULTS_DIR):
        (run / sub).mkdir(exist_ok=True)
        (run / sub / "page.html").write_text("published\n")
    if not fingerprints:
        (run / "work" / "fingerprints.json").unlink()
    return run


def test_the_writers_refuse_a_finished_run(tmp_path):
    run = _finished_run(tmp_path, status="failed")
    with pytest.raises(runfolder.FinishedRunError) as info:
        runfolder.write_results(run / "results", pd.DataFrame(), pd.DataFrame())
    assert str(info.value) == (
        "run 2026-12-01 has finished (status failed) and its files are never changed: explore it in JupyterLab "
        "with run_dir set to it, which writes to reports/lab/2026-12-01/"
    )
    for write in (
        lambda: runfolder.write_preparation(run / "work", FRAME, FRAME, {"years": [2016]}),
        lambda: runfolder.write_imputed(run / "work", [(0, FRAME)]),
        lambda: runfolder.write_selection(run / "work", [], FRAME, FRAME, FRAME),
        lambda: runfolder.write_fingerprints(run / "work", {}),
    ):
        with pytest.raises(runfolder.FinishedRunError):
            write()
    assert len(list((run / "work" / "imputed").iterdir())) == 2  # nothing removed either


def test_exploring_a_finished_run_writes_beside_it(tmp_path):
    run = _finished_run(tmp_path)
    before = _tree(run)
    s = lab.open_session(RESULTS, None, {"interval": "log-scale"}, run)
    explored = tmp_path / "reports" / "lab" / "2026-12-01"
    assert s.explored == run and s.run_dir == explored and s.work_dir == explored / "work"
    assert s.note.startswith("Exploring the finished run 2026-12-01 (status ok), which is never changed: ")
    assert s.note.endswith("lab/2026-12-01/ (parameters: its params.yaml).")
    assert (explored / "work" / "models.json").read_bytes() == (run / "work" / "models.json").read_bytes()
    assert not (explored / "work" / "bootstrap.parquet").exists()  # only what the notebook needs
    assert "PRIVATE" in (explored / "work" / "README.txt").read_text()
    _write_outputs(s)
    assert yaml.safe_load((explored / "params.yaml").read_text())["interval"] == "log-scale"
    assert _tree(run) == before
    # a later notebook keeps the exploration's own files (no second copy over them)
    _run(PREPARATION, run, {"covariates": ["S", "L"]})
    assert _refusal(SELECTION, run) == (
        "covariates = [S, L] differs from the [S, L, N, U] that work/imputed/imp_000.parquet was made with: "
        "re-run 02_imputation"
    )
    assert _tree(run) == before


def test_a_run_made_before_fingerprints_gets_them_from_its_parameters_and_manifest(tmp_path):
    run = _finished_run(tmp_path, fingerprints=False)
    s = lab.open_session(RESULTS, None, {}, run)
    entries = runfolder.read_fingerprints(s.work_dir)
    assert entries["models.json"].derived
    assert entries["persons.parquet"].parameters["covariates"] == ["S", "L", "N", "U"]
    # derived the same as recorded, but for the flag
    recorded = runfolder.read_fingerprints(_finished_run(tmp_path / "b").joinpath("work"))
    for name, fp in recorded.items():
        assert dataclasses.replace(entries[name], derived=False) == fp, name


def test_a_failed_run_without_fingerprints_is_not_trusted(tmp_path):
    run = _finished_run(tmp_path, status="failed", fingerprints=False)
    assert _refusal(RESULTS, run).startswith("work/persons.parquet has no fingerprint")


def test_a_run_in_progress(tmp_path, monkeypatch):
    run = _finished_run(tmp_path, status="running")  # its runner (this process) is alive
    with pytest.raises(lab.RunInProgress, match="^run 2026-12-01 is still running"):
        lab.open_session(RESULTS, None, {}, run)
    monkeypatch.setenv(RUN_ENV, "1")  # inside mse run the notebook writes into its run
    s = lab.open_session(RESULTS, run / "params.yaml", {}, run)
    assert s.run_dir == run and s.note == "" and s.params_path is None
    (run / "manifest.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(runfolder.FinishedRunError):
        lab.open_session(RESULTS, run / "params.yaml", {}, run)


def test_an_interrupted_run_is_explored_not_written(tmp_path):
    run = _finished_run(tmp_path, status="running")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["runner"]["process_start"] = -1  # its process is gone
    (run / "manifest.json").write_text(json.dumps(manifest))
    s = lab.open_session(RESULTS, None, {}, run)
    assert s.run_dir == tmp_path / "reports" / "lab" / "2026-12-01" and "(status interrupted)" in s.note


def test_make_read_only_leaves_the_run_page_and_folders_writable(tmp_path):
    runfolder.make_run_folder(tmp_path)
    for name in ("index.html", "manifest.json", "results/estimates.csv", "work/imputed/imp_000.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert runfolder.make_read_only(tmp_path) == 4  # three files and work/README.txt
    writable = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.stat().st_mode & stat.S_IWUSR}
    assert writable == {"index.html", *runfolder.SUBFOLDERS, "work/imputed"}


# --- the real notebooks on a finished quick run ---------------------------------------------------


def _execute(notebook, run_dir, overrides):
    import papermill as pm

    from mse_helpers.runner.pipeline import NOTEBOOK_DIR, _kernel_env

    _kernel_env()
    out = run_dir.parent / f"executed_{notebook}.ipynb"
    nb = pm.execute_notebook(
        str(NOTEBOOK_DIR / f"{notebook}.ipynb"),
        str(out),
        parameters={"params_file": None, "overrides": overrides, "run_dir": str(run_dir)},
        kernel_name="python3",
        cwd=str(NOTEBOOK_DIR),
        progress_bar=False,
    )
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from helpers import QUICK as QUICK_ARGS

    from mse_helpers.cli import main

    reports = tmp_path_factory.mktemp("reports")
    assert main(["run", "--reports", str(reports), *QUICK_ARGS]) == 0
    (run,) = [d for d in reports.iterdir() if (d / "manifest.json").is_file()]
    return run


@pytest.mark.slow
def test_notebook_04_on_a_finished_run_leaves_it_byte_identical(quick_run):
    before = _tree(quick_run)
    assert "fingerprints.json" in {p.name for p in (quick_run / "work").iterdir()}
    results = quick_run / "results" / "estimates.csv"
    assert not results.stat().st_mode & 0o222  # mse run made it read-only
    printed = _execute(RESULTS, quick_run, {"interval": "rubin-t"})  # the default (auto) is log-scale here
    assert _tree(quick_run) == before
    assert f"Exploring the finished run {quick_run.name} (status ok), which is never changed" in printed
    explored = quick_run.parent / "lab" / quick_run.name
    old, new = pd.read_csv(results), pd.read_csv(explored / "results" / "estimates.csv")
    assert set(old["interval"]) == {"boot-impute log-scale"} and set(new["interval"]) == {"boot-impute rubin-t"}
    pd.testing.assert_series_equal(old["n_hat"], new["n_hat"])  # same models and bootstrap
    raised = new["lower"] > new["n_obs"]  # where the t interval's lower end is not raised to n_obs
    assert raised.any() and (new.loc[raised, "lower"] != old.loc[raised, "lower"]).all()
    assert (explored / "results" / "tables.xlsx").is_file() and (explored / "work" / "bootstrap.parquet").is_file()


@pytest.mark.slow
def test_a_later_notebook_refuses_work_files_of_other_parameters_in_one_line(quick_run):
    import papermill as pm

    before = _tree(quick_run)
    _execute(PREPARATION, quick_run, {"covariates": ["S", "L"]})
    with pytest.raises(pm.PapermillExecutionError) as info:
        _execute(SELECTION, quick_run, {})
    assert info.value.ename == "StaleWorkFile"
    assert info.value.evalue == (
        "covariates = [S, L] differs from the [S, L, N, U] that work/imputed/imp_000.parquet was made with: "
        "re-run 02_imputation"
    )
    assert _tree(quick_run) == before
    assert os.environ.get(RUN_ENV) is None


def test_overrides_that_are_not_a_dict_are_refused_with_the_rule(tmp_path):
    # papermill -p overrides '{"interval": ...}' passes a string: say so, not a dict() error
    with pytest.raises(ValueError, match=r"04_results: overrides must be a dict .* got str"):
        lab.resolve_params("04_results", None, '{"interval": "log-scale"}', tmp_path, None)
