# The one entry for developers and CI. Every target sets up what it needs itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint fmt clean setup

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	./scripts/system-deps.sh

## run: start freight with a demo workload and show what happened
run: setup
	$(BIN)/python -m freight.demo

## test: the whole suite (unit + integration on real PostgreSQL, MariaDB, cgroups, Chromium, esbuild)
test: setup
	$(BIN)/pytest -q

## bench: the benchmarks (not part of the tests); JSON lands in bench/results/
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/jobs.py
	@for b in runtime api etl builds cli scale; do \
	  if [ -f bench/$$b.py ]; then $(BIN)/python bench/$$b.py || exit 1; fi; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) .freight .freight-demo .pytest_cache .mypy_cache .ruff_cache
