# fhirhouse: `make run` builds the lakehouse from the built-in sample, `make test` runs the
# checks and tests. Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 4
# `make monitor`: the panoptes server (docs/monitor.md), on 127.0.0.1 only, with its database
# under the data root.
MONITOR_DIR  ?= data/_monitor
MONITOR_PORT ?= 5000

.PHONY: run test lint fmt dag clean venv crash-campaign monitor

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

run: venv
	$(BIN)/snakemake --cores $(CORES)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

test: lint
	$(BIN)/python -m pytest -m "not slow"

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
