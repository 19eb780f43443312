"""Open loop: deposit details (all three seed shapes), underpaid / overpaid / expired, crypto confirmations."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from django_invoicepay import sandbox
from django_invoicepay.errors import InvoiceStateError, ProviderUnavailable
from django_invoicepay.models import Invoice, Refund
from django_invoicepay.rehive.payloads import InvoiceData
from django_invoicepay.services.invoices import apply_invoice

pytestmark = pytest.mark.django_db


def deposit_html(invoice) -> str:
    return Template("{% load invoicepay %}{% invoicepay_deposit invoice %}").render(Context({"invoice": invoice}))


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def with_quote(invoice, *, ptype, reference, details, currency=("USD", 2), amount=1250, paid=0, status="processing"):
    invoice.refresh_from_db()
    payload = {**invoice.raw, "status": status, "primary_payment_processor": "p", "updated": invoice.raw["updated"] + 1,
               "payment_processor_quotes": [{
                   "id": 9, "reference": reference, "deposit_details": details, "status": status, "amount": amount,
                   "total_paid": paid, "currency": {"code": currency[0], "divisibility": currency[1]},
                   "payment_processor": {"unique_string_name": "p", "name": "Pay here", "type": ptype}}]}
    return apply_invoice(InvoiceData.parse(payload), source="test")


SEED_REFERENCE = "459b3407-3009-4f77-bbbf-5d6e12788958"
BTC_ADDRESS = "12CsH7h4ro5R8p3FwEAhKZHUEddz1ZfseV"


@pytest.mark.parametrize(
    ("ptype", "reference", "details", "expected"),
    [  # seeds 001, 002 and 003: deposit_details with the reference, with the address, and empty
        ("bank", SEED_REFERENCE, {"reference": SEED_REFERENCE}, f"Payment reference {SEED_REFERENCE}"),
        ("crypto", BTC_ADDRESS, {"public_address": BTC_ADDRESS}, f"Send to this address {BTC_ADDRESS}"),
        ("crypto", BTC_ADDRESS, {}, f"Send to this address {BTC_ADDRESS}"),
        ("custom", "REF-1", {}, "Reference REF-1"),
    ],
)
def test_every_seed_shape_shows_the_reference_once(invoice, ptype, reference, details, expected):
    html = deposit_html(with_quote(invoice, ptype=ptype, reference=reference, details=details))
    assert expected in text(html)
    assert html.count(f">{reference}</code>") == 1
    assert f'data-copy="{reference}"' in html


def test_bank_details_get_labels_and_unknown_keys_a_humanised_one(invoice):
    details = {"reference": "PAY123", "bank_name": "Sandbox Bank", "account_number": "62012345678",
               "branch_code": "250655", "beneficiary_kyc_level": "3", "empty": ""}
    shown = text(deposit_html(with_quote(invoice, ptype="bank", reference="PAY123", details=details)))
    for pair in ("Payment reference PAY123", "Bank Sandbox Bank", "Account number 62012345678",
                 "Branch code 250655", "Beneficiary kyc level 3", "Amount to pay 12.50 USD"):
        assert pair in shown
    assert "Empty" not in shown


def test_amounts_use_the_quote_currencys_divisibility(invoice):
    shown = text(deposit_html(with_quote(invoice, ptype="crypto", reference=BTC_ADDRESS, details={},
                                         currency=("BTC", 8), amount=25000)))
    assert "Amount to pay 0.00025000 BTC" in shown


def test_no_quote_yet_explains_and_a_missing_variable_does_not_crash(invoice):
    assert "Choose how you would like to pay" in deposit_html(invoice)
    assert "Choose how you would like to pay" in Template("{% load invoicepay %}{% invoicepay_deposit nope %}").render(
        Context({}))


def test_the_deposit_tag_makes_no_query_per_transaction(order):
    counts = []
    for n in (1, 12):
        invoice = Invoice.objects.create_for(order, amount=1250, allow_another=True)
        sandbox.choose_processor(invoice.remote_id, "native_bitcoin")
        for _ in range(n):
            sandbox.crypto_deposit(invoice.remote_id, amount=1, confirmations=1)
        invoice.sync()
        fresh = Invoice.objects.get(pk=invoice.pk)
        with CaptureQueriesContext(connection) as queries:
            html = deposit_html(fresh)
        assert html.count("waiting to be confirmed") == n
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 3


def test_a_crypto_deposit_counts_its_confirmations_until_paid(invoice, order):
    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)
    invoice.sync()
    (tx,) = invoice.pending_transactions
    html = text(deposit_html(invoice))
    detected = f"Your payment has been detected ( {tx.tx_hash} ) with 0 confirmations and is waiting to be confirmed"
    assert detected in html
    sandbox.confirm(invoice.remote_id)
    invoice.sync()
    assert "with 1 confirmation and is waiting" in text(deposit_html(invoice))
    api = APIClient().get(f"/invoicepay/api/invoices/{invoice.public_token}/").json()
    assert api["pending_transactions"][0]["hash"] == tx.tx_hash
    assert api["pending_transactions"][0]["confirmations"] == 1
    assert api["pending_transactions"][0]["amount"]["display"] == "0.00025000 BTC"
    sandbox.confirm(invoice.remote_id, confirmations=2)
    invoice.sync()
    order.refresh_from_db()
    assert (invoice.status, order.status, invoice.pending_transactions) == ("paid", "completed", [])
    assert "Paid in full" in deposit_html(invoice)


def test_seed_003_transaction_names_and_the_plain_list_shape_sync_too(invoice, fresh_sandbox):
    sandbox.crypto_deposit(invoice.remote_id, confirmations=2)
    for tx in fresh_sandbox.data["transactions"][invoice.remote_id]:
        tx["transaction_code"] = tx.pop("rehive_code")  # the Plue page's field name
    fresh_sandbox.data["legacy_lists"] = True  # the older `"data": [...]` list shape
    invoice.sync()
    (tx,) = invoice.transactions.all()
    assert (tx.status, tx.confirmations) == ("pending", 2)


def test_underpaid_shows_what_is_still_owed_and_the_details_again(invoice, order, fired, commit):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    sandbox.underpay(invoice.remote_id, 300)
    with commit():
        invoice.sync()
    order.refresh_from_db()
    assert (invoice.status, invoice.outstanding, order.status) == ("underpaid", 300, "awaiting_payment")
    shown = text(deposit_html(invoice))
    assert "3.00 USD is still owed" in shown and "Amount to pay 3.00 USD" in shown
    assert "Account number 62012345678" in shown
    assert ("invoice_underpaid", 300) in [(n, kw.get("outstanding")) for n, kw in fired]
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    assert invoice.status == "paid"


def test_overpaid_completes_the_order_and_refunds_exactly_the_difference_once(invoice, order, rehive):
    sandbox.overpay(invoice.remote_id, 275)
    invoice.sync()
    order.refresh_from_db()
    assert (invoice.status, invoice.overpaid_by, order.status) == ("overpaid", 275, "completed")
    first = invoice.refund_overpayment()
    second = invoice.refund_overpayment()
    assert first.pk == second.pk and (first.amount, first.status) == (275, "complete")
    assert [r["amount"] for r in rehive.list_refunds(invoice.remote_id)] == [275]
    assert "2.75 USD has been refunded to you" in text(deposit_html(Invoice.objects.get(pk=invoice.pk)))


def test_a_refund_interrupted_by_an_outage_finishes_later_without_a_second_refund(invoice, rehive, fresh_sandbox):
    sandbox.overpay(invoice.remote_id, 100)
    invoice.sync()
    sandbox.add_fault("timeout_after", path="refunds/$", method="POST", times=3)  # handled, answer lost, 3 times
    with pytest.raises(ProviderUnavailable):
        invoice.refund_overpayment()
    assert Refund.objects.get().status == "requested"
    refund = invoice.refund_overpayment()
    assert refund.status == "complete"
    assert [r["amount"] for r in rehive.list_refunds(invoice.remote_id)] == [100]
    keys = {r["headers"]["Idempotency-Key"] for r in fresh_sandbox.requests if r["path"].endswith("refunds/")
            and r["method"] == "POST"}
    assert keys == {f"overpayment-{invoice.remote_id}"}


def test_only_an_overpaid_invoice_is_refunded(invoice):
    with pytest.raises(InvoiceStateError, match="not overpaid"):
        invoice.refund_overpayment()
    assert not Refund.objects.exists()


def test_auto_refund_when_the_setting_is_on(invoice, rehive, commit):
    sandbox.overpay(invoice.remote_id, 50)
    with override_settings(INVOICEPAY={"SANDBOX": True, "AUTO_REFUND_OVERPAYMENT": True}), commit():
        invoice.sync()
    assert [r["amount"] for r in rehive.list_refunds(invoice.remote_id)] == [50]


def test_an_auto_refund_that_meets_an_outage_is_retried_with_the_announcement(invoice, rehive, commit):
    from django.utils import timezone

    from django_invoicepay.models import InvoiceStatusChange
    from django_invoicepay.services.polling import sweep

    sandbox.overpay(invoice.remote_id, 50)
    with override_settings(INVOICEPAY={"SANDBOX": True, "AUTO_REFUND_OVERPAYMENT": True}):
        sandbox.add_fault("503", path="refunds/", method="POST", times=20)
        with commit():
            invoice.sync()
        change = InvoiceStatusChange.objects.get(to_status="overpaid")
        assert change.announced_at is None and change.announce_attempts == 1  # to be sent again
        sandbox.get_state().faults.clear()
        InvoiceStatusChange.objects.filter(pk=change.pk).update(announcing_until=timezone.now())  # its delay passed
        assert sweep().announced == 1
    assert [r["amount"] for r in rehive.list_refunds(invoice.remote_id)] == [50]


def test_auto_refund_is_off_by_default(invoice, rehive, commit):
    sandbox.overpay(invoice.remote_id, 50)
    with commit():
        invoice.sync()
    assert rehive.list_refunds(invoice.remote_id) == []


def test_renew_copies_every_field_and_links_old_to_new(order, fresh_sandbox):
    created = timezone.now()
    old = Invoice.objects.create_for(
        order, amount=1250, description="Coffee beans", payer_email="ann@example.com",
        payer_mobile_number="+27821234567", items=[{"name": "Beans", "quantity": 2, "price": 625}],
        expires_at=created + timedelta(hours=24), due_at=created + timedelta(hours=12),
        return_url="https://shop.example/thanks", metadata={"campaign": "spring", "service_business": {"x": 1}},
    )
    sandbox.expire(old.remote_id)
    old.sync()
    new = old.renew()
    assert old.renew().pk == new.pk  # idempotent
    assert new.renewal_of == old and old.renewed_by == new
    remote_old = fresh_sandbox.data["invoices"][old.remote_id]
    remote_new = fresh_sandbox.data["invoices"][new.remote_id]
    for name in ("request_amount", "description", "payer_email", "payer_mobile_number", "return_url",
                 "request_reference", "metadata"):
        assert remote_new[name] == remote_old[name], name
    assert remote_new["metadata"]["service_business"]["items"] == [{"name": "Beans", "quantity": 2, "price": 625}]
    assert remote_new["status"] == "initiated" and new.order == order
    assert abs((new.expires_at - new.remote_created) - timedelta(hours=24)) < timedelta(seconds=5)
    assert abs((new.due_at - new.remote_created) - timedelta(hours=12)) < timedelta(seconds=5)
    assert new.public_token != old.public_token


def test_only_an_expired_invoice_is_renewed(invoice):
    with pytest.raises(InvoiceStateError, match="Only an expired invoice"):
        invoice.renew()


def test_renewing_through_the_api(invoice):
    sandbox.expire(invoice.remote_id)
    invoice.sync()
    api = APIClient()
    before = api.get(f"/invoicepay/api/invoices/{invoice.public_token}/").json()
    assert before["next_actions"] == ["renew"]
    assert "This invoice has expired" in deposit_html(invoice)
    assert 'data-invoicepay-renew="' in deposit_html(invoice)
    renewed = api.post(f"/invoicepay/api/invoices/{invoice.public_token}/renew/")
    assert renewed.status_code == 201
    again = api.post(f"/invoicepay/api/invoices/{invoice.public_token}/renew/")
    assert (again.status_code, again.json()["token"]) == (200, renewed.json()["token"])
    assert renewed.json()["status"] == "initiated"
    assert api.get(f"/invoicepay/api/invoices/{invoice.public_token}/").json()["renewed_by"] == renewed.json()["token"]
    assert "data-invoicepay-renew" not in deposit_html(Invoice.objects.get(pk=invoice.pk))
    paid = Invoice.objects.get(public_token=renewed.json()["token"])
    assert api.post(f"/invoicepay/api/invoices/{paid.public_token}/renew/").status_code == 409


def test_auto_renew_when_the_setting_is_on(invoice, commit):
    sandbox.expire(invoice.remote_id)
    with override_settings(INVOICEPAY={"SANDBOX": True, "AUTO_RENEW_EXPIRED": True}), commit():
        invoice.sync()
    assert Invoice.objects.get(renewal_of=invoice).status == "initiated"
