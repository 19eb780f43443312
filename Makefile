# Two commands do everything on a fresh machine:
#   make demo   set up, migrate and run the example shop on http://127.0.0.1:8000 (SQLite + sandbox)
#   make test   set up and run the whole suite (lint, migrations check, docs build, tests) on SQLite
# Extra:  make test-postgres / make test-mariadb  (servers on 127.0.0.1), make test-reliability,
#         make test-scale (the reliability suite's scale leg at full size: gunicorn, task workers, Redis, PostgreSQL),
#         make test-breakages (each removed safety mechanism must turn the reliability suite red),
#         make test-wheel (the built wheel, installed in a fresh virtualenv, passes the example shop's tests),
#         make lint (ruff, then mypy), make docs
#         make bench-intake / make bench-apply / make bench-checkout / make bench-sweep (benchmarks/README.md)

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= test
DJANGO ?=
PY := $(abspath $(VENV))/bin/python
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test test-postgres test-mariadb test-reliability test-scale test-breakages test-wheel lint docs schema clean install bench-intake bench-apply bench-checkout bench-sweep

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

# The reliability suite's scale leg at full size, 5,000 deliveries with kills (~5 min; docs/reliability.md#scale);
# needs PostgreSQL and Redis on 127.0.0.1. SCALE_N=... for another size (the suite itself runs 600).
test-scale:
	$(MAKE) install EXTRAS=test,postgres
	INVOICEPAY_TEST_DB=postgres INVOICEPAY_SCALE_N=$(or $(SCALE_N),5000) \
		$(PY) -m pytest -m reliability -s tests/test_reliability_scale.py $(PYTEST_ARGS)

# Each deliberate breakage of a safety mechanism must turn the reliability suite red (slow: ~a run each).
test-breakages:
	$(MAKE) install EXTRAS=test,postgres,mysql
	$(PY) -m tests.reliability.breakages $(BREAKAGE_ARGS)

# The wheel as a shop installs it (not editable, [testing] extra, newest Django, Python 3.13 or 3.12).
test-wheel:
	.ci/wheel

# Webhook intake benchmark (benchmarks/README.md): ours over HTTP, N=500; BENCH_ARGS="--n 100 --runs 1" for a smoke run.
bench-intake: $(STAMP) .venv-bench/.installed
	$(PY) benchmarks/intake.py --server-python .venv-bench/bin/python $(BENCH_ARGS)

# The server side of the intake benchmark: the app with its runtime dependencies only (as a shop installs it).
.venv-bench/.installed: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

# Polling sweep of 1k and 10k invoices, 20 ms provider latency, 1 and 16 threads (~6 min; benchmarks/README.md);
# BENCH_ARGS="--sizes 200,2000 --latency-ms 5" for a smoke run.
bench-sweep: $(STAMP)
	$(PY) benchmarks/polling_sweep.py $(BENCH_ARGS)

# apply_invoice's SQL queries for 1..20 quotes x 1..50 transactions (benchmarks/README.md); BENCH_ARGS="--sql" shows them.
bench-apply: $(STAMP)
	$(PY) benchmarks/apply_queries.py $(BENCH_ARGS)

# The example shop's pay page with and without the invoicepay tags, N=200; BENCH_ARGS="--n 50 --rounds 2" for a smoke run.
bench-checkout: $(STAMP)
	$(PY) benchmarks/checkout_page.py $(BENCH_ARGS)

docs: $(STAMP)
	$(PY) -m mkdocs build --strict

# The payer API's OpenAPI schema, docs/reference/openapi.yaml (tests/test_api_schema.py fails when it is out of date).
schema: $(STAMP)
	cd example_project && DJANGO_SETTINGS_MODULE=demo.settings $(PY) -m django_invoicepay.api.schema ../docs/reference/openapi.yaml

clean:
	rm -rf $(VENV) .venv-django6* site example_project/db.sqlite3 example_project/sandbox-state.json*
