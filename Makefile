# Two commands do everything on a fresh machine:
#   make demo   set up, migrate and run the example shop on http://127.0.0.1:8000 (SQLite + sandbox)
#   make test   set up and run the whole suite (lint, migrations check, docs build, tests) on SQLite
# Extra:  make test-postgres / make test-mariadb  (servers on 127.0.0.1), make test-reliability,
#         make test-breakages (each removed safety mechanism must turn the reliability suite red),
#         make test-wheel (the built wheel, installed in a fresh virtualenv, passes the example shop's tests),
#         make lint (ruff, then mypy), make docs

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
DJANGO ?=
PY := $(abspath $(VENV))/bin/python
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test test-postgres test-mariadb test-reliability test-breakages test-wheel lint docs schema clean install bench-intake

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]" $(if $(DJANGO),"Django$(DJANGO)")
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	cd example_project && $(PY) manage.py migrate --noinput
	@echo "Example shop: http://127.0.0.1:8000/  (sandbox payments, no credentials needed)"
	cd example_project && $(PY) manage.py runserver 127.0.0.1:8000

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres:
	$(MAKE) test EXTRAS=test,postgres INVOICEPAY_TEST_DB=postgres

test-mariadb:
	$(MAKE) test EXTRAS=test,mysql INVOICEPAY_TEST_DB=mariadb

# The reliability suite alone, on every database whose server is reachable, with its figures printed.
test-reliability:
	$(MAKE) install EXTRAS=test,postgres,mysql
	$(PY) -m pytest -m reliability -s $(PYTEST_ARGS)

# Each deliberate breakage of a safety mechanism must turn the reliability suite red (slow: ~a run each).
test-breakages:
	$(MAKE) install EXTRAS=test,postgres,mysql
	$(PY) -m tests.reliability.breakages $(BREAKAGE_ARGS)

# The wheel as a shop installs it (not editable, [testing] extra, newest Django, Python 3.13 or 3.12).
test-wheel:
	.ci/wheel

# Webhook intake benchmark (benchmarks/README.md): ours over HTTP, N=500; BENCH_ARGS="--n 100 --runs 1" for a smoke run.
bench-intake: $(STAMP)
	$(PY) benchmarks/intake.py $(BENCH_ARGS)

docs: $(STAMP)
	$(PY) -m mkdocs build --strict

# The payer API's OpenAPI schema, docs/reference/openapi.yaml (tests/test_api_schema.py fails when it is out of date).
schema: $(STAMP)
	cd example_project && DJANGO_SETTINGS_MODULE=demo.settings $(PY) -m django_invoicepay.api.schema ../docs/reference/openapi.yaml

clean:
	rm -rf $(VENV) .venv-django6* site example_project/db.sqlite3 example_project/sandbox-state.json*
