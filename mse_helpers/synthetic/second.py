"""A second, independent population generator (``mse simulate --generator second``).

:mod:`mse_helpers.synthetic.simulator` draws every year from a log-linear
model with exactly the two-factor terms the estimation fits, so on its data
the model is right by construction. This generator is built differently, so
that estimates can be checked on data the model does *not* describe exactly:

1. **Covariates one after another.** Nationality, then age group given
   nationality, sex given both, exploitation type given all three, each a
   logistic regression whose intercepts drift from year to year.
2. **A latent person effect.** Every person has ``eta ~ Normal(0, 1)``: how
   visible the person is (language, freedom of movement, contact with
   helpers), which the covariates do not explain. It enters every register's
   capture with a loading (:data:`LOADINGS`), so within a stratum the
   registers are positively dependent (heterogeneity of capture).
3. **Capture as a chain of logistic regressions with referrals.** The
   registers are visited in referral order K P I Z R O (:data:`ORDER`); the
   log odds of being on register j are an intercept of the year, covariate
   effects of the year (:data:`EFFECTS` plus :data:`EFFECT_CHANGES`: e.g.
   the police turn to male labour victims from 2019), ``loading * eta`` and a
   referral term for every earlier register the person is on
   (:data:`REFERRALS`: police to care coordinator, KMar to police, the
   inspectorate to shelters, ...). Being on one register raises the chance of
   another. The logistic link, the latent effect and the year-varying
   covariate effects together give higher-order interactions that no
   log-linear model with two-factor terms holds.
4. **Reports.** Each registered person's first report falls uniformly in the
   year, on the first register in referral order; the others follow after a
   referral delay within the 365-day window (often across New Year);
   organisation names from the default register map; a few EMM copies (an
   excluded organisation); recorded covariates with missing values.
5. **Organisations that withhold.** In some years (:data:`WITHHOLDING`)
   whole organisations send no person-level reports but only the year's
   counts with their margins (``aggregates.csv``, as the bundled file), a few
   values unknown.

It returns a :class:`~mse_helpers.synthetic.simulator.SimulatedData`, so
:func:`~mse_helpers.synthetic.simulator.write_data` writes the same four files
as ``mse simulate`` (reports.csv, aggregates.csv, register_map.csv, truth.csv).
Each year is drawn from its own stream ``seeds.rng(seed, "simulate",
SECOND_STREAM, year)``: independent of the first generator's
``seeds.rng(seed, "simulate", year)``, and a year is the same whichever other
years are drawn with it.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import seeds
from ..codes import REGISTERS
from . import simulator as first

#: Index of this generator's streams within the "simulate" stage (the first
#: generator uses ``("simulate", year)``; spawn keys of another length never
#: coincide with those).
SECOND_STREAM = 2

COV_ORDER: tuple[str, ...] = ("S", "L", "N", "U")

#: Registers in referral order: a register can be referred to by earlier ones.
ORDER: tuple[str, ...] = ("K", "P", "I", "Z", "R", "O")

#: Covariate model (log odds of the second level: non-Dutch, minor, male,
#: non-sexual) as intercept plus effects of the covariates drawn before it.
COVARIATE_MODEL: dict[str, tuple[float, dict[str, float]]] = {
    "N": (0.5, {}),
    "L": (-0.5, {"N": -1.2}),
    "S": (-1.5, {"N": 0.6, "L": -0.4}),
    "U": (-2.4, {"S": 2.2, "N": 1.0, "L": -0.6}),
}
#: Yearly drift of the covariate intercepts (added per year after 2016).
COVARIATE_DRIFT: dict[str, float] = {"N": 0.15, "L": -0.1, "S": 0.12, "U": 0.0}

#: Capture intercepts (log odds) per register and year; other years use the
#: nearest year listed. Tuned (on 400,000 persons) so that the expected persons
#: per register are about those of the first generator (docs/input-formats.md section 6):
#: 2016 I 37 K 7 O 205 P 440 R 230 Z 150 ... 2019 I 44 K 6 O 210 P 980 R 285 Z 75.
INTERCEPTS: dict[int, dict[str, float]] = {
    2016: dict(I=-8.21, K=-8.58, O=-4.76, P=-2.25, R=-3.33, Z=-3.70),
    2017: dict(I=-8.27, K=-7.88, O=-4.85, P=-2.11, R=-2.84, Z=-3.89),
    2018: dict(I=-7.84, K=-8.64, O=-4.83, P=-2.59, R=-2.56, Z=-4.77),
    2019: dict(I=-8.95, K=-9.07, O=-5.20, P=-2.47, R=-3.52, Z=-4.21),
}

#: Covariate effects on capture (log odds of the second level: male, minor,
#: non-Dutch, non-sexual).
EFFECTS: dict[str, dict[str, float]] = {
    "K": {"S": 0.0, "L": -0.5, "N": 2.5, "U": 0.3},
    "P": {"S": 0.3, "L": -0.9, "N": 0.2, "U": -0.6},
    "I": {"S": 0.8, "L": -2.5, "N": 1.0, "U": 3.2},
    "Z": {"S": -0.4, "L": 1.2, "N": -0.4, "U": -0.3},
    "R": {"S": -0.9, "L": -0.4, "N": 0.1, "U": -0.5},
    "O": {"S": 0.3, "L": 0.5, "N": 0.8, "U": 1.0},
}
#: Changes of the covariate effects in a year and the years after it
#: (register -> covariate -> change), so register effects are not constant.
EFFECT_CHANGES: dict[int, dict[str, dict[str, float]]] = {
    2017: {"Z": {"L": -0.6}},  # youth care reports fewer minors
    2018: {"R": {"U": 0.6}, "P": {"N": 0.4}},  # coordinators take labour victims; police foreigners
    2019: {"P": {"S": 0.9, "U": 0.8}},  # the police's labour-exploitation campaign
}

#: Loadings of the latent person effect per register.
LOADINGS: dict[str, float] = dict(K=0.4, P=0.6, I=0.5, Z=0.7, R=0.9, O=0.9)

#: Referrals: (from, to) -> log odds ratio added to "to" when on "from".
REFERRALS: dict[tuple[str, str], float] = {
    ("K", "P"): 1.8,
    ("P", "I"): 1.2,
    ("P", "Z"): 0.3,
    ("P", "R"): 1.5,
    ("K", "R"): 0.8,
    ("P", "O"): 0.6,
    ("I", "O"): 1.4,
    ("R", "O"): 0.9,
}

#: True number of victims per year (other years: 2019's).
N_TRUE: dict[int, int] = {2016: 4400, 2017: 4000, 2018: 4700, 2019: 5200}

#: Organisations that send only counts, per year.
WITHHOLDING: dict[int, tuple[str, ...]] = {
    2018: ("FairWork", "NIDOS", "Opvang", "Zorgcoordinator"),
    2019: ("NIDOS", "Jeugdzorg"),
}

#: Share of registered persons whose reports never state a covariate.
MISSING_RATES: dict[str, float] = {"S": 0.01, "L": 0.10, "N": 0.03, "U": 0.08}
#: Share of a margin's persons an organisation did not record in its counts.
AGGREGATE_UNKNOWN = 0.05
#: Share of police and KMar persons with a copy by EMM (excluded organisation).
EMM_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class SecondYear:
    """The settings of one year of the second generator.

    Attributes
    ----------
    year, n_true : int
    intercepts : dict
        Register -> capture intercept (log odds).
    effects : dict
        Register -> covariate -> effect (log odds) in this year.
    withholding : tuple of str
        Organisations that send only counts this year.
    """

    year: int
    n_true: int
    intercepts: Mapping[str, float]
    effects: Mapping[str, Mapping[str, float]]
    withholding: tuple[str, ...] = ()


def year_settings(year: int) -> SecondYear:
    """The settings of ``year``: listed for 2016-2019, else the nearest listed
    year's intercepts and size, with the effect changes up to ``year`` and no
    withholding."""
    listed = sorted(INTERCEPTS)
    nearest = min(listed, key=lambda y: abs(y - year))
    effects = {g: dict(e) for g, e in EFFECTS.items()}
    for y, changes in sorted(EFFECT_CHANGES.items()):
        if y <= year:
            for g, ch in changes.items():
                for c, v in ch.items():
                    effects[g][c] += v
    return SecondYear(
        year=int(year),
        n_true=N_TRUE.get(year, N_TRUE[max(N_TRUE)]),
        intercepts=dict(INTERCEPTS[nearest]),
        effects=effects,
        withholding=tuple(WITHHOLDING.get(year, ())),
    )


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def draw_covariates(year: int, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Covariates S L N U (0/1) of ``n`` persons, one after another (N, L, S, U)."""
    out: dict[str, np.ndarray] = {}
    for c in ("N", "L", "S", "U"):
        intercept, effects = COVARIATE_MODEL[c]
        z = intercept + COVARIATE_DRIFT[c] * (year - 2016) + sum(v * out[d] for d, v in effects.items())
        out[c] = (rng.random(n) < _logistic(np.broadcast_to(z, (n,)))).astype(np.int8)
    return pd.DataFrame({c: out[c] for c in COV_ORDER})


def capture_log_odds(
    settings: SecondYear, x: pd.DataFrame, eta: np.ndarray, on: Mapping[str, np.ndarray], register: str
) -> np.ndarray:
    """Log odds of being on ``register`` given covariates, latent effect and the
    earlier registers in :data:`ORDER` the person is on (``on``)."""
    z = np.full(len(x), settings.intercepts[register], dtype=float)
    for c, v in settings.effects[register].items():
        z += v * x[c].to_numpy()
    z += LOADINGS[register] * eta
    for (src, dst), v in REFERRALS.items():
        if dst == register and src in on:
            z += v * on[src]
    return z


def draw_population(settings: SecondYear, rng: np.random.Generator) -> pd.DataFrame:
    """The true population of one year.

    Returns
    -------
    DataFrame
        ``year``, S L N U (0/1), I K O P R Z (0/1) and ``eta`` (the latent
        effect); one row per person.
    """
    n = settings.n_true
    x = draw_covariates(settings.year, n, rng)
    eta = rng.standard_normal(n)
    on: dict[str, np.ndarray] = {}
    for g in ORDER:
        on[g] = (rng.random(n) < _logistic(capture_log_odds(settings, x, eta, on, g))).astype(np.int8)
    pop = x.copy()
    for g in REGISTERS:
        pop[g] = on[g]
    pop["eta"] = eta
    pop.insert(0, "year", settings.year)
    return pop


# --- reports ------------------------------------------------------------------------


def _organisation(register: str, x: Mapping[str, int], rng: np.random.Generator) -> str:
    """An organisation of the default register map for a report on ``register``."""
    if register == "P":
        return first.POLICE_UNITS[int(rng.integers(len(first.POLICE_UNITS)))]
    if register in ("K", "I"):
        return {"K": "KMar", "I": "ISZW"}[register]
    if register == "R":
        return "Regiocoordinator" if rng.random() < 0.8 else "Zorgcoordinator"
    if register == "O":
        if x["U"] == 1 and x["L"] == 0 and rng.random() < 0.8:
            return "FairWork"
        if x["L"] == 1 and x["N"] == 1:
            return "NIDOS"
        return "Opvang" if rng.random() < 0.7 else "Ambulant"
    if x["L"] == 1 and rng.random() < 0.6:
        return "Jeugdzorg" if rng.random() < 0.6 else "Jongereninstelling"
    return first.Z_OTHERS[int(rng.integers(len(first.Z_OTHERS)))]


def _recorded(x: Mapping[str, int], age: int, nat: str, unknown: Mapping[str, bool], rng: np.random.Generator) -> dict:
    """Recorded covariates of one report (person-level unknowns, a few per report)."""
    if x["U"] == 0:
        expl = "sexual" if rng.random() < 0.9 else "sexual;labour"
    else:
        expl = ("labour", "criminal", "other", "labour;criminal")[int(rng.choice(4, p=[0.6, 0.25, 0.1, 0.05]))]
    return dict(
        sex=None if unknown["S"] or rng.random() < 0.005 else "FM"[x["S"]],
        age=None if unknown["L"] or rng.random() < 0.02 else int(age),
        nationality=None if unknown["N"] or rng.random() < 0.01 else nat,
        exploitation=("unknown" if unknown["U"] else expl),
    )


def person_reports(person: Mapping[str, int], year: int, rng: np.random.Generator) -> list[dict]:
    """The reports of one registered person: the first register in
    :data:`ORDER` reports first, uniformly in the year; the others after a
    referral delay, all within 365 days (reports fall in the next year too)."""
    regs = [g for g in ORDER if person[g] == 1]
    x = {c: int(person[c]) for c in COV_ORDER}
    start = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=int(rng.integers(0, 365)))
    age = int(rng.integers(12, 18)) if x["L"] == 1 else int(min(80, 18 + rng.gamma(2.2, 6.5)))
    nat = (
        "NL"
        if x["N"] == 0
        else first.FOREIGN_NATIONALITIES[
            int(rng.choice(len(first.FOREIGN_NATIONALITIES), p=first.FOREIGN_WEIGHTS / first.FOREIGN_WEIGHTS.sum()))
        ]
    )
    unknown = {c: bool(rng.random() < MISSING_RATES[c]) for c in COV_ORDER}
    out, delay = [], 0
    for k, g in enumerate(regs):
        if k:  # referrals follow one another, never past the window
            delay = int(min(360, delay + rng.exponential(40)))
        out.append(
            dict(
                report_date=start + pd.Timedelta(days=delay),
                organisation=_organisation(g, x, rng),
                **_recorded(x, age, nat, unknown, rng),
            )
        )
    if ("P" in regs or "K" in regs) and rng.random() < EMM_SHARE:
        out.append(
            dict(
                report_date=start + pd.Timedelta(days=int(rng.integers(0, 15))),
                organisation="EMM",
                **_recorded(x, age, nat, unknown, rng),
            )
        )
    return out


def aggregate_row(year: int, organisation: str, persons: pd.DataFrame, rng: np.random.Generator) -> dict:
    """The counts an organisation sends instead of its reports (aggregates.csv columns)."""
    row = dict(year=int(year), organisation=organisation, total=len(persons))
    for c, (n0, n1) in (
        ("S", ("sex_F", "sex_M")),
        ("L", ("age_adult", "age_minor")),
        ("N", ("nat_NL", "nat_other")),
        ("U", ("expl_sexual", "expl_other")),
    ):
        known = rng.random(len(persons)) >= AGGREGATE_UNKNOWN
        v = persons[c].to_numpy()
        row[n0], row[n1] = int(((v == 0) & known).sum()), int(((v == 1) & known).sum())
    return {k: row[k] for k in first.AGGREGATE_COLUMNS}


def simulate_year(year: int, seed: int, settings: SecondYear | None = None) -> first.SimulatedData:
    """One year from its own stream ``seeds.rng(seed, "simulate", SECOND_STREAM, year)``.

    Returns
    -------
    SimulatedData
        Reports without ids (see :func:`simulate`), aggregates, truth and
        the population.
    """
    settings = year_settings(year) if settings is None else settings
    rng = seeds.rng(seed, "simulate", SECOND_STREAM, year)
    pop = draw_population(settings, rng)
    registered = np.flatnonzero(pop[list(REGISTERS)].to_numpy().any(axis=1))
    keys = [f"{k:016x}" for k in rng.integers(0, 2**63, size=len(registered), dtype=np.int64)]
    rows, withheld = [], {o: [] for o in settings.withholding}
    for key, idx in zip(keys, registered):
        person = pop.iloc[idx]
        for rep in person_reports(person, year, rng):
            if rep["organisation"] in withheld:
                withheld[rep["organisation"]].append(idx)  # a person once per organisation
            else:
                rows.append(dict(person_key=key, **rep))
    aggs = [aggregate_row(year, o, pop.iloc[sorted(set(ix))], rng) for o, ix in sorted(withheld.items()) if ix]
    reports = pd.DataFrame(rows, columns=first.REPORT_COLUMNS[1:])
    aggregates = pd.DataFrame(aggs, columns=first.AGGREGATE_COLUMNS)
    population = pop.drop(columns="eta")
    return first.SimulatedData(
        reports=reports, aggregates=aggregates, truth=first.truth_table(population), population=pop
    )


def simulate(years: Iterable[int], seed: int) -> first.SimulatedData:
    """Several years of the second generator, each from its own stream.

    Parameters
    ----------
    years : iterable of int
    seed : int
        Master seed.

    Returns
    -------
    SimulatedData
        As :func:`mse_helpers.synthetic.simulator.simulate`: reports sorted
        by date with ids ``G<year>-<n>``, aggregates, truth, population
        (with the latent effect ``eta``; never written).
    """
    years = sorted({int(y) for y in years})
    parts = [simulate_year(y, seed) for y in years]
    reps = []
    for y, part in zip(years, parts):
        r = part.reports.sort_values(["report_date", "person_key"], kind="stable").reset_index(drop=True)
        r.insert(0, "report_id", [f"G{y}-{i + 1:05d}" for i in range(len(r))])
        reps.append(r)
    reports = pd.concat(reps, ignore_index=True).sort_values(["report_date", "report_id"], kind="stable")
    reports["report_date"] = pd.to_datetime(reports["report_date"]).dt.strftime("%Y-%m-%d")
    reports["age"] = reports["age"].astype("Int64")
    return first.SimulatedData(
        reports=reports.reset_index(drop=True)[first.REPORT_COLUMNS],
        aggregates=pd.concat([p.aggregates for p in parts], ignore_index=True),
        truth=pd.concat([p.truth for p in parts], ignore_index=True),
        population=pd.concat([p.population for p in parts], ignore_index=True),
    )
