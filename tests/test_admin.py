"""The admin: every action needs its permission, and every page works on every database.

Real admin over the test client, the sandbox behind the provider calls. Runs on SQLite, PostgreSQL
and MariaDB alike (`make test-postgres`, `make test-mariadb`): the pages run in a time zone other
than the database connection's, so a MySQL/MariaDB server without time zone tables (CONVERT_TZ gives
NULL) would make any time-zone-converting query of theirs fail here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse

from django_invoicepay import sandbox
from django_invoicepay.models import Hold, HoldStatusChange, Invoice, InvoiceStatusChange, Refund, WebhookDelivery
from django_invoicepay.services import holds
from tests.test_holds import active_consent
from tests.test_webhooks import deliver, envelope

pytestmark = pytest.mark.django_db

# Not the connection's time zone (UTC): on MySQL/MariaDB a query converting to it needs the tz tables.
LOCAL_TZ = "Africa/Lagos"


def staff(*perms: str, username: str = "staff"):
    """A staff user holding exactly `perms` ("app_label.codename")."""
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def changelist(model) -> str:
    return reverse(f"admin:invoicepay_{model._meta.model_name}_changelist")


def offered(client, model) -> set[str]:
    """The action names the changelist offers to the logged-in user."""
    response = client.get(changelist(model))
    assert response.status_code == 200
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def run(client, model, action: str, pk) -> str:
    response = client.post(changelist(model), {"action": action, "_selected_action": [pk]}, follow=True)
    assert response.status_code == 200
    return " | ".join(str(m) for m in response.context["messages"])


def provider_and_rows(state) -> tuple:
    """Everything an action could change: the sandbox providers' data, and our rows."""
    return (
        copy.deepcopy(state.data),
        [list(model.objects.order_by("pk").values()) for model in
         (Invoice, InvoiceStatusChange, Refund, Hold, HoldStatusChange, WebhookDelivery)],
    )


def assert_refused(client, model, action: str, pk, state) -> None:
    """POSTing the action's name runs nothing: no provider call, no row changed, no success message."""
    state.requests.clear()
    before = provider_and_rows(state)
    messages = run(client, model, action, pk)
    assert state.requests == []
    assert provider_and_rows(state) == before
    assert ": 1" not in messages and "again" not in messages, messages


# -- invoices -------------------------------------------------------------------------------------

def _paid_at_the_provider(invoice: Invoice) -> None:
    sandbox.pay(invoice.remote_id)  # the mirror still says pending: a sync would change it


def _overpaid(invoice: Invoice) -> None:
    sandbox.overpay(invoice.remote_id)
    invoice.sync()


def _expired(invoice: Invoice) -> None:
    sandbox.expire(invoice.remote_id)
    invoice.sync()


#: action -> (the permission it needs, what makes it do something, its message, what it did)
INVOICE_ACTIONS: dict[str, tuple[str, Callable[[Invoice], None], str, Callable[[Invoice], bool]]] = {
    "sync_with_provider": ("invoicepay.change_invoice", _paid_at_the_provider, "Synced: 1",
                      lambda i: Invoice.objects.get(pk=i.pk).status == "paid"),
    "cancel_invoices": ("invoicepay.cancel_invoice", lambda i: None, "Cancelled: 1",
                        lambda i: Invoice.objects.get(pk=i.pk).status == "cancelled"),
    "refund_overpayments": ("invoicepay.refund_invoice", _overpaid, "Refunded: 1",
                            lambda i: Refund.objects.get(invoice=i).status == "complete"),
    "renew_invoices": ("invoicepay.renew_invoice", _expired, "Renewed: 1",
                       lambda i: Invoice.objects.filter(renewal_of=i).exists()),
}


@pytest.mark.parametrize("action", INVOICE_ACTIONS)
def test_view_only_staff_cannot_run_an_invoice_action(client, invoice, fresh_sandbox, action):
    _, ready, _, _ = INVOICE_ACTIONS[action]
    ready(invoice)
    client.force_login(staff("invoicepay.view_invoice"))
    assert offered(client, Invoice) == set()
    assert_refused(client, Invoice, action, invoice.pk, fresh_sandbox)


@pytest.mark.parametrize("action", INVOICE_ACTIONS)
def test_a_permission_runs_exactly_its_invoice_action(client, invoice, fresh_sandbox, action):
    perm, ready, message, done = INVOICE_ACTIONS[action]
    ready(invoice)
    client.force_login(staff("invoicepay.view_invoice", perm))
    assert offered(client, Invoice) == {action}
    for other in set(INVOICE_ACTIONS) - {action}:
        assert_refused(client, Invoice, other, invoice.pk, fresh_sandbox)
    assert message in run(client, Invoice, action, invoice.pk)
    assert done(invoice)


def test_the_permission_alone_without_view_opens_nothing(client, invoice, fresh_sandbox):
    client.force_login(staff("invoicepay.cancel_invoice"))
    fresh_sandbox.requests.clear()
    response = client.post(changelist(Invoice), {"action": "cancel_invoices", "_selected_action": [invoice.pk]})
    assert response.status_code == 403
    assert fresh_sandbox.requests == []
    assert Invoice.objects.get(pk=invoice.pk).status == invoice.status


# -- holds ----------------------------------------------------------------------------------------

def _hold_expired_at_the_provider(hold: Hold) -> None:
    sandbox.get_state().data["onepipe"]["transactions"][hold.transaction_ref]["hold_expiry"] = "2020-01-01-00-00-00"


HOLD_ACTIONS: dict[str, tuple[str, Callable[[Hold], None], str, str]] = {
    "release_holds": ("invoicepay.release_hold", lambda h: None, "Released: 1", "released"),
    "refresh_holds": ("invoicepay.change_hold", _hold_expired_at_the_provider, "Refreshed: 1", "expired"),
}


@pytest.fixture
def hold() -> Hold:
    placed = holds.place_hold(active_consent(), 5000, description="Rental deposit")
    assert placed.status == "placed"
    return placed


@pytest.mark.parametrize("action", HOLD_ACTIONS)
def test_view_only_staff_cannot_run_a_hold_action(client, hold, fresh_sandbox, action):
    HOLD_ACTIONS[action][1](hold)
    client.force_login(staff("invoicepay.view_hold"))
    assert offered(client, Hold) == set()
    assert_refused(client, Hold, action, hold.pk, fresh_sandbox)
    assert not [r for r in fresh_sandbox.requests if "reverse" in r["path"]]
    assert Hold.objects.get(pk=hold.pk).status == "placed"


@pytest.mark.parametrize("action", HOLD_ACTIONS)
def test_a_permission_runs_exactly_its_hold_action(client, hold, fresh_sandbox, action):
    perm, ready, message, status = HOLD_ACTIONS[action]
    ready(hold)
    client.force_login(staff("invoicepay.view_hold", perm))
    assert offered(client, Hold) == {action}
    for other in set(HOLD_ACTIONS) - {action}:
        assert_refused(client, Hold, other, hold.pk, fresh_sandbox)
    assert message in run(client, Hold, action, hold.pk)
    assert Hold.objects.get(pk=hold.pk).status == status


# -- the webhook log ------------------------------------------------------------------------------

@pytest.fixture
def failed_delivery(client, invoice, fresh_sandbox) -> WebhookDelivery:
    """A delivery that failed (the provider was down when it was processed); the invoice is paid there."""
    sandbox.pay(invoice.remote_id)
    sandbox.add_fault("503", method="GET", times=10)
    deliver(client, envelope(invoice.raw, event_id="evt-admin"))
    fresh_sandbox.faults.clear()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed"
    return delivery


def test_view_only_staff_cannot_reprocess_a_delivery(client, failed_delivery, invoice, fresh_sandbox):
    client.force_login(staff("invoicepay.view_webhookdelivery"))
    assert offered(client, WebhookDelivery) == set()
    assert_refused(client, WebhookDelivery, "reprocess_deliveries", failed_delivery.pk, fresh_sandbox)
    assert WebhookDelivery.objects.get().status == "failed"
    assert Invoice.objects.get(pk=invoice.pk).status == invoice.status != "paid"


def test_the_reprocess_permission_reprocesses(client, failed_delivery, invoice):
    client.force_login(staff("invoicepay.view_webhookdelivery", "invoicepay.reprocess_webhookdelivery"))
    assert offered(client, WebhookDelivery) == {"reprocess_deliveries"}
    assert "Processed again: 1 processed." in run(client, WebhookDelivery, "reprocess_deliveries", failed_delivery.pk)
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


def test_change_permission_alone_does_not_reprocess(client, failed_delivery, fresh_sandbox):
    client.force_login(staff("invoicepay.change_webhookdelivery"))
    assert offered(client, WebhookDelivery) == set()
    assert_refused(client, WebhookDelivery, "reprocess_deliveries", failed_delivery.pk, fresh_sandbox)


# -- superusers, and no page edits provider state -------------------------------------------------

def test_the_superuser_is_offered_every_action(admin_client):
    assert offered(admin_client, Invoice) == set(INVOICE_ACTIONS)
    assert offered(admin_client, Hold) == set(HOLD_ACTIONS)
    assert offered(admin_client, WebhookDelivery) == {"reprocess_deliveries"}


def test_no_page_edits_a_row_not_even_for_the_superuser(admin_client, invoice):
    url = reverse("admin:invoicepay_invoice_change", args=[invoice.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(url, {"status": "paid"}).status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).status == invoice.status
    assert admin_client.get(reverse("admin:invoicepay_invoice_add")).status_code == 403
    assert admin_client.get(reverse("admin:invoicepay_invoice_delete", args=[invoice.pk])).status_code == 403


# -- every page, on every database ----------------------------------------------------------------

def registered() -> list[type]:
    return [model for model in admin.site._registry if model._meta.app_label == "invoicepay"]


def test_no_date_hierarchy():
    """On MySQL/MariaDB without time zone tables, date_hierarchy is a 500 (CONVERT_TZ gives NULL)."""
    assert [m for m in registered() if admin.site._registry[m].date_hierarchy] == []


@override_settings(TIME_ZONE=LOCAL_TZ)
def test_every_page_filter_and_search_works(admin_client, failed_delivery, invoice, hold):
    assert {m.__name__ for m in registered()} >= {"Invoice", "WebhookDelivery", "HoldConsent", "Hold"}
    for model in registered():
        url = changelist(model)
        listing = admin_client.get(url)
        assert listing.status_code == 200, model
        cl = listing.context["cl"]
        assert cl.result_count >= 1, model
        assert admin_client.get(url, {"q": "no-such-thing"}).context["cl"].result_count == 0
        for spec in cl.filter_specs:
            for choice in spec.choices(cl):
                assert admin_client.get(url + choice["query_string"]).status_code == 200, (model, choice)
        obj = model.objects.first()
        change = admin_client.get(reverse(f"admin:invoicepay_{model._meta.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200, model
        history = admin_client.get(reverse(f"admin:invoicepay_{model._meta.model_name}_history", args=[obj.pk]))
        assert history.status_code == 200, model


@override_settings(TIME_ZONE=LOCAL_TZ)
def test_the_webhook_log_filters_by_date_without_time_zone_tables(admin_client, failed_delivery):
    url = changelist(WebhookDelivery)
    cl = admin_client.get(url).context["cl"]
    [dates] = [spec for spec in cl.filter_specs if getattr(spec, "field_path", "") == "received_at"]
    counts = {str(c["display"]): admin_client.get(url + c["query_string"]).context["cl"].result_count
              for c in dates.choices(cl)}
    assert counts["Today"] == counts["Past 7 days"] == counts["This year"] == 1
    assert admin_client.get(url, {"q": "evt-admin"}).context["cl"].result_count == 1


def test_an_invoice_and_a_consent_link_to_the_shops_order_and_the_order_shows_them(admin_client, invoice, order):
    from django_invoicepay.services import holds as hold_services
    from tests.test_holds import ACCOUNT, CUSTOMER

    consent = hold_services.request_consent(auth_type="bank.account", credentials=ACCOUNT, customer=CUSTOMER,
                                            order=order)
    order_url = f"/admin/shop/order/{order.pk}/change/"
    for page in (f"/admin/invoicepay/invoice/{invoice.pk}/change/",
                 f"/admin/invoicepay/holdconsent/{consent.pk}/change/"):
        html = admin_client.get(page).content.decode()
        assert f'<a href="{order_url}">{order}</a>' in html
    order_page = admin_client.get(order_url).content.decode()
    assert f'/admin/invoicepay/invoice/{invoice.pk}/change/' in order_page and invoice.reference in order_page
    assert f'/admin/invoicepay/holdconsent/{consent.pk}/change/' in order_page and "••••••6789" in order_page


@pytest.mark.parametrize("model", [Invoice, Hold])
def test_the_currency_is_shown_beside_the_amount(rf, model):
    fields = list(admin.site._registry[model].get_fields(rf.get("/")))
    at = fields.index(model.amount_field)
    assert fields[at + 1:at + 3] == ["currency_code", "currency_divisibility"]
