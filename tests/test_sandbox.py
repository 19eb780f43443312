"""The sandbox speaks the real wire format, rejects what the real service rejects, and serves HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.errors import HoldError
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
    path = str(tmp_path / "sandbox.sqlite3")
    first = RehiveSandbox(SandboxState(path), api_key="k", business_id="b")
    answer = first.handle("business", "POST", "manager/businesses/b/invoices/",
                          headers={"Authorization": "Token k"},
                          body=json.dumps({"request_amount": 5, "status": "initiated"}).encode())
    invoice_id = answer.body["data"]["id"]
    first.state.close()
    second = RehiveSandbox(SandboxState(path), api_key="k", business_id="b")
    again = second.handle("requests", "GET", f"requests/{invoice_id}/", headers={})
    assert again.status == 200 and again.body["data"]["request_amount"] == 5
    second.state.close()


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    """The same scenario on both stores: this process's memory, and a SQLite file shared by processes."""
    path = tmp_path / "sandbox.sqlite3" if request.param == "file" else None
    with sandbox.isolated(path) as state:
        yield state


def test_both_stores_simulate_the_same_invoice_life(rehive, store, order):
    invoice = Invoice.objects.create_for(order, amount=1250, payer_email="ann@example.com")
    assert rehive.create_invoice({"request_amount": 300}, idempotency_key="same").id == \
        rehive.create_invoice({"request_amount": 999}, idempotency_key="same").id  # a replay creates nothing
    sandbox.choose_processor(invoice.remote_id, "native_bitcoin")
    sandbox.crypto_deposit(invoice.remote_id, confirmations=1)
    sandbox.confirm(invoice.remote_id, confirmations=1)
    invoice.sync()
    assert invoice.status == "processing"
    assert invoice.transactions.get().confirmations == 2
    sandbox.confirm(invoice.remote_id)
    invoice.sync()
    assert invoice.status == "paid"
    other = rehive.create_invoice({"request_amount": 1000})
    sandbox.overpay(other.id, 300)
    assert [r["amount"] for r in [rehive.create_refund(other.id, {"amount": 300}, idempotency_key="r")]] == [300]
    assert [r["amount"] for r in rehive.list_refunds(other.id)] == [300]
    third = rehive.create_invoice({"request_amount": 50})
    sandbox.expire(third.id)
    with pytest.raises(sandbox.SandboxActionError, match="expired"):
        sandbox.pay(third.id)
    listed = {i.id: i.status for i in rehive.list_invoices()}
    assert len(listed) == 4 and listed[invoice.remote_id] == "paid" and listed[third.id] == "expired"
    quote_ids = [q["id"] for i in store.data["invoices"].values() for q in i["payment_processor_quotes"]]
    assert len(quote_ids) == len(set(quote_ids)) == 2


def test_both_stores_simulate_the_same_holds(store):
    from django_invoicepay.services import holds

    consent = holds.request_consent(auth_type="bank.account", customer={"mobile_no": "2348022222208"},
                                    credentials={"account_number": "0123456789", "bank_code": "058"})
    consent = holds.confirm_consent(consent, sandbox.SANDBOX_ONEPIPE_OTP)
    hold = holds.place_hold(consent, 600_000)
    with pytest.raises(HoldError, match="Insufficient funds"):
        holds.place_hold(consent, 600_000)  # only 400,000 left
    holds.release_hold(hold)
    assert holds.place_hold(consent, 1_000_000).status == "placed"
    assert store.data["onepipe"]["balances"]["0123456789"] == 0


def test_a_rejected_request_changes_nothing_in_a_file(rehive, tmp_path):
    from django_invoicepay.errors import ProviderValidationError

    with sandbox.isolated(tmp_path / "sandbox.sqlite3") as state:
        created = rehive.create_invoice({"request_amount": 100, "description": "before"})
        sandbox.choose_processor(created.id, "native")
        with pytest.raises(ProviderValidationError):
            rehive.update_invoice(created.id, {"description": "after", "request_amount": 200})
        assert state.data["invoices"][created.id]["description"] == "before"
        with pytest.raises(ZeroDivisionError), state.transaction() as data:  # an error mid-change: rolled back
            data["invoices"][created.id]["description"] = "half"
            1 / 0  # noqa: B018
        assert state.data["invoices"][created.id]["description"] == "before"


def test_outside_a_transaction_a_file_gives_read_only_copies(rehive, tmp_path):
    with sandbox.isolated(tmp_path / "sandbox.sqlite3") as state:
        created = rehive.create_invoice({"request_amount": 100})
        copy = state.data["invoices"][created.id]
        assert copy["status"] == "initiated" and list(state.data["invoices"]) == [created.id]
        with pytest.raises(TypeError, match="transaction"):
            copy["status"] = "paid"
        state.data["legacy_lists"] = True  # plain values can be set directly
        assert rehive.transport.request("GET", rehive._invoice_url(), headers=rehive._headers()).json()["data"][0][
            "id"] == created.id
        with state.transaction() as data:
            data["invoices"][created.id]["status"] = "paid"
        assert rehive.get_invoice(created.id).status == "paid"


def test_an_older_json_state_file_is_imported(tmp_path):
    path = tmp_path / "sandbox-state.json"
    path.write_text(json.dumps({"invoices": {"abc": {"id": "abc", "status": "paid", "created": 1}},
                                "next_quote_id": 7, "legacy_lists": True}))
    state = SandboxState(str(path))
    assert state.data["invoices"]["abc"]["status"] == "paid"
    assert state.next_quote_id() == 7 and state.data["legacy_lists"] is True
    assert json.loads((tmp_path / "sandbox-state.json.json-backup").read_text())["next_quote_id"] == 7
    state.close()
    assert SandboxState(str(path)).next_quote_id() == 8


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_where_the_settings_keep_the_sandbox(settings, tmp_path):
    from django_invoicepay.sandbox.state import DEFAULT_FILENAME

    settings.INVOICEPAY = {"SANDBOX": True}
    settings.DEBUG = True
    settings.BASE_DIR = tmp_path
    assert sandbox.configured_location() == str(tmp_path / DEFAULT_FILENAME)  # shared by the shop's processes
    settings.BASE_DIR = None
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": tmp_path / "db" / "x.sqlite3"}}
    assert sandbox.configured_location() == str(tmp_path / "db" / DEFAULT_FILENAME)  # beside the database
    settings.DEBUG = False
    assert sandbox.configured_location() == sandbox.MEMORY  # tests and CI: this process only
    settings.INVOICEPAY = {"SANDBOX": True, "SANDBOX_STATE_FILE": tmp_path / "mine.sqlite3"}
    assert sandbox.configured_location() == str(tmp_path / "mine.sqlite3")
    settings.INVOICEPAY = {"SANDBOX": True, "SANDBOX_STATE_FILE": ":memory:"}
    settings.DEBUG = True
    assert sandbox.configured_location() == sandbox.MEMORY


def test_get_state_follows_the_settings_outside_isolation(settings, tmp_path):
    path = tmp_path / "shop.sqlite3"
    settings.INVOICEPAY = {"SANDBOX": True, "SANDBOX_STATE_FILE": str(path)}
    isolated = sandbox.get_state()
    from django_invoicepay.sandbox import state as state_module

    stack = list(state_module._isolated)
    state_module._isolated.clear()
    try:
        shop = sandbox.get_state()
        assert shop.path == str(path) and shop is sandbox.get_state(path) and shop is not isolated
    finally:
        state_module._isolated[:] = stack
        shop.close()
        state_module._states.pop(str(path), None)
    assert sandbox.get_state() is isolated


def test_the_command_resets_the_store(tmp_path, capsys):
    from django.core.management import call_command

    path = tmp_path / "sandbox.sqlite3"
    state = SandboxState(str(path))
    RehiveSandbox(state, api_key="k", business_id="b").handle(
        "business", "POST", "manager/businesses/b/invoices/", headers={"Authorization": "Token k"},
        body=json.dumps({"request_amount": 5, "status": "initiated"}).encode())
    assert len(state.data["invoices"]) == 1
    call_command("invoicepay_sandbox", reset=True, state_file=str(path))
    assert f"The sandbox in {path}" in capsys.readouterr().out
    assert len(state.data["invoices"]) == 0  # seen at once by every process using the file
    state.close()


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
         "--state-file", str(tmp_path / "state.sqlite3")],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(7)]
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
    assert f"Sandbox data: {tmp_path / 'state.sqlite3'} (shared by every process" in "".join(lines)
