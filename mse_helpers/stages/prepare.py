"""Data preparation: reports and aggregates to the person-level file (docs/method.md 3.1-3.5).

Steps, each a function:

1. :func:`map_registers` - organisation to register with the register map;
   excluded organisations are dropped and counted.
2. :func:`person_records` - one record per person and year: the year of the
   person's first report; registers are those reporting within the linkage
   window after it (a December report followed by a January one counts once,
   in the first year). A report after the window opens a new record in a later
   year; one in the *same* year is counted as ``reports_outside_window``.
3. :func:`derive_covariates` - sex and nationality by majority (ties: earliest
   report), age group from the age at the first report that states an age,
   exploitation S if any report says sexual; conflicts are counted.
4. :func:`partial_records` - aggregate counts to partial records (docs/method.md 3.4).
5. :func:`link_partial_records` - random linking to the reference years' pattern
   distribution (docs/method.md 3.5); by default the target counts per pattern are
   drawn from their posterior predictive distribution (``linking: draw``), the
   study's fixed targets are ``linking: expected``.

:func:`run_stage` runs them for one set of parameters and writes the work files.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .. import runfolder
from ..codes import COVARIATES, EXCLUDE, REGISTERS
from ..engine.cells import cell_codes, pattern_labels
from . import inputs

log = logging.getLogger(__name__)

#: Aggregate columns per covariate: (first level column, second level column).
AGGREGATE_LEVEL_COLUMNS: dict[str, tuple[str, str]] = {
    "S": ("sex_F", "sex_M"),
    "L": ("age_adult", "age_minor"),
    "N": ("nat_NL", "nat_other"),
    "U": ("expl_sexual", "expl_other"),
}
NON_SEXUAL_FORMS = ("labour", "criminal", "organ_removal", "other")


@dataclasses.dataclass
class PrepResult:
    """Everything data preparation made, for the notebook.

    Attributes
    ----------
    persons : DataFrame
        Person-level records from the reports (as ``persons.parquet``).
    partial : DataFrame
        Partial records from the aggregates (as ``partial.parquet``).
    summary : dict
        As ``prep_summary.json``.
    reports : DataFrame
        The validated reports with ``register`` and ``year`` columns (in
        memory only: it holds person keys and is never written).
    aggregates : DataFrame
        The validated aggregates.
    register_map : DataFrame
    quality : DataFrame
        Data-quality counts per year (see :func:`quality_counts`).
    """

    persons: pd.DataFrame
    partial: pd.DataFrame
    summary: dict
    reports: pd.DataFrame
    aggregates: pd.DataFrame
    register_map: pd.DataFrame
    quality: pd.DataFrame


# --- 3.1 mapping ------------------------------------------------------------------


def map_registers(reports: pd.DataFrame, register_map: pd.DataFrame) -> pd.DataFrame:
    """Add the register of each report's organisation.

    Parameters
    ----------
    reports : DataFrame
        Validated reports (every organisation is in the map).
    register_map : DataFrame

    Returns
    -------
    DataFrame
        A copy with ``register`` (``I``..``Z`` or ``exclude``) and
        ``report_year``.
    """
    lookup = dict(zip(register_map["organisation"], register_map["register"]))
    out = reports.copy()
    out["register"] = out["organisation"].map(lookup)
    if out["register"].isna().any():  # the readers make this impossible; guard anyway
        raise ValueError(
            f"organisations not in the register map: {sorted(set(out.loc[out['register'].isna(), 'organisation']))}"
        )
    out["report_year"] = out["report_date"].dt.year.astype(int)
    return out


# --- 3.2 one record per person and year -----------------------------------------------


def assign_episodes(reports: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Group each person's (non-excluded) reports into person-year records.

    Parameters
    ----------
    reports : DataFrame
        Mapped reports without excluded organisations.
    window_days : int
        Linkage window: reports up to this many days after the record's first
        report belong to it.

    Returns
    -------
    DataFrame
        Sorted copy with ``record`` (record id), ``year`` (year of the
        record's first report), ``days`` (days since that report) and
        ``in_window`` (False for a report after the window whose new record
        would fall in a year the person already counts in).
    """
    rep = reports.sort_values(["person_key", "report_date", "report_id"], kind="stable").reset_index(drop=True)
    keys = rep["person_key"].to_numpy()
    dates = rep["report_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    years = rep["report_date"].dt.year.to_numpy()
    record = np.empty(len(rep), dtype=np.int64)
    rec_year = np.empty(len(rep), dtype=np.int64)
    days = np.empty(len(rep), dtype=np.int64)
    in_window = np.ones(len(rep), dtype=bool)
    rid, start, start_year, prev_key = -1, 0, 0, None
    seen_years: set[int] = set()
    for i in range(len(rep)):
        if keys[i] != prev_key:
            prev_key, seen_years = keys[i], set()
            rid, start, start_year = rid + 1, dates[i], years[i]
            seen_years.add(start_year)
        elif dates[i] - start > window_days:
            if years[i] in seen_years:
                # a new record in a year the person already counts in: count, do not double
                in_window[i] = False
            else:
                rid, start, start_year = rid + 1, dates[i], years[i]
                seen_years.add(start_year)
        record[i], rec_year[i], days[i] = rid, start_year, dates[i] - start
    rep["record"], rep["year"], rep["days"], rep["in_window"] = record, rec_year, days, in_window
    return rep


def _majority(values: pd.Series, record: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Majority non-missing value per record (ties: earliest report) and a
    flag for records whose non-missing values differ. ``values`` are in
    report order within record."""
    frame = pd.DataFrame({"record": record, "v": values, "order": np.arange(len(values))}).dropna(subset=["v"])
    counts = frame.groupby(["record", "v"], sort=False).agg(n=("order", "size"), first=("order", "min")).reset_index()
    counts = counts.sort_values(["record", "n", "first"], ascending=[True, False, True])
    best = counts.drop_duplicates("record").set_index("record")["v"]
    n_levels = counts.groupby("record").size()
    return best, n_levels > 1


def derive_covariates(episodes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Covariates per record from its reports (docs/method.md 3.3).

    Parameters
    ----------
    episodes : DataFrame
        From :func:`assign_episodes` (in-window reports only), sorted by
        person and date.

    Returns
    -------
    levels : DataFrame
        Index ``record``; columns S L N U with levels of
        :data:`codes.COVARIATES` or <NA>.
    conflicts : DataFrame
        Index ``record``; boolean columns S L N U: the reports disagree
        (sex F and M; nationality Dutch and not; ages that put the person in
        both age groups at the first report; exploitation sexual in one
        report and only non-sexual forms in another).
    """
    rec = episodes["record"]
    index = pd.Index(sorted(rec.unique()), name="record")
    levels = pd.DataFrame(index=index, columns=list(COVARIATES), dtype="string")
    conflicts = pd.DataFrame(False, index=index, columns=list(COVARIATES))
    sex, sex_conf = _majority(episodes["sex"], rec)
    levels["S"] = sex.reindex(index).astype("string")
    conflicts["S"] = sex_conf.reindex(index, fill_value=False)
    nat, _ = _majority(episodes["nationality"], rec)
    levels["N"] = (
        nat.reindex(index).map(lambda c: pd.NA if pd.isna(c) else ("NL" if c == "NL" else "O")).astype("string")
    )
    nat_level = episodes["nationality"].map(lambda c: pd.NA if pd.isna(c) else ("NL" if c == "NL" else "O"))
    conflicts["N"] = (nat_level.groupby(rec).nunique() > 1).reindex(index, fill_value=False)
    aged = episodes.dropna(subset=["age"])
    first_age = aged.groupby("record")["age"].first()
    levels["L"] = (
        first_age.reindex(index).map(lambda a: pd.NA if pd.isna(a) else ("M" if a < 18 else "A")).astype("string")
    )
    # Age at the record's first report implied by each report (ageing allowed). Ages are
    # whole years, so implied ages within one year of each other agree; a conflict is
    # reports that put the person in both age groups and differ by more than that.
    implied = aged["age"].astype(float) - aged["days"] / 365.25
    by_rec = implied.groupby(aged["record"])
    both_groups = (implied < 18).groupby(aged["record"]).nunique() > 1
    conflicts["L"] = (both_groups & ((by_rec.max() - by_rec.min()) > 1)).reindex(index, fill_value=False)
    forms = episodes["exploitation"].fillna("").str.split(";")
    sexual = forms.map(lambda f: "sexual" in f)
    other = forms.map(lambda f: any(x in NON_SEXUAL_FORMS for x in f))
    any_sexual = sexual.groupby(rec).any().reindex(index)
    any_other = other.groupby(rec).any().reindex(index)
    u = pd.Series(pd.NA, index=index, dtype="string")
    u[any_other.to_numpy()] = "O"
    u[any_sexual.to_numpy()] = "S"
    levels["U"] = u
    only_other = (other & ~sexual).groupby(rec).any().reindex(index)
    conflicts["U"] = (any_sexual & only_other).to_numpy()
    return levels, conflicts


def person_records(mapped: pd.DataFrame, window_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One record per person and year with all six registers and covariates.

    Parameters
    ----------
    mapped : DataFrame
        From :func:`map_registers`; excluded organisations are dropped here.
    window_days : int

    Returns
    -------
    records : DataFrame
        One row per record: ``year``, I..Z (0/1 Int8), S L N U, conflict
        flags ``conflict_S``.. and ``n_reports``. No person key.
    episodes : DataFrame
        The reports used, with ``record``, ``year`` and ``in_window``.
    """
    kept = mapped[mapped["register"] != EXCLUDE]
    episodes = assign_episodes(kept, window_days)
    used = episodes[episodes["in_window"]]
    regs = pd.crosstab(used["record"], used["register"]).reindex(columns=list(REGISTERS), fill_value=0)
    records = (regs > 0).astype("Int8")
    records.insert(0, "year", used.groupby("record")["year"].first().astype(int))
    levels, conflicts = derive_covariates(used)
    records = records.join(levels).join(conflicts.add_prefix("conflict_"))
    records["n_reports"] = used.groupby("record").size()
    return records.reset_index(drop=True), episodes


@dataclasses.dataclass(frozen=True)
class ReReports:
    """Persons reported again, and what the counting rule (docs/method.md 3.2) did with them.

    Counts are of records in the person-level file (analysed years, chosen
    registers); no person key.

    Attributes
    ----------
    window_days : int
        The linkage window.
    across_year : tuple of (year, later_year, persons, gained_register)
        Records counted in ``year`` (their first report) with reports in
        ``later_year`` within the window, folded into the ``year`` record;
        ``gained_register`` of them were on a chosen register only through
        the later year's reports.
    again_after_window : tuple of (first_year, year, persons)
        Records opened by a report more than the window after the person's
        previous record began: counted as new persons in ``year``, the person's
        first record being in ``first_year``.
    window_open : tuple of (year, persons)
        Records whose window reaches past the newest report in the data: a
        later delivery may add reports (and registers) to them.
    newest_report : str
        Month (``YYYY-MM``) of the newest report read (not excluded).
    """

    window_days: int
    across_year: tuple[tuple[int, int, int, int], ...] = ()
    again_after_window: tuple[tuple[int, int, int], ...] = ()
    window_open: tuple[tuple[int, int], ...] = ()
    newest_report: str = ""

    @property
    def persons_across_year(self) -> int:
        """Records with reports in a later calendar year, counted in the first."""
        return sum(r[2] for r in self.across_year)

    @property
    def persons_again(self) -> int:
        """Records counted as new persons after the window."""
        return sum(r[2] for r in self.again_after_window)

    def to_dict(self) -> dict:
        """As ``prep_summary.json``'s ``re_reports``."""
        return {
            "linkage_window_days": int(self.window_days),
            "newest_report": self.newest_report,
            "across_year_boundary": [
                {"year": y, "later_year": z, "persons": n, "gained_register": g} for y, z, n, g in self.across_year
            ],
            "reported_again_after_window": [
                {"first_year": f, "year": y, "persons": n} for f, y, n in self.again_after_window
            ],
            "window_open_at_end": [{"year": y, "persons": n} for y, n in self.window_open],
        }

    def notes(self) -> list[str]:
        """Sentences for the data decisions (counts only)."""
        w = self.window_days
        out = []
        if self.across_year:
            parts = "; ".join(
                f"{n} first reported in {y} and again in {z}, counted in {y}"
                + (f" ({g} of them on a register only through the {z} reports)" if g else "")
                for y, z, n, g in self.across_year
            )
            out.append(
                f"re-reports across the year boundary: {self.persons_across_year} person(s) were reported "
                f"again in a later year within the {w}-day linkage window and are counted once, in the "
                f"year of their first report (the study's rule): {parts}"
            )
        else:
            out.append(
                f"re-reports across the year boundary: no person was reported again in a later year "
                f"within the {w}-day linkage window"
            )
        if self.again_after_window:
            parts = "; ".join(f"{y}: {n} (first counted in {f})" for f, y, n in self.again_after_window)
            out.append(
                f"re-reports after the window: {self.persons_again} person(s) reported again more than "
                f"{w} days after their earlier record began are counted as new persons in the year of "
                f"the new report: {parts}"
            )
        else:
            out.append("re-reports after the window: no person was counted again as a new person")
        if self.window_open:
            parts = "; ".join(f"{y}: {n}" for y, n in self.window_open)
            out.append(
                f"open linkage windows: {sum(n for _, n in self.window_open)} person(s) were first "
                f"reported less than {w} days before the newest report read ({self.newest_report}) "
                f"({parts}); reports of a later delivery within their window will be added to these "
                f"records, so a re-run with more data can change their registers (revising these years' "
                f"overlaps) and count fewer persons in the following year"
            )
        return out


def re_reports(episodes: pd.DataFrame, kept: pd.DataFrame, registers: Sequence[str], window_days: int) -> ReReports:
    """Count re-reports across years and after the window (docs/method.md 3.2).

    Parameters
    ----------
    episodes : DataFrame
        From :func:`person_records` (every non-excluded report, with
        ``record``, ``year``, ``in_window``, ``register``).
    kept : DataFrame
        The records of the person-level file, indexed by record id (as the
        ``records`` of :func:`person_records` filtered).
    registers : sequence of str
        The chosen registers (a register gained counts only if chosen).
    window_days : int

    Returns
    -------
    ReReports
    """
    if not len(episodes):
        return ReReports(window_days=int(window_days))
    newest = episodes["report_date"].max()
    used = episodes[episodes["in_window"] & episodes["record"].isin(kept.index)]
    report_year = used["report_date"].dt.year
    later = used[report_year > used["year"]]
    across: list[tuple[int, int, int, int]] = []
    if len(later):
        same_year = used[(report_year == used["year"]) & used["register"].isin(registers)]
        early_regs = set(zip(same_year["record"], same_year["register"]))
        late_chosen = later[later["register"].isin(registers)]
        gained = {r for r, g in zip(late_chosen["record"], late_chosen["register"]) if (r, g) not in early_regs}
        spans = (
            later.assign(later_year=later["report_date"].dt.year)
            .groupby("record")
            .agg(year=("year", "first"), later_year=("later_year", "max"))
        )
        spans["gained"] = spans.index.isin(list(gained))
        for (y, z), grp in spans.groupby(["year", "later_year"]):
            across.append((int(y), int(z), int(len(grp)), int(grp["gained"].sum())))
    # a person's records in order: any record after the first was opened after the window
    by_record = episodes.drop_duplicates("record").set_index("record")
    first_record = by_record["person_key"].map(episodes.groupby("person_key")["record"].min())
    kept_ids = pd.Index(kept.index)
    again_ids = kept_ids[first_record.reindex(kept_ids).to_numpy() != kept_ids.to_numpy()]
    again: list[tuple[int, int, int]] = []
    if len(again_ids):
        frame = pd.DataFrame(
            {
                "first_year": by_record["year"].reindex(first_record.reindex(again_ids)).to_numpy(),
                "year": by_record["year"].reindex(again_ids).to_numpy(),
            }
        )
        for (f, y), grp in frame.groupby(["first_year", "year"]):
            again.append((int(f), int(y), int(len(grp))))
    # the first report of a record is its first row (episodes are sorted by date)
    open_mask = ((newest - by_record["report_date"].reindex(kept_ids)).dt.days < window_days).to_numpy()
    open_years = by_record["year"].reindex(kept_ids[open_mask]).value_counts()
    window_open = [(int(y), int(n)) for y, n in sorted(open_years.items())]
    return ReReports(
        window_days=int(window_days),
        across_year=tuple(across),
        again_after_window=tuple(again),
        window_open=tuple(window_open),
        newest_report=newest.strftime("%Y-%m"),
    )


def person_level_file(
    records: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str], source: str = "reports"
) -> pd.DataFrame:
    """Restrict records to the chosen registers and covariates (docs/input-formats.md 4).

    Records on none of the chosen registers must be removed (and counted)
    before; this only selects and types the columns.

    Returns
    -------
    DataFrame
        ``year`` int, registers Int8, covariates string, ``source``.
    """
    out = pd.DataFrame({"year": records["year"].astype(int).to_numpy()})
    for g in registers:
        out[g] = pd.array(records[g].to_numpy(), dtype="Int8")
    for c in covariates:
        out[c] = pd.array(records[c].to_numpy(), dtype="string")
    out["source"] = pd.Series([source] * len(out), dtype="string")
    return out


# --- 3.4 aggregates to partial records ------------------------------------------------


def partial_records_of_row(
    row: pd.Series, register: str, registers: Sequence[str], covariates: Sequence[str]
) -> pd.DataFrame:
    """Partial records for one organisation-year of aggregate counts.

    A covariate with all ``total`` persons in one level is known for every
    record. Of the other covariates, only the one with the fewest unknowns is
    assigned (its two level counts, the rest missing); ties go to the more
    nearly constant covariate (larger majority), then the order S L N U. This
    reproduces the study's FairWork 2018 example (docs/method.md 3.4).

    Parameters
    ----------
    row : Series
        One aggregates row.
    register : str
        The organisation's register (1 on every record).
    registers, covariates : sequence of str
        Columns of the person-level file.

    Returns
    -------
    DataFrame
        ``total`` rows: ``year``, registers (``register`` 1, others <NA>),
        covariates, ``source`` = ``aggregate``.
    """
    total = int(row["total"])
    constant: dict[str, str] = {}
    candidates = []
    for c in covariates:
        first, second = AGGREGATE_LEVEL_COLUMNS[c]
        n0, n1 = int(row[first]), int(row[second])
        if n0 == total or n1 == total:
            if total > 0:
                constant[c] = COVARIATES[c][0] if n0 == total else COVARIATES[c][1]
            continue
        unknown = total - n0 - n1
        candidates.append((unknown, -max(n0, n1), list(COVARIATES).index(c), c, n0, n1))
    cov_values = {c: np.full(total, pd.NA, dtype=object) for c in covariates}
    for c, lev in constant.items():
        cov_values[c][:] = lev
    if candidates:
        _, _, _, c, n0, n1 = min(candidates)
        if n0 + n1 > 0:
            cov_values[c][:n0] = COVARIATES[c][0]
            cov_values[c][n0 : n0 + n1] = COVARIATES[c][1]
    out = pd.DataFrame({"year": np.full(total, int(row["year"]), dtype=int)})
    for g in registers:
        out[g] = pd.array([1 if g == register else pd.NA] * total, dtype="Int8")
    for c in covariates:
        out[c] = pd.array(cov_values[c], dtype="string")
    out["source"] = pd.array(["aggregate"] * total, dtype="string")
    return out


def partial_records(
    aggregates: pd.DataFrame, register_map: pd.DataFrame, registers: Sequence[str], covariates: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All partial records of an aggregates file.

    Parameters
    ----------
    aggregates : DataFrame
        Validated (see :func:`inputs.read_aggregates`).
    register_map : DataFrame
    registers, covariates : sequence of str

    Returns
    -------
    partial : DataFrame
        Partial records (see :func:`partial_records_of_row`) of organisations
        whose register is in ``registers``.
    counts : DataFrame
        ``year, organisation, register, total, used``: records per
        organisation-year; ``used`` False when the register is left out.
    """
    lookup = dict(zip(register_map["organisation"], register_map["register"]))
    parts, counts = [], []
    for _, row in aggregates.iterrows():
        reg = lookup[row["organisation"]]
        used = reg in registers
        counts.append(
            dict(
                year=int(row["year"]),
                organisation=row["organisation"],
                register=reg,
                total=int(row["total"]),
                used=used,
            )
        )
        if used:
            parts.append(partial_records_of_row(row, reg, registers, covariates))
    if parts:
        partial = pd.concat(parts, ignore_index=True)
    else:  # a typed frame with no rows
        zero = {"year": 0, "total": 0, **{c: 0 for pair in AGGREGATE_LEVEL_COLUMNS.values() for c in pair}}
        partial = partial_records_of_row(pd.Series(zero), registers[0], registers, covariates)
    return partial, pd.DataFrame(counts, columns=["year", "organisation", "register", "total", "used"])


# --- 3.5 linking -------------------------------------------------------------------------


def _pattern(frame: pd.DataFrame, registers: Sequence[str]) -> pd.Series:
    """Other-register pattern as a string of 0/1 (e.g. ``"0101"``): the engine's cell code, as text."""
    codes = cell_codes(frame, registers, {r: (0, 1) for r in registers}, source="linking")
    return pd.Series(pattern_labels(len(registers))[codes], index=frame.index, dtype=object)


#: Values of the ``linking`` parameter (how the target counts per pattern are made).
#: How the pattern counts of linked aggregate records are set (see :func:`pattern_targets`).
LINKING: tuple[str, ...] = ("draw", "expected")


def pattern_targets(ref_counts: pd.Series, total: int, targets: str, rng: np.random.Generator) -> pd.Series:
    """Target numbers of X-persons per other-register pattern in year t (docs/method.md 3.5).

    Parameters
    ----------
    ref_counts : Series
        Pattern -> number of X-persons with that pattern in the reference
        years ("none" included).
    total : int
        T, the X-persons of year t after linking (current + partial records).
    targets : {"draw", "expected"}
        ``"expected"``: round(q(p) T) with q the reference shares, as the
        study did; the same targets in every completed data set, so the
        intervals treat the reference years' pattern distribution as exactly
        the year's. ``"draw"``: proper multiple imputation of the year's
        unknown pattern counts; q* ~ Dirichlet(reference counts + 1/2), then
        counts ~ Multinomial(T, q*). Their mean is q(p) T (up to the prior),
        and their spread is what is not known about year t: the sampling
        error of q and the year's own multinomial variation. Redone with each
        data set's linking stream, it enters the between-imputation variance.
    rng : numpy.random.Generator
        Used only by ``"draw"``.

    Returns
    -------
    Series
        Pattern -> whole number of X-persons (sums to ``total`` for ``"draw"``).
    """
    if targets == "expected":
        shares = ref_counts / ref_counts.sum()
        return np.floor(shares * total + 0.5).astype(int)
    if targets != "draw":
        raise ValueError(f"linking targets must be one of {', '.join(LINKING)}, got {targets!r}")
    q = rng.dirichlet(ref_counts.to_numpy(dtype=float) + 0.5)
    return pd.Series(rng.multinomial(int(total), q), index=ref_counts.index)


def _level_codes(frame: pd.DataFrame, covariates: Sequence[str]) -> np.ndarray:
    """Covariates as an (n, k) array of level codes 0/1, -1 where missing."""
    if not covariates:
        return np.zeros((len(frame), 0), dtype=np.int8)
    return np.column_stack(
        [pd.Categorical(frame[c].astype(object), categories=list(COVARIATES[c])).codes for c in covariates]
    ).astype(np.int8)


def link_partial_records(
    persons: pd.DataFrame,
    partial: pd.DataFrame,
    reference_years: Iterable[int],
    rng: np.random.Generator,
    targets: str = "draw",
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Link partial records to persons or make them new persons (docs/method.md 3.5).

    For each year t and register X with partial records (registers in
    canonical order, each seeing the links already made): q(p) is the
    other-register pattern distribution of X-persons in the reference years;
    T = X-persons in t + partial records; for every pattern p other than
    "none", target(p) - (X-persons in t with pattern p) records (if
    positive) are linked to randomly chosen persons of year t with pattern p,
    not on X, whose known covariates do not contradict the record; their
    missing covariates are filled from it. The other records become new
    persons on X only. The targets (:func:`pattern_targets`) are round(q(p) T)
    with ``targets="expected"`` (the study) or a draw from their posterior
    predictive distribution with ``targets="draw"`` (the default).

    Parameters
    ----------
    persons : DataFrame
        Person-level file (registers 0/1).
    partial : DataFrame
        Partial records (one register 1, the others <NA>).
    reference_years : iterable of int
    rng : numpy.random.Generator
        Its own stream, e.g. ``seeds.rng(seed, "link", i)``.
    targets : {"draw", "expected"}
        See :func:`pattern_targets` (parameter ``linking``).
    reference : DataFrame, optional
        Persons whose reference years give q(p); default ``persons``. For
        checks only (``scripts/linking_check.py`` passes the true population).

    Returns
    -------
    DataFrame
        All registers 0/1; ``source`` "linked" for report persons that absorbed
        a record, "aggregate" for new persons (also when a new person from
        one register's record later absorbs another register's record).
        Inputs are not changed.
    """
    if targets not in LINKING:
        raise ValueError(f"linking targets must be one of {', '.join(LINKING)}, got {targets!r}")
    reference_years = list(reference_years)
    registers = [g for g in REGISTERS if g in persons.columns]
    covariates = [c for c in COVARIATES if c in persons.columns]
    out = persons.copy().reset_index(drop=True)
    if partial.empty:
        return out
    for year in sorted(partial["year"].unique()):
        for reg in registers:
            recs = partial[(partial["year"] == year) & (partial[reg] == 1)]
            if recs.empty:
                continue
            out = _link_one(out, recs, int(year), reg, registers, covariates, reference_years, rng, targets, reference)
    for g in registers:
        out[g] = out[g].astype("Int8")
    for c in covariates:
        out[c] = out[c].astype("string")
    out["source"] = out["source"].astype("string")
    return out.reset_index(drop=True)


def _link_one(
    out: pd.DataFrame,
    recs: pd.DataFrame,
    year: int,
    reg: str,
    registers: list[str],
    covariates: list[str],
    reference_years: list[int],
    rng: np.random.Generator,
    targets: str,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Link the partial records of one register-year (see link_partial_records)."""
    others = [g for g in registers if g != reg]
    src = out if reference is None else reference
    ref = src[src["year"].isin(reference_years) & (src[reg] == 1)]
    q_counts = _pattern(ref, others).value_counts().sort_index()
    if q_counts.empty:
        raise ValueError(
            f"linking register {reg} in {year}: no person on {reg} in the reference years "
            f"{reference_years}; choose other reference_years"
        )
    in_year = out["year"] == year
    pattern = _pattern(out, others)
    current = pattern[in_year & (out[reg] == 1)].value_counts()
    total = int((in_year & (out[reg] == 1)).sum()) + len(recs)
    none = "0" * len(others)
    target = pattern_targets(q_counts, total, targets, rng)
    need = {p: max(0, int(t) - int(current.get(p, 0))) for p, t in target.items() if p != none}
    order = rng.permutation(len(recs))
    unassigned = list(order)
    # Work on arrays: the candidate set only loses persons as they are linked
    # (a linked person is on X and no longer a candidate), so the updates can
    # wait until every record of this register-year has been placed.
    eligible = (in_year & (out[reg] == 0)).to_numpy(dtype=bool)
    pattern_arr = pattern.to_numpy()
    person_cov = _level_codes(out, covariates)
    record_cov = _level_codes(recs, covariates)
    used = np.zeros(len(out), dtype=bool)
    links: list[tuple[int, int]] = []  # (person row, record position)
    for p in sorted(need, key=lambda k: (-need[k], k)):
        n = need[p]
        if n == 0 or not unassigned:
            continue
        cand_idx = np.flatnonzero(eligible & (pattern_arr == p))
        cand_idx = cand_idx[rng.permutation(len(cand_idx))]
        cand_idx = cand_idx[~used[cand_idx]]
        cand_cov = person_cov[cand_idx]
        alive = np.ones(len(cand_idx), dtype=bool)
        linked = 0
        still: list[int] = []
        for k in unassigned:
            if linked >= n or not alive.any():
                still.append(k)
                continue
            ok = alive.copy()
            for ci, v in enumerate(record_cov[k]):
                if v >= 0:  # a known covariate must not contradict the person's
                    ok &= (cand_cov[:, ci] < 0) | (cand_cov[:, ci] == v)
            if not ok.any():
                still.append(k)
                continue
            pos = int(np.argmax(ok))
            alive[pos] = False
            used[cand_idx[pos]] = True
            links.append((int(cand_idx[pos]), int(k)))
            linked += 1
        unassigned = still
    if links:
        rows = out.index[[j for j, _ in links]]
        rec_rows = recs.iloc[[k for _, k in links]]
        out.loc[rows, reg] = 1
        for c in covariates:
            fill = out.loc[rows, c].isna().to_numpy() & rec_rows[c].notna().to_numpy()
            out.loc[rows[fill], c] = rec_rows[c].to_numpy()[fill]
        from_reports = out.loc[rows, "source"].to_numpy() == "reports"
        out.loc[rows[from_reports], "source"] = "linked"
    new = recs.iloc[sorted(unassigned)].copy()
    for g in others:
        new[g] = 0
    new[reg] = 1
    new["source"] = "aggregate"
    return pd.concat([out, new[out.columns]], ignore_index=True)


# --- the stage ---------------------------------------------------------------------------

#: A year with fewer persons (from the reports, on the chosen registers) than this
#: is not modelled: refused when asked for in ``years``, left out with a note
#: under ``years: null`` (a stray year of one person gave N-hat 4.2 (-1.4, 9.8)).
MIN_PERSONS_PER_YEAR = 50


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """Parameters of data preparation that :class:`Params` may not hold yet.

    ``encoding`` and ``separator`` of CSV inputs (None: detect),
    ``min_persons_per_year`` (see :data:`MIN_PERSONS_PER_YEAR`).
    """

    encoding: str | None = None
    separator: str | None = None
    min_persons_per_year: int = MIN_PERSONS_PER_YEAR


def read_options(p) -> ReadOptions:
    """The :class:`ReadOptions` of ``p``; the one place that reads these parameters.

    They are read with defaults so that parameters without them (today's
    ``Params``) keep working: ``encoding`` null, ``separator`` null,
    ``min_persons_per_year`` :data:`MIN_PERSONS_PER_YEAR`.
    """
    return ReadOptions(
        encoding=getattr(p, "encoding", None),
        separator=getattr(p, "separator", None),
        min_persons_per_year=int(getattr(p, "min_persons_per_year", MIN_PERSONS_PER_YEAR)),
    )


class YearsError(ValueError):
    """The years (or reference years) asked for cannot be analysed; ``problems``
    lists every reason, each naming the parameter and the ``--set`` to use."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclasses.dataclass(frozen=True)
class YearChoice:
    """The analysed years and what was left out.

    Attributes
    ----------
    years, reference_years : tuple of int
    left_out : tuple of (year, persons)
        Years in the data with fewer than the minimum persons, left out under
        ``years: null``.
    """

    years: tuple[int, ...]
    reference_years: tuple[int, ...]
    left_out: tuple[tuple[int, int], ...] = ()

    @property
    def persons_left_out(self) -> int:
        """Persons in the left-out years."""
        return sum(n for _, n in self.left_out)


def years_text(years: Iterable[int]) -> str:
    """``[2016, 2017, 2018]`` -> ``"2016-2018"``; ``[2016, 2018]`` -> ``"2016,2018"``
    (the forms ``--set years=`` accepts)."""
    years = sorted(set(int(y) for y in years))
    if not years:
        return ""
    if len(years) > 1 and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ",".join(str(y) for y in years)


def choose_years(
    persons_per_year: dict[int, int],
    aggregate_years: Iterable[int],
    years: Sequence[int] | None,
    reference_years: Sequence[int] | None,
    *,
    min_persons: int = MIN_PERSONS_PER_YEAR,
) -> YearChoice:
    """Analysed years and reference years (docs/method.md 3.5, 9), checked.

    Parameters
    ----------
    persons_per_year : dict
        Year -> persons from the reports (on the chosen registers).
    aggregate_years : iterable of int
        Years with aggregate counts.
    years, reference_years : sequence of int or None
        The parameters; None resolves from the data.
    min_persons : int
        Years with fewer persons are refused (asked for) or left out (``years`` None).

    Returns
    -------
    YearChoice

    Raises
    ------
    YearsError
        Listing every year asked for without persons or with too few, and
        reference years that cannot be used.
    """
    counts = {int(y): int(n) for y, n in persons_per_year.items() if n > 0}
    data_years = sorted(counts)
    usable = [y for y in data_years if counts[y] >= min_persons]
    problems: list[str] = []
    left_out: list[tuple[int, int]] = []
    have = (
        f"the data have persons in {years_text(data_years)} ({', '.join(f'{y}: {counts[y]}' for y in data_years)})"
        if data_years
        else "the data have no persons"
    )
    fix = f"; use --set years={years_text(usable)}" if usable else ""
    if years is None:
        left_out = [(y, counts[y]) for y in data_years if counts[y] < min_persons]
        chosen = usable
        if not chosen:
            problems.append(
                f"parameter years: no year has at least {min_persons} persons in the reports, the "
                f"minimum for a year to be modelled; {have}"
            )
    else:
        chosen = sorted(int(y) for y in years)
        absent = [y for y in chosen if y not in counts]
        small = [y for y in chosen if y in counts and counts[y] < min_persons]
        if absent:
            problems.append(
                f"parameter years: {years_text(absent) if len(absent) > 1 else absent[0]} "
                f"{'have' if len(absent) > 1 else 'has'} no persons in the reports; {have}{fix}"
            )
        if small:
            listed = ", ".join(f"{y} has {counts[y]}" for y in small)
            problems.append(
                f"parameter years: {listed} person(s) in the reports, fewer than {min_persons}, the "
                f"minimum for a year to be modelled; leave {'them' if len(small) > 1 else 'it'} "
                f"out{fix}"
            )
    agg_years = sorted(set(int(y) for y in aggregate_years) & set(chosen))
    refs: list[int] = []
    if reference_years is None:
        if agg_years and chosen:
            refs = [y for y in chosen if y < agg_years[0]]
            if not refs:
                problems.append(
                    f"parameter reference_years: the first analysed year {chosen[0]} already has "
                    f"aggregates, so there are no earlier years to copy; set reference_years"
                )
    else:
        refs = sorted(int(y) for y in reference_years)
        missing = [y for y in refs if y not in data_years]
        unused = [y for y in refs if y in data_years and y not in chosen]
        if missing:
            problems.append(f"parameter reference_years: {missing} not in the data (years {data_years})")
        if unused:
            problems.append(f"parameter reference_years: {unused} not among the analysed years {years_text(chosen)}")
    if problems:
        raise YearsError(problems)
    return YearChoice(years=tuple(chosen), reference_years=tuple(refs), left_out=tuple(left_out))


def resolve_years(
    record_years: Iterable[int],
    aggregate_years: Iterable[int],
    years: Sequence[int] | None,
    reference_years: Sequence[int] | None,
    min_persons: int = 1,
) -> tuple[list[int], list[int]]:
    """Analysed years and reference years from the years of the person records.

    :func:`choose_years` with one person per record (``min_persons`` 1 by
    default: no year is too small).

    Returns
    -------
    years, reference_years : list of int
    """
    counts = pd.Series(list(record_years), dtype="int64").value_counts().to_dict()
    choice = choose_years(counts, aggregate_years, years, reference_years, min_persons=min_persons)
    return list(choice.years), list(choice.reference_years)


def summarise(
    mapped: pd.DataFrame,
    episodes: pd.DataFrame,
    records: pd.DataFrame,
    kept: pd.DataFrame,
    agg_counts: pd.DataFrame,
    years: list[int],
    reference_years: list[int],
    registers: Sequence[str],
) -> tuple[dict, pd.DataFrame]:
    """Counts of everything read, excluded and dropped (the ``prep_summary.json``).

    Returns
    -------
    summary : dict
    quality : DataFrame
        One row per year: reports read, excluded by organisation (also per
        organisation in the summary), outside the analysed years, outside the
        linkage window; persons, persons dropped (only on left-out
        registers); missing and conflicting covariate values.
    """
    all_years = sorted(set(years) | set(int(y) for y in mapped["report_year"]) | set(int(y) for y in records["year"]))
    q = pd.DataFrame(index=pd.Index(all_years, name="year"))
    q["reports_read"] = mapped.groupby("report_year").size()
    q["reports_excluded"] = mapped[mapped["register"] == EXCLUDE].groupby("report_year").size()
    outside = episodes[~episodes["year"].isin(years)]
    q["reports_outside_years"] = outside.groupby(outside["report_date"].dt.year).size()
    late = episodes[~episodes["in_window"]]
    q["reports_outside_window"] = late.groupby(late["report_date"].dt.year).size()
    in_years = records[records["year"].isin(years)]
    on_any = in_years[list(registers)].sum(axis=1) > 0
    q["persons_in_reports"] = in_years.groupby("year").size()
    q["persons_dropped_registers"] = in_years[~on_any].groupby("year").size()
    q["persons"] = kept.groupby("year").size()
    for c in COVARIATES:
        q[f"missing_{c}"] = kept[kept[c].isna()].groupby("year").size()
        q[f"conflicts_{c}"] = kept[kept[f"conflict_{c}"]].groupby("year").size()
    q = q.fillna(0).astype(int)
    excluded = (
        mapped[mapped["register"] == EXCLUDE]
        .groupby(["report_year", "organisation"])
        .size()
        .rename("reports")
        .reset_index()
    )
    summary = {
        "years": [int(y) for y in years],
        "reference_years": [int(y) for y in reference_years],
        "registers": list(registers),
        "counts_per_year": {str(y): {k: int(v) for k, v in row.items()} for y, row in q.iterrows()},
        "excluded_reports_per_organisation": [
            {"year": int(r.report_year), "organisation": r.organisation, "reports": int(r.reports)}
            for r in excluded.itertuples()
        ],
        "partial_records": [
            {
                "year": int(r.year),
                "organisation": r.organisation,
                "register": r.register,
                "records": int(r.total),
                "used": bool(r.used),
            }
            for r in agg_counts.itertuples()
        ],
    }
    return summary, q


def read_inputs(p) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read and validate the register map, reports and aggregates named in ``p``.

    ``p.reports`` and ``p.aggregates`` may each be a file, a list of files or
    a folder (:func:`inputs.input_paths`). A broken register map does not stop
    the other files from being checked (only their organisations are not).

    Parameters
    ----------
    p : Params

    Returns
    -------
    register_map, reports, aggregates : DataFrame

    Raises
    ------
    inputs.InputError
        With every violation of every file at once.
    """
    opts = read_options(p)
    fmt = dict(encoding=opts.encoding, separator=opts.separator)
    problems: list[inputs.Violation] = []
    notes: list[str] = []
    register_map = reports = aggregates = None
    try:
        register_map = inputs.read_register_map(p.register_map, **fmt)
    except inputs.InputError as exc:
        problems.extend(exc.violations)
        notes.extend(exc.notes)
    try:
        reports = inputs.read_reports(p.reports, register_map, **fmt)
    except inputs.InputError as exc:
        problems.extend(exc.violations)
        notes.extend(exc.notes)
    try:
        aggregates = (
            inputs.read_aggregates(p.aggregates, register_map, **fmt)
            if p.aggregates is not None
            else inputs.empty_aggregates()
        )
    except inputs.InputError as exc:
        problems.extend(exc.violations)
        notes.extend(exc.notes)
    if problems:
        raise inputs.InputError(problems, notes)
    return register_map, reports, aggregates


def data_decisions(
    register_map: pd.DataFrame, reports: pd.DataFrame, aggregates: pd.DataFrame, choice: YearChoice, min_persons: int
) -> list[str]:
    """Notes for the data decisions: how each file was read, files and rows read,
    years left out (file names only: the notes are published)."""
    notes = list(register_map.attrs.get("notes", [])) + list(reports.attrs.get("notes", []))
    notes += list(aggregates.attrs.get("notes", []))
    if choice.left_out:
        listed = ", ".join(f"{y} ({n} person{'s' if n != 1 else ''})" for y, n in choice.left_out)
        notes.append(
            f"years left out: {listed}, fewer than {min_persons} persons in the reports, too few to be "
            f"modelled as a year; {choice.persons_left_out} person(s) left out in all (these are "
            f"usually persons whose earlier reports went into the aggregates, or stray dates)"
        )
    return notes


def build(p) -> PrepResult:
    """Data preparation in memory: read, validate and build, writing nothing.

    ``mse run`` calls this before it makes a run folder, so that bad input is
    refused with nothing half-written.

    Parameters
    ----------
    p : Params
        Uses reports, aggregates, register_map, years, registers, covariates,
        linkage_window_days, reference_years (and :func:`read_options`).

    Returns
    -------
    PrepResult

    Raises
    ------
    inputs.InputError
        With every violation of the input files.
    YearsError
        When the years or reference years cannot be analysed (a ValueError).
    """
    opts = read_options(p)
    register_map, reports, aggregates = read_inputs(p)
    mapped = map_registers(reports, register_map)
    records, episodes = person_records(mapped, p.linkage_window_days)
    registers, covariates = list(p.registers), list(p.covariates)
    on_chosen = records[records[registers].sum(axis=1) > 0]
    choice = choose_years(
        on_chosen.groupby("year").size().to_dict(),
        aggregates["year"],
        p.years,
        p.reference_years,
        min_persons=opts.min_persons_per_year,
    )
    years, reference_years = list(choice.years), list(choice.reference_years)
    in_years = records[records["year"].isin(years)]
    kept = in_years[in_years[registers].sum(axis=1) > 0]
    persons = person_level_file(kept, registers, covariates)
    agg_in = aggregates[aggregates["year"].isin(years)]
    partial, agg_counts = partial_records(agg_in, register_map, registers, covariates)
    summary, quality = summarise(mapped, episodes, records, kept, agg_counts, years, reference_years, registers)
    summary["aggregate_rows_outside_years"] = int(len(aggregates) - len(agg_in))
    summary["notes"] = data_decisions(register_map, reports, aggregates, choice, opts.min_persons_per_year)
    again = re_reports(episodes, kept, registers, p.linkage_window_days)
    summary["re_reports"] = again.to_dict()
    summary["notes"] += again.notes()
    summary["years_left_out"] = [{"year": int(y), "persons": int(n)} for y, n in choice.left_out]
    summary["min_persons_per_year"] = int(opts.min_persons_per_year)
    summary["files_read"] = {
        "reports": [{"file": Path(f).name, "rows": int(n)} for f, n in reports.attrs.get("files", [])],
        "aggregates": [{"file": Path(f).name, "rows": int(n)} for f, n in aggregates.attrs.get("files", [])],
    }
    mapped = mapped.merge(episodes[["report_id", "year", "in_window"]], on="report_id", how="left")
    return PrepResult(
        persons=persons,
        partial=partial,
        summary=summary,
        reports=mapped,
        aggregates=aggregates,
        register_map=register_map,
        quality=quality,
    )


def run_stage(p, work_dir: Path) -> PrepResult:
    """Data preparation for one run: read, validate, build (:func:`build`), write.

    Parameters
    ----------
    p : Params
        Uses reports, aggregates, register_map, years, registers, covariates,
        linkage_window_days, reference_years.
    work_dir : Path
        Created; receives ``persons.parquet``, ``partial.parquet`` and
        ``prep_summary.json``.

    Returns
    -------
    PrepResult

    Raises
    ------
    inputs.InputError
        With every violation of the input files (nothing is written).
    YearsError
        When the years or reference years cannot be analysed (a ValueError).
    """
    result = build(p)
    runfolder.write_preparation(work_dir, result.persons, result.partial, result.summary)
    log.info(
        "data preparation: %d person records, %d partial records, years %s",
        len(result.persons),
        len(result.partial),
        result.summary["years"],
    )
    return result
