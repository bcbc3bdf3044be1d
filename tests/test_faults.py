"""Faults of `mse run`: stop signals, killed runners, orphaned workers, concurrent runs, unwritable output.

The process tests start a real runner (``run_pipeline`` in a child Python) on a
tiny notebook whose joblib/loky workers sleep, kill or signal it while the
workers are busy, and check that no process of the run is left after 10 s and
that the run is shown as failed or interrupted. Each takes a few seconds.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import write_notebook

from mse_helpers.cli import main
from mse_helpers.runner import pipeline
from mse_helpers.runner.kernelguard import leftovers
from mse_helpers.runner.pipeline import RunInterrupted, StopSignals, check_reports_location, run_pipeline
from mse_helpers.runner.runindex import process_alive, runner_gone, runner_identity, write_index

PARAMS = 'params_file = None\noverrides = {}\nrun_dir = "."'
DAY = dt.date(2026, 12, 3)

# Busy workers, as in notebook 03: the first call finds the workers, the second keeps them busy.
WORKERS_CELL = textwrap.dedent("""\
    import json, os, time
    from pathlib import Path
    from joblib import Parallel, delayed

    def pid_after(seconds):
        time.sleep(seconds)
        return os.getpid()

    workers = sorted(set(Parallel(n_jobs=2)(delayed(pid_after)(0.3) for _ in range(4))))
    (Path(run_dir) / 'work' / 'pids.json').write_text(json.dumps({'kernel': os.getpid(), 'workers': workers}))
    Parallel(n_jobs=2)(delayed(pid_after)(SLEEP) for _ in range(2))
    """)

RUNNER = textwrap.dedent("""\
    import datetime as dt, sys
    from pathlib import Path
    from mse_helpers.runner.params import load_params
    from mse_helpers.runner.pipeline import run_pipeline
    tmp = Path(sys.argv[1])
    inputs = {k: str(tmp / f"{k}.csv") for k in ("reports", "aggregates", "register_map")}
    p = load_params(None, {**inputs, "truth": None, "m": 2, "years": [2018]})
    r = run_pipeline(p, tmp / "reports", notebook_dir=tmp / "nbs", notebooks=(sys.argv[2],),
                     today=dt.date(2026, 12, 3))
    sys.exit(r.interrupted.exit_code if r.interrupted else (1 if r.failure else 0))
    """)


def _notebook(path, *cells):
    write_notebook(path, PARAMS, *cells)


@pytest.fixture
def work(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "busy.ipynb", "SLEEP = 120\n" + WORKERS_CELL)
    _notebook(nbdir / "quick.ipynb", "SLEEP = 0.1\n" + WORKERS_CELL)
    for key in ("reports", "aggregates", "register_map"):
        (tmp_path / f"{key}.csv").write_text(f"{key}\n1\n")
    (tmp_path / "runner.py").write_text(RUNNER)
    return tmp_path


def _start(tmp, notebook):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(pipeline.__file__).parents[2])] + [os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, str(tmp / "runner.py"), str(tmp), notebook],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for(path: Path, proc, timeout=90.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.is_file() and path.stat().st_size:
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"runner ended early: {proc.stdout.read().decode()}")
        time.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout} s")


def _group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(d.name))
    return out


def _left_alive(pids, pgid, within=10.0) -> list[int]:
    """Processes of the run still alive after ``within`` seconds."""
    t0 = time.monotonic()
    while True:
        alive = sorted({p for p in pids if process_alive(p)} | set(_group_members(pgid)))
        if not alive or time.monotonic() - t0 > within:
            return alive
        time.sleep(0.2)


def _kill_leftovers(pids, pgid):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT twice", "SIGKILL"])
def test_stopped_run_leaves_no_worker_and_is_marked(work, how):
    proc = _start(work, "busy")
    run_dir = work / "reports" / DAY.isoformat()
    pids = _wait_for(run_dir / "work" / "pids.json", proc)
    run_pids = [pids["kernel"], *pids["workers"]]
    try:
        assert len(pids["workers"]) >= 1 and all(process_alive(p) for p in run_pids)
        time.sleep(0.5)  # the workers are in their long task now
        if how == "SIGINT twice":
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
        else:
            proc.send_signal(getattr(signal, how))
        rc = proc.wait(timeout=30)
        out = proc.stdout.read().decode()
        assert _left_alive(run_pids, pids["kernel"]) == [], f"processes of the run left alive ({how})"
        assert leftovers(pids["kernel"]) == []  # joblib's memory-mapping folders and loky's semaphores
        man = json.loads((run_dir / "manifest.json").read_text())
        if how == "SIGKILL":
            assert rc == -signal.SIGKILL
            assert man["status"] == "running"  # nobody could write more; the index tells the truth
            assert man["runner"]["pid"] == proc.pid and runner_gone(man["runner"])
            index = write_index(work / "reports").read_text()
            assert "class='interrupted'>interrupted" in index and "class='running'" not in index
            page = (run_dir / "index.html").read_text()
            assert "interrupted" in page and "killed" in page
        else:
            signame = how.split()[0]
            assert rc == 128 + getattr(signal, signame), out
            assert man["status"] == "failed" and man["notebooks"]["busy"]["status"] == "failed"
            assert man["failure"] == f"notebook busy was stopped: interrupted by {signame}"
            assert f"interrupted by {signame}" in (run_dir / "FAILED").read_text()
            assert "Traceback" not in out, out
            index = (work / "reports" / "index.html").read_text()
            assert "class='failed'>failed" in index
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(run_pids, pids["kernel"])


def test_concurrent_runs_get_distinct_folders_and_both_are_listed(work):
    procs = [_start(work, "quick") for _ in range(2)]
    try:
        rcs = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert rcs == [0, 0], [p.stdout.read().decode() for p in procs]
    names = sorted(d.name for d in (work / "reports").iterdir() if d.is_dir())
    assert names == ["2026-12-03", "2026-12-03_2"]
    index = (work / "reports" / "index.html").read_text()
    for name in names:
        assert f"{name}/index.html" in index
        assert json.loads((work / "reports" / name / "manifest.json").read_text())["status"] == "ok"
    assert index.count("class='ok'>ok") == 2 and "class='running'" not in index


def test_runner_gone_tells_dead_reused_and_foreign_processes():
    me = runner_identity()
    assert not runner_gone(me)  # this process is alive
    assert runner_gone({**me, "process_start": me["process_start"] + 1})  # same pid, another process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert runner_gone({**me, "pid": dead.pid, "process_start": None})
    assert not runner_gone({**me, "host": "another-machine"})  # cannot be told: stays running
    assert not runner_gone(None)


def test_index_shows_dead_running_run_as_interrupted_and_live_one_as_running(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, runner in (("2026-12-01", {**runner_identity(), "pid": dead.pid}), ("2026-12-02", runner_identity())):
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(
            json.dumps(
                {
                    "status": "running",
                    "started": name + "T10:00",
                    "runner": runner,
                    "headline": "h",
                    "notebooks": {"03_model_selection": {"status": "running", "duration_s": None}},
                }
            )
        )
    index = write_index(tmp_path).read_text()
    row_dead = index[index.index("2026-12-01/index.html") :]
    row_live = index[index.index("2026-12-02/index.html") : index.index("2026-12-01/index.html")]
    assert "interrupted" in row_dead and "running" not in row_dead.split("</tr>")[0]
    assert "class='running'>running" in row_live
    assert "class='interrupted'>interrupted" in (tmp_path / "2026-12-01" / "index.html").read_text()
    # the manifest on disk is left as the run wrote it
    assert json.loads((tmp_path / "2026-12-01" / "manifest.json").read_text())["status"] == "running"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_raise_once_and_only_when_armed(signame):
    signum = getattr(signal, signame)
    with StopSignals() as stop:
        os.kill(os.getpid(), signum)  # not armed: recorded, not raised
        time.sleep(0.05)
        assert stop.received == [signum]
        with pytest.raises(RunInterrupted) as exc, stop.armed():
            pass
        assert exc.value.name == signame and exc.value.exit_code == 128 + signum
        with stop.armed():
            os.kill(os.getpid(), signum)  # a second signal never interrupts the clean-up
            time.sleep(0.05)
        assert len(stop.received) == 2
    assert signal.getsignal(signum) is not stop._handler  # handlers restored


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_during_input_check_prints_one_line(tmp_path, capsys, monkeypatch, signame):
    import mse_helpers.cli.run as run_cli

    def slow_check(p):
        os.kill(os.getpid(), getattr(signal, signame))
        time.sleep(5)
        raise AssertionError("the signal did not stop the check")

    monkeypatch.setattr(run_cli, "check_inputs", slow_check)
    assert main(["run", "--reports", str(tmp_path / "r")]) == 128 + getattr(signal, signame)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"stopped by {signame} while checking the inputs" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


# --- unwritable output ------------------------------------------------------------------------


def _chattr(flag, path):
    """Set/unset the immutable attribute; root ignores permissions but not this."""
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def immutable():
    made = []

    def make(path):
        if not _chattr("+i", path):
            pytest.skip("chattr +i not available here (needs ext4-like file system and CAP_LINUX_IMMUTABLE)")
        made.append(path)
        return path

    yield make
    for path in made:
        _chattr("-i", path)


def test_reports_is_a_file_exits_2_naming_it(tmp_path, capsys):
    f = tmp_path / "reports.txt"
    f.write_text("not a folder")
    assert main(["run", "--reports", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"reports folder {f} is a file, not a folder" in err
    assert f.read_text() == "not a folder"


def test_reports_under_a_file_exits_2_naming_the_file(tmp_path, capsys):
    f = tmp_path / "reports.txt"
    f.write_text("x")
    assert main(["run", "--reports", str(f / "sub" / "reports")]) == 2
    err = capsys.readouterr().err
    assert f"{f} is a file, not a folder" in err


def test_read_only_reports_folder_exits_2_before_anything_runs(tmp_path, capsys, immutable, monkeypatch):
    # Tested with chattr +i: permissions do not stop root, an immutable folder does.
    import mse_helpers.cli.run as run_cli

    reports = tmp_path / "reports"
    reports.mkdir()
    immutable(reports)
    checked = []
    monkeypatch.setattr(run_cli, "check_inputs", checked.append)
    assert main(["run", "--reports", str(reports)]) == 2
    err = capsys.readouterr().err
    assert f"reports folder {reports} is not writable" in err and err.count("\n") == 1
    assert checked == []  # refused before the inputs were even read
    assert list(reports.iterdir()) == []


def test_unwritable_index_exits_2_naming_it(tmp_path, capsys, immutable):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("old index")
    immutable(reports / "index.html")
    assert main(["run", "--reports", str(reports)]) == 2
    err = capsys.readouterr().err
    assert f"run index {reports / 'index.html'} is not writable" in err
    assert sorted(p.name for p in reports.iterdir()) == ["index.html"]


def test_missing_reports_folder_under_writable_parent_is_fine_and_not_created(tmp_path):
    check_reports_location(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_index_write_failure_after_good_run_keeps_status_ok(work):
    # The notebook makes the index immutable while the run goes on, as a full or
    # read-only disk or another user would: the run's own status must stay right.
    from mse_helpers.runner.params import load_params

    if not _chattr("+i", work):  # probe support first, without leaving the attribute
        pytest.skip("chattr +i not available here")
    _chattr("-i", work)
    reports = work / "reports"
    _notebook(
        work / "nbs" / "lock_index.ipynb",
        "import subprocess\nfrom pathlib import Path\n"
        "subprocess.run(['chattr', '+i', str(Path(run_dir).parent / 'index.html')], check=True)",
    )
    inputs = {k: str(work / f"{k}.csv") for k in ("reports", "aggregates", "register_map")}
    p = load_params(None, {**inputs, "truth": None, "m": 2, "years": [2018]})
    try:
        r = run_pipeline(p, reports, notebook_dir=work / "nbs", notebooks=("lock_index",), today=DAY)
    finally:
        _chattr("-i", reports / "index.html")
    assert r.status == "ok" and r.failure is None
    assert r.index_error and str(reports / "index.html") in r.index_error
    assert json.loads((r.run_dir / "manifest.json").read_text())["status"] == "ok"
    assert not (r.run_dir / "FAILED").exists()
