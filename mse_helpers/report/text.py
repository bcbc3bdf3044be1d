"""The report's text (notebook 04) as Markdown strings built from the run's facts.

Every number in the text comes from the run: the parameters (``Params``),
``work/prep_summary.json`` (data preparation), the register map, and the
estimates and per-model results of the bootstrap stage. Nothing here is a
person-level row: the inputs are counts and estimates only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..codes import COVARIATE_NAMES, COVARIATES, EXCLUDE, REGISTER_NAMES, REGISTERS
from ..stages.uncertainty import (
    AUTO_INTERVAL,
    BOOT_IMPUTE,
    COVERAGE,
    COVERAGE_DEFAULT_RESAMPLES,
    COVERAGE_TARGET,
    RESELECT,
    STUDY,
    UNCERTAINTY,
)
from . import tables

INTERVAL_TEXT = {
    "rubin-t": (
        "The interval shown is Rubin's symmetric t interval, N-hat +- t * sqrt(T), with Rubin's degrees "
        "of freedom: the interval the study reports. Being symmetric, its lower bound can fall below the "
        "observed number n_obs (even below zero for small groups), which is impossible for the true number; "
        "the log-scale interval (parameter `interval: log-scale`) avoids that."
    ),
    "log-scale": (
        "The interval shown is the log-scale interval: the logarithm of the dark number, log(N-hat - n_obs), "
        "is pooled by Rubin's rules, its t interval is transformed back and n_obs added. It is asymmetric "
        "and never falls below the observed number. The study reported the symmetric t interval "
        "(parameter `interval: rubin-t`)."
    ),
    "profile": (
        "The interval shown is the pooled profile-likelihood interval: each model's profile-likelihood "
        "interval of the group's number (the values within 3.84 of the model's maximum log-likelihood) is "
        "turned into a spread of the logarithm of the dark number on each side, pooled by Rubin's rules "
        "with the spread between the models, transformed back and n_obs added. It is asymmetric and never "
        "falls below the observed number. The study reported the symmetric t interval (parameter "
        "`interval: rubin-t`)."
    ),
}

_WAYS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def fmt(value: float) -> str:
    """A publication-rounded estimate with thousands separators (``4,200``)."""
    return f"{tables.publication_round(value):,.0f}"


def interval_range(lower: float, upper: float) -> str:
    """``4,000-7,000``; an upper bound that does not exist (``inf``) in words, never as a number."""
    if np.isposinf(float(upper)):
        return f"{fmt(lower)} or more, no upper bound"
    return f"{fmt(lower)}-{fmt(upper)}"


def fmt_count(value: float) -> str:
    """A count (or mean count) rounded to whole persons (``1,207``)."""
    return f"{float(np.floor(value + 0.5)):,.0f}"


def markdown_table(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a Markdown table (pandas' ``to_markdown`` needs an extra package).

    Parameters
    ----------
    frame : DataFrame
    index : bool
        Show the index (its levels become the first columns).

    Returns
    -------
    str
    """
    shown = frame.reset_index() if index else frame
    head = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    body = [
        "| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    return "\n".join([head, rule] + body)


#: What the interval of ``uncertainty: reselect`` contains (docs/estimation.md 6); :func:`interval_text` adds
#: which interval (``interval: rubin-t`` or ``log-scale``) is shown.
RESELECT_TEXT = (
    "The interval repeats the model selection (parameter `uncertainty: reselect`): for each model, "
    "replicate tables are drawn from the fitted model, the model type's selection is run again on each "
    "replicate (in full, as on the data: backward from all two-factor terms) and every group is estimated with "
    "the model chosen there. The variance of these replicate estimates is the model's within-model variance, "
    "and Rubin's rules pool the models with it. So the interval contains the chance variation of the counts, "
    "the differences between the completed data sets (the imputation of missing values and the linking of the "
    "aggregate records) and the uncertainty of choosing the model."
)

#: The interval itself under ``uncertainty: reselect``, per ``interval``.
RESELECT_INTERVAL = {
    "rubin-t": (
        "The interval shown is Rubin's symmetric t interval with these variances; where its lower end would "
        "fall below the number registered it is raised to n_obs, so it never falls below n_obs."
    ),
    "log-scale": (
        "The interval shown is the log-scale interval: the logarithm of the dark number is pooled the same way, "
        "its t interval transformed back and n_obs added, so it is asymmetric and never falls below n_obs."
    ),
}

#: What the interval of ``uncertainty: boot-impute`` contains (docs/estimation.md 6); :func:`interval_text`
#: adds which interval is shown.
BOOT_IMPUTE_TEXT = (
    "The interval repeats the whole analysis on resampled data (parameter `uncertainty: boot-impute`, "
    "bootstrap-then-impute): the persons of the reports and of the aggregate records are resampled, and on "
    "each resample the records are linked, the missing values imputed, both model types selected anew and "
    "every group estimated. An analysis of variance of these estimates separates the differences between "
    "resamples from the imputation noise within them; the former, with the spread between this run's own "
    "models, is the variance of the estimate. So the interval contains the chance variation of who is "
    "registered, the linking of the aggregate records, the imputation of missing values and the uncertainty "
    "of choosing the model; its degrees of freedom grow with the number of resamples."
)

#: The interval itself under ``uncertainty: boot-impute``, per ``interval``.
BOOT_IMPUTE_INTERVAL = {
    "rubin-t": (
        "The interval shown is the symmetric t interval with this variance, around the run's estimate; where "
        "its lower end would fall below the number registered it is raised to n_obs."
    ),
    "log-scale": (
        "The interval shown is the log-scale interval: the same analysis of variance on the logarithm of the "
        "dark number, its t interval around the run's estimate transformed back and n_obs added, so it is "
        "asymmetric and never falls below n_obs."
    ),
}

#: Per ``uncertainty`` with its own interval texts: (what the interval contains, the interval per ``interval``).
_METHOD_TEXTS = {RESELECT: (RESELECT_TEXT, RESELECT_INTERVAL), BOOT_IMPUTE: (BOOT_IMPUTE_TEXT, BOOT_IMPUTE_INTERVAL)}

#: What no interval of this method contains (docs/estimation.md 6); :func:`interval_limits` adds what the
#: calibration check found for the run's interval.
INTERVAL_LIMITS = (
    "No interval contains the error from assumptions that fail: a population that is not closed within a "
    "year, records of one person that are not linked (or of two persons that are), or a register overlap in "
    "the years with aggregates that differs from the reference years."
)

#: Why ``interval: auto`` chose the interval, per ``uncertainty`` (stages.uncertainty.resolve_interval).
_BETTER_OF_TWO = (
    "of the two intervals of this method in the calibration check, the one that contained the true number more "
    "often on both synthetic generators"
)
AUTO_REASON = {
    RESELECT: _BETTER_OF_TWO,
    BOOT_IMPUTE: _BETTER_OF_TWO,
    STUDY: "the study's own interval, so that the study's method is reproduced exactly",
}

#: How the report names the methods of ``uncertainty``.
_METHOD_NAMES = {
    STUDY: "the study's method",
    RESELECT: "the model selection repeated in every replicate",
    BOOT_IMPUTE: "the whole analysis repeated on resampled data",
}


def _check_method(interval: str, uncertainty: str, table: Mapping[str, str]) -> None:
    if uncertainty not in UNCERTAINTY:
        raise ValueError(f"parameter uncertainty: {uncertainty!r} is not one of {', '.join(UNCERTAINTY)}")
    if interval not in table:
        raise ValueError(
            f"parameter interval: {interval!r} is not one of {', '.join(table)}"
            + (f" with uncertainty: {uncertainty}" if uncertainty != STUDY else "")
        )


def interval_text(interval: str, uncertainty: str = STUDY, asked: str | None = None) -> str:
    """Which interval is shown, and why (``p.interval``, ``p.uncertainty``, ``p.interval_asked``).

    Parameters
    ----------
    interval : str
        The interval used (``Params.interval``: never ``auto``).
    uncertainty : str
        One of ``study``, ``reselect``, ``boot-impute``.
    asked : str, optional
        The parameter as asked (``Params.interval_asked``); ``auto`` adds a
        sentence saying that ``interval: auto`` chose ``interval`` and why.
    """
    intro, table = _METHOD_TEXTS.get(uncertainty, ("", INTERVAL_TEXT))
    _check_method(interval, uncertainty, table)
    text = (intro + " " + table[interval]) if intro else table[interval]
    if asked == AUTO_INTERVAL:
        text += (
            f" This run's interval is {interval}, chosen by `interval: auto` for `uncertainty: {uncertainty}`: "
            f"{AUTO_REASON[uncertainty]} (an explicit `interval` overrides it)."
        )
    return text


def interval_limits(interval: str, uncertainty: str = STUDY) -> str:
    """What the interval does not contain, and the coverage found for this run's interval.

    The coverage quoted is that of the interval actually used, from the
    coverage study's lookup (``stages.uncertainty.COVERAGE``, the numbers of
    docs/estimation.md 6), with the study's method beside it for comparison.

    Parameters
    ----------
    interval : str
        The interval used (``Params.interval``).
    uncertainty : str
        One of ``study``, ``reselect``, ``boot-impute``.

    Returns
    -------
    str
    """
    _check_method(interval, uncertainty, INTERVAL_TEXT)
    found = COVERAGE.get((uncertainty, interval))
    study = COVERAGE[(STUDY, "rubin-t")]
    kind = f"{interval} intervals with {_METHOD_NAMES[uncertainty]} (this run's kind)"
    if found is None:
        covered = (
            f"The {kind} were not part of the calibration check; on synthetic populations with a known truth (50 "
            "of each of two unlike generators, small settings) the study's rubin-t interval contained the true "
            f"number in {study[0]}% (project's generator) and {study[1]}% (second generator) of the yearly groups"
        )
    else:
        default = COVERAGE_DEFAULT_RESAMPLES.get((uncertainty, interval))
        found_text = f"{found[0]}% (project's generator) and {found[1]}% (second generator) of the yearly groups"
        if default is not None:
            found_text += (
                f" with 10 resamples per population, and {default[0]}% and {default[1]}% with the default 40 (a "
                "smaller check: 10 populations of each)"
            )
            found = (min(found[0], default[0]), min(found[1], default[1]))
        covered = (
            "On synthetic populations with a known truth (50 of each of two unlike generators, small settings), "
            f"the project's calibration check found that the 95% {kind} contained the true number in "
            f"{found_text} (target {COVERAGE_TARGET}%"
            + (
                f"; the study's method with its rubin-t interval: {study[0]}% and {study[1]}%"
                if (uncertainty, interval) != (STUDY, "rubin-t")
                else ""
            )
            + ")"
        )
    bias = (
        "mainly because of bias (on the second generator the estimates were on average 17% too low, on the "
        "project's own generator 1% too low overall but 13% too low in the year with aggregates)"
    )
    shown = found or study
    if all(c >= COVERAGE_TARGET for c in shown):
        reading = "."
    elif any(c >= COVERAGE_TARGET for c in shown):
        reading = f": at the target on one generator and below it on the other, {bias}."
    else:
        reading = f": well below 95%, {bias}."
    return INTERVAL_LIMITS + " " + covered + reading


def headline(estimates: pd.DataFrame) -> str:
    """The summary: N-hat, interval, n_obs and ratio per year (and over all years).

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv`` (exact values; rounded here for the text).

    Returns
    -------
    str
        Markdown.
    """
    t6 = tables.table6(estimates, rounded=False)
    est = tables.check_estimates(estimates)
    kinds = sorted(set(est["interval"].astype(str))) if "interval" in est.columns else []
    lines = [
        "Estimated number of victims (N-hat) with its 95% interval"
        + (f" ({', '.join(kinds)})" if kinds else "")
        + ", the number registered (n_obs) and the "
        "ratio N-hat / n_obs:",
        "",
    ]
    for year, r in t6.iterrows():
        label = "All years together" if year == tables.ALL_YEARS else f"{year}"
        lines.append(
            f"- **{label}: {fmt(r['N-hat'])}** ({interval_range(r['lower 95%'], r['upper 95%'])}); "
            f"registered {fmt_count(r['n_obs'])}; ratio {r['ratio']:.1f}"
        )
    return "\n".join(lines)


def reading_guide(registers: Sequence[str] = tuple(REGISTERS), covariates: Sequence[str] = tuple(COVARIATES)) -> str:
    """The short reading guide at the top of the results page (HTML, one paragraph).

    What N-hat, n_obs, the interval and the ratio mean, that the numbering
    follows the 2016-2019 study, and what each code stands for (from
    :mod:`mse_helpers.codes`, so it can never disagree with the tables).
    """
    import html as _html

    regs = ", ".join(f"<b>{g}</b> {_html.escape(REGISTER_NAMES[g].lower())}" for g in registers)
    covs = ", ".join(f"<b>{c}</b> {_html.escape(COVARIATE_NAMES[c])}" for c in covariates)
    return (
        '<div class="mse-guide"><b>How to read this report.</b> <b>N-hat</b> (estimated) is the estimated '
        "number of victims in a year, registered or not; <b>n_obs</b> (registered) the number the registers "
        "saw (in years with imputed records the mean over the completed data sets, shown to whole persons); "
        "the <b>95% interval</b> the range that contains the number with 95% confidence if the model's "
        "assumptions hold; the <b>ratio</b> N-hat / n_obs the number of victims per registered victim "
        "(higher: more hidden). Tables and figures are numbered as in the 2016-2019 study (Table 6, "
        f"Figure 4, Annex G, ...), so the two can be read side by side. Codes: registers {regs}; "
        f"covariates {covs}; <b>J</b> the year.</div>"
    )


def assumptions(registers: Sequence[str]) -> str:
    """The assumptions of the method (docs/method.md 2), for the run's registers."""
    k = len(registers)
    ways = _WAYS.get(k, f"{k}")
    return "\n".join(
        [
            "The estimates rest on four assumptions:",
            "",
            "1. **Closed population per year**: the persons who were exploited in the Netherlands and could have "
            "been registered in that year.",
            "2. **Perfect linkage**: the registration identifies the same person across reports (a pseudonymous "
            "person key).",
            "3. **Homogeneous inclusion probabilities within strata** of the covariates, for at least one register.",
            f"4. **No highest-order interaction among the registers**: with {k} registers only the {ways}-way "
            "interaction must be absent; dependencies between registers (referrals) are modelled by interaction "
            "terms.",
        ]
    )


def method(p, n_models: int | None = None, n_years: int | None = None) -> str:
    """The method as run: imputation, log-linear models, selection, bootstrap, pooling.

    Parameters
    ----------
    p : Params
        Uses registers, covariates, m, maxit, three_factor_candidates, bootstrap, interval.
    n_models : int, optional
        Models actually pooled (``n_models`` of the estimates); default 2m.
    n_years : int, optional
        Number of analysed years (for the size of the table).

    Returns
    -------
    str
        Markdown.
    """
    n_models = 2 * p.m if n_models is None else int(n_models)
    regs = ", ".join(f"{g} ({REGISTER_NAMES[g]})" for g in p.registers)
    covs = ", ".join(f"{c} ({COVARIATE_NAMES[c]})" for c in p.covariates) or "none"
    cells = 2 ** len(p.registers) * 2 ** len(p.covariates) * (n_years or 1)
    size = (
        f"{2 ** len(p.registers)} x {2 ** len(p.covariates)} x {n_years} = {cells:,} cells"
        if n_years
        else f"{2 ** len(p.registers)} x {2 ** len(p.covariates)} cells per year"
    )
    return "\n".join(
        [
            "**Multiple Systems Estimation.** Every registered person is on one or more of the registers "
            f"{regs}. The pattern of overlaps between the registers tells how many victims were on none of them "
            "(the dark number). The estimated number of victims is the registered number plus the estimated dark "
            "number.",
            "",
            f"**Multiple imputation.** Missing covariate values, and the registers of the records made from aggregate "
            f"counts, are filled in by chained equations (logistic regressions with the coefficients drawn from their "
            f"posterior, as R `mice` does), {p.maxit} iterations, giving {p.m} completed data sets. The aggregate "
            "records are linked to the person-level records anew for every data set, so the uncertainty of the "
            "linking is part of the variation between data sets.",
            "",
            f"**Log-linear models.** For each completed data set, the persons are counted by register pattern, "
            f"covariates ({covs}) and year ({size}). A Poisson log-linear model is fitted to the observed cells; its "
            "fitted value for the unobserved cell (on no register) of each stratum is the estimated dark number "
            "there. Estimates for a group (a year, a covariate level, a pair of levels) are sums over its strata. "
            "Before a model is fitted or compared, the existence of its maximum likelihood estimate is checked "
            "(a linear-programming test and a rank test); a model that fails is never selected.",
            "",
            "**Model selection, two model types per data set.** The two-factor model starts from all two-factor "
            "interactions and removes terms one at a time while that lowers AIC; the three-factor model adds "
            f"three-factor terms to it one at a time while that lowers BIC, from the {p.three_factor_candidates} "
            "terms that did best in a screening on one data set (hierarchy respected).",
            "",
            _uncertainty_paragraph(p, n_models),
        ]
    )


def _uncertainty_paragraph(p, n_models: int) -> str:
    """The method's paragraph on the interval, for the run's ``uncertainty``."""
    uncertainty = getattr(p, "uncertainty", STUDY)
    asked = getattr(p, "interval_asked", None)
    if uncertainty == BOOT_IMPUTE:
        return (
            f"**Uncertainty.** The estimate is the mean over the {n_models} models (Rubin's point estimate). "
            f"Its variance comes from {p.resamples} resamples of the data, each analysed in full with "
            f"{p.resample_imputations} completed data sets. " + interval_text(p.interval, uncertainty, asked)
        )
    head = (
        f"**Uncertainty.** For each of the {n_models} models, a parametric bootstrap with {p.bootstrap} "
        "replicates (complete tables drawn from the fitted model, refitted) gives the within-model variance "
        "of every estimate. "
        if uncertainty == STUDY
        else f"**Uncertainty.** For each of the {n_models} models, {p.reselect_replicates} replicates with "
        "the model selection repeated give the within-model variance of every estimate. "
    )
    return (
        head + f"Rubin's rules pool the {n_models} models: the estimate is the mean over the models, the "
        "total variance is the mean within-model variance plus (1 + 1/M) times the variance between the models. "
        + interval_text(p.interval, uncertainty, asked)
    )


def _organisations_by_register(register_map: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for reg in list(REGISTERS) + [EXCLUDE]:
        orgs = register_map.loc[register_map["register"] == reg, "organisation"].tolist()
        if orgs:
            rows.append(
                {
                    "register": reg if reg == EXCLUDE else f"{reg} ({REGISTER_NAMES[reg]})",
                    "organisations": len(orgs),
                    "names": ", ".join(sorted(orgs)),
                }
            )
    return pd.DataFrame(rows)


def data_decisions(summary: Mapping, register_map: pd.DataFrame, p) -> str:
    """The data decisions of this run: mapping, exclusions, aggregates, linking.

    Parameters
    ----------
    summary : mapping
        ``work/prep_summary.json`` (years, reference_years,
        excluded_reports_per_organisation, partial_records, counts_per_year).
    register_map : DataFrame
        ``organisation, register`` (the run's register map; counts only).
    p : Params
        Uses registers, covariates, linkage_window_days, linking.

    Returns
    -------
    str
        Markdown with tables.
    """
    years = [int(y) for y in summary["years"]]
    out = [
        f"**Years analysed:** {', '.join(map(str, years))}. **Registers:** {' '.join(p.registers)}"
        + (
            f" (left out: {' '.join(g for g in REGISTERS if g not in p.registers)})"
            if len(p.registers) < len(REGISTERS)
            else ""
        )
        + f". **Covariates:** {' '.join(p.covariates) or 'none'}.",
        "",
    ]
    out += [
        "**Mapping.** Every reporting organisation is mapped to one register by the register map; several "
        "units of one organisation are one register. Organisations mapped to `exclude` are left out:",
        "",
        markdown_table(_organisations_by_register(register_map), index=False),
        "",
    ]
    excl = pd.DataFrame(summary.get("excluded_reports_per_organisation", []))
    if len(excl):
        wide = excl.pivot_table(
            index="organisation", columns="year", values="reports", aggfunc="sum", fill_value=0
        ).astype(int)
        wide.columns = [str(c) for c in wide.columns]
        wide["total"] = wide.sum(axis=1)
        out += [
            f"Reports of excluded organisations (by year of the report date; {int(wide['total'].sum()):,} in all):",
            "",
            markdown_table(wide),
            "",
        ]
    else:
        out += ["No reports were excluded.", ""]
    counts = summary.get("counts_per_year", {})
    persons = {y: counts.get(str(y), {}).get("persons") for y in years}
    if all(v is not None for v in persons.values()):
        out += [
            f"**One record per person.** A person counts in the year of the first report; the registers are "
            f"all registers that reported the person within {p.linkage_window_days} days. Persons in the "
            "person-level file: " + "; ".join(f"{y}: {persons[y]:,}" for y in years) + ".",
            "",
        ]
    partial = pd.DataFrame(summary.get("partial_records", []))
    if len(partial):
        used = partial[partial["used"].astype(bool)] if "used" in partial.columns else partial
        unused = partial[~partial["used"].astype(bool)] if "used" in partial.columns else partial.iloc[:0]
        per_year = used.groupby("year")["records"].sum()
        table = used[["year", "organisation", "register", "records"]].sort_values(["year", "organisation"])
        out += [
            "**Aggregates and partial records.** Organisations that sent only totals (GDPR) give one partial "
            "record per counted person, with a 1 on their register; covariates constant within the "
            "organisation-year are known, at most one other is assigned, the rest are missing and imputed. "
            "Partial records per year: " + "; ".join(f"{y}: {n:,}" for y, n in per_year.items()) + ".",
            "",
            markdown_table(table, index=False),
            "",
        ]
        if len(unused):
            out += [
                f"Aggregate rows not used (register left out of this run): {len(unused)} "
                f"({int(unused['records'].sum()):,} persons).",
                "",
            ]
        ref = summary.get("reference_years", [])
        how = (
            "the number of the year's persons on each combination of registers is drawn anew for every "
            "completed data set, around the reference years' shares and with the spread of what is not known "
            "about the year (proper multiple imputation, parameter `linking: draw`), so the intervals carry "
            "the uncertainty of this assumption"
            if p.linking == "draw"
            else "the reference years' shares fix the number on each combination of registers, as in the study "
            "(parameter `linking: expected`), so the intervals do not carry the uncertainty of this assumption"
        )
        out += [
            f"**Linking.** A partial record is either a person already in the file (on other registers) or a "
            f"new person. It is decided so that the register's overlap with the other registers looks like "
            f"that in the reference years {', '.join(map(str, ref))}: {how}. Which persons are linked is "
            "random and redone with its own seed for every completed data set.",
            "",
        ]
    else:
        out += ["**Aggregates.** No aggregate counts in this run: all records are person-level reports.", ""]
    outside = summary.get("aggregate_rows_outside_years")
    if outside:
        out += [f"Aggregate rows outside the analysed years (not used): {outside}.", ""]
    for note in summary.get("notes", []):
        out += [f"Note: {note}", ""]
    return "\n".join(out).rstrip()


def parameters(p) -> str:
    """The run's parameters as a Markdown table (input files by name only)."""
    rows = []
    for key, value in p.to_dict().items():
        if key in p.input_files() or key in ("reports", "aggregates", "register_map", "truth", "earlier_estimates"):
            value = "none" if value is None else str(value).replace("\\", "/").rsplit("/", 1)[-1]
            if key == "earlier_estimates" and value == "none":
                value = f"none (default: {tables.PUBLISHED_ESTIMATES.name}, the published Dutch figures)"
        elif isinstance(value, list):
            value = " ".join(map(str, value)) if value else "none"
        elif value is None:
            value = "from the data"
        rows.append({"parameter": key, "value": value})
    return markdown_table(pd.DataFrame(rows), index=False)


def bootstrap_failures(failed: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap replicates per model: succeeded and failed (never averaged in).

    Parameters
    ----------
    failed : DataFrame
        ``BootstrapResult.failed`` (one row per model of models.json, with
        ``status``) or ``work/bootstrap.parquet`` (one row per pooled model and
        group): ``model``, ``dataset``, ``type``, ``n_boot_ok``, ``n_boot_failed``.

    Returns
    -------
    DataFrame
        One row per model; ``status`` too when given.
    """
    need = ["model", "dataset", "type", "n_boot_ok", "n_boot_failed"]
    missing = [c for c in need if c not in failed.columns]
    if missing:
        raise ValueError(f"bootstrap results per model: missing column(s) {', '.join(missing)}")
    cols = need + [c for c in ("status", "reason", "failed_statuses") if c in failed.columns]
    return failed[cols].drop_duplicates("model").sort_values("model").reset_index(drop=True)


#: Statuses of the bootstrap and refit in words (the codes stay in the review pages and work files).
STATUS_WORDS: dict[str, str] = {
    "ok": "fitted",
    "mle_does_not_exist": "the maximum likelihood estimate does not exist",
    "not_converged": "the fit did not converge",
    "did_not_converge": "the fit did not converge",
}


def status_words(status) -> str:
    """A status code (``"mle_does_not_exist"``, or ``"not used: refit status ..."``) in words."""
    text = str(status)
    for code, words in STATUS_WORDS.items():
        if code in text and code != "ok":
            return ("not used: " if text.startswith("not used") else "") + words
    return text.replace("_", " ")


def failed_statuses_words(failed_statuses) -> str:
    """``"mle_does_not_exist:3;not_converged:1"`` -> ``"3: no maximum likelihood estimate; 1: ..."``."""
    if failed_statuses is None or (not isinstance(failed_statuses, str) and pd.isna(failed_statuses)):
        return ""
    parts = []
    for item in str(failed_statuses).replace(",", ";").split(";"):
        code, _, n = item.strip().rpartition(":")
        if not code:
            code, n = n, ""
        if code or n:
            parts.append((f"{n} replicates: " if n else "") + status_words(code))
    return "; ".join(parts)


def bootstrap_failures_text(failed: pd.DataFrame) -> str:
    """The models with failed bootstrap replicates, in words (Markdown list; ``""`` when none failed)."""
    if failed is None or not len(failed):
        return ""
    fails = bootstrap_failures(failed)
    bad = fails[(fails["n_boot_failed"] > 0) | (fails.get("status", "ok") != "ok")]
    lines = []
    for r in bad.itertuples():
        n_all = int(r.n_boot_ok + r.n_boot_failed)
        why = failed_statuses_words(getattr(r, "failed_statuses", None))
        status = getattr(r, "status", "ok")
        lines.append(
            f"- model {int(r.model)} (data set {int(r.dataset)}, {r.type} model): "
            f"{int(r.n_boot_failed)} of {n_all} bootstrap replicates failed"
            + (f" ({why})" if why else "")
            + ("" if status == "ok" else f"; {status_words(status)}")
            + "."
        )
    return "\n".join(lines)


def reselection_text(reselection: pd.DataFrame | None) -> str:
    """The re-selection bootstrap (``uncertainty: reselect``) in one paragraph: replicates, failures, other models.

    Parameters
    ----------
    reselection : DataFrame or None
        One row per pooled model (:func:`mse_helpers.stages.uncertainty.failed_frame`):
        ``n_rep``, ``n_rep_ok``, ``n_rep_failed``, ``failed_statuses``, ``n_changed``; None
        with ``uncertainty: study`` (then ``""``).

    Returns
    -------
    str
        Markdown; every failed replicate is counted (left out of its model's variance).
    """
    if reselection is None or not len(reselection):
        return ""
    n_models, n_rep = len(reselection), int(reselection["n_rep"].sum())
    failed, changed = int(reselection["n_rep_failed"].sum()), int(reselection["n_changed"].sum())
    text = (
        f"**Model selection repeated.** On {n_rep:,} bootstrap replicates ({n_models} models, "
        f"{n_rep // max(n_models, 1)} each) the model selection was run again; {changed:,} of the "
        f"{n_rep - failed:,} usable replicates selected other terms than the model they were drawn from"
    )
    if failed:
        bad = reselection[reselection["n_rep_failed"] > 0]
        counts: dict[str, int] = {}
        for value in bad["failed_statuses"]:
            for item in str(value).split(";"):
                code, _, n = item.rpartition(":")
                if code:
                    counts[code] = counts.get(code, 0) + int(n)
        why = failed_statuses_words(";".join(f"{c}:{n}" for c, n in sorted(counts.items())))
        text += (
            f". {failed} replicate(s) of {len(bad)} model(s) failed and are left out of those models' "
            f"variances ({why})."
        )
    else:
        text += ". No replicate failed."
    return text


def resampling_text(resampling) -> str:
    """Bootstrap-then-impute (``uncertainty: boot-impute``) in one paragraph: resamples, usable, left out.

    Parameters
    ----------
    resampling : BootImputeResult or None
        :func:`mse_helpers.stages.bootimpute.run_resamples`; None with another
        ``uncertainty`` (then ``""``).

    Returns
    -------
    str
        Markdown; every resample left out is counted with its reason.
    """
    if resampling is None:
        return ""
    est = resampling.estimates
    ok = est[est["status"] == "ok"]
    n_selections = int(ok.drop_duplicates(["resample", "imputation", "type"]).shape[0])
    text = (
        f"**The whole analysis repeated.** {resampling.n_resamples} resamples of the data, each linked, imputed "
        f"({resampling.n_imputations} completed data sets) and with both model types selected anew: "
        f"{n_selections:,} model selections in all; {resampling.n_usable} resamples usable"
    )
    failed = resampling.failed
    if failed:
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(failed.items()))
        return text + f", {sum(failed.values())} left out of the variance ({why})."
    return text + ", none left out."


def caveats(estimates: pd.DataFrame, summary: Mapping, p, failed: pd.DataFrame | None = None) -> str:
    """Caveats of this run's estimates, with their numbers.

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv`` (``var_between``, ``var_total`` used when present).
    summary : mapping
        ``work/prep_summary.json``.
    p : Params
    failed : DataFrame, optional
        ``BootstrapResult.failed`` (or ``work/bootstrap.parquet``): replicates
        and models that failed.

    Returns
    -------
    str
        Markdown list.
    """
    est = tables.check_estimates(estimates)
    items = []
    partial = pd.DataFrame(summary.get("partial_records", []))
    if len(partial):
        if "used" in partial.columns:
            partial = partial[partial["used"].astype(bool)]
        counts = summary.get("counts_per_year", {})
        parts = []
        for y, n in partial.groupby("year")["records"].sum().items():
            persons = counts.get(str(y), {}).get("persons")
            share = f", against {persons:,} persons from person-level reports" if persons else ""
            parts.append(f"{y}: {n:,} partial records{share}")
        items.append(
            "**Years with aggregates are partly imputed** (" + "; ".join(parts) + "). Their registers "
            "and covariates are linked and imputed, so their n_obs is a mean over the completed data "
            "sets and their estimates lean on the assumption that the register overlap resembles the "
            "reference years " + ", ".join(map(str, summary.get("reference_years", []))) + "."
        )
    uncertainty = getattr(p, "uncertainty", "study")
    items.append("**Interval.** " + interval_text(p.interval, uncertainty, getattr(p, "interval_asked", None)))
    items.append(
        "**The intervals are likely too narrow.** "
        + (
            "As in the study, each model's bootstrap refits the *selected* model and does not repeat the "
            "model selection, so the uncertainty of choosing the model is only partly reflected (through the "
            "differences between the data sets' models). "
            if uncertainty == STUDY
            else "The model selection is repeated in every replicate and Rubin's rules allow for the few "
            "completed data sets, but the interval rests on the model-based assumptions below. "
            if uncertainty == RESELECT
            else "The whole analysis is repeated on resampled data, but the interval is centred on an estimate "
            "that rests on the model-based assumptions below. "
        )
        + interval_limits(p.interval, uncertainty)
    )
    yearly = est[est["year"].str.fullmatch(r"\d{4}")]
    below = yearly[yearly["lower"] < yearly["n_obs"]]
    if len(below):
        per_year = below.groupby("year").size()
        shown = below.assign(_k=below["group"].map(tables.group_sort_key)).sort_values(["_k", "year"]).head(8)
        names = ", ".join(f"{r.year} {r.group}" for r in shown.itertuples())
        more = f" and {len(below) - len(shown)} more" if len(below) > len(shown) else ""
        items.append(
            f"**Lower bounds below the observed number** in {len(below)} of {len(yearly)} yearly groups "
            f"(per year: " + "; ".join(f"{y}: {n}" for y, n in per_year.items()) + f"; e.g. {names}{more}): "
            "the true number cannot be below n_obs; read these intervals as wide, or use the "
            "log-scale interval."
        )
    if {"var_between", "var_total"} <= set(est.columns):
        tot = est[(est["group"] == "total") & est["year"].str.fullmatch(r"\d{4}")].sort_values("year")
        share = (
            (1 + 1 / tot["n_models"].astype(float)) * tot["var_between"] / tot["var_total"]
            if "n_models" in tot.columns
            else tot["var_between"] / tot["var_total"]
        )
        items.append(
            "**Model and imputation uncertainty.** Share of the total variance that comes from the "
            "differences between the models (data sets and model types): "
            + "; ".join(f"{y}: {s:.0%}" for y, s in zip(tot["year"], share))
            + "."
        )
    if failed is not None and len(failed):
        fails = bootstrap_failures(failed)
        if "status" in fails.columns and (fails["status"] != "ok").any():
            skipped = fails[fails["status"] != "ok"]
            items.append(
                f"**Models not pooled.** {len(skipped)} of {len(fails)} selected models were left out: "
                + "; ".join(
                    f"model {int(r.model)} (data set {int(r.dataset)}, {r.type}): {status_words(r.status)}"
                    for r in skipped.itertuples()
                )
                + "."
            )
            fails = fails[fails["status"] == "ok"]
        n_fail, n_all = int(fails["n_boot_failed"].sum()), int((fails["n_boot_ok"] + fails["n_boot_failed"]).sum())
        text = (
            f"**Bootstrap.** {n_fail:,} of {n_all:,} bootstrap replicates failed the existence check or did "
            "not converge; they are left out, never averaged in"
        )
        if n_fail:
            worst = fails.sort_values("n_boot_failed", ascending=False).iloc[0]
            text += (
                f" (most in model {int(worst['model'])}: data set {int(worst['dataset'])}, {worst['type']}, "
                f"{int(worst['n_boot_failed'])} failed)"
            )
        items.append(text + ".")
    items.append("**Rounding.** " + tables.ROUNDING_RULE)
    sens = ", ".join(f"`{a}`" for a in getattr(p, "sensitivity", ()))
    items.append(
        "**Assumptions.** The assumptions of the method cannot be tested from the registration alone"
        + (
            f"; the sensitivity analyses of this run ({sens}, model selection notebook) show how much "
            "the estimates move when registers or covariates are left out."
            if sens
            else "."
        )
    )
    return "\n".join(f"- {i}" for i in items)


def validation(validation_table: pd.DataFrame) -> str:
    """The validation against the truth file, in words (synthetic data only).

    Parameters
    ----------
    validation_table : DataFrame
        From :func:`tables.validation_table`.

    Returns
    -------
    str
        Markdown.
    """
    v = validation_table[validation_table["n_hat"].notna()]
    yearly = v[v["year"] != tables.ALL_YEARS]
    tot = yearly[yearly["group"] == "total"].sort_values("year")
    lines = [
        f"A truth file was supplied (synthetic data), so the true numbers are known. The 95% intervals contain the true number "
        f"in {int(yearly['covered'].sum())} of {len(yearly)} yearly groups "
        f"({yearly['covered'].mean():.0%}); the mean relative error of N-hat is "
        f"{yearly['relative_error'].mean():+.1%} (mean absolute {yearly['relative_error'].abs().mean():.1%}).",
        "",
        "True total versus estimate per year:",
        "",
    ]
    for r in tot.itertuples():
        lines.append(
            f"- {r.year}: true {r.n_true:,.0f}, estimated {fmt(r.n_hat)} ({interval_range(r.lower, r.upper)}), "
            + ("inside" if r.covered else "**outside**")
            + " the interval"
        )
    missing = validation_table[validation_table["n_hat"].isna()]
    if len(missing):
        lines += [
            "",
            f"{len(missing)} truth rows have no estimate in this run (groups not estimated): "
            + ", ".join(f"{r.year} {r.group}" for r in missing.itertuples())
            + ".",
        ]
    return "\n".join(lines)
