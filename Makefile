# Two commands: `make demo` sets everything up and runs the story end to end;
# `make test` sets everything up and runs every check. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OPA := .tools/bin/opa
DATAVISA := $(BIN)/datavisa
COVERAGE ?= 90

.PHONY: setup demo test policy-test lint pytest bench clean

setup: $(DATAVISA) $(OPA)

$(DATAVISA): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(OPA): tools/opa/go.mod tools/opa/go.sum tools/opa/main.go tools/build-opa.sh
	tools/build-opa.sh

demo: setup
	$(DATAVISA) demo

test: setup policy-test lint pytest

policy-test: setup
	$(OPA) fmt --list --fail rego
	$(OPA) check --strict rego
	$(DATAVISA) policy test --threshold $(COVERAGE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: setup
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .tools build .pytest_cache .ruff_cache
