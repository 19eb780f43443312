"""The same kit for a shop that writes Django TestCases (docs/testing.md#djangos-testcase)."""

from django.test import TestCase

from django_invoicepay.models import Invoice
from django_invoicepay.testing.cases import InvoicePayTestMixin
from django_invoicepay.testing.factories import HoldFactory, InvoiceFactory
from shop.models import Order


class CheckoutTests(InvoicePayTestMixin, TestCase):
    def test_a_paid_invoice_completes_the_order(self):
        order = Order.objects.create(description="Tea", total=725)
        self.client.post(f"/orders/{order.pk}/invoice/")
        invoice = Invoice.objects.for_order(order).get()

        self.invoicepay_payer.pay(invoice)

        order.refresh_from_db()
        self.assertEqual((invoice.status, order.status), ("paid", "completed"))
        self.assertEqual(self.invoicepay_signals.transitions(), [("initiated", "paid")])

    def test_each_test_has_its_own_sandbox(self):
        InvoiceFactory(paid=True)
        InvoiceFactory(paid=True)
        with self.invoicepay_sandbox.transaction() as data:
            self.assertEqual(len(data["invoices"]), 2)  # nothing left over from the other test

    def test_an_expired_deposit_hold_is_told_by_onepipe(self):
        hold = HoldFactory(amount=10_000)

        self.invoicepay_payer.let_hold_expire(hold)

        self.assertEqual(hold.status, "expired")
        self.assertEqual([kw["new_status"] for kw in self.invoicepay_signals.of("hold_status_changed")], ["expired"])
