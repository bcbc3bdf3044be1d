"""Rubin's rules over the M = 2m fitted models (docs/method.md section 7).

Each model k (a completed data set and a model type) gives, per group g, a
point estimate N_hat_k(g) and a within-model variance W_k(g) (the variance of
its parametric bootstrap estimates). Pooling:

- Q = mean of the N_hat_k, W = mean of the W_k, B = variance of the N_hat_k,
- T = W + (1 + 1/M) B,
- Rubin's degrees of freedom nu = (M - 1) (1 + W / ((1 + 1/M) B))^2,
- interval Q +- t_{nu, 0.975} sqrt(T) (``rubin-t``, the study's).

The ``log-scale`` alternative pools log(N_hat - n_obs), the log of the dark
number, the same way, back-transforms the interval and adds n_obs, so the
interval can never fall below the observed count.

Whatever the interval of N-hat, every pooled row also carries the dark number
``dark`` = N_hat - n_obs (the mean over the models of N_hat_k - n_obs_k) and
its own interval ``dark_lower``/``dark_upper``: the log-scale interval of the
dark number, exp(Rubin's interval of log(N_hat_k - n_obs_k)), which is never
below zero (and ``n_obs + dark_lower`` never below n_obs).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

INTERVALS = ("rubin-t", "log-scale")


def rubin(q: Sequence[float], w: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Pool M estimates and their within variances by Rubin's rules.

    Parameters
    ----------
    q : sequence of float
        The M point estimates.
    w : sequence of float
        Their within (complete-data) variances.
    level : float
        Confidence level of the t interval.

    Returns
    -------
    dict
        ``estimate`` (Q), ``var_within`` (W), ``var_between`` (B),
        ``var_total`` (T), ``df`` (Rubin's nu; ``inf`` when B = 0),
        ``lower`` and ``upper``.
    """
    q = np.asarray(q, dtype=float)
    w = np.asarray(w, dtype=float)
    if q.ndim != 1 or q.shape != w.shape or q.size < 2:
        raise ValueError("rubin: need at least two estimates, each with a within variance")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(w))) or np.any(w < 0):
        raise ValueError("rubin: estimates and within variances must be finite, variances non-negative")
    m = q.size
    qbar = q.mean()
    wbar = w.mean()
    b = q.var(ddof=1)
    t = wbar + (1 + 1 / m) * b
    if b > 0:
        r = (1 + 1 / m) * b / wbar if wbar > 0 else np.inf
        df = (m - 1) * (1 + 1 / r) ** 2
    else:
        df = np.inf
    crit = stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
    half = crit * np.sqrt(t)
    return {
        "estimate": qbar,
        "var_within": wbar,
        "var_between": b,
        "var_total": t,
        "df": df,
        "lower": qbar - half,
        "upper": qbar + half,
    }


def pool_estimates(
    per_model: pd.DataFrame, by: Sequence[str], interval: str = "rubin-t", level: float = 0.95
) -> pd.DataFrame:
    """Pool per-model group estimates into one row per group.

    Parameters
    ----------
    per_model : DataFrame
        One row per model and group, with the ``by`` columns and ``n_obs``,
        ``n_hat``, ``var_within`` (bootstrap variance of n_hat); for
        ``interval="log-scale"`` also ``var_within_log`` (bootstrap variance of
        log(n_hat - n_obs)).
    by : sequence of str
        Columns identifying a group, e.g. ``["year", "group"]``.
    interval : {"rubin-t", "log-scale"}
        Which interval to report in ``lower``/``upper``.
    level : float
        Confidence level.

    Returns
    -------
    DataFrame
        ``by`` columns, ``n_models``, ``n_obs`` (mean over models: with
        imputed records it differs between data sets), ``n_hat``,
        ``var_within``, ``var_between``, ``var_total``, ``df``, ``lower``,
        ``upper``, ``ratio`` (n_hat / n_obs), ``dark`` (n_hat - n_obs),
        ``dark_lower``, ``dark_upper`` (the dark number's log-scale interval,
        whatever ``interval`` is; NaN when ``per_model`` has no
        ``var_within_log``, or, with ``interval="rubin-t"``, when a model
        estimates no dark number for the group or the variance of its log is
        not finite) and ``interval``.

    Raises
    ------
    ValueError
        For an unknown ``interval`` or missing columns; with
        ``interval="log-scale"``, when a model estimates no dark number
        (N_hat_k <= n_obs_k) for a group or its ``var_within_log`` is not finite.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    need = {"n_obs", "n_hat", "var_within", *by} | ({"var_within_log"} if interval == "log-scale" else set())
    missing = need - set(per_model.columns)
    if missing:
        raise ValueError(f"pool_estimates: missing columns {sorted(missing)}")
    rows = []
    for key, g in per_model.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        res = rubin(g["n_hat"], g["var_within"], level)
        n_obs = g["n_obs"].mean()
        row = dict(
            zip(by, key),
            n_models=len(g),
            n_obs=n_obs,
            n_hat=res["estimate"],
            var_within=res["var_within"],
            var_between=res["var_between"],
            var_total=res["var_total"],
            df=res["df"],
            lower=res["lower"],
            upper=res["upper"],
        )
        lr = _log_dark(g, level) if "var_within_log" in g.columns else None
        if interval == "log-scale":
            if lr is None:
                raise ValueError(
                    f"log-scale interval: a model estimates no dark number (or no finite "
                    f"within variance of its log) for group {key}"
                )
            row["lower"] = n_obs + np.exp(lr["lower"])
            row["upper"] = n_obs + np.exp(lr["upper"])
            row["df"] = lr["df"]
        row["ratio"] = row["n_hat"] / n_obs if n_obs > 0 else np.nan
        row["dark"] = row["n_hat"] - n_obs
        row["dark_lower"] = np.exp(lr["lower"]) if lr is not None else np.nan
        row["dark_upper"] = np.exp(lr["upper"]) if lr is not None else np.nan
        row["interval"] = interval
        rows.append(row)
    return pd.DataFrame(rows)


def _log_dark(group: pd.DataFrame, level: float) -> dict[str, float] | None:
    """Rubin's rules on log(N_hat_k - n_obs_k) of one group.

    None when a model estimates no dark number (N_hat_k <= n_obs_k) or its
    ``var_within_log`` is not finite: no log-scale interval exists then.
    """
    dark = (group["n_hat"] - group["n_obs"]).to_numpy(dtype=float)
    if np.any(dark <= 0) or not np.all(np.isfinite(group["var_within_log"].to_numpy(dtype=float))):
        return None
    return rubin(np.log(dark), group["var_within_log"], level)
