"""The shop's checkout, tested with django_invoicepay.testing (this file is shown in docs/testing.md)."""

import pytest

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice
from django_invoicepay.testing.factories import HoldConsentFactory, InvoiceFactory
from shop.models import Order

pytestmark = pytest.mark.django_db


def checkout(client, description="Tea", total="7.25") -> tuple[Order, Invoice]:
    """What a customer does on the shop's pages: order, then ask for an invoice."""
    client.post("/", {"description": description, "total": total})
    order = Order.objects.get(description=description)
    client.post(f"/orders/{order.pk}/invoice/")
    return order, Invoice.objects.for_order(order).get()


def test_a_paid_invoice_completes_the_order(client, invoicepay_payer, invoicepay_signals):
    order, invoice = checkout(client)
    assert (invoice.request_amount, order.status) == (725, "new")

    invoicepay_payer.pay(invoice)  # the customer pays; the provider's webhook reaches the shop

    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")
    assert invoicepay_signals.transitions() == [("initiated", "paid")]
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="order-status">completed<' in page


def test_an_underpaid_invoice_keeps_the_order_waiting(client, invoicepay_payer, invoicepay_signals):
    order, invoice = checkout(client, total="10.00")

    invoicepay_payer.underpay(invoice, by=250)

    order.refresh_from_db()
    assert (invoice.status, invoice.outstanding, order.status) == ("underpaid", 250, "awaiting_payment")
    assert [kw["outstanding"] for kw in invoicepay_signals.of("invoice_underpaid")] == [250]


def test_bitcoin_completes_the_order_only_when_confirmed(client, invoicepay_payer):
    order, invoice = checkout(client)

    invoicepay_payer.crypto_deposit(invoice, confirmations=1)
    order.refresh_from_db()
    assert order.status == "awaiting_payment" and len(invoice.pending_transactions) == 1

    invoicepay_payer.confirm(invoice, confirmations=sandbox.CONFIRMATIONS_REQUIRED - 1)
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")


def test_an_expired_invoice_can_be_renewed_and_paid(client, invoicepay_payer):
    order, invoice = checkout(client)
    invoicepay_payer.expire(invoice)
    order.refresh_from_db()
    assert order.status == "expired"

    client.post(f"/orders/{order.pk}/renew/")  # the shop's "renew" button
    renewal = Invoice.objects.get(renewal_of=invoice)
    invoicepay_payer.pay(renewal)

    order.refresh_from_db()
    assert (renewal.status, order.status) == ("paid", "completed")


def test_a_repeated_webhook_changes_nothing(client, invoicepay_payer, invoicepay_webhook, invoicepay_signals):
    order, invoice = checkout(client)
    invoicepay_payer.pay(invoice, notify=False)  # the provider knows; the shop has not heard yet
    event = invoicepay_webhook.envelope(invoice)

    first = invoicepay_webhook.post(event)
    again = invoicepay_webhook.post(event)  # the provider sends the same event again

    assert (first.status_code, again.status_code, again.json()["duplicate"]) == (200, 200, True)
    assert invoicepay_signals.transitions() == [("initiated", "paid")]


def test_the_order_page_offers_to_refund_an_overpaid_invoice(client):
    order = Order.objects.create(description="Mug", total=1000)
    invoice = InvoiceFactory(order=order, amount=order.total, status="overpaid", by=100)

    page = client.get(f"/orders/{order.pk}/").content.decode()

    assert invoice.overpaid_by == 100 and "Refund the overpayment" in page


def test_a_deposit_is_held_and_released(client, invoicepay_signals, django_capture_on_commit_callbacks):
    order = Order.objects.create(description="Camera rental", total=2500)
    consent = HoldConsentFactory(order=order)  # the customer consented with the sandbox's OTP

    with django_capture_on_commit_callbacks(execute=True):  # the shop's own views: signals go out on commit
        client.post(f"/orders/{order.pk}/deposit/hold/", {"amount": "5000.00"})
        hold = consent.holds.get()
        client.post(f"/orders/{order.pk}/deposit/{hold.pk}/release/")

    hold.refresh_from_db()
    assert (hold.amount, hold.status) == (500_000, "released")
    changes = [(kw["old_status"], kw["new_status"]) for kw in invoicepay_signals.of("hold_status_changed")]
    assert changes == [("pending", "placed"), ("placed", "released")]
