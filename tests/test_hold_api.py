"""Consent endpoints, the OnePipe notification receiver, the admin and the command for holds."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from django_invoicepay import sandbox
from django_invoicepay.errors import ProviderAuthError
from django_invoicepay.models import Hold, HoldConsent, WebhookDelivery
from django_invoicepay.services import holds

pytestmark = pytest.mark.django_db

CUSTOMER = {"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208"}
BODY = {"auth_type": "bank.account", "credentials": {"account_number": "0123456789", "bank_code": "058"},
        "customer": CUSTOMER}
RELAXED = {"SANDBOX": True, "THROTTLE_RATES": {"otp": "1000/min", "payer": "1000/min", "read": "1000/min"}}


@pytest.fixture
def customer(db):
    return get_user_model().objects.create_user("uju", "uju@example.com", "pw")


@pytest.fixture
def api(customer):
    """The customer, logged in (anonymous consents are off by default: HOLDS_ALLOW_ANONYMOUS)."""
    client = APIClient()
    client.force_authenticate(customer)
    return client


def test_a_customer_consents_with_an_otp_and_never_sees_the_token(api):
    created = api.post("/invoicepay/api/holds/consents/", BODY, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["next_action"], body["account"]) == ("waiting_for_otp", "submit_otp", "••••••6789")
    assert body["prompt"] == "Please enter the OTP sent to 23480****08"
    url = f"/invoicepay/api/holds/consents/{body['id']}/"
    wrong = api.post(url + "otp/", {"otp": "000000"}, format="json")
    assert (wrong.status_code, wrong.json()["detail"]) == (400, "Invalid OTP")
    done = api.post(url + "otp/", {"otp": sandbox.SANDBOX_ONEPIPE_OTP}, format="json").json()
    assert done["status"] == "active" and done["expires_at"]
    token = holds.unseal(HoldConsent.objects.get().token_sealed)
    everything = json.dumps([body, wrong.json(), done, api.get(url).json()])
    for secret in (token, "0123456789", sandbox.SANDBOX_ONEPIPE_OTP):
        assert secret not in everything


@pytest.mark.parametrize(("change", "errors"), [
    ({"auth_type": "card"}, {"auth_type": ["Choose one of: bank.account, wallet."]}),
    ({"credentials": {"account_number": "0123456789"}}, {"credentials": {"bank_code": ["This field is required."]}}),
    ({"credentials": {"account_number": "1", "bank_code": "2", "pin": "3"}},
     {"credentials": {"pin": ["Not a credential of this kind."]}}),
    ({"customer": {**CUSTOMER, "email": "nope"}}, {"customer": {"email": ["Enter a valid email address."]}}),
    ({"amount": 0}, {"amount": ["Ensure this value is greater than or equal to 1."]}),
])
def test_bad_consent_requests_get_field_errors_and_reach_no_provider(api, fresh_sandbox, change, errors):
    response = api.post("/invoicepay/api/holds/consents/", {**BODY, **change}, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    assert fresh_sandbox.requests == []
    assert not HoldConsent.objects.exists()


def test_someone_elses_consent_is_a_404(api, order):
    ann = get_user_model().objects.create_user("ann", password="pw")
    order.user = ann
    order.save()
    consent = holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"], customer=CUSTOMER,
                                    order=order)
    url = f"/invoicepay/api/holds/consents/{consent.public_token}/"
    assert api.get(url).status_code == 404
    assert api.post(url + "otp/", {"otp": "123456"}, format="json").status_code == 404
    api.force_authenticate(ann)
    assert api.get(url).json()["status"] == "waiting_for_otp"


def test_otp_attempts_are_throttled(api):
    consent = holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"], customer=CUSTOMER)
    url = f"/invoicepay/api/holds/consents/{consent.public_token}/otp/"
    with override_settings(INVOICEPAY={**RELAXED, "THROTTLE_RATES": {**RELAXED["THROTTLE_RATES"], "otp": "3/min"}}):
        codes = [api.post(url, {"otp": "000000"}, format="json").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]


def test_a_provider_outage_is_a_503(api):
    sandbox.add_fault("503", path="^transact$", times=5)
    response = api.post("/invoicepay/api/holds/consents/", BODY, format="json")
    assert (response.status_code, response.json()["code"]) == (503, "provider_unavailable")


def placed_hold() -> Hold:
    consent = holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"], customer=CUSTOMER)
    return holds.place_hold(holds.confirm_consent(consent, sandbox.SANDBOX_ONEPIPE_OTP), 5000)


def test_a_onepipe_notification_is_a_hint_confirmed_by_query(api, fresh_sandbox):
    hold = placed_hold()
    fresh_sandbox.data["onepipe"]["transactions"][hold.transaction_ref]["status"] = "Reversed"  # released elsewhere
    notification = sandbox.onepipe_notification(hold.transaction_ref)
    notification["details"]["status"] = "Successful"  # the notification says otherwise: not trusted
    response = api.post("/invoicepay/webhooks/onepipe/", notification, format="json")
    assert response.json() == {"status": "Successful", "message": "Notification received."}
    hold.refresh_from_db()
    assert hold.status == "released"
    again = api.post("/invoicepay/webhooks/onepipe/", notification, format="json")
    assert again.json()["message"] == "Notification already received."
    delivery = WebhookDelivery.objects.get(provider="onepipe")
    assert (delivery.event, delivery.object_id, delivery.status, delivery.deliveries) == (
        "transaction_notification", hold.transaction_ref, "processed", 2)
    assert api.post("/invoicepay/webhooks/onepipe/", b"nope", content_type="application/json").status_code == 400


def test_the_admin_shows_holds_without_secrets_and_releases_them(client):
    hold = placed_hold()
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    consent_page = client.get(f"/admin/invoicepay/holdconsent/{hold.consent.pk}/change/").content.decode()
    token = holds.unseal(hold.consent.token_sealed)
    assert "••••••6789" in consent_page and token not in consent_page and hold.consent.token_sealed not in consent_page
    assert "0123456789" not in consent_page
    done = client.post("/admin/invoicepay/hold/", {"action": "release_holds", "_selected_action": [hold.pk]},
                       follow=True)
    assert "Released: 1" in done.content.decode()
    hold.refresh_from_db()
    assert hold.status == "released"


def test_the_sync_command_refreshes_open_holds(fresh_sandbox):
    hold = placed_hold()
    fresh_sandbox.data["onepipe"]["transactions"][hold.transaction_ref]["hold_expiry"] = "2020-01-01-00-00-00"
    out = io.StringIO()
    call_command("invoicepay_sync", stdout=out)
    assert "Refreshed 1 hold(s): 1 expired." in out.getvalue()
    hold.refresh_from_db()
    assert hold.status == "expired"


def test_the_sandbox_sends_notifications_over_http_and_the_app_receives_them(api, fresh_sandbox):
    """The sandbox POSTs to a recording server (no database there, so no race with this test's own
    writes); what arrived is then handed to the app's receiver, as OnePipe's request would be."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrived: list[bytes] = []
    came = threading.Event()

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            arrived.append(self.rfile.read(int(self.headers["Content-Length"])))
            came.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fresh_sandbox.data["onepipe_notify_url"] = f"http://127.0.0.1:{server.server_port}/"
        hold = placed_hold()
        for _ in range(100):  # real waiting: the suite's fixture stops time.sleep, not Event.wait
            bodies = [json.loads(body) for body in list(arrived)]
            if any(b["details"]["transaction_ref"] == hold.transaction_ref for b in bodies):
                break
            came.clear()
            came.wait(0.1)
    finally:
        server.shutdown()
        server.server_close()
    notification = next(b for b in bodies if b["details"]["transaction_ref"] == hold.transaction_ref)
    assert notification["request_type"] == "transaction_notification"
    assert notification["details"]["status"] == "Successful"
    response = api.post("/invoicepay/webhooks/onepipe/", notification, format="json")
    assert response.json() == {"status": "Successful", "message": "Notification received."}
    assert WebhookDelivery.objects.get(provider="onepipe", object_id=hold.transaction_ref).status == "processed"


def test_onepipe_over_the_http_sandbox():
    import threading

    from django_invoicepay.sandbox import OnePipeSandbox, RehiveSandbox, SandboxState
    from django_invoicepay.sandbox.server import make_sandbox_server

    state = SandboxState()
    onepipe = OnePipeSandbox(state, api_key="op-key", client_secret="op-secret", encoding="utf-16-le")
    server = make_sandbox_server(RehiveSandbox(state, api_key="k", business_id="b"), port=0, onepipe=onepipe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = {"SANDBOX": False, "REHIVE": {"API_KEY": "k", "BUSINESS_ID": "b", "WEBHOOK_SECRET": "w"},
                    "ONEPIPE": {"API_KEY": "op-key", "CLIENT_SECRET": "op-secret", "AUTH_PROVIDER": "Sandbox",
                                "BASE_URL": f"http://127.0.0.1:{server.server_port}/onepipe/v2/"}}
        with override_settings(INVOICEPAY=settings):
            consent = holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"],
                                            customer=CUSTOMER)
            assert holds.confirm_consent(consent, sandbox.SANDBOX_ONEPIPE_OTP).status == "active"
        with override_settings(INVOICEPAY={**settings, "ONEPIPE": {**settings["ONEPIPE"], "CLIENT_SECRET": "wrong"}}):
            with pytest.raises(ProviderAuthError) as caught:
                holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"], customer=CUSTOMER)
        assert (caught.value.status, caught.value.message) == (401, "Invalid signature")
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_consent_belongs_to_the_user_who_asked_and_is_a_404_to_anyone_else(api, customer):
    created = api.post("/invoicepay/api/holds/consents/", BODY, format="json").json()
    consent = HoldConsent.objects.get(public_token=created["id"])
    assert consent.owner == customer
    url = f"/invoicepay/api/holds/consents/{created['id']}/"
    stranger = APIClient()
    assert stranger.get(url).status_code == 404  # anonymous
    stranger.force_authenticate(get_user_model().objects.create_user("mallory"))
    assert stranger.get(url).status_code == 404
    assert stranger.post(url + "otp/", {"otp": sandbox.SANDBOX_ONEPIPE_OTP}, format="json").status_code == 404
    consent.refresh_from_db()
    assert (consent.status, consent.otp_failures) == ("waiting_for_otp", 0)
    assert api.get(url).json()["status"] == "waiting_for_otp"


def test_anonymous_consents_are_refused_unless_the_shop_allows_them(fresh_sandbox):
    anonymous = APIClient()
    refused = anonymous.post("/invoicepay/api/holds/consents/", BODY, format="json")
    assert refused.status_code in (401, 403) and refused.json()["detail"] == "Log in to give your consent."
    assert fresh_sandbox.requests == [] and not HoldConsent.objects.exists()
    with override_settings(INVOICEPAY={**RELAXED, "HOLDS_ALLOW_ANONYMOUS": True}):
        created = anonymous.post("/invoicepay/api/holds/consents/", BODY, format="json")
    assert created.status_code == 201 and HoldConsent.objects.get().owner is None


def test_a_consent_can_name_the_requesters_own_order_only(api, customer):
    from shop.models import Order

    mine = Order.objects.create(description="Rental", total=5000, user=customer)
    theirs = Order.objects.create(description="Rental", total=5000,
                                  user=get_user_model().objects.create_user("someone"))
    url = "/invoicepay/api/holds/consents/"
    assert api.post(url, {**BODY, "order": str(mine.pk)}, format="json").json() == {
        "order": ["This shop does not take an order here."]}
    with override_settings(INVOICEPAY={**RELAXED, "ORDER_MODEL": "shop.Order"}):
        for other in (str(theirs.pk), "999999", "not-a-pk"):
            assert api.post(url, {**BODY, "order": other}, format="json").json() == {"order": ["No such order."]}
        created = api.post(url, {**BODY, "order": str(mine.pk)}, format="json")
    assert created.status_code == 201
    assert HoldConsent.objects.get(public_token=created.json()["id"]).order == mine


def test_consent_status_changed_once_per_transition(api, commit):
    from django_invoicepay.signals import consent_status_changed

    seen = []

    def receiver(sender, consent, old_status, new_status, transition_id, **kwargs):
        seen.append((old_status, new_status, transition_id))

    consent_status_changed.connect(receiver, weak=False, dispatch_uid="seen")
    try:
        with commit():
            created = api.post("/invoicepay/api/holds/consents/", BODY, format="json").json()
            url = f"/invoicepay/api/holds/consents/{created['id']}/otp/"
            api.post(url, {"otp": "000000"}, format="json")  # wrong: stays waiting, no transition
            api.post(url, {"otp": sandbox.SANDBOX_ONEPIPE_OTP}, format="json")
            api.post(url, {"otp": sandbox.SANDBOX_ONEPIPE_OTP}, format="json")  # again: nothing to confirm
    finally:
        consent_status_changed.disconnect(dispatch_uid="seen")
    assert [(old, new) for old, new, _ in seen] == [("requested", "waiting_for_otp"), ("waiting_for_otp", "active")]
    consent = HoldConsent.objects.get(public_token=created["id"])
    assert [t for _, _, t in seen] == [str(c.transition_id) for c in consent.status_changes.exclude(source="create")]
