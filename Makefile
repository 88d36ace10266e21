# Two commands set everything up: `make run` and `make test`. Both install what is missing first;
# a second run skips installs whose inputs have not changed.
PYTHON ?= python3
VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python
# pip options for installs (not named PIP_*: pip reads PIP_* variables from the environment)
PIPOPTS ?= -q

.DEFAULT_GOAL := help
.PHONY: help install install-rasa run test test-fast lint import import-course link-code train nlu-eval bench-latency bench-delivery bench-points bench-community bench-push clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/app.txt requirements/dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed (set PYTHON=python3.11)"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the app environment into $(VENV) …"
	$(PY) -m pip install $(PIPOPTS) --disable-pip-version-check -r requirements/dev.txt
	@touch $@

# Rasa 3.6.21 declares Python < 3.11; its dependencies are installed first, then Rasa itself
# with --no-deps. It lives in its own venv so its pins (SQLAlchemy 1.4, pydantic 1) stay apart.
$(RASA_VENV)/.installed: requirements/rasa.txt requirements/rasa-constraints.txt
	@test -x $(RASA_VENV)/bin/python || $(PYTHON) -m venv $(RASA_VENV)
	@echo "installing Rasa 3.6.21 into $(RASA_VENV) (first time: a few minutes, ~2.8 GB) …"
	$(RASA_VENV)/bin/pip install $(PIPOPTS) --disable-pip-version-check -r requirements/rasa.txt -c requirements/rasa-constraints.txt
	$(RASA_VENV)/bin/pip install $(PIPOPTS) --disable-pip-version-check --no-deps --ignore-requires-python rasa==3.6.21 rasa-sdk==3.6.2
	@touch $@

install: $(VENV)/.installed ## install our environment (.venv)
install-rasa: $(RASA_VENV)/.installed ## install Rasa into its own environment (.venv-rasa)

run: install install-rasa ## install what is missing and run everything (sandbox mode without a token)
	$(PY) -m bot.launcher

test: install install-rasa ## install what is missing and run the whole test suite
	$(PY) -m pytest

test-fast: install ## unit and integration tests only (no Rasa)
	$(PY) -m pytest -m "not e2e" --ignore=tests/e2e

lint: install ## ruff
	$(VENV)/bin/ruff check .

train: install install-rasa ## train the Rasa model if its inputs changed
	$(PY) nlu/train.py

import: install ## import CSV files: make import DATA=path/to/folder
	$(PY) -m core.cli import $(DATA)

import-course: install ## check and import a course folder: make import-course COURSE=path [ARGS=--dry-run]
	@test -n "$(COURSE)" || { echo "give the course folder: make import-course COURSE=data/demo/training/product-basics"; exit 2; }
	$(PY) -m training import $(COURSE) $(ARGS)

link-code: install ## issue a link code: make link-code CUSTOMER=R001
	$(PY) -m core.cli link-code --customer $(CUSTOMER)

nlu-eval: install install-rasa ## NLU evaluation → benchmarks/results/nlu.json
	$(PY) benchmarks/nlu_eval.py

bench-latency: install install-rasa ## end-to-end latency benchmark → benchmarks/results/latency.json
	$(PY) benchmarks/latency.py

bench-delivery: install install-rasa ## delivery worker benchmark → benchmarks/results/delivery.json
	$(PY) benchmarks/delivery.py $(ARGS)

clean: ## remove runtime files (database, logs); keeps the environments and models
	rm -rf var

bench-points: install ## reward points benchmark (PostgreSQL) → benchmarks/results/points.json
	$(PY) benchmarks/points.py $(ARGS)

bench-community: install ## dealer community benchmark → benchmarks/results/community.json
	$(PY) benchmarks/community.py $(ARGS)

bench-push: install ## training push to 2,000 dealers + quiz answer time → benchmarks/results/push.json
	$(PY) benchmarks/push.py $(ARGS)
