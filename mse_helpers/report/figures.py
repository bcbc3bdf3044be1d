"""Figures of the report as matplotlib Figures (counts only).

Every function builds its own :class:`matplotlib.figure.Figure` (not pyplot's
global figure manager), so a notebook only displays the figure and never needs
``plt.close``; the single-panel figures also draw into a given ``ax``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..codes import COVARIATE_NAMES, COVARIATES, LEVEL_NAMES, REGISTERS
from . import tables


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given axes and its figure, or a new :class:`Figure` (no pyplot state) with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def overlap_upset(persons: pd.DataFrame, year: int, max_combinations: int = 20) -> Figure:
    """UpSet-style figure of register combinations in one year.

    Bars: persons per combination (largest first); dots below: which
    registers the combination contains.

    Parameters
    ----------
    persons : DataFrame
        Person-level file.
    year : int
    max_combinations : int
        Combinations shown (the rest are summed in the title).

    Returns
    -------
    matplotlib.figure.Figure
    """
    combos = tables.register_combinations(persons, year)
    shown = combos.iloc[:max_combinations]
    regs = [g for g in REGISTERS if g in persons.columns]
    fig = Figure(figsize=(max(6, 0.45 * len(shown) + 2), 5))
    ax_bar, ax_dot = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
    x = np.arange(len(shown))
    ax_bar.bar(x, shown.to_numpy(), color="0.3")
    for xi, v in zip(x, shown.to_numpy()):
        ax_bar.text(xi, v, str(int(v)), ha="center", va="bottom", fontsize=7)
    ax_bar.set_ylabel("persons")
    rest = int(combos.iloc[max_combinations:].sum())
    ax_bar.set_title(
        f"{year}: persons per register combination"
        + (f" ({rest} persons in {len(combos) - len(shown)} smaller combinations not shown)" if rest else "")
    )
    for yi, g in enumerate(regs):
        member = np.array([g in c.split("+") for c in shown.index])
        ax_dot.scatter(x[~member], np.full((~member).sum(), yi), color="0.85", s=30)
        ax_dot.scatter(x[member], np.full(member.sum(), yi), color="0.1", s=30)
    for xi, c in zip(x, shown.index):
        ys = [regs.index(g) for g in c.split("+") if g in regs]
        if len(ys) > 1:
            ax_dot.plot([xi, xi], [min(ys), max(ys)], color="0.1", lw=1.5)
    ax_dot.set_yticks(range(len(regs)), regs)
    ax_dot.set_xticks([])
    ax_dot.set_ylim(-0.5, len(regs) - 0.5)
    fig.tight_layout()
    return fig


def register_sizes_plot(persons: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Persons per register and year as grouped bars.

    Parameters
    ----------
    persons : DataFrame
        Person-level file.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (default: a new figure of its own).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.
    """
    sizes = tables.register_sizes(persons)
    regs = [g for g in REGISTERS if g in sizes.index]
    data = sizes.loc[regs]
    fig, ax = _figure_and_axes(ax, (7, 3.5))
    width = 0.8 / max(1, data.shape[1])
    for k, year in enumerate(data.columns):
        ax.bar(np.arange(len(regs)) + k * width, data[year].to_numpy(), width, label=str(year))
    ax.set_xticks(np.arange(len(regs)) + 0.4 - width / 2, regs)
    ax.set_ylabel("persons")
    ax.set_title("Persons per register and year")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- results figures (notebook 04): study Figures 4, 5, 6 and the ratios -----------------------

OBSERVED_STYLE = dict(color="black", marker="o", lw=1.5)
ESTIMATED_COLOR = "tab:blue"
PUBLISHED_COLOR = "tab:orange"


def _group_rows(est: pd.DataFrame, group: str) -> pd.DataFrame:
    """Rows of one group for the single years, in year order, with an int ``x``."""
    rows = est[(est["group"] == group) & est["year"].str.fullmatch(r"\d{4}")]
    rows = rows.assign(x=rows["year"].astype(int)).sort_values("x")
    if rows.empty:
        raise ValueError(f"estimates: no yearly rows for group {group}")
    return rows


def _interval_name(est: pd.DataFrame) -> str:
    kinds = sorted(set(est["interval"].astype(str))) if "interval" in est.columns else []
    return "95% interval" + (f" ({', '.join(kinds)})" if kinds else "")


def _band(ax, rows: pd.DataFrame, color, label: str | None) -> None:
    ax.fill_between(
        rows["x"], rows["lower"].astype(float), rows["upper"].astype(float), color=color, alpha=0.2, lw=0, label=label
    )


def _year_axis(ax, years) -> None:
    ax.set_xticks(list(years))
    ax.set_xlabel("year")
    ax.set_ylim(bottom=0)


def _clear_legends(fig: Figure, axes, *, gap: float = 0.03) -> None:
    """Raise each axes' y limit so that what it draws stays below its legend.

    A legend in a corner of the axes would otherwise hide the upper end of an interval band
    (the first years' bounds are often the highest). The legend boxes are measured after one
    layout pass, in axes fractions, so the head-room fits their real size at any figure size;
    the top of the data is the axes' own data limit (bands, lines and points).
    """
    axes = [ax for ax in axes if ax.get_legend() is not None]
    if not axes:
        return
    fig.draw_without_rendering()
    for ax in axes:
        top = ax.dataLim.y1
        room = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted()).y0 - gap
        y0, y1 = ax.get_ylim()
        if np.isfinite(top) and top > y0 and room > 0.3 and (top - y0) / (y1 - y0) > room:
            ax.set_ylim(y0, y0 + (top - y0) / room)


def figure4(estimates: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Study Figure 4: observed (black) and estimated (blue) victims per year, interval shaded.

    Parameters
    ----------
    estimates : DataFrame
        ``results/estimates.csv`` (exact values; rows of group ``total``).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (default: a new figure of its own).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: line ``observed (n_obs)``, line ``estimated (N-hat)``, one
        shaded band.
    """
    est = tables.check_estimates(estimates)
    rows = _group_rows(est, "total")
    fig, ax = _figure_and_axes(ax, (7, 4))
    _band(ax, rows, ESTIMATED_COLOR, _interval_name(est))
    ax.plot(rows["x"], rows["n_hat"], color=ESTIMATED_COLOR, marker="o", lw=2, label="estimated (N-hat)")
    ax.plot(rows["x"], rows["n_obs"], label="observed (n_obs)", **OBSERVED_STYLE)
    _year_axis(ax, rows["x"])
    ax.set_ylabel("victims")
    ax.set_title("Observed and estimated number of victims per year")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    _clear_legends(fig, [ax])
    return fig


def figure5(estimates: pd.DataFrame, covariates=None) -> Figure:
    """Study Figure 5: estimates per year by each covariate, one panel per covariate.

    Parameters
    ----------
    estimates : DataFrame
    covariates : sequence of str, optional
        Default: every covariate with estimates (four panels for S L N U).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per covariate (2 columns); in each, one line per level with
        its interval shaded.
    """
    est = tables.check_estimates(estimates)
    covs = list(covariates) if covariates is not None else tables.result_covariates(est)
    if not covs:
        raise ValueError("estimates: no covariate groups (the run used no covariates)")
    ncols = 2 if len(covs) > 1 else 1
    nrows = int(np.ceil(len(covs) / ncols))
    fig = Figure(figsize=(5.5 * ncols, 3.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, c in zip(axes.flat, covs):
        for k, level in enumerate(COVARIATES[c]):
            rows = _group_rows(est, f"{c}={level}")
            color = f"C{k}"
            _band(ax, rows, color, None)
            ax.plot(rows["x"], rows["n_hat"], color=color, marker="o", lw=2, label=f"{LEVEL_NAMES[c][level]} ({level})")
        _year_axis(ax, rows["x"])
        ax.set_ylabel("estimated victims")
        ax.set_title(COVARIATE_NAMES[c])
        ax.legend(fontsize=8, loc="upper left")
    for ax in list(axes.flat)[len(covs) :]:
        ax.remove()
    fig.suptitle(f"Estimated victims per year by covariate (shaded: {_interval_name(est)})", fontsize=10)
    fig.tight_layout()
    _clear_legends(fig, fig.axes)
    return fig


#: Figure 6 never has more panels than this (small multiples stay readable).
MAX_PANELS = 12
#: Marker of an earlier source by kind (:data:`tables.PUBLISHED`, :data:`tables.EARLIER_RUN`).
EARLIER_MARKERS = {tables.PUBLISHED: "s", tables.EARLIER_RUN: "D"}


def _families(groups) -> list[tuple[str, tuple[str, ...]]]:
    """Group labels by family: the total, each covariate's levels, each pair of covariates' level pairs.

    Returns
    -------
    list of (str, tuple of str)
        ``(family key, groups)`` in the order total, covariates (code order),
        pairs; the key is ``total``, a covariate code (``U``) or ``S&L``.
    """
    by: dict[str, list[str]] = {}
    for g in groups:
        key = "&".join(tables.parse_group(g)) or "total"
        by.setdefault(key, []).append(g)
    order = sorted(
        by,
        key=lambda k: (
            k != "total",
            k.count("&"),
            [list(COVARIATES).index(c) for c in k.split("&")] if k != "total" else [],
        ),
    )
    return [(k, tuple(sorted(by[k], key=tables.group_sort_key))) for k in order]


def _family_title(key: str) -> str:
    if key == "total":
        return "all victims"
    return " × ".join(COVARIATE_NAMES[c] for c in key.split("&"))


def _earlier_label(kind: str, label: str) -> str:
    return "published estimate (not this run)" if kind == tables.PUBLISHED else f"{label} (earlier run)"


def _draw_earlier(ax, pub: pd.DataFrame, color, labelled: bool) -> None:
    """One group's earlier estimates: single years as open markers with their interval (a run's joined by
    a dashed line), periods as a dashed line at the yearly average with the published range shaded.
    ``labelled``: the artists carry legend labels (a panel of one group; otherwise grey proxies do)."""
    for (kind, label), src in pub.groupby(["kind", "label"], sort=False):
        single = src[src["first_year"] == src["last_year"]].sort_values("first_year")
        if len(single):
            err = np.vstack(
                [(single["n_hat"] - single["lower"]).fillna(0), (single["upper"] - single["n_hat"]).fillna(0)]
            )
            ax.errorbar(
                single["first_year"] + 0.08,  # beside this run's point of the same year
                single["n_hat"],
                yerr=err,
                fmt=EARLIER_MARKERS.get(kind, "s"),
                ls="--" if kind == tables.EARLIER_RUN else "none",
                color=color,
                mfc="white",
                capsize=3,
                lw=1.2,
                label=_earlier_label(kind, label) if labelled else "_earlier",
            )
        for k, r in enumerate(src[src["first_year"] < src["last_year"]].itertuples()):
            x = [r.first_year - 0.4, r.last_year + 0.4]
            name = f"published yearly average {r.year}" if labelled and k == 0 else "_earlier period"
            ax.plot(x, [r.n_hat, r.n_hat], color=color, lw=2.5, ls="--", label=name)
            if np.isfinite(r.lower) and np.isfinite(r.upper):
                ax.fill_between(
                    x,
                    r.lower,
                    r.upper,
                    color=color,
                    alpha=0.12,
                    lw=0,
                    label="published range" if name[0] != "_" else None,
                )


def _source_handles(earlier: pd.DataFrame) -> list:
    """Grey legend entries for the styles of a panel of several groups: this run, each earlier source, a period."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.3", marker="o", lw=2, label="this run (shaded: 95% interval)")]
    for (kind, label), _ in earlier.groupby(["kind", "label"], sort=False):
        marker = EARLIER_MARKERS.get(kind, "s")
        ls = "--" if kind == tables.EARLIER_RUN else "none"
        handles.append(
            Line2D([], [], color="0.3", marker=marker, mfc="white", ls=ls, label=_earlier_label(kind, label))
        )
    if (earlier["first_year"] < earlier["last_year"]).any():
        handles.append(Line2D([], [], color="0.3", lw=2.5, ls="--", label="published yearly average of a period"))
    return handles


def _draw_family(ax, est: pd.DataFrame, earlier: pd.DataFrame, key: str, groups) -> None:
    """One panel of Figure 6: this run (solid, interval shaded) and the earlier estimates of each group.

    A panel of one group is titled by the group (``sexual (U=S)``) and its
    lines are labelled as such; a panel of several names the groups in its
    legend (colours) and the styles with grey entries."""
    years: set[int] = set()
    single = len(groups) == 1
    for k, g in enumerate(groups):
        rows = _group_rows(est, g)
        color = ESTIMATED_COLOR if single else f"C{k}"
        _band(ax, rows, color, f"this run: {_interval_name(est)}" if single else None)
        name = "this run: estimated" if single else tables.group_name(g)
        ax.plot(rows["x"], rows["n_hat"], color=color, marker="o", lw=2, label=name)
        if key == "total":
            ax.plot(rows["x"], rows["n_obs"], label="this run: observed", **OBSERVED_STYLE)
        pub = earlier[earlier["group"] == g]
        _draw_earlier(ax, pub, PUBLISHED_COLOR if single else color, labelled=single)
        years |= set(rows["x"]) | set(pub["first_year"]) | set(pub["last_year"])
    handles, _ = ax.get_legend_handles_labels()
    if not single:
        handles += _source_handles(earlier[earlier["group"].isin(groups)])
    ax.legend(handles=handles, fontsize=6.5, loc="best", framealpha=0.7)
    ax.set_xticks(range(min(years), max(years) + 1))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("victims")
    ax.set_title(
        "all victims" if key == "total" else tables.group_name(groups[0]) if single else _family_title(key),
        fontsize=9,
    )


def figure6(estimates: pd.DataFrame, earlier=None, ax: Axes | None = None, *, max_panels: int = MAX_PANELS) -> Figure:
    """Study Figure 6: the long series, this run's years beside earlier estimates.

    One panel per group family that has earlier estimates: all victims, each
    covariate (its levels as lines), each pair of covariates (its level pairs),
    at most ``max_panels`` panels in two columns (a run folder as source gives 11
    panels for four covariates, under 2,000 px high). In each panel: this run's
    estimates (solid lines, interval shaded; observed in black for all victims)
    and the earlier ones in the same colour, open markers with their interval:
    squares for published figures (labelled *published estimate (not this run)*),
    diamonds joined by a dashed line for an earlier run (labelled with the run,
    e.g. *run 2026-12-03 (earlier run)*). A published period (``2010-2015``) is
    a dashed line at its yearly average, its range shaded.

    Parameters
    ----------
    estimates : DataFrame
        This run's estimates.
    earlier : DataFrame, str or Path, optional
        From :func:`tables.read_earlier_estimates`, or what it reads: a CSV of
        published figures or an earlier run folder; None: the bundled published figures.
    ax : matplotlib.axes.Axes, optional
        Draw only the panel of all victims into this axes.
    max_panels : int
        Families beyond this many are left out (said in the title).

    Returns
    -------
    matplotlib.figure.Figure
    """
    est = tables.check_estimates(estimates)
    if earlier is None or isinstance(earlier, (str, Path)):
        earlier = tables.read_earlier_estimates(earlier)
    if "kind" not in earlier.columns:  # a frame made before sources had a kind: published figures
        earlier = earlier.assign(kind=tables.PUBLISHED, label=tables.PUBLISHED)
    have = set(est.loc[est["year"].str.fullmatch(r"\d{4}"), "group"])
    groups = [g for g in dict.fromkeys(["total"] + list(earlier["group"])) if g in have]
    if not groups:
        raise ValueError("earlier estimates: none of their groups is estimated in this run")
    families = _families(groups)
    if ax is not None:
        fig = ax.figure
        _draw_family(ax, est, earlier, *families[0])
        return fig
    left_out = families[max_panels:]
    families = families[:max_panels]
    ncols = 1 if len(families) == 1 else 2
    nrows = int(np.ceil(len(families) / ncols))
    fig = Figure(figsize=(6.2 * ncols, 3.3 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for a, (key, gs) in zip(axes.flat, families):
        _draw_family(a, est, earlier, key, gs)
    for a in list(axes.flat)[len(families) :]:
        a.remove()
    kinds = [
        "earlier published estimates" if k == tables.PUBLISHED else f"{lb} (an earlier run)"
        for (k, lb), _ in earlier.groupby(["kind", "label"], sort=False)
    ]
    title = f"Long series: this run beside {', '.join(kinds)}; earlier figures are not re-estimated in this run"
    if left_out:
        title += (
            f"\n({len(left_out)} more group families not drawn: {', '.join(_family_title(k) for k, _ in left_out)})"
        )
    fig.suptitle(title, fontsize=10)
    return fig


def ratio_figure(estimates: pd.DataFrame, pairs: bool = True) -> Figure:
    """Ratios N-hat / n_obs per group and year: which groups are most hidden.

    Parameters
    ----------
    estimates : DataFrame
    pairs : bool
        Add a second panel with the pairs of covariate levels (Annex G groups).

    Returns
    -------
    matplotlib.figure.Figure
        Panels: covariate levels, then (``pairs``) pairs of levels. Groups on
        the vertical axis, most hidden (highest mean ratio) on top; one marker
        per year; the dashed line is the ratio of all victims (mean over the years).
    """
    table = tables.ratio_table(estimates, pairs=pairs)
    years = [c for c in table.columns if c not in ("name", "mean")]
    total = table.loc["total", "mean"] if "total" in table.index else np.nan
    parts = [("covariate levels", table[[("&" not in g and g != "total") for g in table.index]])]
    if pairs:
        parts.append(("pairs of covariate levels", table[["&" in g for g in table.index]]))
    parts = [(t, d) for t, d in parts if len(d)]
    heights = [max(2.0, 0.28 * len(d) + 1.2) for _, d in parts]
    fig = Figure(figsize=(8, sum(heights)))
    axes = fig.subplots(len(parts), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (title, d) in zip(axes[:, 0], parts):
        d = d.iloc[::-1]  # highest mean ratio on top
        y = np.arange(len(d))
        for k, year in enumerate(years):
            ax.scatter(d[year], y, color=f"C{k}", s=22, label=year, zorder=3)
        ax.set_yticks(y, d["name"], fontsize=7)
        if np.isfinite(total):
            ax.axvline(total, color="0.4", ls="--", lw=1, label="all victims (mean)")
        ax.set_xlabel("ratio N-hat / n_obs (higher: more hidden)")
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", color="0.9")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Estimated per observed victim, by group and year", fontsize=10)
    fig.tight_layout()
    return fig
