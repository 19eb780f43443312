"""The Rehive webhook receiver: authenticate, store raw, de-duplicate, re-fetch, answer for retries."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.models import WebhookDelivery

pytestmark = pytest.mark.django_db

URL = "/invoicepay/webhooks/rehive/"
SECRET = "test-webhook-secret"


def envelope(data: dict, *, event="service_payment_requests.request.update", event_id=None) -> dict:
    return {"id": event_id or str(uuid.uuid4()), "event": event, "company": "sandbox", "data": data}


def deliver(client, body, *, secret=SECRET, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Secret {secret}"
    return client.post(URL, raw, content_type="application/json", **headers)


def fetches(state, remote_id) -> int:
    return sum(1 for r in state.requests if r["method"] == "GET" and r["path"].endswith(f"invoices/{remote_id}/"))


@pytest.mark.parametrize("secret", [None, "planted-wrong-9f3", "", SECRET + "x"])
def test_a_missing_or_wrong_secret_is_refused_and_not_stored(client, invoice, secret, caplog):
    with caplog.at_level(logging.WARNING):
        response = deliver(client, envelope(invoice.raw), secret=secret)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Authentication failed."}
    assert not WebhookDelivery.objects.exists()
    assert "Refused a Rehive webhook" in caplog.text
    assert SECRET not in caplog.text and (not secret or secret not in caplog.text)


def test_no_configured_secret_refuses_everything(client, invoice):
    with override_settings(INVOICEPAY={"SANDBOX": True, "REHIVE": {"WEBHOOK_SECRET": ""}}):
        assert deliver(client, envelope(invoice.raw), secret="").status_code == 401


def test_a_delivery_is_stored_raw_and_the_invoice_re_fetched_not_trusted(client, invoice, fresh_sandbox, order):
    sandbox.choose_processor(invoice.remote_id, "native")
    forged = {**invoice.raw, "status": "paid"}  # the payload claims paid; the provider says processing
    body = envelope(forged, event_id="evt-1")
    response = deliver(client, body, HTTP_X_REQUEST_ID="abc", REMOTE_ADDR="203.0.113.9")
    assert (response.status_code, response.json()["status"]) == (200, "success")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.provider, delivery.event_id, delivery.event) == ("rehive", "evt-1", body["event"])
    assert (delivery.object_id, delivery.source_ip, delivery.status) == (invoice.remote_id, "203.0.113.9", "processed")
    assert json.loads(delivery.body) == body
    assert delivery.headers["X-Request-Id"] == "abc" and "Authorization" not in delivery.headers
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("processing", "awaiting_payment")
    assert invoice.status_changes.last().source == "webhook"


def test_a_repeated_event_is_acknowledged_and_not_processed_again(client, invoice, fresh_sandbox, fired, commit):
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice.raw, event_id="evt-dup")
    with commit():
        first = deliver(client, body)
        again = deliver(client, body)
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    delivery = WebhookDelivery.objects.get()
    assert (delivery.deliveries, delivery.attempts) == (2, 1)
    assert fetches(fresh_sandbox, invoice.remote_id) == 1
    assert [name for name, _ in fired] == ["invoice_status_changed"]


def test_unknown_invoices_and_other_events_are_acknowledged_and_recorded(client, rehive):
    stranger = rehive.create_invoice({"request_amount": 100})
    assert deliver(client, envelope(stranger.raw)).status_code == 200
    assert deliver(client, envelope({"id": "x"}, event="service_payment_requests.otp.create")).status_code == 200
    statuses = set(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == {"ignored"}
    assert "does not have" in WebhookDelivery.objects.get(object_id=stranger.id).error


def test_a_quote_event_names_its_invoice(client, invoice):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    quote = sandbox.get_state().data["invoices"][invoice.remote_id]["payment_processor_quotes"][0]
    assert deliver(client, envelope(quote, event="service_payment_requests.quote.create")).status_code == 200
    invoice.refresh_from_db()
    assert invoice.primary_quote.processor == "bank_transfer"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", "\u00e9\u00e8".encode("latin-1")])
def test_a_malformed_body_is_a_400_and_kept(client, body):
    response = deliver(client, body)
    assert (response.status_code, response.json()["message"]) == (400, "The body is not a JSON object.")
    assert WebhookDelivery.objects.get().status == "malformed"


def test_a_processing_failure_is_recorded_and_answered_for_a_retry(client, invoice, fresh_sandbox, order):
    sandbox.pay(invoice.remote_id)
    sandbox.add_fault("503", method="GET", times=10)
    body = envelope(invoice.raw, event_id="evt-fail")
    failed = deliver(client, body)
    assert failed.status_code == 503 and failed["Retry-After"] == "30"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and "ProviderUnavailable" in delivery.error
    invoice.refresh_from_db()
    assert invoice.status == "initiated"  # nothing half-written
    fresh_sandbox.faults.clear()
    retried = deliver(client, body)  # the provider retries with the same event id
    assert retried.status_code == 200
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.deliveries, order.status) == ("processed", 2, 2, "completed")


def test_failed_deliveries_are_replayed_by_the_command(client, invoice, order):
    sandbox.pay(invoice.remote_id)
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_ADAPTER": "tests.test_orders.BrokenAdapter",
                                       "REHIVE": {"WEBHOOK_SECRET": SECRET}}):
        assert deliver(client, envelope(invoice.raw)).status_code == 503
    out = io.StringIO()
    call_command("invoicepay_sync", "--webhooks", "--failed", stdout=out)
    assert out.getvalue().strip() == "Processed 1 webhook delivery again: 1 processed."
    order.refresh_from_db()
    assert order.status == "completed"


def test_the_admin_log_is_read_only_and_can_replay(client, invoice):
    sandbox.pay(invoice.remote_id)
    sandbox.add_fault("503", method="GET", times=10)
    deliver(client, envelope(invoice.raw, event_id="evt-admin"))
    sandbox.get_state().faults.clear()
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    listing = client.get("/admin/invoicepay/webhookdelivery/")
    assert listing.status_code == 200 and "evt-admin" in listing.content.decode()
    delivery = WebhookDelivery.objects.get()
    page = client.get(f"/admin/invoicepay/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert SECRET not in page and "Secret " not in page
    done = client.post("/admin/invoicepay/webhookdelivery/",
                       {"action": "reprocess_deliveries", "_selected_action": [delivery.pk]}, follow=True)
    assert "Processed again: 1 processed." in done.content.decode()
    assert client.get("/admin/invoicepay/webhookdelivery/add/").status_code == 403


def test_with_a_task_backend_the_provider_gets_202_at_once(client, invoice):
    try:
        import django.tasks  # noqa: F401

        dummy = "django.tasks.backends.dummy.DummyBackend"
    except ImportError:
        dummy = "django_tasks.backends.dummy.DummyBackend"
    from django_invoicepay import tasks

    sandbox.pay(invoice.remote_id)
    with override_settings(TASKS={"default": {"BACKEND": dummy}}):
        response = deliver(client, envelope(invoice.raw))
        assert (response.status_code, response.json()["message"]) == (202, "queued")
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == "received"
        tasks.process_webhook.call(delivery.pk)  # what the worker runs
    delivery.refresh_from_db()
    invoice.refresh_from_db()
    assert (delivery.status, invoice.status) == ("processed", "paid")


def test_only_post(client):
    assert client.get(URL).status_code == 405


def test_nul_bytes_are_stored_readably_not_refused(client, invoice):
    body = json.dumps(envelope({"id": "x\u0000y"}, event_id="evt\u0000nul")).encode() + b"\x00"
    assert deliver(client, body).status_code == 400  # a trailing NUL is not JSON
    response = deliver(client, envelope({"id": "x\x00y"}, event_id="evt\x00nul"))
    assert response.status_code == 200
    assert WebhookDelivery.objects.get(event_id="evt\ufffdnul").object_id == "x\ufffdy"


@pytest.mark.django_db(transaction=True)  # real commits: BEGIN/COMMIT and the on-commit signal UPDATE counted
def test_a_new_event_costs_8_queries_and_1_provider_call_a_duplicate_2_queries_and_none(client, fresh_sandbox,
                                                                                          fired):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_invoicepay.models import Invoice

    invoice = Invoice.objects.create_for(None, amount=1250)
    sandbox.pay(invoice.remote_id)  # the payload says all that changed: paid, nothing pending
    body = envelope(invoice.raw, event_id="evt-budget")  # a hint: the receiver re-fetches the invoice
    fresh_sandbox.requests.clear()
    with CaptureQueriesContext(connection) as new:
        assert deliver(client, body).json()["message"] == "processed"
    calls = [r["path"] for r in fresh_sandbox.requests]
    with CaptureQueriesContext(connection) as repeat:
        assert deliver(client, body).json()["duplicate"] is True
    assert len(new.captured_queries) <= 8, [q["sql"][:80] for q in new.captured_queries]
    assert len(repeat.captured_queries) <= 2, [q["sql"][:80] for q in repeat.captured_queries]
    assert calls == [f"manager/businesses/sandbox-business/invoices/{invoice.remote_id}/"]
    assert len(fresh_sandbox.requests) == 1  # the duplicate asked the provider nothing
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"
    assert [kw["new_status"] for name, kw in fired if name == "invoice_status_changed"] == ["paid"]
    delivery = WebhookDelivery.objects.get(event_id="evt-budget")
    assert (delivery.status, delivery.deliveries, delivery.attempts) == ("processed", 2, 1)


def test_events_without_an_id_are_each_processed(client, invoice, fresh_sandbox):
    """An id-less event cannot be recognised as a repeat: each one is processed (and none is a 'duplicate')."""
    sandbox.choose_processor(invoice.remote_id, "native")
    body = {"event": "service_payment_requests.request.update", "company": "sandbox", "data": invoice.raw}
    assert "duplicate" not in deliver(client, body).json()
    sandbox.pay(invoice.remote_id)
    assert "duplicate" not in deliver(client, body).json()
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert list(WebhookDelivery.objects.values_list("event_id", "status", "deliveries")) == [
        (None, "processed", 1), (None, "processed", 1)]


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_syncs_its_invoice_still_gets_the_transitions_in_order(client, fresh_sandbox, fired):
    """A receiver may sync the instance it was given; the next transition waits for the current one."""
    from django_invoicepay.models import Invoice
    from django_invoicepay.signals import invoice_status_changed

    invoice = Invoice.objects.create_for(None, amount=1250)
    sandbox.choose_processor(invoice.remote_id, "native")

    def pays_and_syncs(sender, invoice, new_status, **kwargs):
        if new_status == "processing":
            sandbox.pay(invoice.remote_id)
            invoice.sync()

    invoice_status_changed.connect(pays_and_syncs)
    try:
        assert deliver(client, envelope(invoice.raw, event_id="evt-1")).status_code == 200
    finally:
        invoice_status_changed.disconnect(pays_and_syncs)
    seen = [(kw["old_status"], kw["new_status"]) for name, kw in fired if name == "invoice_status_changed"]
    assert seen == [("initiated", "processing"), ("processing", "paid")]
