"""Write a notebook skeleton with the project's parameters, setup and last cells (used once per notebook).

Usage: python scripts/make_notebook.py notebooks/NN_name.ipynb "Title"

``--update notebooks/NN_name.ipynb ...`` rewrites only those three cells of existing notebooks
(the parameters cell, the cell after it and the cell tagged ``session-record``, added when missing),
leaving every other cell as it is.
"""

import sys
from pathlib import Path

import nbformat

FIRST = "01_data_preparation"

PARAMS_FIRST = """# Parameters. `mse run` replaces this cell. In JupyterLab these defaults run quickly on the bundled data and
# become the parameters of the exploration (params.yaml in the folder below), which the later notebooks read.
params_file = "synthetic"  # the bundled synthetic data with their truth; None: the exploration's params.yaml
overrides = {"m": 3, "maxit": 5, "bootstrap": 20, "three_factor_candidates": 5}
run_dir = "../reports/lab"  # exploration folder, or a finished run (never changed; writes go to reports/lab/<run>/)"""

PARAMS_LATER = """# Parameters. `mse run` replaces this cell. In JupyterLab this notebook reads the exploration's parameters
# (params.yaml in run_dir, written by the notebook run before it): set them in notebook 01.
params_file = None  # None: the exploration's params.yaml (else the explored run's, else the defaults)
overrides = {}  # only parameters first used here or later (e.g. {"interval": "log-scale"} in 04); kept in params.yaml
run_dir = "../reports/lab"  # exploration folder, or a finished run (never changed; writes go to reports/lab/<run>/)"""

SETUP = """from mse_helpers.runner import lab

# Parameters, folders and the check that the work files read here were made with these parameters and inputs.
session = lab.open_session("{name}", params_file, overrides, run_dir)
p, run_dir, work_dir = session.params, session.run_dir, session.work_dir
if session.note:
    print(session.note)"""

RECORD_TAG = "session-record"
RECORD = """# What the work files written here were made from (work/fingerprints.json), for the next notebooks' check.
recorded = session.record()"""


def params_cell(name):
    cell = nbformat.v4.new_code_cell(PARAMS_FIRST if name == FIRST else PARAMS_LATER)
    cell.metadata["tags"] = ["parameters"]
    return cell


def record_cell():
    cell = nbformat.v4.new_code_cell(RECORD)
    cell.metadata["tags"] = ["remove-from-publication", RECORD_TAG]
    return cell


def main(path, title):
    name = Path(path).stem
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}"),
        params_cell(name),
        nbformat.v4.new_code_cell(SETUP.format(name=name)),
        record_cell(),
    ]
    nbformat.write(nb, path)


def update(path):
    """Rewrite the parameters, setup and last cells of an existing notebook (ids of existing cells kept)."""
    name = Path(path).stem
    nb = nbformat.read(path, as_version=4)
    (i,) = [k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells[i].source = params_cell(name).source
    nb.cells[i + 1].source = SETUP.format(name=name)
    records = [c for c in nb.cells if RECORD_TAG in c.metadata.get("tags", [])]
    if not records:
        cell = record_cell()
        cell.id = f"{RECORD_TAG}-{name[:2]}"
        nb.cells.append(cell)
    else:
        records[0].source = RECORD
    nbformat.write(nb, path)


if __name__ == "__main__":
    if sys.argv[1] == "--update":
        for notebook in sys.argv[2:]:
            update(notebook)
    else:
        main(sys.argv[1], sys.argv[2])
