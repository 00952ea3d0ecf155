# Two commands on a fresh machine: `make demo` and `make test` (README.md).
# Each creates .venv if missing; the first run installs everything (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, from a range that 2.13.0 satisfies (a CPU wheel where one is provided).
	$(BIN)/python -m pip install "torch>=2.4,<2.14" ninja "setuptools>=64" wheel
	# torch-scatter/torch-cluster compile against that torch: no build isolation.
	$(BIN)/python -m pip install --no-build-isolation torch-scatter torch-cluster
	$(BIN)/python -m pip install --no-build-isolation -e ".[test]"
	touch $@

# The demo writes to data/demo/ (not the committed results in data/) and replaces its own earlier run.
demo: $(STAMP)
	$(BIN)/sparse-universe scale --max-n 1e5 --out data/demo --overwrite
	$(BIN)/sparse-universe train --iterations 100 --out data/demo --overwrite
	$(BIN)/sparse-universe double-slit --out data/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

# The documentation site (API reference from the docstrings), warnings as errors: docs/_build/html/index.html.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(BIN)/sparse-universe scale --max-n 1e6 --out data --overwrite

lint: $(STAMP)
	$(BIN)/ruff check sparse_universe tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build
