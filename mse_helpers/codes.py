"""Register and covariate codes shared by every stage (docs/method.md section 1).

The person-level file (docs/input-formats.md section 4) stores registers as 0/1 (nullable
``Int8``) and covariates as their level codes (strings, missing as ``<NA>``).
The log-linear engine and the imputer work on 0/1 indicators, with the
*first* level of a covariate coded 0.
"""

from __future__ import annotations

from typing import Sequence

#: Register codes in canonical order.
REGISTERS: tuple[str, ...] = ("I", "K", "O", "P", "R", "Z")

#: Human-readable register names.
REGISTER_NAMES: dict[str, str] = {
    "I": "Labour inspectorate",
    "K": "Royal Marechaussee",
    "O": "Shelters and care",
    "P": "Police",
    "R": "Regional care coordinators",
    "Z": "Other reporters",
}

#: Covariate codes and their two levels (first level is coded 0).
COVARIATES: dict[str, tuple[str, str]] = {
    "S": ("F", "M"),
    "L": ("A", "M"),
    "N": ("NL", "O"),
    "U": ("S", "O"),
}

#: Human-readable covariate and level names.
COVARIATE_NAMES: dict[str, str] = {
    "S": "sex",
    "L": "age group",
    "N": "nationality",
    "U": "exploitation type",
}
LEVEL_NAMES: dict[str, dict[str, str]] = {
    "S": {"F": "female", "M": "male"},
    "L": {"A": "adult (18+)", "M": "minor (<18)"},
    "N": {"NL": "Dutch", "O": "other"},
    "U": {"S": "sexual", "O": "other"},
}

#: The year factor.
YEAR = "J"

#: Register value meaning "drop these reports" in the register map.
EXCLUDE = "exclude"


def uses_year_factor(years: Sequence[int]) -> bool:
    """Whether the models have the year factor ``J``: only when more than one year is analysed.

    With one year, ``J`` would be a factor with a single level (no model
    can estimate a year effect); the model terms leave it out.

    Parameters
    ----------
    years : sequence of int
        The analysed years.

    Returns
    -------
    bool
    """
    return len(set(years)) > 1


def model_factors(covariates: Sequence[str], years: Sequence[int]) -> list[str]:
    """The factors of the log-linear models: the covariates, then ``J`` if :func:`uses_year_factor`.

    Parameters
    ----------
    covariates : sequence of str
        Covariate codes in use.
    years : sequence of int
        The analysed years.

    Returns
    -------
    list of str
    """
    return list(covariates) + ([YEAR] if uses_year_factor(years) else [])


def group_label(**levels: str) -> str:
    """Label a group the way ``estimates.csv`` does: ``S=M&L=M`` or ``total``.

    Parameters
    ----------
    **levels
        Covariate code to level, in the order to print.

    Returns
    -------
    str
    """
    if not levels:
        return "total"
    return "&".join(f"{k}={v}" for k, v in levels.items())
