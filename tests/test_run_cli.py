"""`mse run` as a user calls it: exit codes, messages, and a real run on the bundled data."""

import csv
import json
import shutil

import pytest
from helpers import QUICK

from mse_helpers.cli import main
from mse_helpers.runner.params import PROJECT_ROOT


def test_bad_parameter_exits_2_naming_it(tmp_path, capsys):
    assert main(["run", "--set", "m=abc", "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "parameter m" in err and "'abc'" in err
    assert not (tmp_path / "r").exists()


def test_missing_input_file_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert main(["run", "--set", f"aggregates={missing}", "--reports", str(tmp_path / "r")]) == 2
    assert f"parameter aggregates: input file {missing} does not exist" in capsys.readouterr().err


def test_bad_reports_file_exits_2_naming_rows_and_writes_nothing(tmp_path, capsys):
    rows = list(csv.reader(open(PROJECT_ROOT / "data" / "reports.csv", newline="")))
    rows[4][2] = "2016-13-45"  # file row 5: a bad date
    rows[8][3] = "Politie Atlantis"  # file row 9: an unknown organisation
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert main(["run", "--set", f"reports={bad}", "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "row 5, column report_date" in err and "2016-13-45" in err
    assert "'Politie Atlantis' is not in the register map (row 9)" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_quick_run_on_bundled_data(tmp_path, capsys):
    reports = tmp_path / "reports"
    args = [
        "run",
        "--reports",
        str(reports),
        *QUICK,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for nb in ("01_data_preparation", "02_imputation", "03_model_selection", "04_results"):
        assert f"{nb} ok" in out
    (run,) = [d for d in reports.iterdir() if d.is_dir()]
    man = json.loads((run / "manifest.json").read_text())
    assert man["status"] == "ok" and man["years"] == [2016, 2017, 2018, 2019]
    assert all(v["status"] == "ok" for v in man["notebooks"].values())
    assert set(man["inputs"]) == {"reports", "aggregates", "register_map"}  # no truth without data/synthetic.yaml
    for nb in man["notebooks"]:
        assert (run / "html" / f"{nb}.html").is_file() and (run / "html_code" / f"{nb}.html").is_file()
    assert f"{run.name}/index.html" in (reports / "index.html").read_text()
    # Privacy: no person key or report id of the input in anything publishable.
    keys = set()
    with open(PROJECT_ROOT / "data" / "reports.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            keys.add(row["person_key"])
            keys.add(row["report_id"])
    published = [
        f for sub in ("html", "html_code", "results", "notebooks") for f in (run / sub).rglob("*") if f.is_file()
    ] + [run / "index.html", reports / "index.html", run / "manifest.json"]
    for f in published:
        text = f.read_text(encoding="utf-8", errors="ignore")
        leaked = [k for k in keys if k in text]
        assert not leaked, f"{f} contains input keys {leaked[:3]}"
    shutil.rmtree(reports)


def test_progress_goes_through_logging_and_the_cli_prints_it(tmp_path, capsys, monkeypatch):
    # The runner logs its progress; `mse run` prints those lines as they come (and warnings on stderr
    # are not needed for that). The pipeline is replaced by one that logs like it, to keep this quick.
    import mse_helpers.cli.run as run_cli
    from mse_helpers.runner import pipeline

    def fake_run(p, reports, **kw):
        assert kw["stop"] is not None  # the CLI's signal handling carries on into the run
        run_dir = reports / "2026-12-03"
        pipeline.log.info("[1/1] 01_data_preparation ...")
        pipeline.log.info("[1/1] 01_data_preparation ok in 1.0 s")
        pipeline.log.debug("not shown")
        pipeline.log.warning("a warning")
        return pipeline.RunResult(run_dir, "ok", {}, None, None, "could not write the run index X: Read-only")

    monkeypatch.setattr(run_cli, "check_inputs", lambda p: None)
    monkeypatch.setattr(pipeline, "run_pipeline", fake_run)
    assert main(["run", "--reports", str(tmp_path / "r")]) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[:2] == ["[1/1] 01_data_preparation ...", "[1/1] 01_data_preparation ok in 1.0 s"]
    assert "not shown" not in cap.out and "mse run: done" in cap.out
    assert "could not write the run index X" in cap.err and "the run itself is ok" in cap.err
    assert "mse run: warning: a warning" in cap.err and "a warning" not in cap.out
    import logging

    assert logging.getLogger("mse_helpers.runner").handlers == []  # the CLI's handler is removed again


def test_python_dash_m_runs_the_mse_command():
    # python -m mse_helpers.cli is the mse command (a bad parameter: exit 2 naming it)
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "mse_helpers.cli", "run", "--set", "m=0"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "parameter m: must be from 1 to 1000, got 0" in out.stderr
