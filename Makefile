# The README's commands. Everything runs from the project's own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FE_HOME ?= $(CURDIR)/.fe_platform
export DAGSTER_HOME ?= $(FE_HOME)/dagster

DBT_MANIFEST := dbt_project/target/manifest.json

.PHONY: install demo test dev lint bench clean

install: $(VENV)/.installed $(DBT_MANIFEST)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# Byte-compiled as pip compiles the packages it installs (an editable install is not): where
	# PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile the platform's modules again.
	$(BIN)/python -m compileall -q fe_platform
	touch $@

# The dbt manifest is prepared ahead, so loading the Dagster definitions does not parse dbt.
$(DBT_MANIFEST): $(VENV)/.installed dbt_project/dbt_project.yml $(shell find dbt_project/models dbt_project/macros -type f)
	DBT_SEND_ANONYMOUS_USAGE_STATS=false $(BIN)/dbt parse --quiet --project-dir dbt_project --profiles-dir dbt_project
	touch $@

demo: install  ## generate 13 weeks of sample feeds and run the whole platform on them
	$(BIN)/fe-platform demo

test: install  ## the test suite (starts its own PostgreSQL and moto servers)
	scripts/test-servers.sh
	$(BIN)/pytest

dev: install  ## the Dagster UI on the same data as `make demo`
	mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml || true
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster dev -w workspace.yaml

lint: install
	$(BIN)/ruff check fe_platform fe_platform_tests benchmarks

bench: install  ## benchmarks: print figures, assert nothing
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/warehouse.py
	$(BIN)/python benchmarks/latency.py --daemon
	$(BIN)/python benchmarks/sources.py

clean:
	rm -rf $(FE_HOME)
