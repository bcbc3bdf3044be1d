"""Test set-up shared by every test module."""

import os

# The engine factorises small matrices thousands of times; threaded BLAS makes
# that ~100x slower on a 2-core machine (docs/engine.md). Set before numpy loads,
# so that `pytest` run outside `make` is as quick as `make test`.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
