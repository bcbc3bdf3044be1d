"""Shared pieces of the tests: quick run settings and tiny notebooks for the runner."""

import nbformat

#: ``mse run`` settings for a quick end-to-end run (minutes, not the study's hour).
QUICK = [
    "--set",
    "m=2",
    "--set",
    "maxit=2",
    "--set",
    "bootstrap=10",
    "--set",
    "three_factor_candidates=3",
    "--set",
    "resamples=3",  # the default uncertainty: boot-impute repeats the analysis on this many resamples
]


def write_notebook(path, params: str, *cells: str) -> None:
    """A notebook with a tagged parameters cell ``params`` and code ``cells``, kernel python3."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    par = nbformat.v4.new_code_cell(params)
    par.metadata["tags"] = ["parameters"]
    nb.cells = [par] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
