"""Figures of the report as matplotlib Figures (counts only)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import tables
from .codes import REGISTERS


def overlap_upset(persons: pd.DataFrame, year: int, max_combinations: int = 20) -> plt.Figure:
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
    fig, (ax_bar, ax_dot) = plt.subplots(2, 1, figsize=(max(6, 0.45 * len(shown) + 2), 5),
                                         gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
    x = np.arange(len(shown))
    ax_bar.bar(x, shown.to_numpy(), color="0.3")
    for xi, v in zip(x, shown.to_numpy()):
        ax_bar.text(xi, v, str(int(v)), ha="center", va="bottom", fontsize=7)
    ax_bar.set_ylabel("persons")
    rest = int(combos.iloc[max_combinations:].sum())
    ax_bar.set_title(f"{year}: persons per register combination"
                     + (f" ({rest} persons in {len(combos) - len(shown)} smaller combinations not shown)" if rest else ""))
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


def register_sizes_plot(persons: pd.DataFrame) -> plt.Figure:
    """Persons per register and year as grouped bars."""
    sizes = tables.register_sizes(persons)
    regs = [g for g in REGISTERS if g in sizes.index]
    data = sizes.loc[regs]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, data.shape[1])
    for k, year in enumerate(data.columns):
        ax.bar(np.arange(len(regs)) + k * width, data[year].to_numpy(), width, label=str(year))
    ax.set_xticks(np.arange(len(regs)) + 0.4 - width / 2, regs)
    ax.set_ylabel("persons")
    ax.set_title("Persons per register and year")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
