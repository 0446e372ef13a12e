# FIN operator interface. The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv up down run worker test system-deps lint faults unit bench compose-check clean prometheus-rules status-screenshot

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): setup.cfg constraints.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP) ## create the virtual environment (pinned by constraints.txt)

up: $(STAMP) ## start local Kafka, the schema registry and Prometheus (:9090) in the background
	ops/kafka.sh start
	ops/registry.sh start
	ops/prometheus.sh start || echo "up: Prometheus could not be started (see above); Kafka and the registry run without it" >&2

down: ## stop local Kafka, the schema registry and Prometheus
	-ops/prometheus.sh stop
	-ops/registry.sh stop
	-ops/kafka.sh stop

run: $(STAMP) ## the main job: Kafka + registry + worker + demo traffic, in the foreground
	ops/run.sh

worker: $(STAMP) ## one worker in the foreground against `make up` (FIN_* environment)
	$(PY) app.py worker

lint: $(STAMP) ## ruff (lint and format) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: $(STAMP) system-deps lint compose-check ## the whole suite: lint, types, compose file, unit, integration, end-to-end, and beside them the fault suite
	PY=$(PY) ops/test-suites.sh

system-deps: ## Debian packages the tests need (chromium for the status page, docker-compose to validate the compose file)
	ops/system-deps.sh

faults: $(STAMP) ## the fault suite: kills, broker restart, registry outage, rebalance, wipe, replay (private Kafka)
	$(PY) -m pytest -q -p no:cacheprovider -m faults tests/faults

unit: $(STAMP) ## unit tests only (no Kafka)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP) ## benchmarks (not part of make test)
	$(PY) -m bench $(BENCH_ARGS)

compose-check: ## validate docker-compose.yml (docker compose v2, or Debian's docker-compose)
	@if docker compose version >/dev/null 2>&1; then docker compose -f docker-compose.yml config --quiet; \
	else docker-compose -f docker-compose.yml config --quiet; fi
	@echo "compose-check: docker-compose.yml is valid"

prometheus-rules: ## check and unit-test the alert rules (ops/prometheus/rules.yml) with promtool
	ops/prometheus.sh promtool check rules ops/prometheus/rules.yml
	ops/prometheus.sh promtool test rules ops/prometheus/rules.test.yml

status-screenshot: $(STAMP) system-deps ## refresh docs/status-page.png: the status page under demo traffic, headless chromium
	FIN_STATUS_SCREENSHOT=docs/status-page.png FIN_STATUS_SCREENSHOT_AFTER_S=150 \
	  $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_status_page.py

clean: down ## remove local state (not the download cache)
	rm -rf .state
