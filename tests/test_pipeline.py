"""The run mechanism of `mse run`, on tiny notebooks (the statistics are tested elsewhere)."""

import datetime as dt
import json
import os

import nbformat
import pytest
from helpers import write_notebook

from mse_helpers.runner.params import load_params
from mse_helpers.runner.pipeline import headline_from_estimates, new_run_dir, run_pipeline, sha256_file
from mse_helpers.runner.runindex import write_index

PARAMS = 'params_file = None\noverrides = {}\nrun_dir = "."'


def _notebook(path, *cells):
    write_notebook(path, PARAMS, *cells)


@pytest.fixture
def setup(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    # The first notebook writes a results file through the run folder, as the real ones do.
    _notebook(
        nbdir / "a_ok.ipynb",
        "from pathlib import Path\nfrom mse_helpers.runner.params import load_params\n"
        "p = load_params(params_file, overrides)\nSECRET_CODE_MARK = p.m * 2\nprint('m is', p.m)",
        "import pandas as pd\n(Path(run_dir) / 'results' / 'estimates.csv').write_text("
        "'year,group,n_hat,lower,upper\\n2018,total,5500,4000,7000\\n2019,total,5100.4,3900,6300\\n"
        "2019,S=M,10,5,15\\n')",
    )
    _notebook(nbdir / "b_fail.ipynb", "x = 1", "raise ValueError('deliberate failure for the test')")
    inputs = {}
    for key in ("reports", "aggregates", "register_map"):
        f = tmp_path / f"{key}.csv"
        f.write_text(f"{key}\n1\n")
        inputs[key] = str(f)
    p = load_params(None, {**inputs, "truth": None, "m": 3, "years": [2018, 2019]})
    return tmp_path, nbdir, p


def test_good_run_folder_and_second_run(setup):
    tmp, nbdir, p = setup
    reports = tmp / "reports"
    day = dt.date(2026, 11, 22)
    lines = []
    r1 = run_pipeline(p, reports, notebook_dir=nbdir, notebooks=("a_ok",), today=day, progress=lines.append)
    assert r1.status == "ok" and r1.run_dir.name == "2026-11-22"
    assert lines[0].startswith("[1/1] a_ok") and "ok in" in lines[-1]
    man = json.loads((r1.run_dir / "manifest.json").read_text())
    assert man["status"] == "ok" and man["notebooks"]["a_ok"]["status"] == "ok"
    assert man["inputs"]["reports"]["sha256"] == sha256_file(p.reports)
    assert man["seeds"]["master"] == p.seed and man["parameters"]["m"] == 3
    assert man["packages"]["pandas"] and man["finished"] and man["duration_s"] >= 0
    assert man["headline"] == "2018: 5,500 (4,000-7,000); 2019: 5,100 (3,900-6,300)"
    executed = nbformat.read(r1.run_dir / "notebooks" / "a_ok.ipynb", as_version=4)
    assert any("m is 3" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    # publication HTML hides code, review HTML shows it
    assert "SECRET_CODE_MARK" not in (r1.run_dir / "html" / "a_ok.html").read_text()
    assert "SECRET_CODE_MARK" in (r1.run_dir / "html_code" / "a_ok.html").read_text()
    assert "m: 3" in (r1.run_dir / "params.yaml").read_text()

    before = {f: f.read_bytes() for f in r1.run_dir.rglob("*") if f.is_file() and f.name != "index.html"}
    r2 = run_pipeline(p, reports, notebook_dir=nbdir, notebooks=("a_ok",), today=day, progress=lambda s: None)
    assert r2.run_dir.name == "2026-11-22_2"
    assert {f: f.read_bytes() for f in before} == before  # first run untouched
    index = (reports / "index.html").read_text()
    assert index.index("2026-11-22_2/index.html") < index.index("2026-11-22/index.html")  # newest first
    assert "5,500 (4,000-7,000)" in index and "2018, 2019" in index


def test_failed_run_is_marked_and_names_notebook_and_cell(setup):
    tmp, nbdir, p = setup
    reports = tmp / "reports"
    r = run_pipeline(
        p, reports, notebook_dir=nbdir, notebooks=("a_ok", "b_fail"), today=dt.date(2026, 1, 2), progress=lambda s: None
    )
    assert r.status == "failed"
    assert r.failure.notebook == "b_fail"
    assert "deliberate failure" in str(r.failure) and "raise ValueError" in str(r.failure)
    assert r.failure.cell_index is not None
    man = json.loads((r.run_dir / "manifest.json").read_text())
    assert man["status"] == "failed" and man["notebooks"]["b_fail"]["status"] == "failed"
    assert "b_fail" in man["failure"]
    assert (r.run_dir / "FAILED").is_file()
    assert (r.run_dir / "html_code" / "b_fail.html").is_file()  # the error can be read
    index = (reports / "index.html").read_text()
    assert "class='failed'>failed" in index
    assert "5,500" not in index  # a failed run shows no estimate, even though a_ok wrote one


def test_new_run_dir_never_reuses(tmp_path):
    day = dt.date(2026, 3, 4)
    names = [new_run_dir(tmp_path, day).name for _ in range(3)]
    assert names == ["2026-03-04", "2026-03-04_2", "2026-03-04_3"]


def test_index_orders_newest_first_and_ignores_other_folders(tmp_path):
    for name, started in (("2026-01-01", "2026-01-01T10:00"), ("2026-02-01", "2026-02-01T10:00")):
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(
            json.dumps(
                {
                    "status": "ok",
                    "started": started,
                    "years": [2016, 2017, 2018],
                    "headline": "h-" + name,
                    "notebooks": {},
                }
            )
        )
    (tmp_path / "lab").mkdir()  # no manifest: not a run
    index = write_index(tmp_path).read_text()
    assert index.index("2026-02-01") < index.index("2026-01-01")
    assert "lab/index.html" not in index
    assert "2016-2018" in index and "h-2026-02-01" in index


def test_headline_needs_the_columns(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("year,group,n_hat\n2018,total,1\n")
    assert headline_from_estimates(f) is None


def test_kernels_render_figures_inline_even_with_agg(setup, monkeypatch):
    tmp, nbdir, p = setup
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a headless shell's setting must not reach the kernels
    _notebook(
        nbdir / "c_fig.ipynb",
        "import os, matplotlib.pyplot as plt\nfrom IPython.display import display\n"
        "fig, ax = plt.subplots()\nax.plot([1, 2])\ndisplay(fig)\nplt.close(fig)",
        "print('blas threads', os.environ.get('OPENBLAS_NUM_THREADS'))",
    )
    r = run_pipeline(p, tmp / "reports", notebook_dir=nbdir, notebooks=("c_fig",), progress=lambda s: None)
    assert r.status == "ok"
    nb = nbformat.read(r.run_dir / "notebooks" / "c_fig.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("blas threads 1" in o.get("text", "") for o in outputs)


def test_progress_is_logged(setup, caplog):
    import logging

    tmp, nbdir, p = setup
    with caplog.at_level(logging.INFO, logger="mse_helpers.runner.pipeline"):
        r = run_pipeline(p, tmp / "reports", notebook_dir=nbdir, notebooks=("a_ok",), today=dt.date(2026, 5, 6))
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "mse_helpers.runner.pipeline"]
    assert r.status == "ok" and lines[0] == "[1/1] a_ok ..." and lines[1].startswith("[1/1] a_ok ok in ")
    man = json.loads((r.run_dir / "manifest.json").read_text())
    assert man["runner"]["pid"] == os.getpid() and man["runner"]["host"]
