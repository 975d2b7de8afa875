# Developer entry points. `make run` starts a local server with demo data, `make test` runs every
# check and the whole test suite (SQLite, then a throw-away PostgreSQL) exactly as CI does.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# The project needs Python 3.11 (or 3.12); prefer an explicit python3.11 when there is one.
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)

.PHONY: help run test install install-dev

help:
	@echo "make run                  local server on http://127.0.0.1:8000 (DEBUG, SQLite, demo data)"
	@echo "make test [ARGS='-k api']  checks + pytest on SQLite and on a throw-away PostgreSQL"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files inside the venv: dependencies are reinstalled only when pyproject.toml is newer than
# the last successful install (and automatically after the venv is deleted).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

# The dev install is a superset of the plain one, so it refreshes both stamps.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# DEBUG=true gives the insecure local defaults (dev secret key, no HTTPS redirect). seed_demo is
# only run when Django knows the command, so `make run` works before (or without) it.
run: export DEBUG := true
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	@if $(PY) manage.py help seed_demo >/dev/null 2>&1; then \
		echo "$(PY) manage.py seed_demo"; $(PY) manage.py seed_demo; \
	else \
		echo "(no seed_demo command; starting without demo data)"; \
	fi
	$(PY) manage.py runserver 127.0.0.1:8000

test:
	scripts/test.sh $(ARGS)

# --- Benchmarks: not tests. Each prints its figures; docs/performance.md says how to read them.
.PHONY: bench-ingest bench-seed

# Ingestion under load: gunicorn + a throw-away PostgreSQL + wrk (apt-get install wrk), ~3 minutes.
bench-ingest: $(VENV)/.installed
	$(PY) bench/ingest.py $(ARGS)

# seed_demo's time: the default fleet on SQLite, then 1,000 instances x 365 days on PostgreSQL.
bench-seed: $(VENV)/.installed
	bench/seed.sh

# Load, faults and fuzzing outside the suite (PostgreSQL server binaries needed), ~10 minutes;
# writes docs/reliability.md. One part: make bench-reliability ARGS="--only faults".
.PHONY: bench-reliability
bench-reliability: $(VENV)/.installed-dev
	$(PY) bench/reliability.py $(ARGS)

# Dashboard server time at 100 and 1,000 instances x 365 days, cache off and on (~10 minutes).
.PHONY: bench-dashboard bench-browser
bench-dashboard: $(VENV)/.installed
	scripts/pg.sh $(PY) bench/dashboard.py $(ARGS)

# What a visitor's Chromium downloads and how long until every chart has drawn, cold and warm.
bench-browser: $(VENV)/.installed-dev
	scripts/pg.sh $(PY) bench/browser.py $(ARGS)
