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

The ``profile`` interval pools each model's profile-likelihood interval of the
group's N (:func:`engine.profile.group_profile_intervals`) on the log scale of
the dark number (:func:`pool_profile`): each model's two half-widths
``log(dark_k) - log(L_k - n_obs_k)`` and ``log(U_k - n_obs_k) - log(dark_k)``
become within variances ``(half / z)^2`` of log(dark) (z = 1.96), one per side
(the profile interval is not symmetric); each side is pooled by Rubin's rules
with the between-model variance of log(dark_k), back-transformed and added to
n_obs. With one model it is that model's profile interval; an open upper bound
of any model leaves the pooled upper bound open (``inf``).

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
from scipy.special import ndtri

INTERVALS = ("rubin-t", "log-scale", "profile")


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
        log(n_hat - n_obs)); for ``interval="profile"`` also ``profile_lower``
        and ``profile_upper`` (the model's profile-likelihood bounds of N;
        ``inf`` or NaN upper: open).
    by : sequence of str
        Columns identifying a group, e.g. ``["year", "group"]``.
    interval : {"rubin-t", "log-scale", "profile"}
        Which interval to report in ``lower``/``upper``. Only ``profile``
        accepts a single model per group (then ``var_between`` is 0 and the
        interval that model's profile interval).
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
    extra = {"log-scale": {"var_within_log"}, "profile": {"profile_lower", "profile_upper"}}.get(interval, set())
    need = {"n_obs", "n_hat", "var_within", *by} | extra
    missing = need - set(per_model.columns)
    if missing:
        raise ValueError(f"pool_estimates: missing columns {sorted(missing)}")
    rows = []
    for key, g in per_model.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        if interval == "profile" and len(g) == 1:
            res = _single(float(g["n_hat"].iloc[0]), float(g["var_within"].iloc[0]))
        else:
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
        lr = _log_dark(g, level) if "var_within_log" in g.columns and len(g) > 1 else None
        if interval == "log-scale":
            if lr is None:
                raise ValueError(
                    f"log-scale interval: a model estimates no dark number (or no finite "
                    f"within variance of its log) for group {key}"
                )
            row["lower"] = n_obs + np.exp(lr["lower"])
            row["upper"] = n_obs + np.exp(lr["upper"])
            row["df"] = lr["df"]
        elif interval == "profile" and g["profile_lower"].isna().any():
            # a model's profile bound did not converge (the bootstrap stage logs which): no interval
            row["lower"] = row["upper"] = row["df"] = np.nan
        elif interval == "profile":
            pr = pool_profile(g["n_obs"], g["n_hat"], g["profile_lower"], g["profile_upper"], level)
            row["lower"], row["upper"], row["df"] = pr["lower"], pr["upper"], pr["df"]
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


def _single(q: float, w: float) -> dict[str, float]:
    """Rubin's quantities of one model: no between-model variance."""
    return {
        "estimate": q,
        "var_within": w,
        "var_between": 0.0,
        "var_total": w,
        "df": np.inf,
        "lower": np.nan,
        "upper": np.nan,
    }


def pool_profile(
    n_obs: Sequence[float],
    n_hat: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    level: float = 0.95,
) -> dict[str, float]:
    """Pool M models' profile-likelihood intervals of one group's N on the log scale of the dark number.

    Per model k, with ``d_k = log(n_hat_k - n_obs_k)``, the profile interval
    ``[L_k, U_k]`` gives two within variances of ``d``:
    ``((d_k - log(L_k - n_obs_k)) / z)^2`` below and
    ``((log(U_k - n_obs_k) - d_k) / z)^2`` above (``z`` the normal quantile
    of ``level``). Each side is pooled by Rubin's rules with the between
    variance B of the d_k: ``T = mean W + (1 + 1/M) B``, Rubin's degrees of
    freedom, ``t`` quantile; the bounds are ``mean(n_obs) + exp(mean d -+ t sqrt(T))``.
    With M = 1 (B = 0, normal quantile) they are the model's own bounds.

    Parameters
    ----------
    n_obs, n_hat, lower, upper : sequence of float
        Per model: observed persons of the group, the Poisson N-hat, and the
        profile bounds of N (an upper bound ``inf`` or NaN: open).
    level : float
        Confidence level (that of the profile intervals).

    Returns
    -------
    dict
        ``lower``, ``upper`` (``inf`` when any model's upper bound is open),
        ``df`` (the smaller of the two sides' degrees of freedom), ``var_between``.

    Raises
    ------
    ValueError
        Unequal lengths, no model, a lower bound that is missing or not
        between n_obs and N-hat, or N-hat not above n_obs.
    """
    n_obs, n_hat, lower, upper = (np.asarray(v, dtype=float) for v in (n_obs, n_hat, lower, upper))
    m = n_obs.size
    if m == 0 or not (n_hat.size == lower.size == upper.size == m):
        raise ValueError("pool_profile: need one n_obs, n_hat, lower and upper per model")
    upper = np.where(np.isnan(upper), np.inf, upper)
    if not (np.all(n_hat > n_obs) and np.all(lower > n_obs) and np.all(lower <= n_hat) and np.all(upper >= n_hat)):
        raise ValueError(
            "pool_profile: every model needs n_obs < lower <= n_hat <= upper (a profile interval around a dark number)"
        )
    d = np.log(n_hat - n_obs)
    z = float(ndtri(0.5 + level / 2.0))
    b = float(d.var(ddof=1)) if m > 1 else 0.0
    out = {"var_between": b}
    dfs = []
    for side, half in (("lower", d - np.log(lower - n_obs)), ("upper", np.log(upper - n_obs) - d)):
        if not np.all(np.isfinite(half)):
            out[side] = np.inf
            continue
        w = float(np.mean((half / z) ** 2))
        t_var = w + (1 + 1 / m) * b
        df = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2 if b > 0 else np.inf
        crit = float(stats.t.ppf(0.5 + level / 2.0, df)) if np.isfinite(df) else z
        sign = -1.0 if side == "lower" else 1.0
        out[side] = float(n_obs.mean() + np.exp(d.mean() + sign * crit * np.sqrt(t_var)))
        dfs.append(df)
    out["df"] = min(dfs)
    return out
