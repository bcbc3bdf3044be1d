"""Root and minimum of a function of one variable: Brent's methods, without ``scipy.optimize``.

Why this module exists: importing ``scipy.optimize`` costs about 0.1 s, a fifth of the
0.5 s start-up budget of ``mse estimate`` on a small table (docs/engine.md 7a), and the
multinomial profile interval (:func:`.profile.profile_interval`) needs only two scalar
searches. These are line-for-line ports of scipy's own routines, so the numbers are the
same as ``scipy.optimize.brentq`` and ``minimize_scalar(method="bounded")`` give (tests
compare them: ``tests/test_scalar.py``):

- :func:`brent_root`: Brent's root finder in scipy's ``brentq.c`` (Charles Harris's
  version of Brent 1973, inverse quadratic interpolation with bisection safeguards);
- :func:`bounded_minimum`: scipy's ``_minimize_scalar_bounded`` (Brent's golden-section
  search with parabolic steps, as ``fminbound``).

scipy is BSD-licensed (Copyright (c) 2001-2002 Enthought, Inc. 2003-2024, SciPy Developers).
"""

from __future__ import annotations

import math
from typing import Callable

#: scipy's defaults: ``xtol`` of brentq, the smallest ``rtol`` it accepts (4 eps)
XTOL = 2e-12
RTOL = 4 * 2.220446049250313e-16


def brent_root(
    f: Callable[[float], float],
    a: float,
    b: float,
    *,
    xtol: float = XTOL,
    rtol: float = RTOL,
    maxiter: int = 100,
) -> float:
    """A root of ``f`` in ``[a, b]``, where ``f(a)`` and ``f(b)`` differ in sign.

    Parameters
    ----------
    f : callable
        Float -> float, continuous on ``[a, b]``.
    a, b : float
        The bracket.
    xtol, rtol : float
        The root is found to ``xtol + rtol * |x|``.
    maxiter : int
        Iterations before giving up.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``f(a)`` and ``f(b)`` have the same sign, or ``f`` returns NaN.
    RuntimeError
        No convergence within ``maxiter`` iterations.
    """
    if xtol <= 0 or rtol < RTOL:
        raise ValueError(f"brent_root: xtol must be > 0 and rtol >= {RTOL:g}, got {xtol:g}, {rtol:g}")

    def call(x: float) -> float:
        value = float(f(x))
        if math.isnan(value):
            raise ValueError(f"brent_root: the function is NaN at x = {x!r}")
        return value

    xpre, xcur = float(a), float(b)
    fpre, fcur = call(xpre), call(xcur)
    if fpre * fcur > 0:
        raise ValueError(f"brent_root: f(a) and f(b) must have different signs (f({a})={fpre}, f({b})={fcur})")
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    xblk = fblk = spre = scur = 0.0
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and (math.copysign(1.0, fpre) != math.copysign(1.0, fcur)):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)  # interpolate
            else:
                dpre = (fpre - fcur) / (xpre - xcur)  # extrapolate
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):
                spre, scur = scur, stry  # good short step
            else:
                spre = scur = sbis  # bisect
        else:
            spre = scur = sbis  # bisect
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = call(xcur)
    raise RuntimeError(f"brent_root: no convergence in {maxiter} iterations (last x = {xcur!r})")


def _sign(x: float) -> float:
    """numpy's ``sign(x) + (x == 0)``: 1 for x >= 0, -1 below."""
    return 1.0 if x >= 0 else -1.0


def bounded_minimum(
    f: Callable[[float], float],
    lower: float,
    upper: float,
    *,
    xatol: float = 1e-5,
    maxiter: int = 500,
) -> tuple[float, float]:
    """The minimum of ``f`` on ``[lower, upper]`` (Brent's method, as scipy's bounded ``minimize_scalar``).

    Parameters
    ----------
    f : callable
        Float -> float; a local minimum is found (the global one for a unimodal ``f``).
    lower, upper : float
        Finite bounds, ``lower <= upper``.
    xatol : float
        Absolute tolerance of the minimiser.
    maxiter : int
        Function evaluations before stopping (the last point is returned, as scipy does).

    Returns
    -------
    x, fx : float
        The minimiser and ``f(x)``.
    """
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
        raise ValueError(f"bounded_minimum: need finite lower <= upper, got {lower}, {upper}")
    sqrt_eps = math.sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - math.sqrt(5.0))
    a, b = float(lower), float(upper)
    fulc = a + golden_mean * (b - a)
    nfc = xf = fulc
    rat = e = 0.0
    x = xf
    fx = float(f(x))
    num = 1
    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:  # try a parabola
            golden = False
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r, e = e, rat
            if abs(p) < abs(0.5 * q * r) and p > q * (a - xf) and p < q * (b - xf):
                rat = (p + 0.0) / q
                x = xf + rat
                if (x - a) < tol2 or (b - x) < tol2:
                    rat = tol1 * _sign(xm - xf)
            else:
                golden = True
        if golden:
            e = (a - xf) if xf >= xm else (b - xf)
            rat = golden_mean * e
        x = xf + _sign(rat) * max(abs(rat), tol1)
        fu = float(f(x))
        num += 1
        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if fu <= fnfc or nfc == xf:
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif fu <= ffulc or fulc == xf or fulc == nfc:
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= maxiter:
            break
    return xf, fx
