"""Orders follow invoices through ORDER_STATES and the order adapter."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.conf import DEFAULT_ORDER_STATES, INVOICE_STATUSES
from django_invoicepay.orders import OrderAdapter
from tests.conftest import force_status

pytestmark = pytest.mark.django_db

EXPECTED = {
    "draft": "new",  # unmapped: the order is left alone
    "initiated": "new",
    "processing": "awaiting_payment",
    "received": "payment_received",
    "paid": "completed",
    "complete": "completed",
    "overpaid": "completed",
    "late": "completed",
    "underpaid": "awaiting_payment",
    "expired": "expired",
    "cancelled": "cancelled",
    "failed": "payment_failed",
}


def test_the_expectations_cover_every_status():
    assert set(EXPECTED) == set(INVOICE_STATUSES) == set(DEFAULT_ORDER_STATES)


@pytest.mark.parametrize("status", INVOICE_STATUSES)
def test_every_invoice_status_moves_the_order_as_the_default_map_says(invoice, order, status):
    force_status(invoice.remote_id, status)
    invoice.sync()
    order.refresh_from_db()
    assert (invoice.status, order.status) == (status, EXPECTED[status])


def test_a_shop_map_replaces_the_default(invoice, order):
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_STATES": {"paid": "shipped", "processing": None}}):
        sandbox.choose_processor(invoice.remote_id, "native")
        invoice.sync()
        order.refresh_from_db()
        assert order.status == "new"
        sandbox.pay(invoice.remote_id)
        invoice.sync()
    order.refresh_from_db()
    assert order.status == "shipped"


class RecordingAdapter(OrderAdapter):
    calls: list = []

    def set_state(self, order, state, *, invoice):
        self.calls.append((order.pk, state, invoice.status))
        order.description = f"{order.description} [{state}]"
        order.save(update_fields=["description"])


def test_a_shop_adapter_is_used(invoice, order):
    RecordingAdapter.calls = []
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_ADAPTER": "tests.test_orders.RecordingAdapter"}):
        sandbox.pay(invoice.remote_id)
        invoice.sync()
    order.refresh_from_db()
    assert RecordingAdapter.calls == [(order.pk, "completed", "paid")]
    assert order.description.endswith("[completed]")
    assert order.status == "new"


def test_the_status_field_is_a_setting(invoice, order):
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_STATUS_FIELD": "description"}):
        sandbox.pay(invoice.remote_id)
        invoice.sync()
    order.refresh_from_db()
    assert (order.description, order.status) == ("completed", "new")


class BrokenAdapter(OrderAdapter):
    def set_state(self, order, state, *, invoice):
        raise RuntimeError("the shop's order code failed")


def test_a_failing_adapter_rolls_the_invoice_back_so_a_later_sync_retries(invoice, order, fired, commit):
    sandbox.pay(invoice.remote_id)
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_ADAPTER": "tests.test_orders.BrokenAdapter"}):
        with commit(), pytest.raises(RuntimeError):
            invoice.sync()
    invoice.refresh_from_db()
    assert invoice.status == "initiated"
    assert invoice.status_changes.count() == 1
    assert fired == []
    with commit():
        invoice.sync()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")
    assert [name for name, _ in fired] == ["invoice_status_changed"]


def test_overpaid_underpaid_and_expired_have_their_own_signals(order, fired, commit):
    from django_invoicepay.models import Invoice

    over = Invoice.objects.create_for(order, amount=1250)  # three open invoices for one order: asked for
    sandbox.overpay(over.remote_id, 275)
    under = Invoice.objects.create_for(order, amount=1250, allow_another=True)
    sandbox.underpay(under.remote_id, 50)
    gone = Invoice.objects.create_for(order, amount=1250, allow_another=True)
    sandbox.expire(gone.remote_id)
    with commit():
        for invoice in (over, under, gone):
            invoice.sync()
    extra = [(name, kw["invoice"].remote_id, kw.get("amount", kw.get("outstanding")))
             for name, kw in fired if name != "invoice_status_changed"]
    assert extra == [
        ("invoice_overpaid", over.remote_id, 275),
        ("invoice_underpaid", under.remote_id, 50),
        ("invoice_expired", gone.remote_id, None),
    ]
    assert (over.overpaid_by, over.outstanding) == (275, 0)
    assert (under.overpaid_by, under.outstanding) == (0, 50)
    assert str(under.outstanding_money) == "0.50 USD"


def test_a_deleted_order_does_not_stop_the_invoice(invoice, order):
    order.delete()
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    assert invoice.status == "paid"


def test_a_missing_status_field_is_an_error_that_names_the_setting(invoice, order):
    from django_invoicepay.errors import OrderAdapterError

    sandbox.pay(invoice.remote_id)
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_STATUS_FIELD": "state"}):
        with pytest.raises(OrderAdapterError) as raised:
            invoice.sync()
    assert "INVOICEPAY['ORDER_STATUS_FIELD'] is 'state', but shop.Order has no such field" in raised.value.message
    assert "description, status" in raised.value.message  # what it could be
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("initiated", "new")  # nothing half-written


def test_a_state_the_field_refuses_is_an_error_that_names_order_states(invoice, order):
    from django_invoicepay.errors import OrderAdapterError

    sandbox.pay(invoice.remote_id)
    too_long = {"paid": "paid-and-ready-to-ship-today-please"}
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_STATES": too_long}):
        with pytest.raises(OrderAdapterError, match=r"ORDER_STATES'\] maps invoice status 'paid'.*at most 32"):
            invoice.sync()


def test_the_payer_api_answers_when_the_order_cannot_follow_and_the_mirror_catches_up(invoice, order, caplog):
    from rest_framework.test import APIClient

    url = f"/invoicepay/api/invoices/{invoice.public_token}/processor/"
    with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_STATUS_FIELD": "state"}):
        response = APIClient().post(url, {"processor": "native"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "initiated"  # accepted, mirror behind
    assert "ORDER_STATUS_FIELD" in caplog.text
    invoice.sync()  # the setting fixed: the next sync catches up
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("processing", "awaiting_payment")


def test_with_order_model_the_states_are_checked_against_the_field():
    from django_invoicepay.checks import check_settings

    def ids(**config):
        with override_settings(INVOICEPAY={"SANDBOX": True, "ORDER_MODEL": "shop.Order", **config}):
            return [m.id for m in check_settings() if m.id == "invoicepay.E026"]

    assert ids() == []
    assert ids(ORDER_STATUS_FIELD="state") == ["invoicepay.E026"]
    assert ids(ORDER_STATES={"paid": "x" * 40}) == ["invoicepay.E026"]
