# Two commands: `make demo` sets everything up and runs the story end to end;
# `make test` sets everything up and runs every check. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OPA := .tools/bin/opa
DATAVISA := $(BIN)/datavisa
COVERAGE ?= 95

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

# Regal (github.com/open-policy-agent/regal) is not served by the Go module proxy this
# project may use, so the house rules in tools/lint lint the policy; `datavisa policy lint`
# runs Regal too wherever one is installed (.tools/bin/regal, DATAVISA_REGAL or PATH).
policy-test: setup
	$(OPA) fmt --list --fail rego tools/lint
	$(OPA) check --strict rego tools/lint
	$(DATAVISA) policy lint
	$(DATAVISA) policy test --threshold $(COVERAGE)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/rego_bench.py

clean:
	rm -rf $(VENV) .tools build .pytest_cache .ruff_cache
