# The two commands a newcomer needs: `make report` and `make test`.
# Every install step lives here, so that a clean clone (and CI) works.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The notebooks ask for kernel `python3`; JUPYTER_PATH makes that the venv's kernel
# even when the user has another `python3` kernel installed for themselves.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter
# The engine factorises small (~90x90) matrices thousands of times: threaded BLAS
# only adds overhead there; parallelism comes from joblib across data sets.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

.PHONY: report test unit lint docs notebooks lab venv requirements benchmark clean-venv pdf

# The bundled synthetic data with their truth (data/synthetic.yaml names it).
report: $(STAMP)
	$(VENV)/bin/mse run --params data/synthetic.yaml

# report.pdf of a run (default: the newest in reports/) with headless Chromium; says how to install it when missing.
RUN ?=
pdf: $(STAMP)
	$(PY) scripts/screenshot_report.py $(RUN) --pdf-only --require

test: $(STAMP)
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider notebooks

# The unit tests without the slow ones (each of those runs the whole pipeline).
unit: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# Lint and format check (rules in pyproject.toml); `ruff format .` fixes the layout.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# API reference from the docstrings into docs/api/ (git-ignored).
docs: $(STAMP)
	$(VENV)/bin/pdoc --docformat numpy -o docs/api mse_helpers

notebooks: $(STAMP)
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider notebooks

# Extra options for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8899".
# JupyterLab refuses to run as root unless told; in a container the user often is root.
LAB_ARGS ?=
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_ARG) $(LAB_ARGS) notebooks

venv: $(STAMP)

# Re-created only when requirements.txt or pyproject.toml change (or .venv is missing).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mse)" >/dev/null
	touch $(STAMP)

# Re-resolve the pins from requirements.in (needs the package index).
requirements:
	rm -rf .venv-resolve
	$(PYTHON) -m venv .venv-resolve
	.venv-resolve/bin/pip install --quiet -r requirements.in
	{ echo "# Exact pins of everything installed in .venv (generated from requirements.in by 'make requirements')."; \
	  .venv-resolve/bin/pip freeze --all --exclude pip --exclude setuptools; } > requirements.txt
	rm -rf .venv-resolve

benchmark: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
