"""Run the four notebooks into a dated report folder (``mse run``).

A run folder ``reports/YYYY-MM-DD[_k]/`` holds:

- ``params.yaml``: the parameters as used (absolute input paths);
- ``manifest.json``: package versions, git commit, SHA-256 of every input
  file, seeds, start and end time, duration and status per notebook;
- ``notebooks/``: the executed notebooks;
- ``html/``: each notebook rendered without code cells, for publication;
- ``html_code/``: each notebook rendered with code, for review;
- ``results/``: result tables written by the notebooks (CSV, counts and
  estimates only);
- ``work/``: PRIVATE intermediate files (person-level records) that pass
  between the notebooks. Never publish it.

Notebooks talk to each other only through files in ``work/``; each can be
re-run on its own with the same ``run_dir``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import yaml

from .params import PROJECT_ROOT, Params
from ..seeds import STAGES

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS: tuple[str, ...] = (
    "01_data_preparation",
    "02_imputation",
    "03_model_selection",
    "04_results",
)
#: Packages whose versions go into the manifest (plus Python itself).
MANIFEST_PACKAGES = (
    "mse-helpers", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn",
    "pyarrow", "openpyxl", "PyYAML", "joblib", "papermill", "nbconvert", "nbclient",
    "nbformat", "ipykernel",
)
KERNEL = "python3"
STATUS_RUNNING, STATUS_OK, STATUS_FAILED = "running", "ok", "failed"


@dataclass
class NotebookFailure(Exception):
    """A notebook stopped with an error; names the notebook and the cell."""

    notebook: str
    cell_index: int | None
    cell_source: str
    error: str

    def __str__(self) -> str:
        first = self.cell_source.strip().splitlines()[0] if self.cell_source.strip() else ""
        where = f"cell {self.cell_index}" if self.cell_index is not None else "a cell"
        return f"notebook {self.notebook} failed in {where} ({first!r}): {self.error}"


@dataclass
class RunResult:
    """What ``run_pipeline`` did."""

    run_dir: Path
    status: str
    manifest: dict = field(default_factory=dict)
    failure: NotebookFailure | None = None


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


def git_commit(root: Path = PROJECT_ROOT) -> dict:
    """The project's git commit and whether the work tree had changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
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
    """The manifest as written before the first notebook starts."""
    return {
        "run": run_dir.name,
        "status": STATUS_RUNNING,
        "started": _now(),
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
KERNEL_ENV = {
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


def _ipc_kernel_manager(socket_dir: str):
    """A kernel manager whose kernel talks over Unix sockets in a private folder.

    Its kernels also get :data:`KERNEL_ENV`.

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
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return IPCKernelManager


def execute_notebook(src: Path, dst: Path, parameters: dict, cell_timeout: int) -> None:
    """Execute one notebook with papermill; raise :class:`NotebookFailure` on error.

    The executed notebook (with the error, if any) is always written to ``dst``.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _kernel_env()
    try:
        with tempfile.TemporaryDirectory(prefix="mse-kernel-") as socket_dir:
            pm.execute_notebook(
                str(src), str(dst), parameters=parameters, kernel_name=KERNEL,
                cwd=str(src.parent), progress_bar=False, execution_timeout=cell_timeout,
                kernel_manager_class=_ipc_kernel_manager(socket_dir),
            )
    except PapermillExecutionError as exc:
        raise NotebookFailure(src.stem, exc.cell_index, exc.source or "",
                              f"{exc.ename}: {exc.evalue}") from None
    except Exception as exc:  # timeouts, dead kernels: still name the notebook
        raise NotebookFailure(src.stem, None, "", f"{type(exc).__name__}: {exc}") from None


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
        params = yaml.safe_load((run_dir / "params.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    years: tuple[int, ...] = ()
    try:
        years = tuple(int(y) for y in json.loads(
            (run_dir / "work" / "prep_summary.json").read_text(encoding="utf-8")).get("years") or ())
    except (OSError, ValueError, TypeError):
        years = tuple(int(y) for y in params.get("years") or ())
    pages = notebooks if executed.stem in notebooks else notebooks + (executed.stem,)
    return PageContext(notebook=executed.stem, pages=pages, years=years, parameters=params,
                       run_name=run_dir.name, index_href="../index.html")


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
        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                exclude_output_prompt=True)
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
    summary = run_dir / "work" / "prep_summary.json"
    if summary.is_file():
        years = json.loads(summary.read_text(encoding="utf-8")).get("years")
        if years:
            out["years"] = years
    est = run_dir / "results" / "estimates.csv"
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
    parts = [f"{int(r.year)}: {r.n_hat:,.0f} ({r.lower:,.0f}-{r.upper:,.0f})"
             for r in rows.sort_values("year").itertuples()]
    return "; ".join(parts)


def run_pipeline(p: Params, reports_dir: Path, *, notebook_dir: Path = NOTEBOOK_DIR,
                 notebooks: tuple[str, ...] = NOTEBOOKS, cell_timeout: int = 1800,
                 today: dt.date | None = None,
                 progress: Callable[[str], None] = print) -> RunResult:
    """Execute the notebooks in order into a new run folder.

    Parameters
    ----------
    p : Params
        Validated parameters.
    reports_dir : Path
        Where run folders go; ``index.html`` there is refreshed at the end.
    notebook_dir, notebooks
        The notebooks to run (tests use small ones).
    cell_timeout : int
        Seconds one cell may take before the run fails.
    today : datetime.date, optional
        Date for the folder name.
    progress : callable
        Receives one line per notebook.

    Returns
    -------
    RunResult
        ``status`` is ``"ok"`` or ``"failed"`` (then ``failure`` names the
        notebook and cell).
    """
    from .runindex import write_index

    run_dir = new_run_dir(reports_dir, today)
    for sub in ("notebooks", "html", "html_code", "results", "work"):
        (run_dir / sub).mkdir()
    (run_dir / "params.yaml").write_text(
        "# Parameters as used by this run (mse run).\n"
        + yaml.safe_dump(p.to_dict(), sort_keys=False), encoding="utf-8")
    (run_dir / "work" / "README.txt").write_text(
        "PRIVATE: person-level intermediate files. Never publish this folder.\n", encoding="utf-8")
    manifest = initial_manifest(p, run_dir, notebooks)
    write_json(run_dir / "manifest.json", manifest)
    write_index(reports_dir)

    t_run = time.perf_counter()
    failure = None
    parameters = {"params_file": str(run_dir / "params.yaml"), "overrides": {}, "run_dir": str(run_dir)}
    for i, name in enumerate(notebooks, 1):
        entry = manifest["notebooks"][name]
        entry["status"] = STATUS_RUNNING
        write_json(run_dir / "manifest.json", manifest)
        progress(f"[{i}/{len(notebooks)}] {name} ...")
        executed = run_dir / "notebooks" / f"{name}.ipynb"
        t0 = time.perf_counter()
        try:
            execute_notebook(notebook_dir / f"{name}.ipynb", executed, parameters, cell_timeout)
            entry["status"] = STATUS_OK
        except NotebookFailure as exc:
            failure = exc
            entry["status"] = STATUS_FAILED
        except KeyboardInterrupt:
            failure = NotebookFailure(name, None, "", "interrupted by the user")
            entry["status"] = STATUS_FAILED
        entry["duration_s"] = round(time.perf_counter() - t0, 2)
        if executed.is_file():
            render_html(executed, run_dir / "html", with_code=False)
            render_html(executed, run_dir / "html_code", with_code=True)
        progress(f"[{i}/{len(notebooks)}] {name} {entry['status']} in {entry['duration_s']:.1f} s")
        if failure:
            break

    manifest.update(run_summary(run_dir))
    manifest["status"] = STATUS_FAILED if failure else STATUS_OK
    manifest["failure"] = str(failure) if failure else None
    manifest["finished"] = _now()
    manifest["duration_s"] = round(time.perf_counter() - t_run, 2)
    write_json(run_dir / "manifest.json", manifest)
    if failure:
        (run_dir / "FAILED").write_text(str(failure) + "\n", encoding="utf-8")
    write_index(reports_dir)
    return RunResult(run_dir, manifest["status"], manifest, failure)
