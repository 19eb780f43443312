"""The payer-facing API, through DRF's test client, against the sandbox provider."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice

pytestmark = pytest.mark.django_db

MOBILE = "+27821234567"
RELAXED = {"otp": "1000/min", "payer": "1000/min", "read": "1000/min"}


def url(invoice, action=""):
    return f"/invoicepay/api/invoices/{invoice.public_token}/{action + '/' if action else ''}"


@pytest.fixture
def api():
    return APIClient()


def post(api, invoice, action, body=None, **extra):
    return api.post(url(invoice, action), body or {}, format="json", **extra)


def otp_calls(state):
    return [r for r in state.requests if r["path"].endswith("otp_challenge/")]


def test_the_whole_otp_payment(api, invoice, order, fresh_sandbox, fired, commit):
    with commit():
        otp_payment(api, invoice, fresh_sandbox)
    order.refresh_from_db()
    assert order.status == "completed"
    assert [(kw["old_status"], kw["new_status"]) for name, kw in fired if name == "invoice_status_changed"] == [
        ("initiated", "processing"), ("processing", "paid")]
    assert post(api, invoice, "otp/resend").status_code == 409  # nothing left to pay


def otp_payment(api, invoice, fresh_sandbox):
    assert api.get(url(invoice)).json()["next_actions"] == ["choose_processor"]
    processors = api.get(url(invoice, "processors")).json()["results"]
    assert [p["processor"] for p in processors] == ["native", "native_bitcoin", "bank_transfer"]

    chosen = post(api, invoice, "processor", {"processor": "native"}).json()
    assert chosen["status"] == "processing"
    assert chosen["scan_to_pay_uri"].startswith("rehive:")
    assert chosen["primary_quote"]["amount"]["display"] == "12.50 USD"

    payer = post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": "+27 82 123 4567"})
    assert payer.status_code == 200
    assert fresh_sandbox.data["invoices"][invoice.remote_id]["payer_mobile_number"] == MOBILE  # E.164
    assert payer.json()["payer"] == {"email": "ann@example.com", "mobile_number": "+27••••••567"}
    assert "submit_otp" in payer.json()["next_actions"]

    wrong = post(api, invoice, "otp", {"otp": "111111"})
    assert (wrong.status_code, wrong.json()) == (400, {"otp": ["Invalid OTP."]})

    paid = post(api, invoice, "otp", {"otp": sandbox.SANDBOX_OTP})
    assert paid.status_code == 200
    body = paid.json()
    assert (body["status"], body["detail"], body["next_actions"]) == ("paid", "Payment accepted.", [])


@pytest.mark.parametrize(
    ("action", "body", "errors"),
    [
        ("payer", {}, {"payer_email": ["This field is required."], "payer_mobile_number": ["This field is required."]}),
        ("payer", {"payer_email": "ann@", "payer_mobile_number": MOBILE},
         {"payer_email": ["Enter a valid email address."]}),
        ("payer", {"payer_email": "ann@example.com", "payer_mobile_number": "0821234567"}, {"payer_mobile_number": [
            "Enter the mobile number registered on your wallet, in international format, e.g. +27821234567."]}),
        ("otp", {"otp": "12ab"}, {"otp": ["Enter the code from the SMS: 4 to 8 digits."]}),
        ("otp", {}, {"otp": ["This field is required."]}),
        ("processor", {"processor": "../../admin"}, {"processor": ["Choose one of the listed payment methods."]}),
    ],
)
def test_malformed_bodies_get_field_errors_before_any_provider_call(api, invoice, fresh_sandbox, action, body, errors):
    before = len(fresh_sandbox.requests)
    response = post(api, invoice, action, body)
    assert (response.status_code, response.json()) == (400, errors)
    assert len(fresh_sandbox.requests) == before


def test_garbage_json_is_a_400(api, invoice):
    response = api.post(url(invoice, "otp"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_provider_field_errors_are_forwarded_with_their_meaning(api, invoice):
    chosen = post(api, invoice, "processor", {"processor": "carrier_pigeon"})
    assert (chosen.status_code, chosen.json()) == (400, {"processor": ["Invalid payment processor."]})
    sandbox.pay(invoice.remote_id)
    late = post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": MOBILE})
    assert late.status_code == 400
    assert late.json() == {"non_field_errors": ["This invoice is paid and can no longer be changed."]}


def test_a_provider_outage_is_a_503_with_a_retry_hint(api, invoice):
    sandbox.add_fault("503", method="PATCH")
    response = post(api, invoice, "processor", {"processor": "native"})
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json()["code"] == "provider_unavailable"
    assert "try again" in response.json()["detail"]
    sandbox.add_fault("connect", method="GET", times=10)
    assert api.get(url(invoice, "processors")).status_code == 503


def test_wrong_credentials_are_the_shops_problem_not_the_payers(api, invoice, http_sandbox, caplog):
    """The provider refuses the shop's key: the payer still sees the invoice, the shop's log says why."""
    revoked = {"SANDBOX": False, "REHIVE": {
        "API_KEY": "revoked-key-123", "BUSINESS_ID": "http-biz",
        "BUSINESS_URL": f"{http_sandbox}/business/api/",
        "PAYMENT_REQUESTS_URL": f"{http_sandbox}/payment-requests/api/",
    }}
    with override_settings(INVOICEPAY=revoked), caplog.at_level(logging.WARNING):
        response = api.get(url(invoice) + "?refresh=1")
    assert (response.status_code, response.json()["status"]) == (200, "initiated")
    assert "refused the shop's credentials (HTTP 401)" in caplog.text
    assert "revoked-key-123" not in caplog.text


def test_five_wrong_codes_lock_the_invoice_for_a_while(api, invoice, fresh_sandbox):
    sandbox.choose_processor(invoice.remote_id, "native")
    with override_settings(INVOICEPAY={"SANDBOX": True, "THROTTLE_RATES": RELAXED, "OTP_COOLDOWN": 600}):
        post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": MOBILE})
        for _ in range(5):
            assert post(api, invoice, "otp", {"otp": "000000"}).status_code == 400
        locked = post(api, invoice, "otp", {"otp": sandbox.SANDBOX_OTP})
        assert locked.status_code == 429
        assert locked.json() == {"detail": "Too many wrong codes. For your security, try again in 10 minutes.",
                                 "code": "otp_locked"}
        assert 590 <= int(locked["Retry-After"]) <= 601
        assert len(otp_calls(fresh_sandbox)) == 5  # the locked attempt never reached the provider
        Invoice.objects.filter(pk=invoice.pk).update(otp_locked_until=timezone.now())  # the cooling-off ends
        assert post(api, invoice, "otp", {"otp": sandbox.SANDBOX_OTP}).json()["status"] == "paid"


def test_an_outage_does_not_count_as_a_wrong_code(api, invoice, fresh_sandbox):
    sandbox.choose_processor(invoice.remote_id, "native")
    post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": MOBILE})
    sandbox.add_fault("connect", path="otp_challenge", times=10)
    assert post(api, invoice, "otp", {"otp": "123456"}).status_code == 503
    invoice.refresh_from_db()
    assert invoice.otp_failures == 0


def test_a_payment_accepted_while_the_sync_fails_is_not_lost(api, invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": MOBILE})
    sandbox.add_fault("503", method="GET", times=10)
    accepted = post(api, invoice, "otp", {"otp": sandbox.SANDBOX_OTP})
    assert (accepted.status_code, accepted.json()["detail"]) == (200, "Payment accepted.")
    sandbox.get_state().faults.clear()
    assert api.get(url(invoice) + "?refresh=1").json()["status"] == "paid"


def test_otp_attempts_are_throttled_per_client_and_per_invoice(api, order):
    first = Invoice.objects.create_for(order, amount=100)
    second = Invoice.objects.create_for(order, amount=100, allow_another=True)
    with override_settings(INVOICEPAY={"SANDBOX": True, "THROTTLE_RATES": {**RELAXED, "otp": "3/min"}}):
        for _ in range(3):
            post(api, first, "otp", {"otp": "123456"})
        throttled = post(api, second, "otp", {"otp": "123456"})  # same client, another invoice
        assert throttled.status_code == 429
        assert "throttled" in throttled.json()["detail"]
        other_client = APIClient(REMOTE_ADDR="10.9.9.9")
        for _ in range(3):
            post(other_client, second, "otp", {"otp": "123456"}, REMOTE_ADDR="10.9.9.8")
        assert post(other_client, second, "otp", {"otp": "1"}, REMOTE_ADDR="10.9.9.7").status_code == 429


def test_an_order_that_belongs_to_a_user_is_only_theirs(api, order):
    users = get_user_model().objects
    ann, bob = users.create_user("ann", password="pw"), users.create_user("bob", password="pw")
    order.user = ann
    order.save()
    invoice = Invoice.objects.create_for(order, amount=100)
    assert api.get(url(invoice)).status_code == 404
    api.force_authenticate(bob)
    assert api.get(url(invoice)).status_code == 404
    assert post(api, invoice, "processor", {"processor": "native"}).status_code == 404
    api.force_authenticate(ann)
    assert api.get(url(invoice)).status_code == 200
    assert APIClient().get("/invoicepay/api/invoices/not-a-token/").status_code == 404


def test_session_authenticated_calls_keep_csrf_protection(order):
    ann = get_user_model().objects.create_user("ann", password="pw")
    order.user = ann
    order.save()
    invoice = Invoice.objects.create_for(order, amount=100)
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(username="ann", password="pw")
    refused = browser.post(url(invoice, "processor"), {"processor": "native"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/admin/login/")  # any page that sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(url(invoice, "processor"), {"processor": "native"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200


def test_no_otp_or_mobile_number_in_the_logs(api, invoice, caplog):
    sandbox.choose_processor(invoice.remote_id, "native")
    with caplog.at_level(logging.DEBUG):
        post(api, invoice, "payer", {"payer_email": "ann@example.com", "payer_mobile_number": MOBILE})
        post(api, invoice, "otp", {"otp": "987654"})
        post(api, invoice, "otp", {"otp": sandbox.SANDBOX_OTP})
    assert "otp_challenge" in caplog.text
    for secret in ("987654", sandbox.SANDBOX_OTP, "821234567", "82 123"):
        assert secret not in caplog.text


def test_the_openapi_schema_describes_the_endpoints(api):
    response = api.get("/invoicepay/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = json.loads(response.content)["paths"]
    assert {"/invoicepay/api/invoices/{token}/otp/", "/invoicepay/api/invoices/{token}/payer/"} <= set(paths)
    assert "otp" in json.dumps(paths["/invoicepay/api/invoices/{token}/otp/"])



def test_an_overpayment_seen_on_refresh_signals_the_amount_overpaid(api, invoice, fired, commit):
    """The payer API reads the invoice with its quotes; the quotes written by the sync are the ones the
    transition's amount comes from, not those read before it."""
    sandbox.choose_processor(invoice.remote_id, "native")
    api.get(url(invoice) + "?refresh=1")
    sandbox.overpay(invoice.remote_id, by=300)
    with commit():
        answer = api.get(url(invoice) + "?refresh=1").json()
    assert answer["status"] == "overpaid"
    assert invoice.status_changes.get(to_status="overpaid").amount == 300
    assert [kw["amount"] for name, kw in fired if name == "invoice_overpaid"] == [300]
