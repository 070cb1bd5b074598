# fhirhouse: `make run` generates a sample corpus (60 synthetic patients, nothing downloaded)
# and builds the lakehouse from it; `make test` runs the linters and the tests. Both create
# the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Snakemake's core count comes from the workflow profile (every core); `make run CORES=2`
# uses fewer.
CORES  ?=
# `make monitor`: the panoptes server (docs/monitor.md), on 127.0.0.1 only, with its database
# under the data root.
MONITOR_DIR  ?= data/_monitor
MONITOR_PORT ?= 5000

.PHONY: run test test-all tools lint fmt dag clean venv crash-campaign monitor

venv: $(VENV)/.installed

# The package is byte-compiled once: where PYTHONDONTWRITEBYTECODE is set, every job would
# otherwise compile fhirhouse from source again (about 60 ms a process).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m compileall -q src
	touch $@

run: venv
	$(BIN)/snakemake $(if $(CORES),--cores $(CORES))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

# What the tests need beyond .venv, said in one line when it is missing.
tools:
	@command -v dot >/dev/null 2>&1 || echo "make test: Graphviz 'dot' not found; the DAG render test is skipped (apt-get install graphviz)"

# The everyday suite (what CI runs): everything but the tests marked `slow`.
test: lint tools
	$(BIN)/python -m pytest -m "not slow"

# Every test, the slow ones included (the full crash campaign takes 20-30 minutes).
test-all: lint tools
	$(BIN)/python -m pytest

# The full crash-safety campaign (about 40 SIGKILL scenarios, 20-30 minutes); CI runs a sample.
crash-campaign: venv
	$(BIN)/python -m pytest -m slow tests/test_crash.py -v

# The live run monitor: builds started with `--profile profiles/monitor` report to it.
monitor: venv
	@mkdir -p $(MONITOR_DIR)
	@echo "monitor: http://127.0.0.1:$(MONITOR_PORT) (database $(MONITOR_DIR)/panoptes.db; Ctrl-C stops it)"
	PANOPTES_DB_URL=sqlite:///$(abspath $(MONITOR_DIR))/panoptes.db exec $(BIN)/panoptes --ip 127.0.0.1 --port $(MONITOR_PORT)

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/snakefmt .

dag: venv
	$(BIN)/snakemake --dag | dot -Tsvg > dag.svg
	$(BIN)/snakemake --rulegraph | dot -Tsvg > rulegraph.svg

clean:
	rm -rf data .snakemake dag.svg rulegraph.svg
