"""Register and covariate codes shared by every stage (method.md section 1).

The person-level file (data.md section 4) stores registers as 0/1 (nullable
``Int8``) and covariates as their level codes (strings, missing as ``<NA>``).
The log-linear engine and the imputer work on 0/1 indicators; ``level_index``
converts a covariate to that form, with the *first* level coded 0.
"""

from __future__ import annotations

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

#: Value of ``source`` in the person-level file.
SOURCES: tuple[str, ...] = ("reports", "aggregate", "linked")

#: Register value meaning "drop these reports" in the register map.
EXCLUDE = "exclude"


def level_index(covariate: str, level: str) -> int:
    """Return the 0/1 code of ``level`` for ``covariate``.

    Parameters
    ----------
    covariate : str
        One of the keys of :data:`COVARIATES`.
    level : str
        One of that covariate's two levels.

    Returns
    -------
    int
        0 for the first level, 1 for the second.
    """
    levels = COVARIATES[covariate]
    if level not in levels:
        raise ValueError(f"covariate {covariate}: level {level!r} is not one of {levels}")
    return levels.index(level)


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
