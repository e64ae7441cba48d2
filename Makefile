# Two commands for a fresh machine: `make demo` (set up + run the main job) and `make test` (set up + run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data

.PHONY: setup demo test test-slow clean

$(BIN)/cxrvlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/cxrvlm

demo: setup
	$(BIN)/cxrvlm curate --source tb=$(DATA)/tb --source covid=$(DATA)/covid \
		--source shenzhen_lungs=$(DATA)/shenzhen_lungs --source openi=$(DATA)/openi --out runs/curated

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs build *.egg-info
