"""Synthetic registration data: a known true population and the reports it produces.

The real reports are confidential, so the project ships synthetic data made by
this module (docs/input-formats.md section 6). The generative model, per year ``t``:

1. **Population and registration as one log-linear model.** Every person has
   four binary covariates x = (S, L, N, U) (coded 0/1 as in :mod:`codes`) and a
   0/1 inclusion pattern r on the six registers I K O P R Z. The expected count
   of the cell (x, r) is::

       log mu_t(x, r) = lambda_t + theta_t . x + sum_{c<d} gamma_cd x_c x_d
                        + alpha_t . r + sum_{j,c} beta_jc r_j x_c
                        + sum_{j<k} delta_jk r_j r_k

   ``gamma`` are associations between covariates (men mostly in labour
   exploitation, minors mostly Dutch, ...), ``beta`` make inclusion differ by
   covariate stratum (the labour inspectorate sees labour victims, minors are
   hidden from the police, ...), ``delta`` are the referral dependencies
   (police to care coordinators and shelters, KMar to police, police to the
   labour inspectorate). ``gamma``, ``beta`` and ``delta`` are the same in every
   year; only the main effects ``theta_t`` and ``alpha_t`` change. The model is
   therefore exactly a log-linear model with all two-factor interactions among
   registers, covariates and year and no higher-order terms, which the
   estimation stage can fit. ``lambda_t`` makes the cells sum to the true total
   ``N_t``; the population is one multinomial draw of ``N_t`` persons over the
   1,024 cells. Cells with r = 0 are the persons no register saw.
2. **Calibration.** ``alpha_t`` and ``theta_t`` are not typed in: they are solved
   (:func:`solve_main_effects`) so that the *expected* number of persons on
   each register and the expected shares of men, minors, non-Dutch and
   non-sexual victims among registered persons equal the year's targets
   (:class:`YearSpec`, from docs/input-formats.md section 6).
3. **Reports.** Each registered person gets a first-report date uniform over the
   year; a report from each of their registers (the first register reports
   on that date, the others after a referral delay, capped so that all reports
   fall within the 365-day linkage window, often across New Year); sometimes a
   second report by the same register; organisation names from the default
   register map chosen by register and covariates (FairWork for adult labour
   victims, NIDOS for foreign minors, ...); copies by excluded organisations
   (EMM copies police and KMar reports, IND reports foreigners before the
   police, OM rarely); recorded covariates with missing values (per person, at
   the year's rates, plus a few per report) and occasional conflicting values.
4. **GDPR withholding.** In chosen years, chosen private organisations withhold a
   share of their persons: those reports are removed and the persons are
   counted in the aggregates file instead (docs/input-formats.md section 3), with the
   marginal counts of their covariates (some unknown).

Each year is drawn from its own stream ``seeds.rng(seed, "simulate", year)``,
so ``simulate([2020], seed)`` gives the same 2020 as ``simulate(range(2016,
2021), seed)`` and a later year can be added to the bundled data without
changing it. The truth (true number per year and per covariate level) is
returned separately; estimation never reads it.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import optimize

from .. import seeds
from ..codes import COVARIATES, REGISTERS
from ..stages import inputs

COV_ORDER: tuple[str, ...] = ("S", "L", "N", "U")

#: Associations between covariates (log odds ratios of the second levels):
#: men are mostly labour/criminal victims, minors mostly Dutch, Dutch victims
#: mostly sexually exploited.
GAMMA: dict[tuple[str, str], float] = {
    ("S", "L"): -0.3,
    ("S", "N"): 0.5,
    ("S", "U"): 2.0,
    ("L", "N"): -1.0,
    ("L", "U"): -0.5,
    ("N", "U"): 1.0,
}

#: Register x covariate effects (log odds of inclusion for the second level:
#: male, minor, non-Dutch, non-sexual). Minors and Dutch victims of
#: non-sexual exploitation end up the most hidden.
BETA: dict[str, dict[str, float]] = {
    "I": {"S": 1.0, "L": -2.0, "N": 1.0, "U": 3.0},
    "K": {"S": 0.0, "L": -0.5, "N": 2.0, "U": 0.5},
    "O": {"S": 0.3, "L": 0.3, "N": 1.0, "U": 2.2},
    "P": {"S": 0.2, "L": -0.8, "N": 0.3, "U": -0.8},
    "R": {"S": -0.8, "L": -0.5, "N": 0.0, "U": -0.3},
    "Z": {"S": -0.3, "L": 1.0, "N": -0.5, "U": -0.5},
}

#: Referral dependencies between registers (log odds ratios; 0 if absent).
DELTA: dict[tuple[str, str], float] = {
    ("P", "R"): 1.0,
    ("O", "P"): 0.7,
    ("K", "P"): 1.5,
    ("I", "P"): 1.0,
    ("O", "R"): 0.4,
    ("P", "Z"): 0.3,
}


@dataclasses.dataclass(frozen=True)
class YearSpec:
    """Targets and settings of one simulated year.

    Attributes
    ----------
    n_true : int
        True number of victims ``N_t``.
    register_persons : dict
        Expected persons per register *before* withholding.
    registered_shares : dict
        Expected share of the second level (male, minor, non-Dutch,
        non-sexual) among registered persons, per covariate code.
    missing_rates : dict
        Share of registered persons whose reports never state the covariate.
    emm_share, ind_share, om_share : float
        Share of police/KMar persons with an EMM copy; of non-Dutch police
        persons with an IND report; of police/ISZW persons with an OM copy.
    withholding : dict
        Organisation -> share of its persons sent only as aggregate counts.
    """

    n_true: int
    register_persons: Mapping[str, float]
    registered_shares: Mapping[str, float]
    missing_rates: Mapping[str, float]
    emm_share: float = 0.0
    ind_share: float = 0.0
    om_share: float = 0.01
    withholding: Mapping[str, float] = dataclasses.field(default_factory=dict)


#: Calibrated to docs/input-formats.md section 6 (2016-2019). The register targets are the
#: monitor's reports per group divided by ~1.04 reports per person and
#: register, plus the withheld persons in 2018-2019.
YEAR_SPECS: dict[int, YearSpec] = {
    2016: YearSpec(
        4200,
        dict(I=37, K=7, O=205, P=440, R=230, Z=150),
        dict(S=0.23, L=0.28, N=0.67, U=0.27),
        dict(S=0.004, L=0.15, N=0.08, U=0.15),
        emm_share=0.22,
        ind_share=0.25,
    ),
    2017: YearSpec(
        3800,
        dict(I=37, K=14, O=190, P=460, R=320, Z=85),
        dict(S=0.27, L=0.23, N=0.63, U=0.28),
        dict(S=0.012, L=0.13, N=0.037, U=0.14),
        emm_share=0.55,
        ind_share=0.65,
    ),
    2018: YearSpec(
        4500,
        dict(I=70, K=8, O=250, P=470, R=490, Z=40),
        dict(S=0.33, L=0.10, N=0.72, U=0.30),
        dict(S=0.0, L=0.0, N=0.006, U=0.04),
        emm_share=0.25,
        ind_share=0.0,
        withholding={
            "Regiocoordinator": 0.85,
            "Zorgcoordinator": 0.85,
            "FairWork": 0.97,
            "NIDOS": 1.0,
            "Opvang": 0.6,
            "Ambulant": 0.6,
        },
    ),
    2019: YearSpec(
        5000,
        dict(I=44, K=6, O=210, P=980, R=285, Z=75),
        dict(S=0.48, L=0.09, N=0.82, U=0.33),
        dict(S=0.003, L=0.09, N=0.006, U=0.04),
        emm_share=0.0,
        ind_share=0.0,
        withholding={"Regiocoordinator": 0.14, "Zorgcoordinator": 0.14, "NIDOS": 1.0, "Opvang": 0.2, "Jeugdzorg": 0.4},
    ),
}


def year_spec(year: int) -> YearSpec:
    """Return the settings of ``year``: calibrated for 2016-2019, else 2019's
    without withholding (a "new year" of data for the yearly workflow)."""
    if year in YEAR_SPECS:
        return YEAR_SPECS[year]
    return dataclasses.replace(YEAR_SPECS[2019], withholding={})


#: Reports per reporter group, docs/input-formats.md section 6 (the calibration targets).
TARGET_REPORTS: dict[str, dict[int, int]] = {
    "Police": {2016: 446, 2017: 432, 2018: 530, 2019: 952},
    "KMar": {2016: 12, 2017: 19, 2018: 12, 2019: 10},
    "ISZW": {2016: 38, 2017: 38, 2018: 75, 2019: 46},
    "Care coordinators (R)": {2016: 240, 2017: 320, 2018: 91, 2019: 252},
    "FairWork": {2016: 125, 2017: 124, 2018: 5, 2019: 134},
    "Other reporters": {2016: 228, 2017: 145, 2018: 56, 2019: 99},
}
#: Registered persons per year in the reports (monitor), withheld persons.
TARGET_PERSONS: dict[int, int] = {2016: 952, 2017: 956, 2018: 668, 2019: 1334}
TARGET_WITHHELD: dict[int, int] = {2016: 0, 2017: 0, 2018: 666, 2019: 75}
#: Registered persons by covariate (docs/input-formats.md 6): second level and unknown.
TARGET_COVARIATES: dict[str, dict[int, int]] = {
    "sexual": {2016: 558, 2017: 574, 2018: 486, 2019: 855},
    "male": {2016: 222, 2017: 254, 2018: 249, 2019: 643},
    "sex unknown": {2016: 4, 2017: 12, 2018: 0, 2019: 4},
    "minor": {2016: 227, 2017: 194, 2018: 62, 2019: 108},
    "age unknown": {2016: 144, 2017: 124, 2018: 0, 2019: 121},
    "Dutch": {2016: 288, 2017: 339, 2018: 171, 2019: 244},
    "nationality unknown": {2016: 80, 2017: 35, 2018: 4, 2019: 8},
    "exploitation unknown": {2016: 150, 2017: 133, 2018: 36, 2019: 52},
}

#: Default register map (docs/input-formats.md 2, docs/method.md 3.1): organisation -> (register, note).
POLICE_UNITS: tuple[str, ...] = (
    "Politie Amsterdam",
    "Politie Rotterdam",
    "Politie Den Haag",
    "Politie Midden-Nederland",
    "Politie Noord-Holland",
    "Politie Noord-Nederland",
    "Politie Oost-Nederland",
    "Politie Oost-Brabant",
    "Politie Zeeland-West-Brabant",
    "Politie Limburg",
    "Politie Landelijke Eenheid",
)
Z_OTHERS: tuple[str, ...] = (
    "Advocatuur",
    "Internationaal",
    "Terugkeerorganisatie",
    "VluchtelingenWerk",
    "Particulier",
    "Overig",
)
DEFAULT_REGISTER_MAP: list[tuple[str, str, str]] = (
    [(u, "P", "police unit; all units are one register") for u in POLICE_UNITS]
    + [
        ("KMar", "K", "Royal Marechaussee"),
        ("ISZW", "I", "labour inspectorate (Inspectie SZW / NLA)"),
        ("Regiocoordinator", "R", "regional care coordinator"),
        ("Zorgcoordinator", "R", "care coordinator (another name for R)"),
        ("Opvang", "O", "shelter"),
        ("FairWork", "O", "advises labour victims and refers to shelters (docs/method.md 3.1)"),
        ("NIDOS", "O", "guardianship of unaccompanied foreign minors (docs/method.md 3.1)"),
        ("Ambulant", "O", "ambulant care"),
        ("Jeugdzorg", "Z", "youth care goes to Z (docs/method.md 3.1)"),
        ("Jongereninstelling", "Z", "youth institution goes to Z (docs/method.md 3.1)"),
    ]
    + [(z, "Z", "other reporter") for z in Z_OTHERS]
    + [
        ("IND", "exclude", "stopped in 2018 and duplicated police reports (docs/method.md 3.1)"),
        ("EMM", "exclude", "copies of police and KMar data; never meets victims"),
        ("OM", "exclude", "first-report-only copies of police/ISZW cases"),
    ]
)

FOREIGN_NATIONALITIES: tuple[str, ...] = (
    "NG",
    "RO",
    "PL",
    "BG",
    "HU",
    "UA",
    "VN",
    "CN",
    "IN",
    "ER",
    "SY",
    "MA",
    "BR",
    "UG",
    "SL",
    "GN",
)
FOREIGN_WEIGHTS = np.array([14, 12, 9, 8, 6, 5, 5, 5, 4, 4, 4, 4, 3, 3, 2, 2], float)
SEXUAL_FORMS = (("sexual", 0.90), ("sexual;labour", 0.06), ("sexual;criminal", 0.04))
OTHER_FORMS = (
    ("labour", 0.62),
    ("criminal", 0.20),
    ("labour;criminal", 0.06),
    ("other", 0.10),
    ("organ_removal", 0.02),
)
# The columns of the files written: those the readers expect (docs/input-formats.md 1, 3).
REPORT_COLUMNS = list(inputs.REPORT_COLUMNS)
AGGREGATE_COLUMNS = list(inputs.AGGREGATE_COLUMNS)


@dataclasses.dataclass
class SimulatedData:
    """What :func:`simulate` returns.

    Attributes
    ----------
    reports : DataFrame
        One row per report (docs/input-formats.md section 1).
    aggregates : DataFrame
        One row per withholding organisation and year (docs/input-formats.md section 3).
    truth : DataFrame
        ``year, group, covariate, level, n_true, n_registered``: the true
        number of victims and of registered victims (before withholding),
        per year (group ``total``) and per covariate level (group ``S=M``).
    population : DataFrame
        One row per true person (covariates 0/1, registers 0/1, year); for
        tests and calibration only, never written.
    """

    reports: pd.DataFrame
    aggregates: pd.DataFrame
    truth: pd.DataFrame
    population: pd.DataFrame


# --- the log-linear model ---------------------------------------------------------


def cell_grid() -> np.ndarray:
    """All 1,024 cells as 0/1 rows: columns S L N U then I K O P R Z."""
    return np.array(list(itertools.product((0, 1), repeat=len(COV_ORDER) + len(REGISTERS))), dtype=np.int8)


def _fixed_log_mu(grid: np.ndarray) -> np.ndarray:
    """The year-independent part of log mu (gamma, beta, delta terms)."""
    x = grid[:, :4].astype(float)
    r = grid[:, 4:].astype(float)
    out = np.zeros(len(grid))
    ci = {c: i for i, c in enumerate(COV_ORDER)}
    ri = {g: i for i, g in enumerate(REGISTERS)}
    for (a, b), v in GAMMA.items():
        out += v * x[:, ci[a]] * x[:, ci[b]]
    for reg, eff in BETA.items():
        for c, v in eff.items():
            out += v * r[:, ri[reg]] * x[:, ci[c]]
    for (a, b), v in DELTA.items():
        out += v * r[:, ri[a]] * r[:, ri[b]]
    return out


def cell_probabilities(alpha: np.ndarray, theta: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Probability of each cell of :func:`cell_grid` for main effects alpha, theta.

    Parameters
    ----------
    alpha : array of 6
        Register main effects (I K O P R Z).
    theta : array of 4
        Covariate main effects (S L N U).
    grid : array, optional
        The cells (default :func:`cell_grid`).

    Returns
    -------
    ndarray
        Probabilities summing to 1.
    """
    grid = cell_grid() if grid is None else grid
    eta = _fixed_log_mu(grid) + grid[:, :4] @ theta + grid[:, 4:] @ alpha
    eta -= eta.max()
    w = np.exp(eta)
    return w / w.sum()


def solve_main_effects(spec: YearSpec) -> tuple[np.ndarray, np.ndarray]:
    """Solve alpha_t, theta_t so that expectations meet the year's targets.

    Ten equations (expected persons per register; expected share of the second
    level of each covariate among registered persons) in ten unknowns, solved
    on the log scale by least squares (exact solution when it exists).

    Parameters
    ----------
    spec : YearSpec

    Returns
    -------
    alpha, theta : ndarray
    """
    grid = cell_grid()
    registered = grid[:, 4:].any(axis=1)
    target_reg = np.log([spec.register_persons[g] for g in REGISTERS])
    target_share = np.array([spec.registered_shares[c] for c in COV_ORDER])
    target_logit = np.log(target_share / (1 - target_share))

    def residuals(par: np.ndarray) -> np.ndarray:
        p = cell_probabilities(par[:6], par[6:], grid) * spec.n_true
        reg = np.log(grid[registered, 4:].T @ p[registered])
        n_reg = p[registered].sum()
        second = grid[registered, :4].T @ p[registered]
        logit = np.log(second / (n_reg - second))
        return np.concatenate([reg - target_reg, logit - target_logit])

    start = np.concatenate([np.full(6, -3.0), np.zeros(4)])
    sol = optimize.least_squares(residuals, start, xtol=1e-12, ftol=1e-12)
    return sol.x[:6], sol.x[6:]


def draw_population(year: int, spec: YearSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the true population of one year (persons x covariates x registers).

    Parameters
    ----------
    year : int
    spec : YearSpec
    rng : numpy.random.Generator

    Returns
    -------
    DataFrame
        Columns year, S L N U (0/1), I K O P R Z (0/1); one row per person.
    """
    alpha, theta = solve_main_effects(spec)
    grid = cell_grid()
    counts = rng.multinomial(spec.n_true, cell_probabilities(alpha, theta, grid))
    rows = np.repeat(grid, counts, axis=0)
    rows = rows[rng.permutation(len(rows))]
    pop = pd.DataFrame(rows, columns=list(COV_ORDER) + list(REGISTERS))
    pop.insert(0, "year", year)
    return pop


# --- reports ------------------------------------------------------------------------


def _choose_organisation(reg: str, x: Mapping[str, int], year: int, rng: np.random.Generator) -> str:
    """Pick the reporting organisation within a register (covariates steer it)."""
    if reg == "P":
        w = np.array([18, 16, 12, 8, 8, 7, 8, 7, 7, 5, 4], float)
        return POLICE_UNITS[rng.choice(len(POLICE_UNITS), p=w / w.sum())]
    if reg == "K":
        return "KMar"
    if reg == "I":
        return "ISZW"
    if reg == "R":
        return "Regiocoordinator" if rng.random() < 0.85 else "Zorgcoordinator"
    if reg == "O":
        if x["U"] == 1 and x["L"] == 0 and rng.random() < 0.92:
            return "FairWork"
        if x["L"] == 1 and x["N"] == 1 and rng.random() < 0.8:
            return "NIDOS"
        return "Opvang" if rng.random() < 0.75 else "Ambulant"
    # Z: youth care reported minors until the GDPR stopped it in 2018
    if x["L"] == 1 and rng.random() < (0.7 if year < 2018 else 0.3):
        return "Jeugdzorg" if rng.random() < 0.55 else "Jongereninstelling"
    return Z_OTHERS[rng.integers(len(Z_OTHERS))]


def _exploitation_text(u: int, rng: np.random.Generator) -> str:
    forms = SEXUAL_FORMS if u == 0 else OTHER_FORMS
    p = np.array([f[1] for f in forms])
    return forms[rng.choice(len(forms), p=p / p.sum())][0]


def _person_reports(person: Mapping[str, int], year: int, spec: YearSpec, rng: np.random.Generator) -> list[dict]:
    """All reports of one registered person (before withholding)."""
    regs = [g for g in REGISTERS if person[g] == 1]
    # Referral sources report first: KMar and police, then the inspectorate.
    order_weight = {"K": 6.0, "P": 5.0, "I": 3.0, "Z": 1.5, "O": 1.0, "R": 1.0}
    w = np.array([order_weight[g] for g in regs])
    order = list(rng.choice(regs, size=len(regs), replace=False, p=w / w.sum()))
    first = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=int(rng.integers(0, 365)))
    x = {c: int(person[c]) for c in COV_ORDER}
    age = int(rng.integers(12, 18)) if x["L"] == 1 else int(min(75, 18 + rng.gamma(2.0, 7.0)))
    nat = (
        "NL"
        if x["N"] == 0
        else FOREIGN_NATIONALITIES[rng.choice(len(FOREIGN_NATIONALITIES), p=FOREIGN_WEIGHTS / FOREIGN_WEIGHTS.sum())]
    )
    unknown = {c: rng.random() < spec.missing_rates[c] for c in COV_ORDER}
    events: list[tuple[str, int]] = []  # (register, delay in days)
    for k, g in enumerate(order):
        delay = 0 if k == 0 else (0 if rng.random() < 0.3 else int(min(330, rng.exponential(45))))
        events.append((g, delay))
        if rng.random() < 0.04:  # a second report by the same register
            events.append((g, int(min(340, delay + 1 + rng.exponential(60)))))
    reports = []
    for g, delay in events:
        date = first + pd.Timedelta(days=delay)
        reports.append(
            _report_row(g, date, x, age + (delay >= 365 // 2 and rng.random() < 0.5), nat, unknown, year, rng)
        )
    # Excluded organisations: copies that the preparation must drop.
    if ("P" in regs or "K" in regs) and rng.random() < spec.emm_share:
        src = [(g, d) for g, d in events if g in ("P", "K")][0]
        reports.append(
            _report_row(
                "EMM", first + pd.Timedelta(days=src[1] + int(rng.integers(0, 20))), x, age, nat, unknown, year, rng
            )
        )
    if "P" in regs and x["N"] == 1 and rng.random() < spec.ind_share:
        # IND signals precede the police report (may fall in the previous year).
        reports.append(
            _report_row("IND", first - pd.Timedelta(days=int(rng.integers(1, 40))), x, age, nat, unknown, year, rng)
        )
    if ("P" in regs or "I" in regs) and rng.random() < spec.om_share:
        reports.append(
            _report_row("OM", first + pd.Timedelta(days=int(rng.integers(30, 200))), x, age, nat, unknown, year, rng)
        )
    return reports


def _report_row(
    reg: str,
    date: pd.Timestamp,
    x: Mapping[str, int],
    age: int,
    nat: str,
    unknown: Mapping[str, bool],
    year: int,
    rng: np.random.Generator,
) -> dict:
    """One report with recorded (possibly missing or conflicting) covariates."""
    org = reg if reg in ("EMM", "IND", "OM") else _choose_organisation(reg, x, year, rng)
    sex = "FM"[x["S"]]
    if rng.random() < 0.01:  # a conflicting value, as in real registrations
        sex = "FM"[1 - x["S"]]
    rec_age: int | None = int(age)
    if rng.random() < 0.01:
        rec_age = int(max(0, min(110, age + rng.choice([-1, 1]) * rng.integers(2, 8))))
    rec_nat: str | None = nat
    if rng.random() < 0.01:
        rec_nat = FOREIGN_NATIONALITIES[rng.integers(len(FOREIGN_NATIONALITIES))] if nat == "NL" else "NL"
    expl: str | None = _exploitation_text(x["U"], rng)
    if rng.random() < 0.02:
        expl = "unknown"
    elif x["U"] == 0 and rng.random() < 0.02:  # a sexual victim recorded as labour only
        expl = "labour"
    # person-level unknowns: no report of this person states the covariate
    sex_out = None if unknown["S"] or rng.random() < 0.005 else sex
    age_out = None if unknown["L"] or rng.random() < 0.01 else rec_age
    nat_out = None if unknown["N"] or rng.random() < 0.01 else rec_nat
    if unknown["U"]:
        expl = "unknown" if rng.random() < 0.5 else None
    return dict(report_date=date, organisation=org, sex=sex_out, age=age_out, nationality=nat_out, exploitation=expl)


def _aggregate_row(year: int, org: str, persons: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Marginal counts of the withheld persons of one organisation-year.

    Each margin leaves a few persons unknown (the organisation did not record
    the covariate); pairs then sum to less than the total.
    """
    total = len(persons)
    out = dict(year=year, organisation=org, total=total)
    unknown_rate = 0.0 if org == "FairWork" else 0.08
    for c, (lo, hi), (n0, n1) in (
        ("S", ("F", "M"), ("sex_F", "sex_M")),
        ("L", ("A", "M"), ("age_adult", "age_minor")),
        ("N", ("NL", "O"), ("nat_NL", "nat_other")),
        ("U", ("S", "O"), ("expl_sexual", "expl_other")),
    ):
        known = rng.random(total) >= unknown_rate
        v = persons[c].to_numpy()
        out[n0] = int(((v == 0) & known).sum())
        out[n1] = int(((v == 1) & known).sum())
    return {k: out[k] for k in AGGREGATE_COLUMNS}


def simulate_year(year: int, seed: int, spec: YearSpec | None = None) -> SimulatedData:
    """Simulate one year from its own stream ``seeds.rng(seed, "simulate", year)``.

    Parameters
    ----------
    year : int
    seed : int
        Master seed.
    spec : YearSpec, optional
        Default :func:`year_spec` (year).

    Returns
    -------
    SimulatedData
    """
    spec = year_spec(year) if spec is None else spec
    rng = seeds.rng(seed, "simulate", year)
    pop = draw_population(year, spec, rng)
    regd = pop[list(REGISTERS)].to_numpy().any(axis=1)
    rows: list[dict] = []
    withheld: dict[str, list[int]] = {}
    for idx in np.flatnonzero(regd):
        person = pop.iloc[idx]
        key = "".join(rng.choice(list("0123456789abcdef"), size=16))
        reps = _person_reports(person, year, spec, rng)
        # GDPR: a withholding organisation keeps all its reports of a person back
        # (sorted: a set's order varies between Python processes and would change the draws)
        orgs = sorted({r["organisation"] for r in reps})
        held = {o for o in orgs if o in spec.withholding and rng.random() < spec.withholding[o]}
        for o in held:
            withheld.setdefault(o, []).append(idx)
        for r in reps:
            if r["organisation"] not in held:
                rows.append(dict(person_key=key, **r))
    reports = pd.DataFrame(rows, columns=REPORT_COLUMNS[1:])
    aggs = [_aggregate_row(year, o, pop.iloc[withheld[o]], rng) for o in sorted(withheld)]
    aggregates = pd.DataFrame(aggs, columns=AGGREGATE_COLUMNS)
    return SimulatedData(reports=reports, aggregates=aggregates, truth=truth_table(pop), population=pop)


def truth_table(population: pd.DataFrame) -> pd.DataFrame:
    """True and registered numbers per year and per covariate level.

    Parameters
    ----------
    population : DataFrame
        As returned by :func:`draw_population`.

    Returns
    -------
    DataFrame
        ``year, group, covariate, level, n_true, n_registered``.
    """
    pop = population.assign(_reg=population[list(REGISTERS)].to_numpy().any(axis=1).astype(int))
    rows = []
    for year, g in pop.groupby("year"):
        rows.append(
            dict(
                year=int(year), group="total", covariate="", level="", n_true=len(g), n_registered=int(g["_reg"].sum())
            )
        )
        for c in COV_ORDER:
            for code, level in enumerate(COVARIATES[c]):
                sel = g[c] == code
                rows.append(
                    dict(
                        year=int(year),
                        group=f"{c}={level}",
                        covariate=c,
                        level=level,
                        n_true=int(sel.sum()),
                        n_registered=int(g.loc[sel, "_reg"].sum()),
                    )
                )
    return pd.DataFrame(rows)


def simulate(years: Iterable[int], seed: int, specs: Mapping[int, YearSpec] | None = None) -> SimulatedData:
    """Simulate several years (each from its own random stream).

    Parameters
    ----------
    years : iterable of int
    seed : int
        Master seed.
    specs : mapping, optional
        Year -> :class:`YearSpec` overriding :func:`year_spec`.

    Returns
    -------
    SimulatedData
        Reports sorted by date with ids ``M<year>-<n>`` (the year of the
        person's simulated year, so that adding a year never renumbers).
    """
    parts = [simulate_year(y, seed, (specs or {}).get(y)) for y in sorted(set(years))]
    reps = []
    for y, part in zip(sorted(set(years)), parts):
        r = part.reports.sort_values(["report_date", "person_key"], kind="stable").reset_index(drop=True)
        r.insert(0, "report_id", [f"M{y}-{i + 1:05d}" for i in range(len(r))])
        reps.append(r)
    reports = pd.concat(reps, ignore_index=True).sort_values(["report_date", "report_id"], kind="stable")
    reports["report_date"] = pd.to_datetime(reports["report_date"]).dt.strftime("%Y-%m-%d")
    reports["age"] = reports["age"].astype("Int64")
    return SimulatedData(
        reports=reports.reset_index(drop=True)[REPORT_COLUMNS],
        aggregates=pd.concat([p.aggregates for p in parts], ignore_index=True),
        truth=pd.concat([p.truth for p in parts], ignore_index=True),
        population=pd.concat([p.population for p in parts], ignore_index=True),
    )


def register_map_frame() -> pd.DataFrame:
    """The default register map as a frame ``organisation, register, note``."""
    return pd.DataFrame(DEFAULT_REGISTER_MAP, columns=["organisation", "register", "note"])


def write_data(data: SimulatedData, out_dir: str | Path, append: bool = False) -> dict[str, Path]:
    """Write reports.csv, aggregates.csv, truth.csv and register_map.csv.

    Parameters
    ----------
    data : SimulatedData
    out_dir : str or Path
        Created if missing.
    append : bool
        Add to existing files (the rows of years already there are replaced),
        for the "new yearly data" workflow.

    Returns
    -------
    dict
        File kind -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {"reports": data.reports, "aggregates": data.aggregates, "truth": data.truth}
    paths = {}
    years = set(data.truth["year"].astype(int))
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        if append and path.is_file():
            old = pd.read_csv(path, dtype=str, keep_default_na=False)
            if name == "reports":
                keep = ~old["report_id"].str[1:5].astype(int).isin(years)
            else:
                keep = ~old["year"].astype(int).isin(years)
            frame = pd.concat(
                [old[keep], frame.astype(str).replace({"<NA>": "", "nan": "", "None": ""})], ignore_index=True
            )
            if name == "reports":
                frame = frame.sort_values(["report_date", "report_id"], kind="stable")
        frame.to_csv(path, index=False)
        paths[name] = path
    map_path = out / "register_map.csv"
    if not (append and map_path.is_file()):
        register_map_frame().to_csv(map_path, index=False)
    paths["register_map"] = map_path
    return paths


# --- calibration: target versus generated ---------------------------------------------


#: Reporter groups of docs/input-formats.md section 6 by register / organisation.
def reporter_group(register: str, organisation: str) -> str | None:
    """The monitor's reporter group of a report (None for excluded organisations)."""
    if organisation == "FairWork":
        return "FairWork"
    return {
        "P": "Police",
        "K": "KMar",
        "I": "ISZW",
        "R": "Care coordinators (R)",
        "O": "Other reporters",
        "Z": "Other reporters",
    }.get(register)


#: Tolerances of the calibration test (relative, or absolute percentage points).
TOLERANCES: dict[str, float] = {
    "persons": 0.15,  # registered persons in the reports, relative
    "withheld": 0.20,  # persons in the aggregates, relative
    "reports_group": 0.35,  # reports per reporter group, relative (or 40 reports, whichever is larger)
    "share_pp": 7.0,  # covariate shares among persons with the value known, points
    "unknown_pp": 3.0,  # shares of persons with a covariate unknown, points
    "multi_register": (8.0, 18.0),  # % of persons on more than one register
    "true_total": (3000, 6000),
}


def calibration_table(data: SimulatedData, register_map: pd.DataFrame | None = None) -> pd.DataFrame:
    """Target (docs/input-formats.md section 6) versus generated, per quantity and year.

    The generated side is measured the way a user would: the reports are
    run through data preparation (:mod:`prepare`) with the default register
    map, so persons and covariates are the derived ones.

    Parameters
    ----------
    data : SimulatedData
    register_map : DataFrame, optional
        Default :func:`register_map_frame`.

    Returns
    -------
    DataFrame
        ``quantity, year, target, generated``; shares in percent.
    """
    from ..stages import prepare  # prepare does not import the simulator; keep the import local anyway

    rmap = register_map_frame() if register_map is None else register_map
    reports = data.reports.copy()
    reports["report_date"] = pd.to_datetime(reports["report_date"])
    reports["age"] = pd.to_numeric(reports["age"]).astype("Int64")
    mapped = prepare.map_registers(reports, rmap)
    records, _ = prepare.person_records(mapped, 365)
    years = sorted(set(data.truth["year"]))
    rows = []

    def add(quantity: str, year: int, target, generated) -> None:
        rows.append(dict(quantity=quantity, year=int(year), target=target, generated=generated))

    for y in years:
        rec = records[records["year"] == y]
        n = len(rec)
        add("registered persons (reports)", y, TARGET_PERSONS.get(y), int(n))
        add(
            "persons in aggregates",
            y,
            TARGET_WITHHELD.get(y),
            int(data.aggregates.loc[data.aggregates["year"].astype(int) == y, "total"].astype(int).sum()),
        )
        regs = rec[list(REGISTERS)].astype(int).sum(axis=1)
        add("on 2+ registers (%)", y, "10-15", round(100 * float((regs > 1).mean()), 1))
        tot = data.truth[(data.truth["year"] == y) & (data.truth["group"] == "total")]
        add("true total", y, "3000-6000", int(tot["n_true"].iloc[0]))
        yr = mapped[(mapped["report_date"].dt.year == y) & (mapped["register"] != "exclude")]
        groups = yr.apply(lambda r: reporter_group(r["register"], r["organisation"]), axis=1).value_counts()
        for g, t in TARGET_REPORTS.items():
            add(f"reports: {g}", y, t.get(y), int(groups.get(g, 0)))
        add(
            "reports: all incl. excluded",
            y,
            {2016: 1244, 2017: 1482, 2018: 935, 2019: 1658}.get(y),
            int((mapped["report_date"].dt.year == y).sum()),
        )
        for name, col, level in (("sexual", "U", "S"), ("male", "S", "M"), ("minor", "L", "M"), ("Dutch", "N", "NL")):
            unknown = {
                "sexual": "exploitation unknown",
                "male": "sex unknown",
                "minor": "age unknown",
                "Dutch": "nationality unknown",
            }[name]
            t_n, t_unk, t_tot = TARGET_COVARIATES[name].get(y), TARGET_COVARIATES[unknown].get(y), TARGET_PERSONS.get(y)
            known = rec[col].notna()
            target_share = round(100 * t_n / (t_tot - t_unk), 1) if t_n is not None else None
            add(
                f"{name} among known (%)", y, target_share, round(100 * float((rec.loc[known, col] == level).mean()), 1)
            )
            add(
                f"{unknown} (%)",
                y,
                round(100 * t_unk / t_tot, 1) if t_unk is not None else None,
                round(100 * float((~known).mean()), 1),
            )
    return pd.DataFrame(rows)


def calibration_markdown(table: pd.DataFrame) -> str:
    """The calibration table as Markdown (quantity rows, target / generated per year)."""
    years = sorted(table["year"].unique())
    lines = [
        "| quantity | " + " | ".join(f"{y} target | {y} generated" for y in years) + " |",
        "|---|" + "---|---|" * len(years),
    ]
    for q, g in table.groupby("quantity", sort=False):
        cells = []
        for y in years:
            r = g[g["year"] == y]
            t = r["target"].iloc[0] if len(r) else None
            v = r["generated"].iloc[0] if len(r) else None
            cells += [
                "" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t),
                "" if v is None else str(v),
            ]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
