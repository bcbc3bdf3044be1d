"""Parameters of a run: defaults, parameter files, ``--set`` overrides, validation.

The defaults live in one file, ``data/defaults.yaml`` (documented in the
README). A user's parameters file only needs the keys it changes. Every value
is checked before anything runs; a problem raises :class:`ParameterError`
naming the key (or file) and the rule it broke.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..codes import COVARIATES, REGISTERS
from ..engine.pooling import INTERVALS
from ..stages.prepare import LINKING

#: The project's root (the folder holding ``data/`` and ``notebooks/``).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULTS_FILE = PROJECT_ROOT / "data" / "defaults.yaml"

#: Input files: key -> may it be null?
INPUT_KEYS: dict[str, bool] = {
    "reports": False,
    "aggregates": True,
    "register_map": False,
    "truth": True,
    "earlier_estimates": True,
}


class ParameterError(ValueError):
    """A parameter (or parameters file) breaks a rule; the message names it."""


@dataclasses.dataclass(frozen=True)
class Params:
    """Validated parameters of one run (method.md section 9 plus the inputs).

    Paths are absolute. ``years`` and ``reference_years`` may be ``None``:
    data preparation resolves them from the data.
    """

    reports: Path
    aggregates: Path | None
    register_map: Path
    truth: Path | None
    earlier_estimates: Path | None
    years: tuple[int, ...] | None
    registers: tuple[str, ...]
    covariates: tuple[str, ...]
    linkage_window_days: int
    reference_years: tuple[int, ...] | None
    linking: str
    m: int
    maxit: int
    three_factor_candidates: int
    bootstrap: int
    interval: str
    seed: int
    n_jobs: int
    sensitivity: tuple[str, ...] = ()
    sensitivity_datasets: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready values (paths as strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def input_files(self) -> dict[str, Path]:
        """The input files that are set, by parameter name."""
        return {k: getattr(self, k) for k in INPUT_KEYS if getattr(self, k) is not None}


KEYS = tuple(f.name for f in dataclasses.fields(Params))


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
    for key in INPUT_KEYS:
        if isinstance(raw.get(key), str):
            raw[key] = str((path.parent / raw[key]).resolve()) if not Path(raw[key]).is_absolute() else raw[key]
    return raw


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
        if key in INPUT_KEYS and isinstance(out[key], str):
            out[key] = str(Path(out[key]).resolve())
    return out


def load_params(params_file: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> Params:
    """Defaults, then a parameters file, then overrides; validated.

    Parameters
    ----------
    params_file : str or Path, optional
        A YAML file with the keys to change (``None``: defaults only).
    overrides : mapping, optional
        Values that win over both (already parsed; relative input paths are
        taken relative to the current folder).

    Returns
    -------
    Params
    """
    raw = read_params_file(DEFAULTS_FILE)
    if params_file is not None:
        raw.update(read_params_file(params_file))
    if overrides:
        over = dict(overrides)
        for key in INPUT_KEYS:
            if isinstance(over.get(key), str):
                over[key] = str(Path(over[key]).resolve())
        raw.update(over)
    return validate(raw)


# --- validation -----------------------------------------------------------------

def _int(key: str, value: Any, lo: int, hi: int | None = None) -> int:
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


def _path(key: str, value: Any, optional: bool) -> Path | None:
    if value is None:
        if optional:
            return None
        raise ParameterError(f"parameter {key}: an input file is required")
    if not isinstance(value, (str, Path)):
        raise ParameterError(f"parameter {key}: must be a file path, got {value!r}")
    path = Path(value)
    if not path.is_file():
        raise ParameterError(f"parameter {key}: input file {path} does not exist")
    return path.resolve()


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
                f"or covariate codes ({' '.join(REGISTERS)} {' '.join(COVARIATES)}), e.g. drop:K")
        out.append("drop:" + ",".join(codes))
    if len(set(out)) != len(out):
        raise ParameterError(f"parameter sensitivity: an analysis is listed twice: {out}")
    return tuple(out)


def validate(raw: Mapping[str, Any]) -> Params:
    """Check every value and build :class:`Params`.

    Parameters
    ----------
    raw : mapping
        Key to value, as read from YAML.

    Returns
    -------
    Params

    Raises
    ------
    ParameterError
        For the first key that breaks a rule (unknown keys first).
    """
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(KEYS)}")
    missing = sorted(set(KEYS) - set(raw))
    if missing:
        raise ParameterError(f"missing parameter(s): {', '.join(missing)}")
    interval = raw["interval"]
    if interval not in INTERVALS:
        raise ParameterError(f"parameter interval: must be one of {', '.join(INTERVALS)}, got {interval!r}")
    linking = raw["linking"]
    if linking not in LINKING:
        raise ParameterError(f"parameter linking: must be one of {', '.join(LINKING)}, got {linking!r}")
    values = dict(
        years=_years("years", raw["years"]),
        registers=_codes("registers", raw["registers"], REGISTERS, 2),
        covariates=_codes("covariates", raw["covariates"], tuple(COVARIATES), 0),
        linkage_window_days=_int("linkage_window_days", raw["linkage_window_days"], 0, 3660),
        reference_years=_years("reference_years", raw["reference_years"]),
        linking=linking,
        m=_int("m", raw["m"], 1, 1000),
        maxit=_int("maxit", raw["maxit"], 1, 1000),
        three_factor_candidates=_int("three_factor_candidates", raw["three_factor_candidates"], 0, 10000),
        bootstrap=_int("bootstrap", raw["bootstrap"], 2, 100000),
        interval=interval,
        seed=_int("seed", raw["seed"], 0, 2**63 - 1),
        n_jobs=_int("n_jobs", raw["n_jobs"], 1, 256),
        sensitivity=_sensitivity(raw["sensitivity"]),
        sensitivity_datasets=(None if raw["sensitivity_datasets"] is None
                              else _int("sensitivity_datasets", raw["sensitivity_datasets"], 1, 1000)),
    )
    for key, optional in INPUT_KEYS.items():
        values[key] = _path(key, raw[key], optional)
    return Params(**values)
