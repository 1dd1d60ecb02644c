# deployflow: two commands matter. `make demo` and `make test` (see README.md; the rest is in docs/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DEPLOYFLOW_HOME := $(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW_CONFIG := $(CURDIR)/airflow.cfg
export PYTHONPATH := $(CURDIR)/plugins
# pip's machine-wide find-links may name folders that do not exist: keep its noise out.
PIP := $(VENV)/bin/pip --disable-pip-version-check --no-input
# What a target needs from the OS, checked (as root: installed; a silent Docker engine started) before any
# slow step; with the system python3, before the venv exists. `python3 scripts/prerequisites.py --table` lists it.
PREREQUISITES := $(PYTHON) scripts/prerequisites.py
CHECKED := images up demo celery-up test test-unit bench-deploy bench-release bench-config bench-faults bench-scale
PORT ?= 8080
SERVICE ?= sample-app
ENVIRONMENT ?= dev
REF ?= HEAD

.PHONY: $(addprefix needs-,$(CHECKED)) help venv test-venv images up demo demo-down report test test-unit k8s-schemas lock clean bench-config bench-deploy bench-release bench-exporter bench-faults bench-judge bench-k8s bench-parse bench-scale bench-view celery-up celery-down kind-e2e

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Listed first among a target's prerequisites, so it runs before the venv (make runs them in order; not with -j).
$(addprefix needs-,$(CHECKED)): needs-%:
	@$(PREREQUISITES) $*

venv: $(VENV)/.installed ## the virtualenv of the demo set (requirements.txt: Airflow, its providers, the stack's libraries)

$(VENV)/.installed: requirements.txt
	@$(PREREQUISITES) venv
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
	touch $@

test-venv: $(VENV)/.installed-test ## the venv plus the tests' and docs' tools (requirements-test.txt)

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PIP) install -q -r requirements.txt -r requirements-test.txt 2> >(grep -v "^WARNING: Location" >&2)
	touch $@

images: needs-images venv ## base image (pulled, else debootstrapped) and the stack's images
	$(PY) -m deployflow.stack images

up: needs-up venv ## start the local stack: registry and Airflow on 127.0.0.1:$(PORT)
	$(PY) -m deployflow.stack up --home $(AIRFLOW_HOME) --port $(PORT)

demo: needs-demo up ## release the sample service through Airflow's REST API and follow it
	$(PY) -m deployflow.client --url http://127.0.0.1:$(PORT) \
	    --password-file $(AIRFLOW_HOME)/simple_auth_manager_passwords.json \
	    release $(SERVICE) --environment $(ENVIRONMENT) --git-ref $(REF) --reason "make demo"; \
	  rc=$$?; \
	  echo; echo "Airflow UI: http://127.0.0.1:$(PORT)  user: admin  password: in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json"; \
	  echo "  (at a terminal: $(PY) -m deployflow.stack password --home $(AIRFLOW_HOME))"; \
	  echo "Stop everything with: make demo-down"; \
	  if [ $$rc -ne 0 ]; then echo; echo "(make exits 2 on any failure: call python -m deployflow.client itself for its own code)"; \
	    $(PY) -m deployflow.client.exit_codes $$rc; fi; exit $$rc

demo-down: ## stop what demo started (Airflow processes by PID, containers by name)
	@if [ -x $(PY) ]; then $(PY) -m deployflow.stack down --home $(AIRFLOW_HOME); fi

report: venv ## DORA and success-rate figures from the ledger (ARGS="--since 2026-11-01 --charts report/ --html report/index.html")
	$(PY) -m deployflow.ledger report $(ARGS)

test: needs-test test-venv images k8s-schemas ## every test: unit, DAG integrity, end-to-end against Docker and Airflow
	$(PY) scripts/run_tests.py

test-unit: needs-test-unit test-venv k8s-schemas ## the fast tests only (no Docker, no Airflow processes)
	$(PY) -m pytest tests/unit tests/dags

# The Gateway API's schemas (HTTPRoute) come from npm; the built-in kinds' from kubernetes-validate (PyPI).
k8s-schemas: tests/k8s/node_modules/.installed

tests/k8s/node_modules/.installed: tests/k8s/package-lock.json
	cd tests/k8s && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Two locks, each from a clean venv: the demo set's, then the tests' tools resolved with it as constraints (so
# both install together unchanged); requirements-test.txt holds only what the tests add.
LOCK_VENV := /tmp/deployflow-lock
FREEZE := $(LOCK_VENV)/bin/pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='
lock: ## rebuild requirements.txt (the demo set) and requirements-test.txt (the tests' tools) in clean venvs
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q -r requirements.in
	{ head -3 requirements.txt; $(FREEZE); } > requirements.txt.new
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q -c requirements.txt.new -r requirements.in -r requirements-test.in
	{ head -4 requirements-test.txt; $(FREEZE) | grep -v -x -F -f requirements.txt.new; } > requirements-test.txt.new
	mv requirements.txt.new requirements.txt && mv requirements-test.txt.new requirements-test.txt
	rm -rf $(LOCK_VENV)

celery-up: needs-celery-up venv images ## the scale-out setup: PostgreSQL, Redis, Airflow's processes, two Celery workers and triggerers (127.0.0.1:27080)
	$(PY) -m deployflow.stack.celery up

celery-down: ## stop what celery-up started
	@if [ -x $(PY) ]; then $(PY) -m deployflow.stack.celery down; fi

clean: demo-down celery-down ## remove the venv, Airflow state and the registry container (images and the registry volume stay)
	@if [ -x $(PY) ]; then $(PY) -m deployflow.stack down --home $(AIRFLOW_HOME) --with-registry; fi
	rm -rf $(VENV) .airflow .airflow-test .workspace .celery

bench-deploy: needs-bench-deploy venv images ## deploy benchmark: failed requests, rollback time, overhead (prints figures)
	$(PY) scripts/bench_deploy.py

bench-release: needs-bench-release venv images ## release breakdown: each task's wall split into Airflow's part and its work, the critical path, net core-seconds (prints figures; ARGS="--releases 3 --json PATH")
	$(PY) scripts/bench_release.py $(ARGS)

bench-config: needs-bench-config venv images ## configuration benchmark: configuration-only releases against image releases, and a bad one rolled back (prints figures)
	$(PY) scripts/bench_config.py

bench-exporter: venv ## release exporter benchmark: one scrape's wall and CPU time on ledgers of 1,000 to 100,000 releases (prints figures)
	$(PY) scripts/bench_exporter.py

bench-faults: needs-bench-faults venv images ## fault benchmark: six faults released under load: outcome, failed requests, time to the good version (prints figures)
	$(PY) scripts/bench_faults.py

bench-judge: venv ## judge benchmark: detection and false-positive rates vs the threshold judge (prints figures)
	$(PY) scripts/bench_judge.py

bench-parse: venv ## DAG parsing of 500 and 2,000 generated services: one file against one per service (prints figures)
	$(PY) scripts/bench_parse.py

bench-scale: needs-bench-scale venv images ## N releases at once on the Celery setup, then the parse figures (prints figures; N=1,10,20,50)
	$(PY) scripts/bench_scale.py $(ARGS)

bench-view: venv ## Releases view: the grid's answer for 500 services x 3 environments and 100,000 ledger rows (prints figures; ARGS="--postgres URL")
	$(PY) scripts/bench_releases_view.py $(ARGS)

bench-k8s: venv ## the kubernetes driver's API calls and time per step (real client, FAKE API server)
	$(PY) scripts/bench_k8s.py

.PHONY: docs docs-serve
docs: test-venv ## build the documentation site, strict (broken links fail), into /tmp/deployflow-site
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir /tmp/deployflow-site

docs-serve: test-venv ## serve the documentation on http://127.0.0.1:8000, rebuilt as pages change
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

kind-e2e: venv ## Kubernetes end to end: kind cluster, Gateway, Airflow, releases to dev/staging/prod (needs internet; KEEP=1 keeps it)
	$(PY) scripts/kind_e2e.py
