# Two commands: `make demo` sets everything up and runs the story end to end;
# `make test` sets everything up and runs every check. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OPA := .tools/bin/opa
HYDRA := .tools/bin/hydra
# node-oidc-provider, the IdP of the CLI's device sign-in test (tests/idp; npm's registry).
DEVICE_IDP := .tools/idp/node_modules/.package-lock.json
# Validates deploy/kubernetes against the Kubernetes schemas (tests/test_deploy_recipe.py).
KUBECONFORM := .tools/bin/kubeconform
KUBECONFORM_VERSION := v0.8.0
# A real gRPC client for the sidecar's Envoy ext_authz v3 gRPC Check (tests/server/test_edge_grpc.py).
GRPCURL := .tools/bin/grpcurl
GRPCURL_VERSION := v1.9.4
GHZ := .tools/bin/ghz
GHZ_VERSION := v0.93.0
DATAVISA := $(BIN)/datavisa
COVERAGE ?= 95

.PHONY: setup chromium gateways postgresql mariadb demo test policy-test lint pytest bench soak clean

setup: $(DATAVISA) $(OPA) $(HYDRA) $(DEVICE_IDP) $(KUBECONFORM) $(GRPCURL) chromium gateways postgresql mariadb

# The dashboard test drives Debian's chromium headless (Playwright, no browser download).
# As root it is installed when missing; elsewhere that test says why it skips.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "could not install chromium: the dashboard test will be skipped"; \
	else \
		echo "chromium is missing (apt-get install chromium): the dashboard test will be skipped"; \
	fi

# The gateway tests run Debian's nginx (auth_request) and caddy (forward_auth) in front of
# DataVisa. As root they are installed when missing; elsewhere those tests say why they skip.
gateways:
	@missing=""; for tool in nginx caddy; do \
		PATH="$$PATH:/usr/sbin" command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
		|| echo "could not install$$missing: the gateway tests will be skipped"; \
	else \
		echo "missing$$missing (apt-get install$$missing): the gateway tests will be skipped"; \
	fi

# The PostgreSQL tests (connector, shared store) initdb a throwaway cluster of Debian's
# PostgreSQL on a free loopback port. As root it is installed when missing; elsewhere
# those tests say why they skip.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
		|| echo "could not install postgresql: the PostgreSQL tests will be skipped"; \
	else \
		echo "PostgreSQL is missing (apt-get install postgresql): its tests will be skipped"; \
	fi

# The MariaDB connector tests start a throwaway server of Debian's MariaDB (mariadbd, never
# its service) on a free loopback port. As root it is installed when missing; elsewhere
# those tests say why they skip.
mariadb:
	@if PATH="$$PATH:/usr/sbin" command -v mariadbd >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) \
		|| echo "could not install mariadb-server: the MariaDB tests will be skipped"; \
	else \
		echo "MariaDB is missing (apt-get install mariadb-server): its tests will be skipped"; \
	fi

$(DATAVISA): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(OPA): tools/opa/go.mod tools/opa/go.sum tools/opa/main.go $(wildcard tools/opa/gateway/*.go) tools/build-opa.sh
	tools/build-opa.sh

# Ory Hydra, a real OpenID Connect provider for the identity tests (not part of the product).
$(HYDRA): tools/build-hydra.sh
	tools/build-hydra.sh

# The device authorization grant (RFC 8628) needs an IdP that has it; Hydra 2.3 has not.
# Without node and npm the device sign-in test says why it skips.
$(DEVICE_IDP): tests/idp/package.json tests/idp/package-lock.json tests/idp/idp.mjs
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p .tools/idp && cp tests/idp/package.json tests/idp/package-lock.json tests/idp/idp.mjs .tools/idp/ && \
		npm ci --prefix .tools/idp --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "no npm to install the device-flow IdP with: the device sign-in test will be skipped"; \
	fi

# kubeconform from the Go module proxy (its checksums from Go's checksum database), into
# .tools/bin; rebuilt when this file (its pinned version) changes. Without Go the manifest
# test says why it skips.
$(KUBECONFORM): Makefile
	@if command -v go >/dev/null 2>&1; then \
		echo "building kubeconform $(KUBECONFORM_VERSION) from its Go module..."; \
		GOBIN="$(abspath .tools/bin)" GOFLAGS=-buildvcs=false \
			go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION); \
	else \
		echo "no Go to build kubeconform with: the Kubernetes manifest test will be skipped"; \
	fi

# grpcurl from the Go module proxy (checksums from Go's checksum database), as kubeconform.
# Without Go the ext_authz gRPC test says why it skips.
$(GRPCURL): Makefile
	@if command -v go >/dev/null 2>&1; then \
		echo "building grpcurl $(GRPCURL_VERSION) from its Go module..."; \
		GOBIN="$(abspath .tools/bin)" GOFLAGS=-buildvcs=false \
			go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION); \
	else \
		echo "no Go to build grpcurl with: the ext_authz gRPC test will be skipped"; \
	fi

# ghz (a gRPC load generator) from the Go module proxy, as grpcurl, for `make bench` only: its ext_authz
# gRPC rows (bench/gateway_bench.py); without it they say why they are skipped. v0.93.0 is
# the newest version the proxy serves.
$(GHZ): Makefile
	@if command -v go >/dev/null 2>&1; then \
		echo "building ghz $(GHZ_VERSION) from its Go module..."; \
		GOBIN="$(abspath .tools/bin)" GOFLAGS=-buildvcs=false \
			go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION); \
	else \
		echo "no Go to build ghz with: the bench's ext_authz gRPC rows will be skipped"; \
	fi

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

# Two processes by default, a test file to each at a time: most of the suite waits on
# OPA, uvicorn, PostgreSQL and browsers, so two keep two cores busy. PYTEST_WORKERS=0 runs
# it in one process.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

# Decision speed and scale, every path side by side (bench/README.md); a few minutes.
# `make bench ARGS=--quick` is a smoke run. The load generator and plots come from the
# `bench` extra, so `make test` never needs them.
bench: setup $(VENV)/.bench-deps $(GHZ)
	$(BIN)/python bench/run.py $(ARGS)

# Memory under sustained mixed load (bench/README.md, "Soak"): 10 minutes by default;
# `make soak ARGS="--minutes 2"` is a quick run.
soak: setup $(VENV)/.bench-deps
	$(BIN)/python bench/soak.py $(ARGS)

$(VENV)/.bench-deps: pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) .tools build .pytest_cache .ruff_cache
