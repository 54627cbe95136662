# rbg_flows: `make dev` runs the whole thing locally, `make test` runs every test.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STATE  ?= .rbg

.PHONY: install sim-build sim test unit integration lint bench-sim clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

sim-build: install  ## build (first time) or find the cached control plane, etcd, kubectl and LWS
	$(BIN)/rbg-flows sim build

sim: sim-build  ## the local cluster in the foreground (Ctrl-C stops it)
	$(BIN)/rbg-flows sim serve --kubeconfig $(STATE)/kubeconfig --state-dir $(STATE)/sim

test: sim-build  ## every test: unit, then integration against the sim and a real Temporal dev server
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-sim: sim-build
	$(BIN)/python bench/sim.py

clean:
	rm -rf $(STATE) bench/results
