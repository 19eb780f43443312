"""Provider faults of every kind: bounded retries where safe, one object however many attempts,
a clear message for the customer, a log line for the shop, no half-written state."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from django_invoicepay import sandbox
from django_invoicepay.errors import ProviderUnavailable
from django_invoicepay.models import Invoice

pytestmark = pytest.mark.django_db

TRANSPORT = ["connect", "timeout", "timeout_after", "reset", "slow"]
ANSWERS = ["500", "502", "503", "504", "garbage", "malformed"]
RETRIED = [kind for kind in TRANSPORT + ANSWERS if kind != "500"]  # a plain 500 may be a bug: not retried
SHORT_TIMEOUT = {"SANDBOX": True, "HTTP_TIMEOUT": 0.05, "HTTP_MAX_RETRIES": 2}


def fault(kind, **kwargs):
    return sandbox.add_fault(kind, delay=0.2 if kind == "slow" else 1.0, **kwargs)


@pytest.mark.parametrize("kind", TRANSPORT + ANSWERS)
def test_a_persistent_fault_on_create_leaves_no_local_invoice_and_no_duplicate(order, fresh_sandbox, kind, caplog):
    fault(kind, path=r"invoices/$", method="POST", times=None)
    with override_settings(INVOICEPAY=SHORT_TIMEOUT), caplog.at_level(logging.WARNING):
        with pytest.raises(ProviderUnavailable) as caught:
            Invoice.objects.create_for(order, amount=1250)
    assert caught.value.message.endswith("Please try again shortly.")
    assert not Invoice.objects.exists()
    assert len(fresh_sandbox.data["invoices"]) <= 1  # at most the one the retries were about
    attempts = [r for r in fresh_sandbox.requests if r["method"] == "POST"]
    assert 1 <= len(attempts) <= 3 and len({r["headers"]["Idempotency-Key"] for r in attempts}) == 1
    assert "rehive POST /api/manager/businesses/sandbox-business/invoices/" in caplog.text


@pytest.mark.parametrize("kind", RETRIED)
def test_a_transient_fault_on_create_is_absorbed_with_one_invoice(order, fresh_sandbox, kind):
    fault(kind, path=r"invoices/$", method="POST", times=1)
    with override_settings(INVOICEPAY=SHORT_TIMEOUT):
        invoice = Invoice.objects.create_for(order, amount=1250)
    assert list(fresh_sandbox.data["invoices"]) == [invoice.remote_id]
    assert Invoice.objects.count() == 1


def test_a_plain_500_is_not_retried(invoice, fresh_sandbox):
    sandbox.add_fault("500", method="GET", times=1)
    with pytest.raises(ProviderUnavailable):
        invoice.sync()
    assert len([r for r in fresh_sandbox.requests if r["method"] == "GET"]) == 1


@pytest.mark.parametrize("kind", RETRIED)
def test_a_transient_fault_on_a_read_is_retried(invoice, kind):
    sandbox.pay(invoice.remote_id)
    fault(kind, method="GET", times=2)
    with override_settings(INVOICEPAY=SHORT_TIMEOUT):
        invoice.sync()
    assert invoice.status == "paid"


@pytest.mark.parametrize("kind", ["timeout_after", "reset", "503", "malformed"])
def test_a_patch_that_may_have_landed_is_not_repeated_and_the_customer_is_told(invoice, fresh_sandbox, kind):
    fault(kind, method="PATCH", times=1)
    with override_settings(INVOICEPAY=SHORT_TIMEOUT):
        response = APIClient().post(f"/invoicepay/api/invoices/{invoice.public_token}/processor/",
                                    {"processor": "native"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable" and response["Retry-After"] == "30"
    assert len([r for r in fresh_sandbox.requests if r["method"] == "PATCH"]) == 1
    invoice.refresh_from_db()
    assert (invoice.status, invoice.primary_processor) == ("initiated", "")  # the mirror waits for the truth


def test_the_right_answer_with_the_wrong_content_type_is_still_read(invoice):
    sandbox.pay(invoice.remote_id)
    fault("wrong_content_type", method="GET", times=None)
    invoice.sync()
    assert invoice.status == "paid"


def test_random_faults_at_a_rate(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 100})
    sandbox.add_fault("503", method="GET", times=None, rate=0.3)
    outcomes = []
    for _ in range(40):
        try:
            rehive.get_invoice(created.id)
            outcomes.append("ok")
        except ProviderUnavailable:
            outcomes.append("failed")
    gets = [r for r in fresh_sandbox.requests if r["method"] == "GET"]
    assert 40 < len(gets) < 120  # some retried, none more than twice
    assert outcomes.count("ok") >= 30


@pytest.mark.parametrize(("no_proxy", "expected"), [("", {"https": "http://egress.example:3128"}),
                                                    ("api.example.com", {})])
def test_the_environments_proxy_is_used_as_requests_would(monkeypatch, no_proxy, expected):
    """The transport reads HTTPS_PROXY / NO_PROXY once per host instead of on every call (a shop behind an
    egress proxy still goes through it)."""
    import requests
    from requests.adapters import BaseAdapter

    from django_invoicepay import http

    seen = []

    class Recorder(BaseAdapter):
        def send(self, request, **kwargs):
            seen.append(kwargs["proxies"])
            response = requests.Response()
            response.status_code, response._content, response.request = 200, b"{}", request
            return response

        def close(self):
            pass

    http._environment_proxies.cache_clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.example:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    session = requests.Session()
    session.mount("https://", Recorder())
    transport = http.HttpTransport(session, provider="rehive", timeout=5)
    transport.request("GET", "https://api.example.com/3/x/")
    transport.request("GET", "https://api.example.com/3/y/")
    http._environment_proxies.cache_clear()
    assert [{k: v for k, v in p.items() if v} for p in seen] == [expected, expected]
