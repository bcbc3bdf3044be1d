"""Multiple Systems Estimation of hidden populations: statistics and I/O.

The notebooks in ``notebooks/`` call into this package; every computation lives
here so that it can be tested. See ``README.md`` for the pipeline and
``docs/method.md`` for the method.
"""

__version__ = "0.1.0"
