# Everything a fresh machine with Python 3.11+ needs: `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Locked dependencies (`make lock` writes them from pyproject.toml): the dev lock has every
# extra that `make run`, `make test` and `make lint` need; the runtime lock is a deployment's.
DEV_LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
LOCK_FLAGS ?=

.PHONY: run test test-clusters fuzz browser pgbouncer screenshots deploy-check lint lock format clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# The JavaScript linter, from package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/slotease serve --demo

# The whole suite against the PostgreSQL in SLOTEASE_TEST_DATABASE_URL, or the embedded one.
test: $(STAMP) browser
	$(BIN)/pytest

# The tests that start PostgreSQL clusters, PgBouncer or processes of their own (tests/clusters):
# they do not depend on the server under test, so CI runs them once.
test-clusters: $(STAMP) pgbouncer
	$(BIN)/pytest -m clusters tests/clusters

# The real server fuzzed against its OpenAPI document for 3 minutes (see scripts/fuzz.py), on
# the PostgreSQL in SLOTEASE_FUZZ_DATABASE_URL, or the embedded one.
fuzz: $(STAMP)
	$(BIN)/python -m scripts.fuzz

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here). As root
# it is installed when missing; otherwise those tests skip, except in CI where they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update && apt-get install -y chromium)

# PgBouncer for the pooling tests (tests/clusters/test_pgbouncer.py): Debian's, installed when
# missing as root; otherwise those tests skip, except in CI where they fail.
pgbouncer:
	@[ -x /usr/sbin/pgbouncer ] || [ "$$(id -u)" != 0 ] || \
		(apt-get update && apt-get install -y pgbouncer)

# Pictures of every page for the README, from a server started with `make run`.
screenshots: $(STAMP) browser
	$(BIN)/python -m scripts.screenshots

# The deployment files (Dockerfile, compose.yaml): the Dockerfile linted and, where Docker works,
# the image built; compose.yaml checked against the Compose specification, and by `docker
# compose config` where that exists (with stand-in secrets).
deploy-check: $(STAMP)
	$(BIN)/hadolint Dockerfile
	@if docker info >/dev/null 2>&1; then docker build --quiet --tag slotease:check .; \
		else echo "no Docker daemon: the image is not built"; fi
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	@if docker compose version >/dev/null 2>&1; then \
		POSTGRES_PASSWORD=x REPLICATION_PASSWORD=x APP_DB_PASSWORD=x WORKER_DB_PASSWORD=x \
		SLOTEASE_JWT_SECRET=x docker compose config --quiet; fi

lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	node_modules/.bin/eslint src/slotease/web/static/js
	SQUAWK=$(BIN)/squawk scripts/lint-migrations
	$(BIN)/lint-imports

# Rewrites both locks from pyproject.toml, keeping the pinned versions that still fit;
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release.
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) pyproject.toml -o $(RUNTIME_LOCK)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' $(LOCK_FLAGS) --extra dev pyproject.toml -o $(DEV_LOCK)

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

clean:
	rm -rf $(VENV) node_modules .data .mypy_cache .ruff_cache .pytest_cache
