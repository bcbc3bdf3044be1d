"""A notebook's session: its parameters, its folders and the check of the work files it reads.

The setup cell of every notebook calls :func:`open_session`; its last cell
calls :meth:`Session.record`. Where the notebook writes depends on ``run_dir``:

- **inside ``mse run``** (the kernel has :data:`~.pipeline.RUN_ENV`, the run's
  manifest says ``running``): into the run folder, with the parameters the
  runner passes;
- **a finished run** (status ``ok`` or ``failed``, or ``interrupted``): the run
  is never changed. The notebook writes into the exploration folder
  ``<reports>/lab/<run>/`` (:func:`~mse_helpers.runfolder.exploration_folder`),
  into which the work files of the earlier notebooks are copied on first use;
- **any other folder** (``reports/lab/`` by default): the folder is itself an
  exploration folder.

An exploration has one set of parameters, its ``params.yaml``. The notebook
that runs writes the parameters it used there; with ``params_file = None`` a
notebook reads them (else the explored run's ``params.yaml``, else the
defaults). Notebooks 02-04 may change only parameters first used by
themselves or a later notebook (``stage`` on :func:`~.params.param`): one
used earlier is changed in the notebook that uses it first.

Every work file records what it was made from in ``work/fingerprints.json``
(:class:`~mse_helpers.runfolder.Fingerprint`): the parameters of its notebook
and the earlier ones, the SHA-256 of the input data files and of the work
files read. Before a notebook computes anything, :func:`check_work_files`
compares the work files it needs (and those they were made from) with the
current parameters and files and refuses with one line naming what differs
and the notebook to re-run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import yaml

from .. import runfolder
from ..runfolder import NOTEBOOKS, Fingerprint, WorkFile
from .params import FIELDS, INPUT_KEYS, ParameterError, Params, load_params
from .pipeline import RUN_ENV, STATUS_RUNNING, sha256_file
from .runindex import shown_status


class StaleWorkFile(ValueError):
    """A work file was made with other parameters or inputs; one line naming what differs and what to re-run."""


class RunInProgress(RuntimeError):
    """``run_dir`` is a run that ``mse run`` is still executing."""


@dataclasses.dataclass(frozen=True)
class Session:
    """What a notebook works with, from :func:`open_session`.

    Attributes
    ----------
    notebook : str
        The notebook (``runfolder.NOTEBOOKS``).
    params : Params
        Its parameters.
    run_dir : Path
        The folder it writes to: the run inside ``mse run``, else the exploration folder.
    work_dir : Path
        ``run_dir / "work"``.
    explored : Path or None
        The finished run being explored (never written to).
    params_path : Path or None
        The exploration's ``params.yaml`` (``None`` inside ``mse run``).
    note : str
        One sentence for the notebook to print ("" inside ``mse run``).
    read : dict
        SHA-256 of the work files the notebook reads, as checked.
    """

    notebook: str
    params: Params
    run_dir: Path
    work_dir: Path
    explored: Path | None
    params_path: Path | None
    note: str
    read: Mapping[str, str]

    def record(self) -> dict[str, Fingerprint]:
        """Write the fingerprints of the work files this notebook wrote (its last cell calls it).

        Returns
        -------
        dict
            The new entries, by file name in ``work/``.
        """
        entries = {
            name: fp
            for name, fp in runfolder.read_fingerprints(self.work_dir).items()
            if fp.notebook != self.notebook and (self.work_dir / name).is_file()
        }
        made = {}
        parameters = relevant_parameters(self.params.to_dict(), self.notebook)
        inputs = relevant_inputs(self.params, self.notebook)
        for file in runfolder.written_files(self.work_dir, self.notebook):
            made[file.name] = Fingerprint(
                notebook=self.notebook,
                sha256=sha256_file(file.path(self.work_dir)),
                parameters=parameters,
                inputs=inputs,
                work_inputs=dict(self.read),
            )
        runfolder.write_fingerprints(self.work_dir, {**entries, **made})
        return made


# --- what a work file depends on -------------------------------------------------------------


def stage_of(key: str) -> str | None:
    """The first notebook that uses parameter ``key`` (``None``: no result depends on it)."""
    return FIELDS[key.split("[")[0]].metadata["stage"]


def _used_by(key: str, notebook: str) -> bool:
    stage = stage_of(key)
    return stage is not None and NOTEBOOKS.index(stage) <= NOTEBOOKS.index(notebook)


def relevant_parameters(values: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """The parameters the work files of ``notebook`` depend on, as plain JSON values.

    Parameters
    ----------
    values : mapping
        ``Params.to_dict()`` (or a run's ``params.yaml``).
    notebook : str

    Returns
    -------
    dict
        Those first used by ``notebook`` or an earlier one, in the order of
        :class:`~.params.Params`; input files are compared by content
        (:func:`relevant_inputs`), not by path.
    """
    return {k: _plain(values.get(k)) for k in FIELDS if k not in INPUT_KEYS and _used_by(k, notebook)}


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON stores them (so that recorded and current values compare equal)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def relevant_inputs(p: Params, notebook: str) -> dict[str, dict[str, str]]:
    """The input data files the work files of ``notebook`` depend on: key -> ``{"file", "sha256"}``."""
    return {
        key: {"file": path.name, "sha256": sha256_file(path)}
        for key, path in p.input_files().items()
        if _used_by(key, notebook)
    }


def needed_files(notebook: str, m: int) -> list[WorkFile]:
    """The work files ``notebook`` reads, and those they were made from, earliest notebook first."""
    found: dict[str, WorkFile] = {}
    todo = [notebook]
    while todo:
        for file in runfolder.notebook_reads(todo.pop(), m):
            if file.name not in found:
                found[file.name] = file
                todo.append(file.written_by)
    order = [f.name for f in runfolder.WORK_FILES]  # persons before partial; data sets by number
    return sorted(
        found.values(),
        key=lambda f: (NOTEBOOKS.index(f.written_by), order.index(f.name) if f.name in order else len(order), f.name),
    )


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def check_work_files(p: Params, work_dir: Path, notebook: str) -> dict[str, str]:
    """Check that the work files ``notebook`` needs were made with ``p`` and the current inputs.

    The files are checked earliest notebook first, so the notebook named is
    the first one whose files are stale.

    Parameters
    ----------
    p : Params
        The notebook's parameters.
    work_dir : Path
    notebook : str

    Returns
    -------
    dict
        SHA-256 of the files ``notebook`` reads itself, by shown name.

    Raises
    ------
    runfolder.WorkFileMissing
        A needed file does not exist (names the notebook to run first).
    StaleWorkFile
        One line: the file, what differs, the notebook to re-run.
    """
    work_dir = Path(work_dir)
    recorded = runfolder.read_fingerprints(work_dir)
    current = p.to_dict()
    sha: dict[Path, str] = {}

    def digest(path: Path) -> str:
        if path not in sha:
            sha[path] = sha256_file(path)
        return sha[path]

    inputs_now: dict[str, dict] = {}
    for file in needed_files(notebook, p.m):
        path = runfolder.require(work_dir, file)
        rerun = f"re-run {file.written_by}"
        fp = recorded.get(file.name)
        if fp is None:
            raise StaleWorkFile(
                f"{file.shown} has no fingerprint (made before they were recorded, or its notebook did not finish): "
                f"{rerun}"
            )
        if digest(path) != fp.sha256:
            raise StaleWorkFile(f"{file.shown} was changed after {fp.notebook} wrote it: {rerun}")
        for key, now in relevant_parameters(current, file.written_by).items():
            if key not in fp.parameters:
                raise StaleWorkFile(f"{file.shown} was made without parameter {key} (an older version): {rerun}")
            if fp.parameters[key] != now:
                raise StaleWorkFile(
                    f"{key} = {_yaml(now)} differs from the {_yaml(fp.parameters[key])} that {file.shown} was made "
                    f"with: {rerun}"
                )
        if file.written_by not in inputs_now:
            inputs_now[file.written_by] = relevant_inputs(p, file.written_by)
        for key, now in inputs_now[file.written_by].items():
            then = fp.inputs.get(key)
            if then is None or then["sha256"] != now["sha256"]:
                raise StaleWorkFile(f"{now['file']} ({key}) differs from the file {file.shown} was made from: {rerun}")
        for key, then in fp.inputs.items():
            if key not in inputs_now[file.written_by]:
                raise StaleWorkFile(f"{file.shown} was made with input {key} ({then['file']}), not set now: {rerun}")
        for shown, then in fp.work_inputs.items():
            source = work_dir / shown.removeprefix(f"{runfolder.WORK_DIR}/")
            if not source.is_file() or digest(source) != then:
                raise StaleWorkFile(f"{shown} is not the file {file.shown} was made from: {rerun}")
    return {f.shown: digest(f.path(work_dir)) for f in runfolder.notebook_reads(notebook, p.m)}


# --- opening a session -----------------------------------------------------------------------


def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when below it or its parent (as Lab shows it), else absolute."""
    cwd = Path.cwd().resolve()
    for base, prefix in ((cwd, ""), (cwd.parent, "../")):
        try:
            return prefix + path.resolve().relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)


def _check_overrides(notebook: str, overrides: Mapping[str, Any]) -> None:
    """Notebooks after the first change only parameters they (or later notebooks) use first."""
    for key in overrides:
        if key not in FIELDS or notebook == NOTEBOOKS[0]:
            continue  # unknown keys: load_params names them
        stage = stage_of(key)
        if stage is not None and NOTEBOOKS.index(stage) < NOTEBOOKS.index(notebook):
            where = "there" if stage == NOTEBOOKS[0] else f"there (or in {NOTEBOOKS[0]})"
            raise ParameterError(
                f"overrides of {notebook}: {key} is first used by {stage}: change it {where} and re-run from {stage}"
            )


def resolve_params(
    notebook: str,
    params_file: str | Path | None,
    overrides: Mapping[str, Any] | None,
    folder: Path,
    explored: Path | None,
) -> Params:
    """The parameters of a notebook in an exploration folder.

    ``params_file`` when given; else the exploration's ``params.yaml``; else
    the explored run's; else the defaults. ``overrides`` win (after the first
    notebook, only parameters first used by this notebook or a later one).
    """
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(
            f"{notebook}: overrides must be a dict of parameter names and values, e.g. "
            f'{{"interval": "log-scale"}}; got {type(overrides).__name__} {overrides!r}'
        )
    overrides = dict(overrides or {})
    _check_overrides(notebook, overrides)
    if params_file is None:
        for candidate in (folder / runfolder.PARAMS_FILE, explored / runfolder.PARAMS_FILE if explored else None):
            if candidate is not None and candidate.is_file():
                params_file = candidate
                break
    return load_params(params_file, overrides)


def _write_exploration_params(path: Path, p: Params, notebook: str) -> None:
    text = (
        f"# Parameters of this exploration (JupyterLab), as used by {notebook} on "
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}.\n"
        "# The notebooks read them with params_file = None; change them in the notebook that uses them first.\n"
        + yaml.safe_dump(p.to_dict(), sort_keys=False)
    )
    path.write_text(text, encoding="utf-8")


def _derived(run_dir: Path, manifest: dict, notebook: str, work: Path) -> Fingerprint | None:
    """What a file of a finished good run made before fingerprints was made from: its params.yaml and manifest."""
    try:
        values = yaml.safe_load((run_dir / runfolder.PARAMS_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    inputs = {
        key: {"file": Path(info["path"]).name, "sha256": info["sha256"]}
        for key, info in (manifest.get("inputs") or {}).items()
        if key.split("[")[0] in FIELDS and _used_by(key, notebook)
    }
    reads = runfolder.notebook_reads(notebook, int(values.get("m") or 0))
    return Fingerprint(
        notebook=notebook,
        sha256="",
        parameters=relevant_parameters(values, notebook),
        inputs=inputs,
        work_inputs={f.shown: sha256_file(f.path(work)) for f in reads if f.path(work).is_file()},
        derived=True,
    )


def copy_work_files(run_dir: Path, folder: Path, notebook: str) -> list[str]:
    """Copy the work files of the notebooks before ``notebook`` from a finished run into an exploration.

    A notebook's files are copied only when the exploration has none of them
    yet (its own, newer ones are kept), with their fingerprints; a good run
    made before fingerprints were recorded gets them from its ``params.yaml``
    and manifest (marked ``derived``).

    Returns
    -------
    list of str
        The shown names of the files copied.
    """
    src, dst = Path(run_dir) / runfolder.WORK_DIR, Path(folder) / runfolder.WORK_DIR
    manifest = runfolder.read_manifest(run_dir) or {}
    recorded = runfolder.read_fingerprints(src)
    entries = runfolder.read_fingerprints(dst)
    copied = []
    for earlier in NOTEBOOKS[: NOTEBOOKS.index(notebook)]:
        if runfolder.written_files(dst, earlier):
            continue
        files = runfolder.written_files(src, earlier)
        derived = None
        if files and files[0].name not in recorded and manifest.get("status") == "ok":
            derived = _derived(run_dir, manifest, earlier, src)
        for file in files:
            target = file.path(dst)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.path(src), target)  # not copy2: the copy must be writable
            copied.append(file.shown)
            if file.name in recorded:
                entries[file.name] = recorded[file.name]
            elif derived is not None:
                entries[file.name] = dataclasses.replace(derived, sha256=sha256_file(target))
    if copied:
        runfolder.write_fingerprints(dst, entries)
    return copied


def open_session(
    notebook: str,
    params_file: str | Path | None,
    overrides: Mapping[str, Any] | None,
    run_dir: str | Path,
) -> Session:
    """Resolve a notebook's parameters and folders and check the work files it reads.

    Parameters
    ----------
    notebook : str
        Its name (``runfolder.NOTEBOOKS``).
    params_file, overrides, run_dir
        The values of its parameters cell.

    Returns
    -------
    Session

    Raises
    ------
    ParameterError
        A bad parameter, or an override of a parameter an earlier notebook uses first.
    RunInProgress
        ``run_dir`` is a run still executing, outside ``mse run``.
    runfolder.FinishedRunError
        Inside ``mse run``, a run folder that has finished.
    runfolder.WorkFileMissing, StaleWorkFile
        A work file it needs is missing, or was made with other parameters or inputs.
    """
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
    run_dir = Path(run_dir).resolve()
    manifest = runfolder.read_manifest(run_dir)
    status = shown_status(manifest)["status"] if manifest is not None else None
    if os.environ.get(RUN_ENV) and manifest is not None:
        runfolder.check_writable(run_dir)  # mse run writes into its own run, which is running
        p = load_params(params_file, overrides)
        work_dir = run_dir / runfolder.WORK_DIR
        read = check_work_files(p, work_dir, notebook)
        _forget(work_dir, notebook)
        return Session(notebook, p, run_dir, work_dir, None, None, "", read)
    if status == STATUS_RUNNING:
        raise RunInProgress(f"run {run_dir.name} is still running (mse run): explore it once it has finished")
    explored = run_dir if manifest is not None else None
    folder = runfolder.exploration_folder(run_dir) if explored is not None else run_dir
    work_dir = folder / runfolder.WORK_DIR
    p = resolve_params(notebook, params_file, overrides, folder, explored)
    runfolder.make_work_folder(work_dir)
    if explored is not None:
        copy_work_files(explored, folder, notebook)
    read = check_work_files(p, work_dir, notebook)
    params_path = folder / runfolder.PARAMS_FILE
    _write_exploration_params(params_path, p, notebook)
    _forget(work_dir, notebook)
    where = _shown_path(folder) + "/"
    if explored is not None:
        note = (
            f"Exploring the finished run {explored.name} (status {status}), which is never changed: this notebook "
            f"reads its work files and writes everything new to {where} (parameters: its params.yaml)."
        )
    else:
        note = (
            f"Exploration folder {where}: this notebook writes there, with the parameters in its params.yaml, "
            "which the other notebooks read."
        )
    return Session(notebook, p, folder, work_dir, explored, params_path, note, read)


def _forget(work_dir: Path, notebook: str) -> None:
    """Drop the fingerprints of ``notebook``'s files before it rewrites them (a notebook that does not
    finish leaves files without one, which the next notebook refuses)."""
    entries = runfolder.read_fingerprints(work_dir)
    kept = {name: fp for name, fp in entries.items() if fp.notebook != notebook}
    if len(kept) != len(entries):
        runfolder.write_fingerprints(work_dir, kept)
