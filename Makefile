# rbg_flows: `make dev` runs the whole thing locally, `make test` runs every test.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STATE  ?= .rbg

.PHONY: install sim-build helm-build sim dev down test chaos unit lint bench-sim bench-deploy bench-upgrade bench-scale bench-placement bench-failover bench-chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

sim-build: install  ## build (first time) or find the cached control plane, etcd, kubectl and LWS
	$(BIN)/rbg-flows sim build

# Helm for the chart test (tests/unit/test_helm.py), built once from its Go module into the sim's cache
# (about 2 minutes on 2 cores the first time, then a cache hit). HELM_VERSION is read by the test too.
HELM_VERSION ?= v3.22.0
HELM_CACHE   ?= $(or $(RBG_SIM_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rbg-flows)/helm-$(HELM_VERSION)

helm-build: $(HELM_CACHE)/helm  ## build (first time) or find the cached helm

$(HELM_CACHE)/helm: | install
	mkdir -p $(HELM_CACHE)/tmp
	GOBIN=$(HELM_CACHE)/tmp CGO_ENABLED=0 \
	  "$$($(BIN)/python -c 'from rbg_flows.sim.build import find_go; print(find_go())')" install \
	  -ldflags '-s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)' \
	  helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(HELM_CACHE)/tmp/helm $@ && rmdir $(HELM_CACHE)/tmp

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

test: lint sim-build helm-build  ## lint and import contracts, then every test: unit, workflow, replay, integration
	$(BIN)/pytest -n 2 tests/unit tests/workflows tests/replay
	$(BIN)/pytest tests/integration tests/chaos

# Every chaos scenario, RBG_CHAOS_RUNS times each (make test runs the short form: one run of the
# scenarios the integration tests do not cover already). bench/chaos.py prints the table.
RBG_CHAOS_RUNS ?= 5
chaos: sim-build  ## kill -9 of the worker and the watcher, Temporal paused, mid-operation: nothing lost or twice
	RBG_CHAOS_RUNS=$(RBG_CHAOS_RUNS) RBG_CHAOS_SCENARIOS=all $(BIN)/pytest tests/chaos

unit: install
	$(BIN)/pytest tests/unit

lint: install  ## ruff, mypy, and the import contracts (layers run one way)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench-sim: sim-build
	$(BIN)/python bench/sim.py

bench-deploy: sim-build
	$(BIN)/python bench/deploy.py

bench-upgrade: sim-build
	$(BIN)/python bench/upgrade.py

bench-scale: sim-build
	$(BIN)/python bench/scale.py

bench-placement: install  ## placement quality and decision time (pure: no cluster)
	$(BIN)/python bench/placement.py

bench-failover: sim-build  ## pod failure -> group Ready again, and coordinated scale 0 -> (30, 10)
	$(BIN)/python bench/failover.py

bench-chaos: sim-build  ## the chaos table: 50 runs of each scenario (--quick: 5)
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(STATE) bench/results
