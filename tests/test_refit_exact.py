"""The lattice path's Newton iteration (issue 14's warm refit): exact, not only fast.

The lattice Newton works on every cell of the binary lattice (stored as high bits,
level, low bits), takes the score as ``X'y - X'mu`` from one buffer of superset sums
that also gives the information, and keeps the table's own ``X'y`` with the design.
These tests check each of those pieces against the dense design and the fits
against statsmodels and the dense path, on sparse and dense random tables, for
drops and additions of terms, cold and warm, with and without a many-level factor.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_loglinear import REL, random_table, statsmodels_fit

from mse_helpers.engine.design import Design
from mse_helpers.engine.fit import _LatticeNewton, fit_model
from mse_helpers.engine.status import FitStatus

#: (factors of the random table, the design's factors): the many-level factor last,
#: first among the factors, or absent (a lattice of one level).
SHAPES = [
    ({"S": ["F", "M"], "J": [2016, 2017, 2018, 2019]}, ["S", "J"]),
    ({"J": [2016, 2017, 2018], "S": ["F", "M"]}, ["J", "S"]),
    ({"S": ["F", "M"], "U": ["S", "O"]}, ["S", "U"]),
]


def designs(seed: int, shape: int, size: float) -> tuple[Design, Design]:
    """The dense and the lattice design of one random table (five lists, so the lattice
    has an odd number of bits on one side of the high/low split)."""
    factors, names = SHAPES[shape]
    t = random_table(np.random.default_rng(seed), 5, factors, size=size)
    lists = list("ABCDE")
    dense = Design(t, lists, names, three_factor=["A:B:C"])
    lattice = Design(t, lists, names, three_factor=["A:B:C"], lattice=True)
    assert lattice.uses_lattice and not dense.uses_lattice
    return dense, lattice


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_newton_pieces_equal_the_dense_design(shape):
    _, d = designs(40 + shape, shape, 10.0)
    rng = np.random.default_rng(41)
    cols = d.columns(d.terms("all2") + ("A:B:C",))
    X, X0 = d.X_obs[:, cols], d.X_unobs[:, cols]
    L = d.lattice_model(cols)
    kernel = _LatticeNewton(L, d.y)
    np.testing.assert_allclose(kernel.xty, d.y @ X, rtol=1e-13, atol=1e-10)
    beta = rng.normal(0, 0.3, cols.size)
    eta = kernel.eta(beta)
    np.testing.assert_allclose(eta[L.flat_obs], X @ beta, rtol=0, atol=1e-12)
    assert np.all(eta[L.flat_unobs] == 0.0)  # the unobserved cells are left out ...
    assert np.all(np.sort(np.concatenate([L.flat_obs, L.flat_unobs])) == np.arange(eta.size))
    mu = kernel.mu(eta)
    assert np.all(mu[L.flat_unobs] == 0.0)  # ... of mu, exactly
    np.testing.assert_allclose(kernel.fitted(mu), np.exp(X @ beta), rtol=1e-12)
    m = np.exp(X @ beta)
    np.testing.assert_allclose(kernel.score(mu), (d.y - m) @ X, rtol=1e-9, atol=1e-9)
    H = (X * m[:, None]).T @ X
    c = kernel.factor(mu)
    np.testing.assert_allclose(np.tril(c) @ np.tril(c).T, H, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(kernel.loglik(beta, eta, mu), d.y @ (X @ beta) - m.sum(), rtol=1e-13)
    # the unobserved cells' linear predictor is not on the lattice vector: m0 stays X0 beta
    assert X0.shape[0] == L.flat_unobs.size


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_warm_refits_equal_statsmodels_and_the_dense_path(seed, shape):
    size = [3.0, 15.0, 60.0][seed % 3]  # sparse to dense
    dense, lat = designs(500 + 10 * shape + seed, shape, size)
    rng = np.random.default_rng(seed)
    for _ in range(20):  # a random parent model that has an MLE
        base = tuple(t for t in lat.terms("all2") if rng.random() < 0.5)
        parent = fit_model(lat, base)
        if parent.ok:
            break
    assert parent.ok
    drop = base[int(rng.integers(len(base)))]
    add = next(t for t in lat.candidate_terms if t not in base)
    for terms in (tuple(t for t in base if t != drop), lat.terms(list(base) + [add])):
        if fit_model(dense, terms).status != FitStatus.OK:
            continue
        warm = fit_model(lat, terms, start=parent.params, check=False)
        cold_dense = fit_model(dense, terms, check=False)
        res, n_hat = statsmodels_fit(dense, terms)
        assert warm.ok
        assert warm.llf == pytest.approx(res.llf, rel=REL) and warm.n_hat == pytest.approx(n_hat, rel=REL)
        assert warm.llf == pytest.approx(cold_dense.llf, rel=1e-11)
        assert warm.n_hat == pytest.approx(cold_dense.n_hat, rel=1e-9)
        # the fitted values are those of the returned coefficients
        np.testing.assert_allclose(warm.fitted, np.exp(lat.X_obs[:, warm.cols] @ warm.beta), rtol=1e-12)


def test_other_counts_do_not_reuse_the_tables_own_sums():
    dense, lat = designs(77, 0, 12.0)
    terms = lat.terms("A:B,B:C,C:J,A:S")
    own = fit_model(lat, terms)  # keeps the table's own X'y with the design
    rng = np.random.default_rng(78)
    y2 = rng.poisson(lat.y + 0.5).astype(float)
    other = fit_model(lat, terms, counts=y2, start=own.params, check=False)
    res, n_hat = statsmodels_fit(dense, terms, y=y2)
    assert other.llf == pytest.approx(res.llf, rel=REL) and other.n_hat == pytest.approx(n_hat, rel=REL)
    assert other.n_hat != pytest.approx(own.n_hat, rel=1e-6)
    # the same counts in another array: the same fit as the table's own
    again = fit_model(lat, terms, counts=lat.y.copy())
    assert again.llf == pytest.approx(own.llf, rel=1e-13) and again.n_hat == pytest.approx(own.n_hat, rel=1e-12)
    assert fit_model(lat, terms).n_hat == pytest.approx(own.n_hat, rel=1e-13)
