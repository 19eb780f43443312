"""Both webhook receivers against untrusted bodies: size and depth limits, bounded storage of what names
nothing of the shop, masked bodies of ignored events, OnePipe's optional token, retention, and no secret
on Django's debug 500 page or in error e-mails for a failure inside either receiver."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from django.utils import timezone
from django.views.debug import ExceptionReporter, technical_500_response

from django_invoicepay import sandbox
from django_invoicepay.models import WebhookDelivery
from django_invoicepay.services import holds
from tests.test_holds import active_consent

pytestmark = pytest.mark.django_db

REHIVE, ONEPIPE = "/invoicepay/webhooks/rehive/", "/invoicepay/webhooks/onepipe/"
PLANTED = {"rehive_key": "sk_planted_rehive_4e1f", "webhook_secret": "whsec_planted_77c2",
           "onepipe_key": "op_planted_key_0b9d", "onepipe_secret": "op_planted_secret_a5e8",
           "onepipe_token": "optok_planted_31aa"}
SETTINGS = {"SANDBOX": True,
            "REHIVE": {"API_KEY": PLANTED["rehive_key"], "WEBHOOK_SECRET": PLANTED["webhook_secret"]},
            "ONEPIPE": {"API_KEY": PLANTED["onepipe_key"], "CLIENT_SECRET": PLANTED["onepipe_secret"]}}
AUTH = {"HTTP_AUTHORIZATION": f"Secret {PLANTED['webhook_secret']}"}


@pytest.fixture(autouse=True)
def planted():
    with override_settings(INVOICEPAY=SETTINGS):
        yield


def post(client, url, body, **extra):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(url, raw, content_type="application/json", **extra)


@pytest.mark.parametrize("url", [REHIVE, ONEPIPE])
def test_a_body_over_the_limit_is_a_413_and_not_stored(client, url):
    with override_settings(INVOICEPAY={**SETTINGS, "WEBHOOK_MAX_BYTES": 1000}):
        response = post(client, url, {"id": "evt", "padding": "x" * 2000}, **AUTH)
    assert response.status_code == 413
    assert response.json()["message"] == "The body is larger than 1000 bytes."
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("url", [REHIVE, ONEPIPE])
@pytest.mark.parametrize("levels", [33, 2500, 30_000])
def test_deeply_nested_json_is_a_400_never_a_500(client, url, levels):
    response = post(client, url, b'{"a":' * levels + b"1" + b"}" * levels, **AUTH)
    assert response.status_code == 400
    assert response.json()["message"] == "The body is nested more than 32 levels deep."
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "malformed" and len(delivery.body) <= 4096  # kept, cut short


def test_nesting_within_the_limit_is_accepted(client, invoice):
    data = {"id": invoice.remote_id, "metadata": json.loads('{"a":' * 29 + "1" + "}" * 29)}
    body = {"id": str(uuid.uuid4()), "event": "service_payment_requests.request.update", "data": data}
    assert post(client, REHIVE, body, **AUTH).status_code == 200


def test_a_onepipe_notification_for_no_hold_of_the_shop_is_answered_and_counted_not_stored_whole(client):
    sizes = []
    real = sandbox.onepipe_notification(holds.place_hold(active_consent(), 5000).transaction_ref)
    for n in range(20):
        body = json.loads(json.dumps(real))
        body["request_ref"], body["details"]["transaction_ref"] = f"ref-{n}", f"hold-not-ours-{n}"
        body["details"]["data"] = {"blob": "y" * 200_000, "customer_email": "victim@example.com"}
        response = post(client, ONEPIPE, body)
        assert response.json() == {"status": "Successful", "message": "Notification received."}
    for delivery in WebhookDelivery.objects.all():
        sizes.append(len(delivery.body) + len(json.dumps(delivery.headers)))
        assert delivery.status == "ignored" and "victim@example.com" not in delivery.body
    assert len(sizes) == 20 and max(sizes) < 300  # 20 posts of 200 KB: a few kilobytes in all


def test_an_ignored_rehive_event_is_kept_with_its_personal_fields_masked(client, rehive):
    stranger = rehive.create_invoice({"request_amount": 100, "payer_email": "stranger@example.com",
                                      "payer_mobile_number": "+27821234567"})
    body = {"id": "evt-stranger", "event": "service_payment_requests.request.update", "data": stranger.raw}
    assert post(client, REHIVE, body, **AUTH).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "ignored"
    assert "stranger@example.com" not in delivery.body and "+27821234567" not in delivery.body
    assert json.loads(delivery.body)["data"]["id"] == stranger.id  # the shape and the ids stay


def test_onepipe_notifications_can_require_a_token_on_the_url(client, fresh_sandbox):
    hold = holds.place_hold(active_consent(), 5000)
    notification = sandbox.onepipe_notification(hold.transaction_ref)
    onepipe = {**SETTINGS["ONEPIPE"], "WEBHOOK_TOKEN": PLANTED["onepipe_token"]}
    with override_settings(INVOICEPAY={**SETTINGS, "ONEPIPE": onepipe}):
        assert post(client, ONEPIPE, notification).status_code == 401
        assert post(client, ONEPIPE + "?token=wrong", notification).status_code == 401
        assert not WebhookDelivery.objects.exists()
        accepted = post(client, ONEPIPE + f"?token={PLANTED['onepipe_token']}", notification)
    assert accepted.json() == {"status": "Successful", "message": "Notification received."}


def test_old_deliveries_are_pruned_by_the_command(client):
    old, recent, busy = (WebhookDelivery.objects.create(provider="rehive", event_id=name, status=status)
                         for name, status in [("old", "processed"), ("recent", "processed"), ("busy", "received")])
    long_ago = timezone.now() - timedelta(days=91)
    WebhookDelivery.objects.filter(pk__in=[old.pk, busy.pk]).update(received_at=long_ago)
    WebhookDelivery.objects.filter(pk=busy.pk).update(leased_until=timezone.now() + timedelta(seconds=30))
    out = io.StringIO()
    call_command("invoicepay_prune", "--dry-run", stdout=out)
    call_command("invoicepay_prune", stdout=out)
    assert out.getvalue().splitlines() == ["Would delete 1 webhook delivery(ies) older than 90 days.",
                                           "Deleted 1 webhook delivery(ies) older than 90 days."]
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == {"recent", "busy"}
    with override_settings(INVOICEPAY={**SETTINGS, "WEBHOOK_RETENTION_DAYS": None}):
        call_command("invoicepay_prune", stdout=out)
    assert "kept for ever" in out.getvalue()


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.mark.parametrize("receiver", ["rehive", "onepipe"])
def test_no_secret_on_the_debug_500_page_or_in_error_emails_for_a_failure_inside_a_receiver(
        client, invoice, fresh_sandbox, receiver):
    if receiver == "rehive":
        sandbox.pay(invoice.remote_id)
        url, body, extra = REHIVE, {"id": "evt-x", "event": "service_payment_requests.request.update",
                                    "data": {"id": invoice.remote_id}}, AUTH
    else:
        hold = holds.place_hold(active_consent(), 5000)
        url, body, extra = ONEPIPE, sandbox.onepipe_notification(hold.transaction_ref), {}
    sandbox.add_fault("reset", times=10)  # the provider call fails deep inside the receiver
    captured = Captured()
    logging.getLogger("django_invoicepay.webhooks").addHandler(captured)
    try:
        assert post(client, url, body, **extra).status_code == 503
    finally:
        logging.getLogger("django_invoicepay.webhooks").removeHandler(captured)
    record = captured.records[0]
    request = RequestFactory().post(url, json.dumps(body), content_type="application/json", **extra)
    with override_settings(DEBUG=True, INVOICEPAY=SETTINGS):
        page = technical_500_response(request, *record.exc_info).content.decode()
        debug_email = ExceptionReporter(request, *record.exc_info, is_email=True).get_traceback_html()
    with override_settings(DEBUG=False, INVOICEPAY=SETTINGS):
        email = ExceptionReporter(request, *record.exc_info, is_email=True).get_traceback_text()
    assert "provider" in page.lower() and "Local vars" in page  # the page shows the frames and their locals
    for secret in PLANTED.values():
        assert secret not in page and secret not in debug_email and secret not in email


def test_the_admin_shows_only_the_masked_body(client, invoice):
    from django.contrib.auth import get_user_model

    body = {"id": "evt-admin", "event": "service_payment_requests.request.update",
            "data": {"id": invoice.remote_id, "payer_email": "payer@example.com",
                     "payer_mobile_number": "+27821234567"}}
    assert post(client, REHIVE, body, **AUTH).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert "payer@example.com" in delivery.body  # processed: kept as received, for the record
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(f"/admin/invoicepay/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert invoice.remote_id in page
    assert "payer@example.com" not in page and "+27821234567" not in page


def test_the_onepipe_receiver_is_throttled_per_client(client):
    relaxed = {**SETTINGS, "THROTTLE_RATES": {"webhook": "3/min"}}
    body = {"request_ref": "r", "request_type": "transaction_notification", "details": {"transaction_ref": "x"}}
    with override_settings(INVOICEPAY=relaxed):
        codes = [post(client, ONEPIPE, {**body, "request_ref": f"r{n}"}).status_code for n in range(4)]
        other = post(client, ONEPIPE, body, REMOTE_ADDR="198.51.100.7")
        forged = post(client, ONEPIPE, body, HTTP_X_FORWARDED_FOR="198.51.100.8")
    assert codes == [200, 200, 200, 429]
    assert other.status_code == 200 and forged.status_code == 429  # the header does not make a new client
    assert WebhookDelivery.objects.count() == 4


def test_onepipe_notifications_can_be_limited_to_addresses(client):
    onepipe = {**SETTINGS["ONEPIPE"], "WEBHOOK_ALLOWED_IPS": ["203.0.113.0/24"]}
    body = {"request_ref": "r1", "request_type": "transaction_notification", "details": {"transaction_ref": "x"}}
    with override_settings(INVOICEPAY={**SETTINGS, "ONEPIPE": onepipe}):
        assert post(client, ONEPIPE, body).status_code == 401  # 127.0.0.1
        assert post(client, ONEPIPE, body, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 401  # forged
        assert post(client, ONEPIPE, body, REMOTE_ADDR="203.0.113.5").status_code == 200


def test_the_onepipe_token_never_reaches_error_reports(client, fresh_sandbox, caplog):
    hold = holds.place_hold(active_consent(), 5000)
    onepipe = {**SETTINGS["ONEPIPE"], "WEBHOOK_TOKEN": PLANTED["onepipe_token"]}
    sandbox.add_fault("reset", times=10)  # processing fails: a 503, which Django logs at ERROR with the request
    with override_settings(INVOICEPAY={**SETTINGS, "ONEPIPE": onepipe}), caplog.at_level(logging.INFO):
        response = post(client, ONEPIPE + f"?token={PLANTED['onepipe_token']}",
                        sandbox.onepipe_notification(hold.transaction_ref))
    assert response.status_code == 503
    request = next(r.request for r in caplog.records if getattr(r, "request", None) is not None)
    report = ExceptionReporter(request, None, None, None, is_email=True).get_traceback_text()
    assert PLANTED["onepipe_token"] not in report + caplog.text
    assert PLANTED["onepipe_token"] not in request.build_absolute_uri()


def test_too_many_query_parameters_are_a_400_not_an_outage(client):
    query = "&".join(f"p{n}=1" for n in range(1200))
    response = post(client, ONEPIPE + "?" + query, {"request_ref": "x"})
    assert response.status_code == 400


@pytest.mark.parametrize("trusted", [["unix"], []])
def test_a_client_without_an_ip_address_is_stored_without_one(client, invoice, trusted):
    with override_settings(INVOICEPAY={**SETTINGS, "TRUSTED_PROXIES": trusted}):
        body = {"id": f"evt-{trusted}", "event": "service_payment_requests.request.update",
                "data": {"id": invoice.remote_id}}
        response = post(client, REHIVE, body, REMOTE_ADDR="", **AUTH)
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().source_ip is None
