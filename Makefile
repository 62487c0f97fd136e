# SkySense platform. `make run`: the whole pipeline on the embedded defaults. `make test`: the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup postgis run test lint bench infra-check clean

setup: postgis $(STAMP)

# PostGIS for the real STAC API test (pgSTAC, tests/infra/test_stac_api_pgstac.py): Debian's
# package for the local PostgreSQL's major version, installed once, quietly, where we are root and
# it is absent; elsewhere nothing happens (the test then skips, or fails under CI=true).
postgis:
	@v=$$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1); \
	if [ -n "$$v" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	   && ! dpkg -s postgresql-$$v-postgis-3 >/dev/null 2>&1; then \
	  echo "installing postgresql-$$v-postgis-3"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -qq --no-install-recommends postgresql-$$v-postgis-3 >/dev/null 2>&1 \
	   || (apt-get update -qq >/dev/null 2>&1 && \
	       apt-get install -y -qq --no-install-recommends postgresql-$$v-postgis-3 >/dev/null 2>&1)) \
	   || echo "postgis: postgresql-$$v-postgis-3 could not be installed; the STAC API test will say so"; \
	fi

# torch first, pinned to the CPU build; then the package with the tested constraints; then
# Prefect's database schema, migrated once per Prefect version (flows/prefect_schema.py).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m flows.prefect_schema
	touch $(STAMP)

run: setup
	$(BIN)/skysense pipeline run

test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check skysense flows tests bench infra
	$(BIN)/ruff format --check skysense flows tests bench infra
	$(BIN)/mypy

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

infra-check: setup
	$(BIN)/python infra/check.py

clean:
	rm -rf data checkpoints reports mlruns mlartifacts mlflow.db .prefect .gx
