"""Write a notebook skeleton with the project's parameters cell (used once per notebook).

Usage: python scripts/make_notebook.py notebooks/NN_name.ipynb "Title"
"""

import sys

import nbformat

PARAMS = """# Parameters. `mse run` replaces this cell; these defaults run quickly on the bundled data.
params_file = None  # None: the project's defaults, data/defaults.yaml
overrides = {"m": 3, "maxit": 5, "bootstrap": 20, "three_factor_candidates": 5}
run_dir = "../reports/lab"  # the run folder; intermediate files go to its work/ sub-folder"""

SETUP = '''from pathlib import Path

from mse_helpers.runner.params import load_params

p = load_params(params_file, overrides)
run_dir = Path(run_dir).resolve()
work_dir = run_dir / "work"'''


def main(path, title):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cell = nbformat.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), cell, nbformat.v4.new_code_cell(SETUP)]
    nbformat.write(nb, path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
