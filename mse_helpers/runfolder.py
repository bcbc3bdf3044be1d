"""The layout of a run folder and of its private ``work/`` folder, defined once.

A run folder (``reports/YYYY-MM-DD[_k]/``, made by ``mse run``) holds:

- ``params.yaml``: the parameters as used;
- ``manifest.json``: versions, inputs, seeds, times and status per notebook;
- ``notebooks/``: the executed notebooks;
- ``html/``: each notebook without code cells, for publication;
- ``html_code/``: each notebook with code, for review;
- ``results/``: published result tables (counts and estimates only);
- ``work/``: PRIVATE intermediate files (person-level records) that pass
  between the notebooks. Never publish it.

The notebooks talk to each other only through the files of ``work/``
(:data:`WORK_FILES`). Each file has one reader here; a missing file always
gives the same message, naming the notebook that writes it
(:class:`WorkFileMissing`). The messages name files relative to the run
folder (``work/models.json``), never by their machine path. ``work/fingerprints.json``
records what each work file was made from (:class:`Fingerprint`).

A finished run (status ``ok`` or ``failed``) is never written to again: the
writers here refuse (:func:`check_writable`) and ``mse run`` makes its files
read-only (:func:`make_read_only`); JupyterLab explores it in
``reports/lab/<run>/`` (:func:`exploration_folder`).

This module is a base layer: it imports nothing from the stages, the report,
the runner or the command line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

# --- the run folder -------------------------------------------------------------------

PARAMS_FILE = "params.yaml"
MANIFEST_FILE = "manifest.json"
#: Written into a run folder whose run failed (its text is the failure).
FAILED_FILE = "FAILED"
NOTEBOOKS_DIR = "notebooks"
HTML_DIR = "html"
HTML_CODE_DIR = "html_code"
RESULTS_DIR = "results"
WORK_DIR = "work"
#: The sub-folders of a run folder, in the order they are made.
SUBFOLDERS: tuple[str, ...] = (NOTEBOOKS_DIR, HTML_DIR, HTML_CODE_DIR, RESULTS_DIR, WORK_DIR)
#: A note written into ``work/`` so that whoever opens the folder knows.
WORK_README = ("README.txt", "PRIVATE: person-level intermediate files. Never publish this folder.\n")

#: The notebooks of a run, in order; a work file names the one that writes it.
PREPARATION, IMPUTATION, SELECTION, RESULTS = (
    "01_data_preparation",
    "02_imputation",
    "03_model_selection",
    "04_results",
)
NOTEBOOKS: tuple[str, ...] = (PREPARATION, IMPUTATION, SELECTION, RESULTS)


def make_run_folder(run_dir: Path) -> None:
    """Create the sub-folders of an (existing, empty) run folder and the note in ``work/``.

    Parameters
    ----------
    run_dir : Path
        The run folder, already created (its name is chosen by the runner).
    """
    run_dir = Path(run_dir)
    for sub in SUBFOLDERS:
        (run_dir / sub).mkdir()
    make_work_folder(run_dir / WORK_DIR)


def make_work_folder(work_dir: Path) -> None:
    """Create a work folder (and its parents) with the note :data:`WORK_README`; an existing one is kept."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    name, text = WORK_README
    if not (work_dir / name).is_file():
        (work_dir / name).write_text(text, encoding="utf-8")


#: Statuses of a run that has ended (written by ``mse run`` into its manifest): the
#: run's files never change again (:func:`check_writable`, :func:`make_read_only`).
FINISHED_STATUSES: tuple[str, ...] = ("ok", "failed")
#: The run's own page, rebuilt with the run index after the run: the one file left writable.
RUN_PAGE = "index.html"
#: Explorations in JupyterLab live beside the runs: ``reports/lab/`` (one of one's own)
#: and ``reports/lab/<run>/`` (exploring a finished run, which is never written to).
LAB_DIR = "lab"


class FinishedRunError(PermissionError):
    """A write into a finished run folder; the message names the run and where to explore it."""


def read_manifest(run_dir: Path) -> dict | None:
    """``manifest.json`` of a run folder; ``None`` when the folder has none (it is not a run) or it is unreadable."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def run_folder_of(folder: Path) -> Path | None:
    """The run folder that holds ``folder``: itself, or its parent (``work/``, ``results/``); else ``None``."""
    folder = Path(folder)
    for candidate in (folder, folder.parent):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    return None


def exploration_folder(run_dir: Path) -> Path:
    """Where exploring the finished run ``run_dir`` in JupyterLab writes: ``<reports>/lab/<run>/``."""
    run_dir = Path(run_dir)
    return run_dir.parent / LAB_DIR / run_dir.name


def check_writable(folder: Path) -> None:
    """Refuse to write into a finished run (status in :data:`FINISHED_STATUSES`).

    Every writer of this module calls it first, so that nothing rewrites the
    files of a run whose numbers have been reported.

    Parameters
    ----------
    folder : Path
        The folder about to be written to (a run's ``work/`` or ``results/``,
        or any other folder, which is always writable).

    Raises
    ------
    FinishedRunError
        Naming the run, its status and the exploration folder to use instead.
    """
    run = run_folder_of(folder)
    status = (read_manifest(run) or {}).get("status") if run is not None else None
    if status in FINISHED_STATUSES:
        lab = exploration_folder(run)
        raise FinishedRunError(
            f"run {run.name} has finished (status {status}) and its files are never changed: explore it in "
            f"JupyterLab with run_dir set to it, which writes to {lab.parent.parent.name}/{LAB_DIR}/{run.name}/"
        )


def make_read_only(run_dir: Path) -> int:
    """Clear the write bits of every file of a finished run except its page :data:`RUN_PAGE`.

    A second guard beside :func:`check_writable` against other programs and
    editors (root ignores the bits). Folders keep theirs, so that an old run
    can still be deleted.

    Returns
    -------
    int
        The number of files made read-only.
    """
    run_dir = Path(run_dir)
    n = 0
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and path != run_dir / RUN_PAGE:
            mode = path.stat().st_mode
            path.chmod(mode & ~0o222)
            n += 1
    return n


# --- the work files --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkFile:
    """One file of ``work/``: its name there, the notebook that writes it, what it holds."""

    name: str
    written_by: str
    holds: str

    @property
    def shown(self) -> str:
        """The name as messages show it: relative to the run folder (``work/models.json``)."""
        return f"{WORK_DIR}/{self.name}"

    def path(self, work_dir: Path) -> Path:
        """The file inside the work folder ``work_dir``."""
        return Path(work_dir) / self.name


PERSONS = WorkFile("persons.parquet", PREPARATION, "person-level records from the reports")
PARTIAL = WorkFile("partial.parquet", PREPARATION, "partial records from the aggregate counts")
PREP_SUMMARY = WorkFile(
    "prep_summary.json", PREPARATION, "analysed and reference years, counts of everything read, excluded and dropped"
)
IMPUTED_DIR = "imputed"
IMPUTED_PATTERN = "imp_{:03d}.parquet"
TRACES = WorkFile("impute_traces.parquet", IMPUTATION, "mean of every imputed variable per iteration")
MODELS = WorkFile("models.json", SELECTION, "the two selected models of every completed data set")
SCREENING = WorkFile("screening.csv", SELECTION, "the screening of the three-factor terms")
REFUSED = WorkFile("refused.csv", SELECTION, "candidate terms refused during the searches, with the reason")
SENSITIVITY = WorkFile("sensitivity.csv", SELECTION, "N-hat of every sensitivity analysis")
BOOTSTRAP = WorkFile("bootstrap.parquet", RESULTS, "per pooled model and group: N-hat and within variances")


def imputed(dataset: int) -> WorkFile:
    """Completed data set ``dataset`` (``imputed/imp_000.parquet`` ...), written by notebook 02."""
    return WorkFile(
        f"{IMPUTED_DIR}/{IMPUTED_PATTERN.format(int(dataset))}",
        IMPUTATION,
        f"completed person-level data set {int(dataset)}",
    )


#: Every fixed work file (the completed data sets are :func:`imputed`).
WORK_FILES: tuple[WorkFile, ...] = (
    PERSONS,
    PARTIAL,
    PREP_SUMMARY,
    TRACES,
    MODELS,
    SCREENING,
    REFUSED,
    SENSITIVITY,
    BOOTSTRAP,
)


class WorkFileMissing(FileNotFoundError):
    """A work file is missing; the message names it and the notebook to run first."""

    def __init__(self, file: WorkFile, detail: str = ""):
        self.file = file
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{file.shown} is missing{extra}: run notebook {file.written_by} first")


class WorkFileError(ValueError):
    """A work file exists but breaks its contract; the message names it."""


def require(work_dir: Path, file: WorkFile, detail: str = "") -> Path:
    """The path of ``file`` in ``work_dir``; :class:`WorkFileMissing` when it does not exist."""
    path = file.path(work_dir)
    if not path.is_file():
        raise WorkFileMissing(file, detail)
    return path


def _read_json(work_dir: Path, file: WorkFile) -> Any:
    path = require(work_dir, file)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkFileError(f"{file.shown}: not valid JSON ({exc}); re-run notebook {file.written_by}") from None


def _write_json(work_dir: Path, file: WorkFile, obj: Any, indent: int) -> Path:
    check_writable(work_dir)
    path = file.path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent), encoding="utf-8")
    return path


def _write_parquet(work_dir: Path, file: WorkFile, frame: pd.DataFrame) -> Path:
    check_writable(work_dir)
    path = file.path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


# data preparation (notebook 01)


def write_preparation(work_dir: Path, persons: pd.DataFrame, partial: pd.DataFrame, summary: dict) -> None:
    """Write ``persons.parquet``, ``partial.parquet`` and ``prep_summary.json`` (work folder created)."""
    _write_parquet(work_dir, PERSONS, persons)
    _write_parquet(work_dir, PARTIAL, partial)
    _write_json(work_dir, PREP_SUMMARY, summary, indent=2)


def read_persons(work_dir: Path) -> pd.DataFrame:
    """``work/persons.parquet``."""
    return pd.read_parquet(require(work_dir, PERSONS))


def read_partial(work_dir: Path) -> pd.DataFrame:
    """``work/partial.parquet``."""
    return pd.read_parquet(require(work_dir, PARTIAL))


def read_prep_summary(work_dir: Path) -> dict:
    """``work/prep_summary.json``; checked to name at least one analysed year.

    Raises
    ------
    WorkFileMissing
        The file does not exist.
    WorkFileError
        It is not JSON, or has no non-empty ``years`` entry.
    """
    summary = _read_json(work_dir, PREP_SUMMARY)
    if not isinstance(summary, dict) or not summary.get("years"):
        raise WorkFileError(f"{PREP_SUMMARY.shown}: no 'years' entry; re-run notebook {PREPARATION}")
    return summary


def analysed_years(summary: dict) -> list[int]:
    """The analysed years of a prep summary, sorted."""
    return sorted(int(y) for y in summary["years"])


# imputation (notebook 02)


def imputed_path(work_dir: Path, dataset: int) -> Path:
    """Path of completed data set ``dataset`` (``work/imputed/imp_000.parquet`` ...), existing or not."""
    return imputed(dataset).path(work_dir)


def write_imputed(work_dir: Path, frames: Sequence[tuple[int, pd.DataFrame]]) -> list[Path]:
    """Write the completed data sets; earlier ones are removed first (a smaller m leaves no stale file).

    Parameters
    ----------
    work_dir : Path
    frames : sequence of (int, DataFrame)
        Data set index and completed person-level file.

    Returns
    -------
    list of Path
        The files, in the order given.
    """
    check_writable(work_dir)
    out_dir = Path(work_dir) / IMPUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(IMPUTED_PATTERN.replace("{:03d}", "*")):
        stale.unlink()
    return [_write_parquet(work_dir, imputed(i), frame) for i, frame in frames]


def imputed_files(work_dir: Path, datasets: Iterable[int], detail: str = "") -> list[Path]:
    """Paths of the completed data sets ``datasets``; :class:`WorkFileMissing` names the first missing one."""
    return [require(work_dir, imputed(i), detail) for i in datasets]


def read_imputed(path: Path) -> pd.DataFrame:
    """One completed data set, by its path (:func:`imputed_files`)."""
    return pd.read_parquet(path)


def write_traces(work_dir: Path, traces: pd.DataFrame) -> Path:
    """``work/impute_traces.parquet``."""
    return _write_parquet(work_dir, TRACES, traces)


def read_traces(work_dir: Path) -> pd.DataFrame:
    """``work/impute_traces.parquet``."""
    return pd.read_parquet(require(work_dir, TRACES))


# model selection (notebook 03)


def write_selection(
    work_dir: Path, models: list[dict], screening: pd.DataFrame, refused: pd.DataFrame, sensitivity: pd.DataFrame
) -> None:
    """Write ``models.json``, ``screening.csv``, ``refused.csv`` and ``sensitivity.csv``."""
    check_writable(work_dir)
    _write_json(work_dir, MODELS, models, indent=1)
    for file, frame in ((SCREENING, screening), (REFUSED, refused), (SENSITIVITY, sensitivity)):
        frame.to_csv(file.path(work_dir), index=False)


def read_models_json(work_dir: Path) -> Any:
    """``work/models.json`` as parsed JSON (the bootstrap stage checks its entries)."""
    return _read_json(work_dir, MODELS)


def read_sensitivity(work_dir: Path) -> pd.DataFrame:
    """``work/sensitivity.csv``."""
    return pd.read_csv(require(work_dir, SENSITIVITY))


# bootstrap and pooling (notebook 04)


def write_bootstrap(work_dir: Path, per_model: pd.DataFrame) -> Path:
    """``work/bootstrap.parquet``."""
    return _write_parquet(work_dir, BOOTSTRAP, per_model)


def read_bootstrap(work_dir: Path) -> pd.DataFrame:
    """``work/bootstrap.parquet``."""
    return pd.read_parquet(require(work_dir, BOOTSTRAP))


# --- what each work file was made from ------------------------------------------------------

#: ``work/fingerprints.json``: one :class:`Fingerprint` per work file, by its name in ``work/``.
FINGERPRINTS_FILE = "fingerprints.json"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What one work file was made from (written by :mod:`mse_helpers.runner.lab`).

    Attributes
    ----------
    notebook : str
        The notebook that wrote it.
    sha256 : str
        SHA-256 of the file as written (a later change of the file shows).
    parameters : dict
        The parameters it depends on (those first used by its notebook or an
        earlier one), as plain JSON values, by name.
    inputs : dict
        The input data files it depends on: parameter key (``reports``,
        ``reports[0]`` ...) -> ``{"file": name, "sha256": hex}``.
    work_inputs : dict
        The work files its notebook read: shown name (``work/persons.parquet``) -> SHA-256.
    derived : bool
        Reconstructed from a finished run's ``params.yaml`` and manifest (a run
        made before fingerprints were recorded), not recorded when written.
    """

    notebook: str
    sha256: str
    parameters: dict
    inputs: dict
    work_inputs: dict
    derived: bool = False


def fingerprints_path(work_dir: Path) -> Path:
    """``work/fingerprints.json`` of the work folder ``work_dir``."""
    return Path(work_dir) / FINGERPRINTS_FILE


def read_fingerprints(work_dir: Path) -> dict[str, Fingerprint]:
    """The fingerprints of a work folder by file name in ``work/``; ``{}`` when it has none.

    Raises
    ------
    WorkFileError
        The file exists but is not what :func:`write_fingerprints` writes.
    """
    path = fingerprints_path(work_dir)
    if not path.is_file():
        return {}
    shown = f"{WORK_DIR}/{FINGERPRINTS_FILE}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {name: Fingerprint(**entry) for name, entry in raw["files"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkFileError(f"{shown}: not a fingerprints file ({exc}); re-run the notebooks from 01") from None


def write_fingerprints(work_dir: Path, entries: Mapping[str, Fingerprint]) -> Path:
    """Write ``work/fingerprints.json`` (atomically; refused in a finished run)."""
    check_writable(work_dir)
    path = fingerprints_path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"files": {name: dataclasses.asdict(entries[name]) for name in sorted(entries)}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def written_files(work_dir: Path, notebook: str) -> list[WorkFile]:
    """The work files of ``notebook`` that exist in ``work_dir`` (the completed data sets included)."""
    files = [f for f in WORK_FILES if f.written_by == notebook]
    if notebook == IMPUTATION:
        pattern = IMPUTED_PATTERN.replace("{:03d}", "*")
        files += [
            imputed(int(path.stem.split("_")[1])) for path in sorted((Path(work_dir) / IMPUTED_DIR).glob(pattern))
        ]
    return [f for f in files if f.path(work_dir).is_file()]


def notebook_reads(notebook: str, m: int) -> tuple[WorkFile, ...]:
    """The work files ``notebook`` reads when there are ``m`` completed data sets."""
    datasets = tuple(imputed(i) for i in range(m))
    return {
        PREPARATION: (),
        IMPUTATION: (PERSONS, PARTIAL, PREP_SUMMARY),
        SELECTION: (PREP_SUMMARY, *datasets),
        RESULTS: (PREP_SUMMARY, MODELS, *datasets),
    }[notebook]


# --- the published results ----------------------------------------------------------------

ESTIMATES_FILE = "estimates.csv"
MODELS_CSV = "models.csv"

#: Columns of ``results/estimates.csv``, in order: the pooled estimate per year
#: (``all``: over the analysed years) and report group; ``dark`` = n_hat - n_obs
#: with its own interval ``dark_lower``/``dark_upper`` (log scale, never below
#: zero, whatever the ``interval`` parameter is: :func:`engine.pooling.pool_estimates`).
ESTIMATE_COLUMNS: tuple[str, ...] = (
    "year",
    "group",
    "n_obs",
    "n_hat",
    "lower",
    "upper",
    "ratio",
    "dark",
    "dark_lower",
    "dark_upper",
    "var_within",
    "var_between",
    "var_total",
    "df",
    "n_models",
    "interval",
)
#: The columns of ``estimates.csv`` the publication tables need.
ESTIMATE_TABLE_COLUMNS: tuple[str, ...] = ESTIMATE_COLUMNS[:7]


#: ``results/revisions.csv``: per year and group in both runs, the previous and the new estimate and
#: the cause of the change (written by notebook 04 when the run has a previous run; docs/report.md).
REVISIONS_FILE = "revisions.csv"
#: Columns of ``results/revisions.csv``, in order (:mod:`mse_helpers.stages.revisions`).
REVISION_COLUMNS: tuple[str, ...] = (
    "year",
    "group",
    "previous_run",
    "n_obs_previous",
    "n_hat_previous",
    "lower_previous",
    "upper_previous",
    "n_obs_new",
    "n_hat_new",
    "lower_new",
    "upper_new",
    "change",
    "change_percent",
    "in_previous_interval",
    "n_hat_pinned",
    "change_new_data",
    "change_reselection",
)


def write_results(results_dir: Path, estimates: pd.DataFrame, models: pd.DataFrame) -> None:
    """Write ``results/estimates.csv`` (columns :data:`ESTIMATE_COLUMNS`) and ``results/models.csv``."""
    results_dir = Path(results_dir)
    check_writable(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    estimates[list(ESTIMATE_COLUMNS)].to_csv(results_dir / ESTIMATES_FILE, index=False)
    models.to_csv(results_dir / MODELS_CSV, index=False)


def write_revisions(results_dir: Path, revisions: pd.DataFrame) -> Path:
    """Write ``results/revisions.csv`` (columns :data:`REVISION_COLUMNS`)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / REVISIONS_FILE
    revisions[list(REVISION_COLUMNS)].to_csv(path, index=False)
    return path


def read_revisions(results_dir: Path) -> pd.DataFrame:
    """``results/revisions.csv`` (years as text, as in ``estimates.csv``)."""
    return pd.read_csv(Path(results_dir) / REVISIONS_FILE, dtype={"year": str})


# --- another run folder (a previous run, or the run whose models are pinned) ----------------


class RunFolderError(ValueError):
    """A folder named as an earlier run is not a usable run folder; the message says why."""


def run_estimates_path(run_dir: Path) -> Path:
    """``results/estimates.csv`` of a run folder (existing or not)."""
    return Path(run_dir) / RESULTS_DIR / ESTIMATES_FILE


def read_run_manifest(run_dir: Path) -> dict | None:
    """A run folder's ``manifest.json``; None when it has none or it is not readable JSON."""
    path = Path(run_dir) / MANIFEST_FILE
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return out if isinstance(out, dict) else None


def read_run_params(run_dir: Path) -> dict:
    """A run folder's ``params.yaml`` as written by ``mse run`` (raw values).

    Raises
    ------
    RunFolderError
        The file is missing or not a YAML mapping.
    """
    import yaml

    path = Path(run_dir) / PARAMS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise RunFolderError(f"run folder {run_dir}: no {PARAMS_FILE} (not a folder made by mse run)") from None
    except yaml.YAMLError as exc:
        raise RunFolderError(f"run folder {run_dir}: {PARAMS_FILE} is not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise RunFolderError(f"run folder {run_dir}: {PARAMS_FILE} is not a mapping of key: value")
    return raw


def read_run_models(run_dir: Path) -> list[dict]:
    """The selected models (``work/models.json``) of another run folder, checked for the keys pinning needs.

    Parameters
    ----------
    run_dir : Path
        The run folder (not its ``work/``).

    Returns
    -------
    list of dict
        Objects with at least ``dataset`` (int), ``type`` and ``terms`` (list of str).

    Raises
    ------
    RunFolderError
        Missing or unreadable file, or an entry without those keys (named).
    """
    shown = f"run folder {run_dir}: {MODELS.shown}"
    path = MODELS.path(Path(run_dir) / WORK_DIR)
    if not path.is_file():
        raise RunFolderError(f"{shown} is missing (the run did not finish model selection, or work/ was deleted)")
    try:
        models = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{shown}: not readable JSON ({exc})") from None
    if not isinstance(models, list) or not models:
        raise RunFolderError(f"{shown}: must be a non-empty list of model objects")
    for k, mod in enumerate(models):
        ok = (
            isinstance(mod, dict)
            and isinstance(mod.get("dataset"), int)
            and not isinstance(mod.get("dataset"), bool)
            and isinstance(mod.get("type"), str)
            and isinstance(mod.get("terms"), list)
            and all(isinstance(t, str) for t in mod["terms"])
        )
        if not ok:
            raise RunFolderError(f"{shown}: model {k} (entry {k + 1}) needs 'dataset' (integer), 'type' and 'terms'")
    return models


# --- the bundled files ------------------------------------------------------------------


def checkout_root() -> Path | None:
    """The project folder when the package runs from a checkout (editable or ``PYTHONPATH``), else ``None``."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "data" / "defaults.yaml").is_file() else None


def bundled_dir(name: str) -> Path:
    """Folder of the bundled ``data`` or ``notebooks``.

    From a checkout: the project's top-level folder (the one users edit). From
    an installed wheel: the copy shipped inside the package (package data,
    found with :mod:`importlib.resources`), so that ``mse run`` works from any
    folder.

    Parameters
    ----------
    name : {"data", "notebooks"}

    Returns
    -------
    Path
    """
    if name not in ("data", "notebooks"):
        raise ValueError(f"no bundled folder {name!r}; known: data, notebooks")
    root = checkout_root()
    if root is not None:
        return root / name
    from importlib.resources import files

    return Path(str(files("mse_helpers") / name))
