"""Parameters of a run: defaults, parameter files, ``--set`` overrides, validation.

Each parameter is described once, on :class:`Params` (meaning, type, default,
range: :func:`param`). The bundled ``data/defaults.yaml`` holds the default
values and the README's parameter table shows them; both are generated from
``Params`` by ``scripts/params_doc.py`` and checked against it by the tests.
A user's parameters file only needs the keys it changes. Every value is
checked before anything runs; a problem raises :class:`ParameterError`
naming the key (or file) and the rule it broke.

``mse run`` without a parameters file runs on the bundled synthetic inputs
without a truth file; ``--params synthetic`` (the bundled
``data/synthetic.yaml``, which ``make report`` passes) adds their truth, so
a run on one's own files never sees the synthetic truth.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import textwrap
from pathlib import Path
from typing import Any, Mapping

import yaml

from .. import runfolder
from ..codes import COVARIATES, REGISTERS, YEAR
from ..parallel import Backend, Workers
from ..runfolder import IMPUTATION, NOTEBOOKS, PREPARATION, RESULTS, SELECTION, bundled_dir, checkout_root
from ..stages.prepare import LINKING
from ..stages.uncertainty import AUTO_INTERVAL, INTERVAL_CHOICES, STUDY, UNCERTAINTY, resolve_interval

log = logging.getLogger(__name__)

#: The checkout's root (the folder holding ``data/`` and ``notebooks/``), or
#: ``None`` when the package is installed from a wheel.
CHECKOUT = checkout_root()
#: The project's root in a checkout; the package's parent folder otherwise.
PROJECT_ROOT = CHECKOUT if CHECKOUT is not None else Path(__file__).resolve().parents[2]
DEFAULTS_FILE = bundled_dir("data") / "defaults.yaml"
#: Parameters files shipped with the package, usable by name (``mse run --params synthetic``).
BUNDLED_PARAMS: dict[str, str] = {"synthetic": "synthetic.yaml"}

#: Input files: key -> may it be null?
INPUT_KEYS: dict[str, bool] = {
    "reports": False,
    "aggregates": True,
    "register_map": False,
    "truth": True,
    "earlier_estimates": True,
}

#: Parameters naming another run folder (paths relative to the parameters file, like the inputs).
RUN_FOLDER_KEYS = ("previous_run", "models_from")
#: ``previous_run: auto``: the newest good run in the same reports folder whose years overlap.
AUTO = "auto"

#: Sections of ``defaults.yaml``, in order.
SECTIONS = ("inputs", "data preparation", "imputation, model selection, variance")


def default_reports_dir() -> Path:
    """Where ``mse run`` puts run folders by default: the checkout's ``reports/``, else ``./reports``."""
    return (CHECKOUT if CHECKOUT is not None else Path.cwd()) / "reports"


class ParameterError(ValueError):
    """A parameter (or parameters file) breaks a rule; the message names it."""


def param(
    meaning: str,
    kind: str,
    default: Any,
    section: str,
    bounds: tuple[int, int] | None = None,
    *,
    stage: str | None = PREPARATION,
):
    """A :class:`Params` field with its one description.

    Parameters
    ----------
    meaning : str
        What it does (README table and ``defaults.yaml`` comment).
    kind : str
        Its type as a user writes it (e.g. "file", "whole number").
    default : object
        The default as written in ``defaults.yaml`` (input paths relative to it).
    section : str
        One of :data:`SECTIONS`.
    bounds : (int, int), optional
        Allowed range of a whole number, checked by :func:`validate`.
    stage : str or None
        The first notebook that uses it (``runfolder.NOTEBOOKS``): the work
        files of that notebook and of every later one depend on it, so a
        notebook refuses work files made with another value
        (:mod:`mse_helpers.runner.lab`). ``None``: no result depends on it
        (how the work is spread over workers). The default, the first
        notebook, is the safe choice for a new parameter: a change makes
        every work file stale.
    """
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}")
    if stage is not None and stage not in NOTEBOOKS:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(NOTEBOOKS)}")
    return dataclasses.field(
        metadata={
            "meaning": meaning,
            "kind": kind,
            "default": default,
            "section": section,
            "bounds": bounds,
            "stage": stage,
        }
    )


_IN, _PREP, _EST = SECTIONS


@dataclasses.dataclass(frozen=True)
class Params:
    """Validated parameters of one run.

    Paths are absolute. ``years`` and ``reference_years`` may be ``None``:
    data preparation resolves them from the data. ``interval`` is the
    interval used, never ``auto`` (:func:`validate` resolves it;
    ``interval_asked`` keeps what was asked). The metadata of each field
    (:func:`param`) is its documentation.
    """

    reports: Path | tuple[Path, ...] = param(
        "reports, one row per report: a file, a list of files or a folder of files of one format (e.g. one "
        "file per year's delivery; docs/input-formats.md 9)",
        "file (CSV or .xlsx), list of files or folder",
        "reports.csv",
        _IN,
    )
    aggregates: Path | tuple[Path, ...] | None = param(
        "totals from organisations that sent no person-level reports (a file, list of files or folder); `null` if none",
        "file, list, folder or null",
        "aggregates.csv",
        _IN,
    )
    register_map: Path = param("organisation -> register (I K O P R Z) or `exclude`", "file", "register_map.csv", _IN)
    truth: Path | None = param(
        "synthetic data only: the true numbers per year and group, shown in a validation table, never used for "
        "estimation; the bundled synthetic truth is named in `data/synthetic.yaml` (`mse run --params synthetic`, "
        "as `make report` does)",
        "file or null",
        None,
        _IN,
        stage=RESULTS,
    )
    earlier_estimates: Path | None = param(
        "earlier estimates for the long series (Figure 6): a CSV of published figures, or an earlier run folder "
        "(its `results/estimates.csv`, labelled with the run); `null`: the bundled `data/published_estimates.csv`",
        "file, run folder or null",
        None,
        _IN,
        stage=RESULTS,
    )
    previous_run: Path | str | None = param(
        "the run whose estimates this run revises: the results page gets a revision section and "
        "`results/revisions.csv` (previous and new estimate, change, cause: new data or re-selected models); "
        "`auto`: the newest finished run (status ok) in the same reports folder whose years overlap; "
        "`null`: none",
        "`auto`, run folder or null",
        AUTO,
        _IN,
        stage=RESULTS,
    )
    encoding: str | None = param(
        "text encoding of CSV inputs, e.g. `utf-8` or `cp1252`; `null`: detected (UTF-8, else Windows-1252, as "
        "Dutch Excel saves), and the data decisions say which was found",
        "codec name or null",
        None,
        _IN,
    )
    separator: str | None = param(
        "column separator of CSV inputs: `,`, `;` or a tab; `null`: detected",
        "`,` `;` tab or null",
        None,
        _IN,
    )
    years: tuple[int, ...] | None = param(
        "years to analyse; `null`: every year in the data", "list of years, a range `2016-2019`, or null", None, _PREP
    )
    registers: tuple[str, ...] = param(
        "registers in the model; leaving one out (e.g. K) is a sensitivity analysis",
        "list of codes I K O P R Z",
        ["I", "K", "O", "P", "R", "Z"],
        _PREP,
    )
    covariates: tuple[str, ...] = param(
        "covariates in the model (sex, age group, nationality, exploitation type)",
        "list of codes S L N U",
        ["S", "L", "N", "U"],
        _PREP,
    )
    min_persons_per_year: int = param(
        "a year needs at least this many persons in the reports to be analysed: asked for explicitly, a smaller "
        "year is refused; under `years: null` it is left out, with a note and the count of persons left out",
        "whole number",
        50,
        _PREP,
        bounds=(1, 10**9),
    )
    linkage_window_days: int = param(
        "a person's registers are all that reported them within this many days of the first report",
        "whole number",
        365,
        _PREP,
        bounds=(0, 3660),
    )
    reference_years: tuple[int, ...] | None = param(
        "years whose register overlap the linking of aggregate records copies; `null`: the years before the "
        "first aggregate year",
        "list of years or null",
        None,
        _PREP,
    )
    linking: str = param(
        "how many aggregate records are linked per register pattern: `draw` draws the year's pattern counts "
        "anew for every completed data set (proper multiple imputation, so the intervals carry the "
        "uncertainty of the linking assumption); `expected` uses the fixed counts q(p)·T of the study "
        "(docs/estimation.md §5)",
        " or ".join(f"`{v}`" for v in LINKING),
        "draw",
        _PREP,
    )
    m: int = param(
        "completed data sets (multiple imputation)", "whole number", 25, _EST, bounds=(1, 1000), stage=IMPUTATION
    )
    maxit: int = param(
        "chained-equation iterations per data set", "whole number", 10, _EST, bounds=(1, 1000), stage=IMPUTATION
    )
    three_factor_candidates: int = param(
        "three-factor terms kept after the screening",
        "whole number",
        20,
        _EST,
        bounds=(0, 10000),
        stage=SELECTION,
    )
    bootstrap: int = param(
        "parametric bootstrap replicates per model", "whole number", 100, _EST, bounds=(2, 100000), stage=RESULTS
    )
    models_from: Path | None = param(
        "a run folder whose selected models are used instead of selecting: completed data set k is fitted "
        "with the terms of both model types of that run's data set k (that run needs at least m data sets, "
        "the same registers and covariates); `null`: select as usual",
        "run folder or null",
        None,
        _EST,
        stage=SELECTION,
    )
    sensitivity: tuple[str, ...] = param(
        "sensitivity analyses shown beside the main result: `drop:K` leaves out a register (the earlier study "
        "ran with and without KMar), `drop:S,L` covariates, `no-covariates` fits without any; `[]` for none",
        "list",
        ["drop:K", "no-covariates"],
        _EST,
        stage=SELECTION,
    )
    sensitivity_datasets: int | None = param(
        "the sensitivity analyses use the first this many completed data sets (they would add about half the "
        "time of the main selections on all of them); `null`: all m",
        "whole number or null",
        10,
        _EST,
        bounds=(1, 1000),
        stage=SELECTION,
    )
    interval: str = param(
        "`auto` (the coverage study's choice for the run's `uncertainty`: `log-scale` under `boot-impute` and "
        "`reselect`, which covered more yearly groups than their `rubin-t` on both generators, `rubin-t` under "
        "`study`, the study's own; docs/estimation.md 6; `params.yaml` records the interval used as "
        "`interval_used`), `rubin-t` (symmetric, as the study), `log-scale` (for the dark number) or `profile` "
        "(each model's profile-likelihood interval per group, pooled on the log scale of the dark number; never "
        "below n_obs; only with `uncertainty: study`; adds about 30 s of CPU to the bootstrap stage of the "
        "default run, about 15 s with 2 workers; docs/estimation.md)",
        " or ".join(f"`{v}`" for v in INTERVAL_CHOICES),
        AUTO_INTERVAL,
        _EST,
        stage=RESULTS,
    )
    uncertainty: str = param(
        "what the interval contains: `boot-impute` (bootstrap-then-impute: `resamples` resamples of the input "
        "files, each linked, imputed and with both model selections run again; the variance from an analysis of "
        "variance of their estimates; interval `log-scale` (`auto`) or `rubin-t`; it covered the most yearly "
        "groups on both generators of the coverage study), `reselect` (a parametric bootstrap that repeats the "
        "model selection in each of `reselect_replicates` replicates per model; Rubin's rules with the "
        "re-selected replicates' variance as each model's within variance) or `study` (the study's parametric "
        "bootstrap of each selected model and Rubin's rules; model choice only through the spread between "
        "completed data sets; reproduces the study's method); `profile` only with `study`; docs/estimation.md 6",
        " or ".join(f"`{v}`" for v in UNCERTAINTY),
        "boot-impute",
        _EST,
        stage=RESULTS,
    )
    reselect_replicates: int = param(
        "with `uncertainty: reselect`: replicates per model on which the model selection is repeated; Rubin's "
        "within variance is the mean over the 2m models of each model's replicate variance, so few per model "
        "suffice (16 per model: 800 replicates in the default run, which then fits in 3 minutes on 2 cores; the "
        "coverage study used 6 per model)",
        "whole number",
        16,
        _EST,
        bounds=(2, 10000),
        stage=RESULTS,
    )
    resamples: int = param(
        "with `uncertainty: boot-impute`: resamples of the input files (persons and aggregate records, Poisson "
        "weights), on each of which data preparation, linking, imputation and both model selections are run "
        "again; about 4 s of CPU each on the bundled data (docs/estimation.md 6)",
        "whole number",
        40,
        _EST,
        bounds=(2, 10000),
        stage=RESULTS,
    )
    resample_imputations: int = param(
        "with `uncertainty: boot-impute`: completed data sets per resample (2, as Bartlett and Hughes recommend: "
        "an analysis of variance separates the resamples from the imputation noise)",
        "whole number",
        2,
        _EST,
        bounds=(2, 100),
        stage=RESULTS,
    )
    seed: int = param(
        "master seed; every random step derives its own stream from it",
        "whole number",
        20161231,
        _EST,
        bounds=(0, 2**63 - 1),
    )
    n_jobs: int = param(
        "parallel workers; results do not depend on it", "whole number", 2, _EST, bounds=(1, 256), stage=None
    )
    backend: str = param(
        "where the per-data-set work of imputation, selection and bootstrap runs: `loky` (this machine, `n_jobs` "
        "processes) or `dask` (a running Dask distributed cluster at `scheduler`; same numbers, README)",
        " or ".join(f"`{b.value}`" for b in Backend),
        Backend.LOKY.value,
        _EST,
        stage=None,
    )
    scheduler: str | None = param(
        "with `backend: dask`: the address of the Dask scheduler, e.g. `tcp://host:8786`",
        "address or null",
        None,
        _EST,
        stage=None,
    )
    #: Not a parameter: ``interval`` as the user gave it (``auto``, or the interval itself); ``interval``
    #: above is the interval used (:func:`~mse_helpers.stages.uncertainty.resolve_interval`), which every
    #: stage and the report read. ``None``: as ``interval``.
    interval_asked: str | None = dataclasses.field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready values (paths as strings, tuples as lists), as ``params.yaml`` records them.

        ``interval`` is what the user asked (``auto`` stays ``auto``, so that
        reading the file back resolves it again for its ``uncertainty``),
        followed by ``interval_used``, the interval this run used
        (:data:`RECORDED_KEYS`).
        """
        out: dict[str, Any] = {}
        for name in FIELDS:
            v = getattr(self, name)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = [str(x) if isinstance(x, Path) else x for x in v]
            out[name] = v
            if name == "interval":
                out[name] = self.interval_requested
                out["interval_used"] = self.interval
        return out

    @property
    def interval_requested(self) -> str:
        """``interval`` as asked (e.g. ``auto``) when that still resolves to the interval used, else the one used."""
        asked = self.interval_asked
        if asked is not None and resolve_interval(asked, self.uncertainty) == self.interval:
            return asked
        return self.interval  # a Params changed by dataclasses.replace: the value used is what it asks for

    def input_files(self) -> dict[str, Path]:
        """The input files that are set, by parameter name; an input of several files (a list or a folder)
        gives one entry per file, ``reports[0]``, ``reports[1]``, ..."""
        from ..stages.inputs import input_paths

        out: dict[str, Path] = {}
        for k in INPUT_KEYS:
            v = getattr(self, k)
            if v is None:
                continue
            if k == "earlier_estimates" and Path(v).is_dir():  # an earlier run folder: the file read
                out[k] = runfolder.run_estimates_path(v)
                continue
            files = input_paths(v, k) if isinstance(v, tuple) or Path(v).is_dir() else [Path(v)]
            if len(files) == 1 and not isinstance(v, tuple) and not Path(v).is_dir():
                out[k] = files[0]
            else:
                out.update({f"{k}[{i}]": f for i, f in enumerate(files)})
        return out


#: The parameters, by name: the fields of :class:`Params` described by :func:`param`.
FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Params) if "meaning" in f.metadata}
KEYS = tuple(FIELDS)
#: Keys that ``params.yaml`` records beside the parameters but that are no parameters: each follows from
#: parameters (``interval_used`` from ``interval`` and ``uncertainty``), so reading a parameters file
#: recomputes it instead (a run folder's ``params.yaml`` read back, with other overrides, must not fail).
RECORDED_KEYS = ("interval_used",)


# --- the documentation, generated from Params ------------------------------------------------


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def defaults_yaml() -> str:
    """The text of ``data/defaults.yaml``: every parameter, its default and its meaning."""
    lines = [
        "# Default parameters of `mse run`. Generated by scripts/params_doc.py from the descriptions",
        "# on mse_helpers.runner.params.Params (change them there). A parameters file of your own",
        "# (`mse run --params my.yaml`) needs only the keys it changes; relative paths are read",
        "# relative to the file that names them. Without a parameters file `mse run` runs on the",
        "# bundled synthetic data without their truth; `mse run --params synthetic` (data/synthetic.yaml)",
        "# adds it.",
    ]
    for section in SECTIONS:
        lines += ["", f"# --- {section} " + "-" * (86 - len(section))]
        for name, f in FIELDS.items():
            md = f.metadata
            if md["section"] != section:
                continue
            lines += textwrap.wrap(
                f"{md['meaning']} [{_kind(md)}]",
                width=98,
                initial_indent="# ",
                subsequent_indent="# ",
                break_on_hyphens=False,
            )
            lines.append(f"{name}: {_yaml_value(md['default'])}")
    return "\n".join(lines) + "\n"


def _kind(md: Mapping[str, Any]) -> str:
    lo_hi = md["bounds"]
    return md["kind"] + (
        f", {lo_hi[0]} to {lo_hi[1]}" if lo_hi and lo_hi[1] < 2**32 else f", at least {lo_hi[0]}" if lo_hi else ""
    )


def readme_table() -> str:
    """The README's parameter table (markdown)."""
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for name, f in FIELDS.items():
        md = f.metadata
        default = _yaml_value(md["default"])
        if name in INPUT_KEYS and md["default"] is not None:
            default = f"data/{default}"
        rows.append(f"| `{name}` | {_kind(md)} | `{default}` | {md['meaning']} |")
    return "\n".join(rows) + "\n"


# --- reading ------------------------------------------------------------------


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML parameters file; relative input paths become absolute.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict
        The raw (not yet validated) values it sets.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameters file {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameters file {path}: not valid YAML ({exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParameterError(f"parameters file {path}: must be a mapping of key: value")
    for key in (*INPUT_KEYS, *RUN_FOLDER_KEYS):
        if key in raw:
            raw[key] = _resolve_inputs(raw[key], path.parent)
    return raw


def _resolve_inputs(value: Any, base: Path) -> Any:
    """Input paths (one, or a list) made absolute relative to ``base``; other values unchanged."""

    def one(v: Any) -> Any:
        if not isinstance(v, str) or v == AUTO or Path(v).is_absolute():
            return v
        return str((base / v).resolve())

    return [one(v) for v in value] if isinstance(value, list) else one(value)


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are read as YAML (``m=5`` is 5).

    Parameters
    ----------
    items : list of str
        ``key=value`` strings.

    Returns
    -------
    dict
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        try:
            out[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key] = value
        if key in INPUT_KEYS or key in RUN_FOLDER_KEYS:
            out[key] = _resolve_inputs(out[key], Path.cwd())
    return out


def params_file_path(name: str | Path) -> Path:
    """The parameters file a user named: a path, or the name of a bundled one (:data:`BUNDLED_PARAMS`).

    An existing file always wins over a bundled name.
    """
    path = Path(name)
    if not path.exists() and str(name) in BUNDLED_PARAMS:
        return bundled_dir("data") / BUNDLED_PARAMS[str(name)]
    return path


def load_params(params_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Params:
    """Defaults, then a parameters file, then overrides; validated.

    Parameters
    ----------
    params_file : str or Path, optional
        A YAML file with the keys to change, or a bundled one by name
        (``"synthetic"``; :func:`params_file_path`); ``None``: defaults only.
    overrides : mapping, optional
        Values that win over both (already parsed; relative input paths are
        taken relative to the current folder).

    Returns
    -------
    Params
    """
    raw = read_params_file(DEFAULTS_FILE)
    if params_file is not None:
        raw.update(read_params_file(params_file_path(params_file)))
    if overrides:
        over = dict(overrides)
        for key in (*INPUT_KEYS, *RUN_FOLDER_KEYS):
            if key in over:
                over[key] = _resolve_inputs(over[key], Path.cwd())
        raw.update(over)
    return validate(raw)


# --- validation -----------------------------------------------------------------


def _int(key: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if lo is None:  # the range is part of the parameter's description
        lo, hi = FIELDS[key].metadata["bounds"]
    # bool is an int in Python; `m: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"parameter {key}: must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ParameterError(f"parameter {key}: must be {rng}, got {value}")
    return value


def parse_years_text(text: str) -> list[int]:
    """``"2016-2019"``, ``"2020"`` or ``"2016,2018"`` to a list of years.

    Raises
    ------
    ValueError
        With a message saying what was expected.
    """
    m = re.fullmatch(r"\s*(\d{4})\s*-\s*(\d{4})\s*", text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a > b:
            raise ValueError(f"range {text!r} runs backwards")
        return list(range(a, b + 1))
    parts = [v for v in re.split(r"[,\s]+", text.strip()) if v]
    if not parts or not all(re.fullmatch(r"\d{4}", v) for v in parts):
        raise ValueError(f"expected a year, a range like 2016-2019 or a list like 2016,2018; got {text!r}")
    return [int(v) for v in parts]


def _years(key: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = parse_years_text(value)
        except ValueError as exc:
            raise ParameterError(f"parameter {key}: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"parameter {key}: must be a non-empty list of years, a range like 2016-2019, or null")
    years = []
    for v in value:
        years.append(_int(key, v, 1900, 2200))
    if len(set(years)) != len(years):
        raise ParameterError(f"parameter {key}: a year is listed twice: {years}")
    return tuple(sorted(years))


def _codes(key: str, value: Any, allowed: tuple[str, ...], min_len: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value.strip()) if v]
        if len(value) == 1 and len(value[0]) > 1:  # "IKOPRZ"
            value = list(value[0])
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"parameter {key}: must be a list of codes from {' '.join(allowed)}")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise ParameterError(f"parameter {key}: unknown code(s) {bad}; allowed: {' '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ParameterError(f"parameter {key}: a code is listed twice: {list(value)}")
    if len(value) < min_len:
        raise ParameterError(f"parameter {key}: needs at least {min_len}, got {list(value)}")
    return tuple(v for v in allowed if v in value)  # canonical order


#: Inputs that may be several files (a list of files or a folder).
MULTI_FILE_KEYS = ("reports", "aggregates")


def _path(key: str, value: Any, optional: bool) -> Path | tuple[Path, ...] | None:
    if value is None:
        if optional:
            return None
        raise ParameterError(f"parameter {key}: an input file is required")
    if isinstance(value, (list, tuple)) and key in MULTI_FILE_KEYS:
        if not value:
            raise ParameterError(f"parameter {key}: the list of files is empty")
        paths = tuple(_path(key, v, optional=False) for v in value)
        if any(isinstance(q, tuple) or q.is_dir() for q in paths):
            raise ParameterError(f"parameter {key}: a list must name files, not folders")
        if len(set(paths)) != len(paths):
            raise ParameterError(f"parameter {key}: a file is listed twice")
        return paths
    if not isinstance(value, (str, Path)):
        what = "a file path, a list of file paths or a folder" if key in MULTI_FILE_KEYS else "a file path"
        raise ParameterError(f"parameter {key}: must be {what}, got {value!r}")
    path = Path(value)
    if path.is_dir():
        if key in MULTI_FILE_KEYS:
            return path.resolve()
        if key == "earlier_estimates":  # an earlier run folder (its results/estimates.csv)
            if not runfolder.run_estimates_path(path).is_file():
                raise ParameterError(
                    f"parameter {key}: {path} is a folder without {runfolder.RESULTS_DIR}/"
                    f"{runfolder.ESTIMATES_FILE}; name a CSV of earlier estimates or a finished run folder"
                )
            return path.resolve()
        raise ParameterError(f"parameter {key}: {path} is a folder, not a file")
    if not path.is_file():
        raise ParameterError(f"parameter {key}: input file {path} does not exist")
    return path.resolve()


def _encoding(value: Any) -> str | None:
    if value is None:
        return None
    import codecs

    if not isinstance(value, str):
        raise ParameterError(f"parameter encoding: must be a codec name such as utf-8 or cp1252, got {value!r}")
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise ParameterError(
            f"parameter encoding: {value!r} is not a known text encoding (e.g. utf-8, cp1252, latin-1)"
        ) from None


def _separator(value: Any) -> str | None:
    if value is None:
        return None
    if value in ("\\t", "tab"):
        value = "\t"
    if value not in (",", ";", "\t"):
        raise ParameterError(f"parameter separator: must be ',', ';', a tab ('tab') or null, got {value!r}")
    return value


def _sensitivity(value: Any) -> tuple[str, ...]:
    """Sensitivity analyses: ``drop:K`` (registers and/or covariates), ``no-covariates``."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ParameterError("parameter sensitivity: must be a list such as [drop:K, no-covariates]")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise ParameterError(f"parameter sensitivity: {item!r} is not a text such as drop:K")
        item = item.strip()
        if item == "no-covariates":
            out.append(item)
            continue
        m = re.fullmatch(r"drop:([A-Z](?:,[A-Z])*)", item.replace(" ", ""))
        codes = m.group(1).split(",") if m else []
        bad = [c for c in codes if c not in REGISTERS and c not in COVARIATES]
        if not m or bad:
            raise ParameterError(
                f"parameter sensitivity: {item!r} is not 'no-covariates' or 'drop:' followed by register "
                f"or covariate codes ({' '.join(REGISTERS)} {' '.join(COVARIATES)}), e.g. drop:K"
            )
        out.append("drop:" + ",".join(codes))
    if len(set(out)) != len(out):
        raise ParameterError(f"parameter sensitivity: an analysis is listed twice: {out}")
    return tuple(out)


def _run_folder(key: str, value: Any) -> Path:
    """A folder made by ``mse run`` (exists, is a folder)."""
    if not isinstance(value, (str, Path)):
        raise ParameterError(f"parameter {key}: must be a run folder (reports/YYYY-MM-DD) or null, got {value!r}")
    path = Path(value)
    if not path.exists():
        raise ParameterError(f"parameter {key}: run folder {path} does not exist")
    if not path.is_dir():
        raise ParameterError(f"parameter {key}: {path} is a file; name the run folder (reports/YYYY-MM-DD)")
    return path.resolve()


def _previous_run(value: Any) -> Path | str | None:
    """``auto``, null, or a finished run folder with results/estimates.csv."""
    if value is None or value == AUTO:
        return value
    path = _run_folder("previous_run", value)
    if not runfolder.run_estimates_path(path).is_file():
        raise ParameterError(
            f"parameter previous_run: run folder {path} has no {runfolder.RESULTS_DIR}/{runfolder.ESTIMATES_FILE} "
            f"(the run did not finish); name a finished run, `auto` or null"
        )
    manifest = runfolder.read_run_manifest(path)
    status = (manifest or {}).get("status")
    if manifest is not None and status != "ok":
        raise ParameterError(
            f"parameter previous_run: run folder {path} has status {status!r}; only a run with status ok has "
            f"estimates to revise"
        )
    return path


def check_models_from(
    run_dir: Path, *, m: int, registers: tuple[str, ...], covariates: tuple[str, ...], years: tuple[int, ...] | None
) -> list[str]:
    """Whether the models of another run can be pinned in this one (``models_from``); the problems found.

    Rules: the run folder has ``work/models.json`` with both model types for
    every data set ``0..m-1`` (data set k gets that run's data set k; a run
    with more data sets gives its first m); it used the same registers and
    covariates (``params.yaml``); its terms name only this run's registers,
    covariates and, when more than one year is analysed (or ``years`` is
    null), the year ``J``.

    Returns
    -------
    list of str
        One line per problem, each starting ``parameter models_from:`` (empty: usable).
    """
    from ..stages.selection import THREE_FACTOR, TWO_FACTOR

    where = f"parameter models_from: run {run_dir}"
    try:
        models = runfolder.read_run_models(run_dir)
        used = runfolder.read_run_params(run_dir)
    except runfolder.RunFolderError as exc:
        return [f"parameter models_from: {exc}"]
    problems = []
    for key, mine in (("registers", registers), ("covariates", covariates)):
        theirs = used.get(key)
        if theirs is None or sorted(theirs) != sorted(mine):
            problems.append(
                f"{where} used {key} {theirs}, this run {list(mine)}: pinned models are only comparable with the "
                f"same registers and covariates (set {key} as in that run, or select: models_from: null)"
            )
    have = {(int(mod["dataset"]), mod["type"]) for mod in models}
    n_from = len({d for d, _ in have})
    missing = [(k, t) for k in range(m) for t in (TWO_FACTOR, THREE_FACTOR) if (k, t) not in have]
    if missing:
        k, t = missing[0]
        problems.append(
            f"{where} has no {t} model for data set {k} ({n_from} data set(s) there, m = {m} here): data set k is "
            f"fitted with that run's data set k, so m may be at most {n_from}"
        )
    variables = set(registers) | set(covariates) | ({YEAR} if years is None or len(set(years)) > 1 else set())
    for mod in models:
        if int(mod["dataset"]) >= m:
            continue
        bad = sorted({v for t in mod["terms"] for v in t.split(":") if v not in variables})
        if bad:
            problems.append(
                f"{where}: data set {mod['dataset']} ({mod['type']}) has term(s) with {bad}, which this run's "
                f"models do not have (registers {list(registers)}, covariates {list(covariates)}"
                + (", one year: no J)" if YEAR in bad else ")")
            )
            break
    return problems


def validate(raw: Mapping[str, Any]) -> Params:
    """Check every value and build :class:`Params`.

    Parameters
    ----------
    raw : mapping
        Key to value, as read from YAML.

    Returns
    -------
    Params

    Notes
    -----
    ``interval: auto`` is resolved here for ``uncertainty``
    (:func:`~mse_helpers.stages.uncertainty.resolve_interval`), after the
    checks, so ``Params.interval`` is the interval used and
    ``Params.interval_asked`` what was asked. Keys of :data:`RECORDED_KEYS`
    (written by ``mse run`` into ``params.yaml``) are recomputed, not read;
    one that differs from the recomputed value is logged.

    Raises
    ------
    ParameterError
        Unknown or missing keys; otherwise every key that breaks a rule, one line each.
    """
    recorded = {k: raw[k] for k in RECORDED_KEYS if k in raw}
    raw = {k: v for k, v in raw.items() if k not in RECORDED_KEYS}
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(KEYS)}")
    missing = sorted(set(KEYS) - set(raw))
    if missing:
        raise ParameterError(f"missing parameter(s): {', '.join(missing)}")

    def interval(v):
        if v not in INTERVAL_CHOICES:
            raise ParameterError(f"parameter interval: must be one of {', '.join(INTERVAL_CHOICES)}, got {v!r}")
        return v

    def uncertainty(v):
        if v not in UNCERTAINTY:
            raise ParameterError(f"parameter uncertainty: must be one of {', '.join(UNCERTAINTY)}, got {v!r}")
        return v

    def linking(v):
        if v not in LINKING:
            raise ParameterError(f"parameter linking: must be one of {', '.join(LINKING)}, got {v!r}")
        return v

    checks = dict(
        years=lambda v: _years("years", v),
        registers=lambda v: _codes("registers", v, REGISTERS, 2),
        covariates=lambda v: _codes("covariates", v, tuple(COVARIATES), 0),
        encoding=_encoding,
        separator=_separator,
        min_persons_per_year=lambda v: _int("min_persons_per_year", v),
        linkage_window_days=lambda v: _int("linkage_window_days", v),
        reference_years=lambda v: _years("reference_years", v),
        linking=linking,
        m=lambda v: _int("m", v),
        maxit=lambda v: _int("maxit", v),
        three_factor_candidates=lambda v: _int("three_factor_candidates", v),
        bootstrap=lambda v: _int("bootstrap", v),
        interval=interval,
        uncertainty=uncertainty,
        reselect_replicates=lambda v: _int("reselect_replicates", v),
        resamples=lambda v: _int("resamples", v),
        resample_imputations=lambda v: _int("resample_imputations", v),
        seed=lambda v: _int("seed", v),
        n_jobs=lambda v: _int("n_jobs", v),
        sensitivity=_sensitivity,
        sensitivity_datasets=lambda v: None if v is None else _int("sensitivity_datasets", v),
        backend=lambda v: v,
        scheduler=lambda v: v,
        previous_run=_previous_run,
        models_from=lambda v: None if v is None else _run_folder("models_from", v),
    )
    for key, optional in INPUT_KEYS.items():
        checks[key] = lambda v, key=key, optional=optional: _path(key, v, optional)
    values, problems = {}, []
    for key in KEYS:  # every problem at once, in the order of the parameters
        try:
            values[key] = checks[key](raw[key])
        except ParameterError as exc:
            problems.append(str(exc))
    if not problems:
        try:  # backend, scheduler and n_jobs together (parallel.Workers owns the rules)
            Workers(n_jobs=values["n_jobs"], backend=values["backend"], scheduler=values["scheduler"])
        except ValueError as exc:
            problems.append(str(exc))
    if not problems and values["uncertainty"] != STUDY and values["interval"] == "profile":
        # re-selected replicates and resamples give variances, not profile likelihoods (docs/estimation.md 6)
        problems.append(
            f"parameters uncertainty and interval: `uncertainty: {values['uncertainty']}` pools variances and "
            "has no profile-likelihood interval; use `interval: rubin-t` or `log-scale` with it, or "
            "`uncertainty: study` with `interval: profile`"
        )
    if not problems and values["models_from"] is not None:
        problems += check_models_from(
            values["models_from"],
            m=values["m"],
            registers=values["registers"],
            covariates=values["covariates"],
            years=values["years"],
        )
    if problems:
        raise ParameterError("\n".join(problems))
    # `auto` becomes the interval used here, the one place (every stage and the report read `interval`)
    values["interval_asked"] = values["interval"]
    values["interval"] = resolve_interval(values["interval"], values["uncertainty"])
    if recorded.get("interval_used", values["interval"]) != values["interval"]:
        log.info(
            "interval_used: %s in the parameters records an earlier run; this run uses %s (interval: %s, "
            "uncertainty: %s)",
            recorded["interval_used"],
            values["interval"],
            values["interval_asked"],
            values["uncertainty"],
        )
    return Params(**values)
