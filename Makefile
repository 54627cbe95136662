# rbg_flows: `make dev` runs the whole thing locally, `make test` runs every test.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STATE  ?= .rbg

.PHONY: install sim-build sim dev down test unit lint bench-sim bench-deploy bench-upgrade clean

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

KUBECTL = $(BIN)/rbg-flows sim kubectl --

dev: sim-build  ## Temporal + sim + worker + watcher, apply the PD example, watch it become Ready
	$(BIN)/rbg-flows dev up --state-dir $(STATE)
	KUBECONFIG=$(STATE)/kubeconfig $(KUBECTL) apply -f examples/pd-disaggregation.yaml
	@KUBECONFIG=$(STATE)/kubeconfig $(KUBECTL) get rbg -w & pid=$$!; \
	  KUBECONFIG=$(STATE)/kubeconfig $(KUBECTL) wait --for=condition=Ready rbg/pd-demo --timeout=300s; \
	  kill $$pid 2>/dev/null; \
	  echo; echo "Temporal UI: http://127.0.0.1:8233/namespaces/default/workflows?query=RbgName%3D%22pd-demo%22"; \
	  echo "kubectl:     source $(STATE)/env; $(KUBECTL) get rbg,sts,deploy,pods"; \
	  echo "stop:        $(BIN)/rbg-flows dev down --state-dir $(STATE)"

down:
	$(BIN)/rbg-flows dev down --state-dir $(STATE)

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

bench-deploy: sim-build
	$(BIN)/python bench/deploy.py

bench-upgrade: sim-build
	$(BIN)/python bench/upgrade.py

clean:
	rm -rf $(STATE) bench/results
