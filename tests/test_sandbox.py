"""The sandbox speaks the real wire format, rejects what the real service rejects, and serves HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice
from django_invoicepay.sandbox import RehiveSandbox, SandboxState

pytestmark = pytest.mark.django_db


def test_invoices_look_like_rehives(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 1250, "request_reference": "ORD-1"})
    sandbox.choose_processor(created.id, "native_bitcoin")
    raw = rehive.get_invoice(created.id).raw
    assert isinstance(raw["created"], int) and raw["updated"] > raw["created"] > 1_600_000_000_000
    assert raw["request_currency"]["divisibility"] == 2
    quote = raw["payment_processor_quotes"][0]
    assert quote["payment_processor"]["rehive_subtype"] == "deposit_crypto"
    assert quote["currency"] == {"code": "BTC", "divisibility": 8, "symbol": "₿", "unit": "bitcoin"}
    page = rehive.transport.request("GET", rehive._invoice_url(), headers=rehive._headers()).json()
    assert page["status"] == "success"
    assert set(page["data"]) == {"count", "next", "previous", "results"}


def test_processors_are_listed_for_the_payer(rehive):
    created = rehive.create_invoice({"request_amount": 100})
    names = [p["unique_string_name"] for p in rehive.payment_processors(created.id)]
    assert names == ["native", "native_bitcoin", "bank_transfer"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"status": "initiated"}, "request_amount", "This field is required."),
        ({"request_amount": -5, "status": "initiated"}, "request_amount", "Ensure this value is greater than 0."),
        ({"request_amount": 5, "status": "paid"}, "status", "New invoices must be draft or initiated."),
        ({"request_amount": 5, "status": "initiated", "payer_mobile_number": "0821"}, "payer_mobile_number",
         "Enter a valid mobile number."),
    ],
)
def test_bad_fields_get_the_real_error_envelope(rehive, body, field, message):
    response = rehive.transport.request(
        "POST", rehive._invoice_url(), json=body, headers=rehive._headers("k" + field)
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert response.json()["data"][field] == [message]


def test_garbage_json_is_refused_like_the_real_service(rehive):
    response = rehive.transport.session.post(
        rehive._invoice_url(), data=b"{not json", headers={**rehive._headers(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "JSON parse error - Expecting value."}


def test_finished_invoices_take_no_more_payments_and_cannot_be_cancelled(rehive):
    created = rehive.create_invoice({"request_amount": 100})
    sandbox.pay(created.id)
    with pytest.raises(sandbox.SandboxActionError, match="paid"):
        sandbox.pay(created.id)
    from django_invoicepay.errors import ProviderValidationError

    with pytest.raises(ProviderValidationError) as caught:
        rehive.cancel_invoice(created.id)
    assert caught.value.field_errors == {"status": ["A paid invoice cannot be cancelled."]}


def test_cancel_through_the_mirror(invoice, order):
    invoice.cancel()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("cancelled", "cancelled")


def test_refunds_are_recorded(rehive):
    created = rehive.create_invoice({"request_amount": 1000})
    sandbox.overpay(created.id, 300)
    refund = rehive.create_refund(created.id, {"amount": 300}, idempotency_key="refund-1")
    again = rehive.create_refund(created.id, {"amount": 300}, idempotency_key="refund-1")
    assert refund == again
    assert [r["amount"] for r in rehive.list_refunds(created.id)] == [300]


def test_the_state_file_keeps_invoices_across_restarts(tmp_path):
    path = str(tmp_path / "sandbox.json")
    first = RehiveSandbox(SandboxState(path), api_key="k", business_id="b")
    answer = first.handle("business", "POST", "manager/businesses/b/invoices/",
                          headers={"Authorization": "Token k"},
                          body=json.dumps({"request_amount": 5, "status": "initiated"}).encode())
    invoice_id = answer.body["data"]["id"]
    second = RehiveSandbox(SandboxState(path), api_key="k", business_id="b")
    again = second.handle("requests", "GET", f"requests/{invoice_id}/", headers={})
    assert again.status == 200 and again.body["data"]["request_amount"] == 5


def test_the_sandbox_over_real_http(http_sandbox, order, fired, commit):
    settings = {
        "SANDBOX": False,
        "REHIVE": {
            "API_KEY": "http-key", "BUSINESS_ID": "http-biz",
            "BUSINESS_URL": f"{http_sandbox}/business/api/",
            "PAYMENT_REQUESTS_URL": f"{http_sandbox}/payment-requests/api/",
        },
    }
    with override_settings(INVOICEPAY=settings):
        invoice = Invoice.objects.create_for(order, amount=1250)
        paid = requests.post(f"{http_sandbox}/sandbox/pay/", json={"invoice": invoice.remote_id}, timeout=5)
        assert paid.json()["data"]["status"] == "paid"
        with commit():
            invoice.sync()
        bad = requests.post(f"{http_sandbox}/sandbox/pay/", json={"invoice": invoice.remote_id}, timeout=5)
    assert invoice.status == "paid"
    assert [(kw["old_status"], kw["new_status"]) for _, kw in fired] == [("initiated", "paid")]
    assert bad.status_code == 400 and "no more payments" in bad.json()["message"]
    unauthorised = requests.get(f"{http_sandbox}/business/api/manager/businesses/http-biz/invoices/", timeout=5)
    assert unauthorised.status_code == 401


def test_the_management_command_serves_the_sandbox(tmp_path):
    """`manage.py invoicepay_sandbox` as a shop would start it, in its own process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent / "example_project"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "invoicepay_sandbox", "--port", "0",
         "--state-file", str(tmp_path / "state.json")],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        base = next(line for line in lines if "BUSINESS_URL" in line).split('"')[3]
        created = requests.post(
            base + "manager/businesses/sandbox-business/invoices/",
            json={"request_amount": 300, "status": "initiated"},
            headers={"Authorization": "Token sandbox-api-key"}, timeout=5,
        )
        refused = requests.get(base + "manager/businesses/sandbox-business/invoices/", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert created.status_code == 201 and created.json()["data"]["request_amount"] == 300
    assert refused.status_code == 401
    assert "sandbox-api-key" not in "".join(lines)
