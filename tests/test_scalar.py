"""engine/scalar.py against scipy.optimize, whose routines it ports (scipy is the oracle here)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from mse_helpers.engine.scalar import bounded_minimum, brent_root

ROOTS = [
    (lambda x: x**2 - 2.0, 0.0, 2.0),
    (lambda x: x**3 - 2 * x - 5, 2.0, 3.0),
    (lambda x: math.exp(x) - 10.0, -5.0, 10.0),
    (lambda x: math.cos(x) - x, 0.0, 1.0),
    (lambda x: math.tanh(50 * (x - 0.3)), -1.0, 1.0),  # steep: bisection steps
    (lambda x: (x - 1e4) * 1e-6, 0.0, 1e6),  # large scale
    (lambda x: -((x - 7.5) ** 3), 0.0, 20.0),  # decreasing, flat at the root
]


@pytest.mark.parametrize("f, a, b", ROOTS)
@pytest.mark.parametrize("xtol, rtol", [(2e-12, 4 * np.finfo(float).eps), (1e-6, 1e-14), (1e-3, 1e-10)])
def test_brent_root_is_scipys_brentq(f, a, b, xtol, rtol):
    try:
        theirs = optimize.brentq(f, a, b, xtol=xtol, rtol=rtol)
    except RuntimeError:  # scipy does not converge in 100 iterations (the flat cubic at 2e-12): nor do we
        with pytest.raises(RuntimeError, match="no convergence in 100"):
            brent_root(f, a, b, xtol=xtol, rtol=rtol)
        return
    ours = brent_root(f, a, b, xtol=xtol, rtol=rtol)
    # the same operations in the same order: the same float (a tolerance would hide a changed step)
    assert ours == theirs
    assert abs(f(ours)) <= abs(f(ours + 10 * max(xtol, rtol * abs(ours)))) or f(ours) == 0


def test_brent_root_endpoints_and_errors():
    assert brent_root(lambda x: x - 1.0, 1.0, 3.0) == 1.0
    assert brent_root(lambda x: x - 3.0, 1.0, 3.0) == 3.0
    with pytest.raises(ValueError, match="different signs"):
        brent_root(lambda x: x * x + 1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        brent_root(lambda x: math.nan, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="no convergence"):
        brent_root(lambda x: math.tanh(50 * (x - 0.3)), -1.0, 1.0, maxiter=3)


MINIMA = [
    (lambda x: (x - 2.0) ** 2, 0.0, 5.0),
    (lambda x: -math.log(x) + x / 3.0, 0.1, 20.0),  # minimum at 3
    (lambda x: math.cosh(x - 0.7), -4.0, 4.0),
    (lambda x: abs(x - 1.25) ** 1.5, 0.0, 10.0),  # not smooth at the minimum
    (lambda x: x, 2.0, 9.0),  # minimum on the lower bound
    (lambda x: -(x**0.5), 2.0, 9.0),  # on the upper bound
    (lambda x: (x - 12345.6) ** 2 * 1e-4, 10000.0, 30000.0),
]


@pytest.mark.parametrize("f, lo, hi", MINIMA)
@pytest.mark.parametrize("xatol", [1e-5, 1e-10, 1e-3])
def test_bounded_minimum_is_scipys_bounded_minimize_scalar(f, lo, hi, xatol):
    x, fx = bounded_minimum(f, lo, hi, xatol=xatol)
    res = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    assert x == float(res.x) and fx == float(res.fun)


def test_bounded_minimum_refuses_bad_bounds():
    with pytest.raises(ValueError, match="finite lower <= upper"):
        bounded_minimum(lambda x: x, 3.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        bounded_minimum(lambda x: x, 0.0, math.inf)


def test_estimate_on_a_table_does_not_import_scipy_optimize():
    """The start-up budget of `mse estimate` (docs/engine.md 7a): a profile interval without scipy.optimize."""
    table = Path(__file__).parent / "fixtures" / "published" / "UKdat_5.csv"
    code = (
        "import sys, contextlib, io\n"
        "from mse_helpers.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    main(['estimate', {str(table)!r}])\n"
        "print('profile-likelihood interval' in buf.getvalue(), 'scipy.optimize' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]
