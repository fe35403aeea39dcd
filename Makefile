# paperops: the two commands a fresh machine needs are `make run` and `make test`.
# Both create .venv when it is missing and install the project into it first.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.paperops-installed
# pytest-xdist workers of `make test` (a module's tests stay on one worker; JOBS=0: one process)
JOBS   ?= 2
PAPER  ?=

# No telemetry from the tools, here or in CI.
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run report test test-fast flow serve mlflow-ui prefect-ui bench lint clean-outputs help plots-template

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: pip takes these two from the machine's local files (no GPU download).
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $@

setup: $(STAMP)  ## create .venv and install paperops with its test extras

run: setup  ## the main job: `dvc repro` of every paper in params.yaml, then one summary line per paper
	@rc=0; dvc repro || rc=$$?; \
	echo; echo "== paperops status: gate verdict and version served, per paper"; \
	$(BIN)/paperops status || { s=$$?; [ $$rc -ne 0 ] || rc=$$s; }; \
	echo "Results: dvc metrics show | reports/*/results.md | make mlflow-ui | make serve PAPER=<name>"; \
	echo "To make them the reference: git add dvc.lock data/.gitignore models/.gitignore reports/ && git commit"; \
	exit $$rc

report: setup  ## `dvc repro` of every paper (a no-op where up to date), then one report: reports/index.html, reports/REPORT.md
	@rc=0; dvc repro || rc=$$?; \
	$(BIN)/paperops report || { s=$$?; [ $$rc -ne 0 ] || rc=$$s; }; \
	echo "Open reports/index.html in a browser (works offline; MLflow run links need \`make mlflow-ui\`)"; \
	exit $$rc

test: setup  ## the whole test suite (what CI runs), on JOBS pytest-xdist workers (default 2)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadscope

test-fast: setup  ## unit and contract tests only, without the end-to-end tool runs
	$(BIN)/python -m pytest -q -m "not e2e"

flow: setup  ## the same pipeline as a Prefect flow (ephemeral mode unless PREFECT_API_URL is set)
	$(BIN)/python -m flows

serve: setup  ## serve the champion model of PAPER (make serve PAPER=<name>) on 127.0.0.1:3000
	@test -n "$(PAPER)" || { echo "usage: make serve PAPER=<name>   (names: $(BIN)/paperops list)" >&2; exit 2; }
	$(BIN)/paperops serve $(PAPER)

mlflow-ui: setup  ## MLflow UI on http://127.0.0.1:5000 over the local store
	@echo "Open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (runs), http://127.0.0.1:5000/#/models (registry)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

prefect-ui: setup  ## Prefect server and UI on http://127.0.0.1:4200
	$(BIN)/prefect server start --host 127.0.0.1

bench: setup  ## orchestration and serving benchmarks, a few minutes, printed as they go (ratios; see benchmarks/)
	$(BIN)/python -u benchmarks/orchestration.py
	$(BIN)/python -u benchmarks/serving.py

plots-template: setup  ## rewrite .dvc/offline_plots.html (Vega bundled for `dvc plots show` offline; installs vl-convert-python)
	$(BIN)/python -m pip install -q vl-convert-python==1.9.0.post1
	$(BIN)/python .dvc/offline_plots.py

lint: setup  ## ruff (lint, format check), mypy on components/, import-layering contracts (ARCHITECTURE.md 4)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
