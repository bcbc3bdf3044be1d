"""Run the four notebooks into a dated report folder (``mse run``).

A run folder ``reports/YYYY-MM-DD[_k]/`` holds:

- ``params.yaml``: the parameters as used (absolute input paths);
- ``manifest.json``: package versions, git commit, SHA-256 of every input
  file, seeds, start and end time, duration and status per notebook, and the
  runner's process id, host and process start time (so that the index can
  tell a killed run from a running one);
- ``notebooks/``: the executed notebooks;
- ``html/``: each notebook rendered without code cells, for publication;
- ``html_code/``: each notebook rendered with code, for review;
- ``results/``: result tables written by the notebooks (CSV, counts and
  estimates only);
- ``work/``: PRIVATE intermediate files (person-level records) that pass
  between the notebooks. Never publish it.

Notebooks talk to each other only through files in ``work/``. Once the run
has ended (``ok`` or ``failed``) it never changes: its files are made
read-only and the writers refuse it; a notebook re-run with ``run_dir`` set
to it (JupyterLab) writes into ``reports/lab/<run>/`` instead (:mod:`.lab`).

Each kernel is started through :mod:`.kernelguard` and, with its joblib/loky
workers, forms one process group that never outlives the notebook: the runner
kills it when the notebook ends, fails or is stopped (SIGINT, SIGTERM,
SIGHUP), and the kernel's watchdog kills it if the runner itself is killed.
Progress goes to the logger ``mse_helpers.runner.pipeline``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import yaml

from .. import runfolder
from ..seeds import STAGES
from .kernelguard import remove_leftovers
from .params import CHECKOUT, Params

NOTEBOOK_DIR = runfolder.bundled_dir("notebooks")
NOTEBOOKS: tuple[str, ...] = runfolder.NOTEBOOKS
#: Packages whose versions go into the manifest (plus Python itself).
MANIFEST_PACKAGES = (
    "mse-helpers",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "pyarrow",
    "openpyxl",
    "PyYAML",
    "joblib",
    "papermill",
    "nbconvert",
    "nbclient",
    "nbformat",
    "ipykernel",
    "dask",
    "distributed",
)
KERNEL = "python3"
STATUS_RUNNING, STATUS_OK, STATUS_FAILED = "running", "ok", "failed"
#: Signals that stop a run the way Ctrl-C does (schedulers and ``docker stop``
#: send SIGTERM; a closed terminal sends SIGHUP).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
#: Module that starts each kernel with a watchdog (see :mod:`.kernelguard`).
KERNEL_GUARD = "mse_helpers.runner.kernelguard"

log = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived.

    A subclass of KeyboardInterrupt so that it leaves asyncio's event loop
    (papermill's) exactly as Ctrl-C does.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``"SIGTERM"``."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal (128 + number)."""
        return 128 + self.signum


class StopSignals:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`RunInterrupted` at safe points.

    Use as a context manager (it installs the handlers, in the main thread
    only, and restores the previous ones on exit). Inside :meth:`armed` a
    stop signal raises at once (a notebook is running and must be stopped);
    elsewhere it is recorded and raised by the next :meth:`check` or
    :meth:`armed`, so that setting up a run folder or writing ``FAILED``, the
    manifest and the index is never cut in half. Only the first signal
    raises: a second Ctrl-C does not interrupt the clean-up after the first.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._armed = False
        self._raised = False
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def _handler(self, signum, frame) -> None:
        self.received.append(signum)
        if self._armed and not self._raised:
            self._raised = True
            raise RunInterrupted(signum)
        log.warning("%s received: stopping the run and marking it failed", signal.Signals(signum).name)

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if a stop signal arrived and was not raised yet."""
        if self.received and not self._raised:
            self._raised = True
            raise RunInterrupted(self.received[0])

    @contextmanager
    def armed(self):
        """Within the block, a stop signal raises :class:`RunInterrupted` at once."""
        self.check()
        self._armed = True
        try:
            yield
        finally:
            self._armed = False


@dataclass
class NotebookFailure(Exception):
    """A notebook stopped with an error; names the notebook and the cell."""

    notebook: str
    cell_index: int | None
    cell_source: str
    error: str
    #: True when a stop signal, not an error, ended the notebook.
    stopped: bool = False

    def __str__(self) -> str:
        if self.stopped:
            return f"notebook {self.notebook} was stopped: {self.error}"
        first = self.cell_source.strip().splitlines()[0] if self.cell_source.strip() else ""
        where = f"cell {self.cell_index}" if self.cell_index is not None else "a cell"
        return f"notebook {self.notebook} failed in {where}{f' ({first!r})' if first else ''}: {self.error}"


@dataclass
class RunResult:
    """What ``run_pipeline`` did."""

    run_dir: Path
    status: str
    manifest: dict = field(default_factory=dict)
    failure: NotebookFailure | None = None
    #: The stop signal that ended the run, if any.
    interrupted: RunInterrupted | None = None
    #: Why ``index.html`` could not be written (the run's own status is unaffected).
    index_error: str | None = None


# --- run folders ------------------------------------------------------------------


def new_run_dir(reports_dir: Path, today: dt.date | None = None) -> Path:
    """Create and return a new, empty run folder named after the date.

    ``YYYY-MM-DD``, then ``YYYY-MM-DD_2``, ``_3``, ...; the folder is created
    atomically, so an earlier run (or a run started at the same moment) is never
    overwritten.

    Parameters
    ----------
    reports_dir : Path
        The reports folder (created if missing).
    today : datetime.date, optional
        The date to use (default: today, local time).

    Returns
    -------
    Path
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = (today or dt.date.today()).isoformat()
    k = 1
    while True:
        path = reports_dir / (stem if k == 1 else f"{stem}_{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(root: Path | None = CHECKOUT) -> dict:
    """The project's git commit and whether the work tree had changes (``None`` when installed from a wheel)."""
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return {"commit": head, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def write_json(path: Path, obj: dict) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def initial_manifest(p: Params, run_dir: Path, notebooks: tuple[str, ...]) -> dict:
    """The manifest as written before the first notebook starts.

    ``runner`` (pid, host, process start time) lets the index show a run
    whose process died without finishing as ``interrupted``.
    """
    from .runindex import runner_identity

    return {
        "run": run_dir.name,
        "status": STATUS_RUNNING,
        "started": _now(),
        "runner": runner_identity(),
        "finished": None,
        "duration_s": None,
        "git": git_commit(),
        "packages": package_versions(),
        "inputs": {k: {"path": str(v), "sha256": sha256_file(v)} for k, v in p.input_files().items()},
        "seeds": {
            "master": p.seed,
            "derivation": "numpy.random.SeedSequence(seed, spawn_key=(stage, index...))",
            "stages": STAGES,
        },
        "parameters": p.to_dict(),
        "notebooks": {nb: {"status": "pending", "duration_s": None} for nb in notebooks},
        "years": list(p.years) if p.years else None,
        "headline": None,
        "failure": None,
    }


# --- executing and rendering ------------------------------------------------------

#: Environment of the notebook kernels. Figures must render inline even when
#: the caller has MPLBACKEND=Agg (as in a headless shell); small matrices and
#: many fits make single-threaded BLAS much faster (docs/engine.md), the
#: parallelism comes from joblib across data sets.
#: Set in every kernel ``mse run`` starts: a notebook may write into its run folder only
#: then, and only while the run is running (:mod:`.lab`); in JupyterLab a run is read-only.
RUN_ENV = "MSE_RUN"
KERNEL_ENV = {
    RUN_ENV: "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def _kernel_env() -> None:
    # Make kernel `python3` the one of this environment even if the user has
    # another `python3` kernel registered for themselves.
    share = Path(sys.prefix) / "share" / "jupyter"
    if share.is_dir():
        paths = os.environ.get("JUPYTER_PATH", "")
        if str(share) not in paths.split(os.pathsep):
            os.environ["JUPYTER_PATH"] = os.pathsep.join([str(share)] + ([paths] if paths else []))


def _guarded_kernel_cmd(kernel_cmd: list[str]) -> list[str]:
    """The kernel command with ``ipykernel_launcher`` replaced by :data:`KERNEL_GUARD`."""
    if "ipykernel_launcher" not in kernel_cmd:
        log.warning(
            "kernel %r is not started by ipykernel_launcher: its worker processes are stopped "
            "when the run stops normally or by a signal, but not if the runner is killed (SIGKILL)",
            KERNEL,
        )
        return list(kernel_cmd)
    return [KERNEL_GUARD if part == "ipykernel_launcher" else part for part in kernel_cmd]


def _ipc_kernel_manager(socket_dir: str, launched: list | None = None):
    """A kernel manager whose kernel talks over Unix sockets in a private folder.

    Its kernels also get :data:`KERNEL_ENV`, are started through
    :mod:`.kernelguard` (so they and their workers die with the runner), and
    each launched kernel's ``(process group id, process)`` is appended to
    ``launched`` so that the runner can stop the whole group.

    The default is unencrypted TCP on localhost; the notebooks handle
    special-category personal data, so keep the traffic off the network stack.
    """
    from jupyter_client.manager import KernelManager

    class IPCKernelManager(KernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(socket_dir, "kernel")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["env"] = {**(kw.get("env") or os.environ), **KERNEL_ENV}
            out = await super()._async_launch_kernel(_guarded_kernel_cmd(kernel_cmd), **kw)
            proc = getattr(self.provisioner, "process", None)
            pgid = getattr(self.provisioner, "pgid", None) or getattr(proc, "pid", None)
            if launched is not None and pgid:
                launched.append((pgid, proc))
            return out

    return IPCKernelManager


def stop_process_groups(launched: list) -> None:
    """Kill each kernel's process group (kernel and joblib/loky workers), reap the kernel
    and remove the memory-mapping folders and semaphores joblib left behind.

    Safe to call when they have already ended. Workers hold person-level data:
    none may outlive the notebook, whether it ended well, failed or was stopped.
    """
    for pgid, proc in launched:
        if hasattr(os, "killpg"):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if proc is not None:
            try:
                proc.kill()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):  # gone already; or unkillable (D state)
                pass
        remove_leftovers(getattr(proc, "pid", None) or pgid)


def execute_notebook(
    src: Path, dst: Path, parameters: dict, cell_timeout: int, *, armed: Callable | None = None
) -> None:
    """Execute one notebook with papermill; raise :class:`NotebookFailure` on error.

    The executed notebook (with the error, if any) is written to ``dst``.
    Whatever happens, the kernel and its worker processes are gone when this
    returns or raises.

    Papermill runs in a helper thread while the main thread waits, so that a
    stop signal is handled at once: :class:`RunInterrupted` (or
    KeyboardInterrupt) in the main thread kills the kernel's process group,
    which ends papermill's thread within seconds, and is then re-raised.
    (Raised inside papermill's own event loop, the interrupt would leave the
    cell's reply pending and nbclient's clean-up waits for it, i.e. for the
    notebook to finish.)

    ``armed`` (e.g. :meth:`StopSignals.armed`) makes stop signals raise while
    the notebook runs, and only then: the clean-up is never cut short.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _kernel_env()
    launched: list = []
    outcome: dict = {}

    def target() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="mse-kernel-") as socket_dir:
                pm.execute_notebook(
                    str(src),
                    str(dst),
                    parameters=parameters,
                    kernel_name=KERNEL,
                    cwd=str(src.parent),
                    progress_bar=False,
                    execution_timeout=cell_timeout,
                    kernel_manager_class=_ipc_kernel_manager(socket_dir, launched),
                )
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"mse-notebook-{src.stem}", daemon=True)
    worker.start()
    try:
        with (armed or contextlib.nullcontext)():
            while worker.is_alive():
                worker.join(0.2)  # a timed join lets the main thread run signal handlers
    except BaseException:
        stop_process_groups(launched)
        worker.join(15)  # papermill notices the dead kernel and writes what ran
        raise
    finally:
        stop_process_groups(launched)
    exc = outcome.get("error")
    if exc is None:
        return
    if isinstance(exc, PapermillExecutionError):
        raise NotebookFailure(src.stem, exc.cell_index, exc.source or "", f"{exc.ename}: {exc.evalue}")
    # timeouts, dead kernels: still name the notebook
    raise NotebookFailure(src.stem, None, "", f"{type(exc).__name__}: {exc}")


def page_context(executed: Path, notebooks: tuple[str, ...] = NOTEBOOKS):
    """What the report page of ``executed`` needs from its run folder (years, parameters, pages).

    The executed notebook lives in ``<run>/notebooks/``; the run's
    ``params.yaml`` gives m, B and maxit (the exploratory banner) and
    ``work/prep_summary.json`` the analysed years (the title). Missing files
    only leave the title without years and the page without banner.
    """
    from ..report.html import PageContext

    run_dir = executed.parent.parent
    params: dict = {}
    try:
        params = yaml.safe_load((run_dir / runfolder.PARAMS_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    years: tuple[int, ...] = ()
    try:
        years = tuple(int(y) for y in runfolder.read_prep_summary(run_dir / runfolder.WORK_DIR).get("years") or ())
    except (runfolder.WorkFileMissing, runfolder.WorkFileError, OSError, ValueError, TypeError):
        years = tuple(int(y) for y in params.get("years") or ())
    pages = notebooks if executed.stem in notebooks else notebooks + (executed.stem,)
    return PageContext(
        notebook=executed.stem,
        pages=pages,
        years=years,
        parameters=params,
        run_name=run_dir.name,
        index_href="../index.html",
    )


def render_html(executed: Path, out_dir: Path, with_code: bool) -> Path:
    """Render an executed notebook to a self-contained page of the report.

    Both versions get the report's title, navigation bar, table of contents,
    exploratory-run banner and print CSS, and load nothing from the internet
    (:func:`mse_helpers.report.html.publish_page`).

    Parameters
    ----------
    executed : Path
        The executed ``.ipynb`` (in ``<run>/notebooks/``).
    out_dir : Path
        Folder to write ``<name>.html`` into.
    with_code : bool
        Keep code cells and every output (review copy, ``html_code/``) or hide
        the code and drop the cells tagged ``remove-from-publication``
        (developer output: paths, timings; publication copy, ``html/``).

    Returns
    -------
    Path
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    from ..report.html import REMOVE_TAG, publish_page

    nb = nbformat.read(executed, as_version=4)
    if not with_code:
        # The parameters cells are code; the publication copy hides all input.
        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={REMOVE_TAG}), enabled=True)
    else:
        exporter = HTMLExporter()
    body, _ = exporter.from_notebook_node(nb)
    body = publish_page(body, page_context(executed))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{executed.stem}.html"
    out.write_text(body, encoding="utf-8")
    return out


def run_summary(run_dir: Path) -> dict:
    """Years and headline estimate of a run, read from its work and results files."""
    out: dict = {}
    try:
        out["years"] = runfolder.read_prep_summary(run_dir / runfolder.WORK_DIR)["years"]
    except (runfolder.WorkFileMissing, runfolder.WorkFileError):
        pass  # the run stopped before data preparation finished
    est = run_dir / runfolder.RESULTS_DIR / runfolder.ESTIMATES_FILE
    if est.is_file():
        out["headline"] = headline_from_estimates(est)
    return out


def headline_from_estimates(path: Path) -> str | None:
    """The headline of a run: N-hat and interval of group ``total`` per year.

    Parameters
    ----------
    path : Path
        ``results/estimates.csv`` with columns year, group, n_hat, lower, upper.

    Returns
    -------
    str or None
        E.g. ``"2018: 5,500 (4,000-7,000); 2019: 5,100 (3,900-6,300)"``.
    """
    import pandas as pd

    est = pd.read_csv(path)
    need = {"year", "group", "n_hat", "lower", "upper"}
    if not need <= set(est.columns):
        return None
    rows = est[(est["group"] == "total") & est["year"].astype(str).str.fullmatch(r"\d{4}")]
    if rows.empty:
        return None
    parts = [
        f"{int(r.year)}: {r.n_hat:,.0f} ({r.lower:,.0f}-{r.upper:,.0f})" for r in rows.sort_values("year").itertuples()
    ]
    return "; ".join(parts)


class OutputLocationError(ValueError):
    """Run folders or the index cannot be written where ``--reports`` points."""


def check_reports_location(reports_dir: Path) -> None:
    """Check, before anything runs, that run folders and ``index.html`` can be written.

    Tries it (a probe file made and removed at once; ``index.html`` opened for
    appending without writing) rather than asking ``os.access``, which does not
    see read-only mounts, immutable files or, for root, permissions.

    Parameters
    ----------
    reports_dir : Path
        The reports folder; it need not exist yet (its nearest existing parent
        must be a writable folder). Nothing is created.

    Raises
    ------
    OutputLocationError
        One line naming the path and what is wrong with it.
    """
    reports_dir = Path(reports_dir)
    if reports_dir.exists() and not reports_dir.is_dir():
        raise OutputLocationError(f"reports folder {reports_dir} is a file, not a folder")
    existing = reports_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputLocationError(f"reports folder {reports_dir} cannot be made: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mse-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        what = "reports folder" if existing == reports_dir else f"reports folder {reports_dir}: parent folder"
        raise OutputLocationError(f"{what} {existing} is not writable ({exc.strerror or exc})") from None
    index = reports_dir / "index.html"
    if index.is_dir():
        raise OutputLocationError(f"run index {index} is a folder, not a file")
    if index.exists():
        try:
            with open(index, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise OutputLocationError(f"run index {index} is not writable ({exc.strerror or exc})") from None


@contextmanager
def _index_lock(reports_dir: Path):
    """Serialise index rebuilds of runs sharing a reports folder (the last one sees every run)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(reports_dir / ".index.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh_index(reports_dir: Path) -> str | None:
    """Rebuild ``reports_dir/index.html``; on failure return why instead of raising.

    A run's own status never depends on the index: a run that ended well
    stays ``ok`` in its manifest even if the index cannot be written.

    Returns
    -------
    str or None
        None when written, else one line naming the file and the error.
    """
    from .runindex import write_index

    try:
        with _index_lock(reports_dir):
            write_index(reports_dir)
    except OSError as exc:
        msg = f"could not write the run index {reports_dir / 'index.html'}: {exc.strerror or exc}"
        log.warning(msg)
        return msg
    return None


def _prepare_run_dir(
    p: Params, reports_dir: Path, notebooks: tuple[str, ...], today: dt.date | None
) -> tuple[Path, dict]:
    """Make the run folder, ``params.yaml``, the private ``work/`` note and the first manifest."""
    run_dir = new_run_dir(reports_dir, today)
    runfolder.make_run_folder(run_dir)
    (run_dir / runfolder.PARAMS_FILE).write_text(
        "# Parameters as used by this run (mse run).\n" + yaml.safe_dump(p.to_dict(), sort_keys=False), encoding="utf-8"
    )
    manifest = initial_manifest(p, run_dir, notebooks)
    write_json(run_dir / runfolder.MANIFEST_FILE, manifest)
    return run_dir, manifest


def run_pipeline(
    p: Params,
    reports_dir: Path,
    *,
    notebook_dir: Path = NOTEBOOK_DIR,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    cell_timeout: int = 1800,
    today: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
    stop: StopSignals | None = None,
) -> RunResult:
    """Execute the notebooks in order into a new run folder.

    SIGINT, SIGTERM and SIGHUP stop the running notebook (its kernel and
    worker processes are killed), write ``FAILED`` and mark the run failed in
    its manifest and the index; the run then returns with ``interrupted`` set.

    Parameters
    ----------
    p : Params
        Validated parameters.
    reports_dir : Path
        Where run folders go; ``index.html`` there is refreshed at the start
        and the end. Checked with :func:`check_reports_location` first.
    notebook_dir, notebooks
        The notebooks to run (tests use small ones).
    cell_timeout : int
        Seconds one cell may take before the run fails.
    today : datetime.date, optional
        Date for the folder name.
    progress : callable, optional
        Also receives each progress line; the lines always go to the logger
        ``mse_helpers.runner.pipeline`` at level INFO.
    stop : StopSignals, optional
        The caller's, already entered (so that a signal between the caller's
        checks and the run is not lost); default: a new one for the run.

    Returns
    -------
    RunResult
        ``status`` is ``"ok"`` or ``"failed"`` (then ``failure`` names the
        notebook and cell, and ``interrupted`` the signal if one stopped it).

    Raises
    ------
    OutputLocationError
        ``reports_dir`` cannot hold run folders or the index (nothing made).
    """

    def say(line: str) -> None:
        log.info(line)
        if progress is not None:
            progress(line)

    check_reports_location(reports_dir)
    with contextlib.nullcontext(stop) if stop is not None else StopSignals() as stop:
        run_dir, manifest = _prepare_run_dir(p, reports_dir, notebooks, today)
        refresh_index(reports_dir)
        t_run = time.perf_counter()
        failure: NotebookFailure | None = None
        interrupted: RunInterrupted | None = None
        parameters = {"params_file": str(run_dir / runfolder.PARAMS_FILE), "overrides": {}, "run_dir": str(run_dir)}
        name = notebooks[0] if notebooks else ""
        try:
            for i, name in enumerate(notebooks, 1):
                entry = manifest["notebooks"][name]
                entry["status"] = STATUS_RUNNING
                write_json(run_dir / runfolder.MANIFEST_FILE, manifest)
                say(f"[{i}/{len(notebooks)}] {name} ...")
                executed = run_dir / runfolder.NOTEBOOKS_DIR / f"{name}.ipynb"
                t0 = time.perf_counter()
                try:
                    execute_notebook(
                        notebook_dir / f"{name}.ipynb", executed, parameters, cell_timeout, armed=stop.armed
                    )
                    entry["status"] = STATUS_OK
                except NotebookFailure as exc:
                    failure = exc
                    entry["status"] = STATUS_FAILED
                except RunInterrupted as exc:
                    interrupted = exc
                    failure = NotebookFailure(name, None, "", f"interrupted by {exc.name}", stopped=True)
                    entry["status"] = STATUS_FAILED
                entry["duration_s"] = round(time.perf_counter() - t0, 2)
                if executed.is_file():
                    render_html(executed, run_dir / runfolder.HTML_DIR, with_code=False)
                    render_html(executed, run_dir / runfolder.HTML_CODE_DIR, with_code=True)
                say(f"[{i}/{len(notebooks)}] {name} {entry['status']} in {entry['duration_s']:.1f} s")
                if failure:
                    break
                stop.check()  # a signal while rendering: stop before the next notebook
        except RunInterrupted as exc:  # arrived between two notebooks
            interrupted = exc
            failure = failure or NotebookFailure(name, None, "", f"interrupted by {exc.name}", stopped=True)
            for info in manifest["notebooks"].values():
                if info["status"] == STATUS_RUNNING:
                    info["status"] = STATUS_FAILED

        manifest.update(run_summary(run_dir))
        manifest["status"] = STATUS_FAILED if failure else STATUS_OK
        manifest["failure"] = str(failure) if failure else None
        manifest["finished"] = _now()
        manifest["duration_s"] = round(time.perf_counter() - t_run, 2)
        if failure:
            (run_dir / runfolder.FAILED_FILE).write_text(str(failure) + "\n", encoding="utf-8")
        write_json(run_dir / runfolder.MANIFEST_FILE, manifest)
        runfolder.make_read_only(run_dir)  # finished: its files never change (the writers refuse too)
        index_error = refresh_index(reports_dir)
    return RunResult(run_dir, manifest["status"], manifest, failure, interrupted, index_error)
