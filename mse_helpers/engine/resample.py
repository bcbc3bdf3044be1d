"""The parametric bootstrap of one model (method.md 7 step 1)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from .estimates import n_hat_by
from .fit import Fit, refit


@dataclasses.dataclass
class Bootstrap:
    """Parametric bootstrap of one model.

    Attributes
    ----------
    n_hat : dict
        Grouping key (``"total"`` or the factor names joined by ``,``, e.g.
        ``"J,S"``) -> DataFrame with one row per successful replicate and
        group: ``replicate``, the grouping columns, ``n_hat``.
    n_boot : int
        Replicates drawn.
    n_failed : int
        Replicates whose refit failed the existence / rank check or did not
        converge (never averaged in).
    failed_status : dict
        Status -> number of failed replicates.
    """

    n_hat: dict
    n_boot: int
    n_failed: int
    failed_status: dict

    @staticmethod
    def key(by: Sequence[str] | None) -> str:
        """Key of a grouping in :attr:`n_hat`."""
        return ",".join(by) if by else "total"

    def interval(self, by: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
        """Percentile interval of the bootstrap N-hats (per group when ``by``).

        Returns
        -------
        DataFrame
            Grouping columns, ``lower``, ``upper``, ``n_boot_ok`` (replicates used).
        """
        by = list(by or [])
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        frame = self.n_hat.get(self.key(by))
        if frame is None:
            raise KeyError(f"grouping {by} was not bootstrapped; have {sorted(self.n_hat)}")
        if not len(frame):
            return pd.DataFrame(columns=by + ["lower", "upper", "n_boot_ok"])
        if by:
            g = frame.groupby(by, sort=True)["n_hat"]
            out = pd.DataFrame({"lower": g.quantile(lo), "upper": g.quantile(hi), "n_boot_ok": g.size()})
            return out.reset_index()
        v = frame["n_hat"]
        return pd.DataFrame({"lower": [v.quantile(lo)], "upper": [v.quantile(hi)], "n_boot_ok": [v.size]})


def parametric_bootstrap(fit: Fit, n_boot: int, rng: np.random.Generator,
                         by: Sequence[Sequence[str]] = ((),), check: bool = True) -> Bootstrap:
    """Parametric bootstrap of one model (method.md 7 step 1).

    For each replicate: draw Poisson counts for every cell from the fitted
    model (observed cells from ``fit.fitted``, unobserved cells from ``m0``),
    drop the unobserved cells, refit the same model warm-started from ``fit``,
    and recompute N-hat for each grouping in ``by``. A replicate whose refit
    fails the existence / rank check is counted in ``n_failed`` and left out.

    Parameters
    ----------
    fit : Fit
        An ok fit.
    n_boot : int
        Number of replicates.
    rng : numpy.random.Generator
        E.g. ``seeds.rng(seed, "bootstrap", k)``.
    by : sequence of groupings
        Each a sequence of factor names; ``()`` is the total.
    check : bool
        Check existence of every refit (recommended).

    Returns
    -------
    Bootstrap
    """
    if not fit.ok:
        raise ValueError(f"parametric_bootstrap: the model is not usable (status {fit.status})")
    if n_boot < 1:
        raise ValueError(f"n_boot: must be at least 1, got {n_boot}")
    rows: dict[str, list] = {Bootstrap.key(g): [] for g in by}
    failed: dict[str, int] = {}
    for b in range(n_boot):
        # draw every cell, unobserved included, as the method says; the
        # unobserved draws are dropped (they are what is unknown)
        y_obs = rng.poisson(fit.fitted).astype(float)
        rng.poisson(fit.m0)
        rf = refit(fit, y_obs, check=check, explain=False)
        if not rf.ok:
            failed[rf.status] = failed.get(rf.status, 0) + 1
            continue
        for g in by:
            t = n_hat_by(rf, list(g))[list(g) + ["n_hat"]]
            t.insert(0, "replicate", b)
            rows[Bootstrap.key(g)].append(t)
    frames = {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame(columns=["replicate", "n_hat"]))
              for k, v in rows.items()}
    return Bootstrap(n_hat=frames, n_boot=n_boot, n_failed=sum(failed.values()), failed_status=failed)

