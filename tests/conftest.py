from __future__ import annotations

import functools
import os
import threading

import pytest
from django.db import connection

from django_invoicepay import sandbox
from django_invoicepay.clients import rehive_client
from django_invoicepay.sandbox import RehiveSandbox, SandboxState
from django_invoicepay.sandbox.server import make_sandbox_server

pytest_plugins = ["pytester"]  # tests/test_testing_kit.py runs a shop's pytest in a subprocess


@pytest.fixture
def invoicepay_sandbox_path(request):
    """The kit's sandbox (django_invoicepay.testing) is in memory; with INVOICEPAY_TEST_SANDBOX=file it
    is a new SQLite file per test, the store every process of a shop shares."""
    if os.environ.get("INVOICEPAY_TEST_SANDBOX", "memory") == "file":
        return request.getfixturevalue("tmp_path") / "sandbox.sqlite3"
    return None


@pytest.fixture(autouse=True)
def fresh_sandbox(invoicepay_sandbox):
    """Every test of ours has its own empty sandbox provider."""
    return invoicepay_sandbox


@pytest.fixture(autouse=True)
def clear_cache():
    """Throttle counters and cached QR codes live in the cache: start every test without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """Retries back off through time.sleep: record the delays instead of waiting them out."""
    delays: list[float] = []
    monkeypatch.setattr("django_invoicepay.http.time.sleep", delays.append)
    return delays


@pytest.fixture
def rehive():
    return rehive_client()


@pytest.fixture
def order(db):
    from shop.models import Order

    return Order.objects.create(description="Coffee beans", total=1250)


@pytest.fixture
def invoice(order):
    from django_invoicepay.models import Invoice

    return Invoice.objects.create_for(order, amount=order.total, description=order.description)


@pytest.fixture
def fired(invoicepay_signals):
    """Every public signal sent during the test, as (signal name, kwargs without 'signal'/'sender')."""
    return invoicepay_signals


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit(): ...` runs the block's on-commit callbacks (the signals) as a real commit would."""
    return functools.partial(django_capture_on_commit_callbacks, execute=True)


def force_status(remote_id: str, status: str) -> dict:
    """Move the sandbox invoice to any status, as the provider might (including ones we do not know)."""
    state = sandbox.get_state()
    with state.transaction() as data:
        invoice = data["invoices"][remote_id]
        invoice["status"] = status
        invoice["updated"] = state.now_ms()
        return invoice


@pytest.fixture
def http_sandbox():
    """The sandbox as a real HTTP server on a free port, accepting key "http-key" for business "http-biz"."""
    state = SandboxState()
    server = make_sandbox_server(RehiveSandbox(state, api_key="http-key", business_id="http-biz"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def requires_server_database():
    return pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="needs PostgreSQL or MariaDB (INVOICEPAY_TEST_DB=postgres|mariadb): SQLite serialises writers",
    )
