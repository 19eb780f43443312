"""django_invoicepay.testing: the factories, payer, senders and plugin that shops test with."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from django_invoicepay import sandbox
from django_invoicepay.models import InvoiceStatusChange
from django_invoicepay.testing.factories import (
    INVOICE_STATUSES,
    HoldConsentFactory,
    HoldFactory,
    InvoiceFactory,
    InvoiceTransactionFactory,
    QuoteFactory,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def remote(invoice) -> dict:
    with sandbox.get_state().transaction() as data:
        return {"invoice": dict(data["invoices"][invoice.remote_id]),
                "transactions": list(data["transactions"].get(invoice.remote_id, []))}


@pytest.mark.parametrize("status", INVOICE_STATUSES)
def test_an_invoice_factory_makes_the_same_invoice_at_the_provider_and_in_the_mirror(status, order):
    invoice = InvoiceFactory(order=order, amount=order.total, status=status)
    at_provider = remote(invoice)
    assert invoice.status == at_provider["invoice"]["status"] == status
    assert invoice.request_amount == order.total and invoice.order == order
    assert invoice.quotes.count() == len(at_provider["invoice"]["payment_processor_quotes"])
    assert invoice.transactions.count() == len(at_provider["transactions"])
    order.refresh_from_db()
    assert order.status == {"initiated": "new", "processing": "awaiting_payment", "underpaid": "awaiting_payment",
                            "paid": "completed", "overpaid": "completed", "expired": "expired",
                            "cancelled": "cancelled"}[status]


def test_a_paid_invoice_has_its_quote_and_transaction():
    invoice = InvoiceFactory(paid=True, amount=4000)
    quote = invoice.quotes.get()
    transaction = invoice.transactions.get()
    assert (quote.processor, quote.total_paid, quote.status) == ("native", 4000, "paid")
    assert (transaction.amount, transaction.status) == (4000, "complete")


def test_overpaid_and_underpaid_invoices_are_off_by_what_was_asked():
    assert InvoiceFactory(overpaid=True, by=300).overpaid_by == 300
    assert InvoiceFactory(underpaid=True, by=250, amount=1000).outstanding == 250


def test_factories_make_state_not_news(invoicepay_signals, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = InvoiceFactory(paid=True)
        HoldFactory(status="released")
    assert invoicepay_signals == []
    assert not InvoiceStatusChange.objects.filter(invoice=invoice, announced_at__isnull=True).exists()


def test_quote_and_transaction_factories_act_on_an_invoice():
    quote = QuoteFactory(processor="native_bitcoin")
    assert (quote.processor_type, quote.invoice.primary_processor) == ("crypto", "native_bitcoin")
    pending = InvoiceTransactionFactory(invoice=quote.invoice, confirmations=1)
    assert pending.is_pending and pending.invoice.pending_transactions == [pending]
    paid = InvoiceTransactionFactory(amount=500)
    assert (paid.amount, paid.status, paid.invoice.status) == (500, "complete", "underpaid")


def test_consent_and_hold_factories():
    waiting = HoldConsentFactory(status="waiting_for_otp")
    assert waiting.status == "waiting_for_otp" and not waiting.token_sealed
    placed = HoldFactory(amount=7000)
    assert (placed.status, placed.consent.status, placed.amount) == ("placed", "active", 7000)
    assert HoldFactory(status="released").status == "released"
    expired = HoldFactory(status="expired", amount=9000)
    with sandbox.get_state().transaction() as data:
        account = data["onepipe"]["transactions"][expired.transaction_ref]["account"]
        balance = data["onepipe"]["balances"][account]
    # only the placed hold is still held: the released and the expired ones came back
    assert expired.status == "expired" and balance == sandbox.onepipe.START_BALANCE - 7000


def test_the_kit_refuses_to_act_when_the_sandbox_is_off(invoice, invoicepay_payer, fresh_sandbox):
    from django.test import override_settings

    from django_invoicepay.testing.sandbox import SandboxRequired

    live = {"SANDBOX": False, "REHIVE": {"API_KEY": "live-key", "BUSINESS_ID": "live-business"}}
    calls = len(fresh_sandbox.requests)
    with override_settings(INVOICEPAY=live):
        with pytest.raises(SandboxRequired, match="InvoiceFactory only works against the sandbox"):
            InvoiceFactory()
        with pytest.raises(SandboxRequired, match="setUp, not setUpTestData"):
            invoicepay_payer.pay(invoice)
    assert len(fresh_sandbox.requests) == calls  # and nothing went anywhere else: the client was never built


def test_webhook_callbacks_run_once_even_inside_the_tests_own_capture(invoice, invoicepay_payer,
                                                                       django_capture_on_commit_callbacks):
    from django.db import transaction

    from django_invoicepay.signals import invoice_status_changed

    emails = []

    def receiver(sender, invoice, new_status, **kwargs):  # a shop that e-mails after commit
        transaction.on_commit(lambda: emails.append(new_status))

    invoice_status_changed.connect(receiver, weak=False, dispatch_uid="test-email")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            invoicepay_payer.pay(invoice)
    finally:
        invoice_status_changed.disconnect(dispatch_uid="test-email")
    assert emails == ["paid"]


def test_the_onepipe_sender_posts_from_an_address_the_shop_accepts(settings, invoicepay_payer):
    hold = HoldFactory()
    settings.INVOICEPAY = {**settings.INVOICEPAY, "ONEPIPE": {"WEBHOOK_ALLOWED_IPS": ["198.51.100.0/24"]}}
    assert invoicepay_payer.let_hold_expire(hold).status == "expired"


def test_factories_refuse_what_they_cannot_make_consistently():
    with pytest.raises(TypeError, match="only creates"):
        InvoiceFactory.build()
    with pytest.raises(ValueError, match="not 'refunded'"):
        InvoiceFactory(status="refunded")
    with pytest.raises(ValueError, match="made a processing invoice"):
        InvoiceFactory(status="initiated", processor="native")
    with pytest.raises(ValueError, match="placed, released or expired"):
        HoldFactory(status="failed")


def test_the_payer_tells_the_shop_unless_asked_not_to(invoice, order, invoicepay_payer, invoicepay_signals):
    invoicepay_payer.pay(invoice, notify=False)
    assert invoice.status == "initiated" and invoicepay_signals == []
    assert remote(invoice)["invoice"]["status"] == "paid"
    invoicepay_payer.webhook.send(invoice)
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")
    assert invoicepay_signals.names() == ["invoice_status_changed"]


def test_every_payer_action_reaches_the_shop(order, invoicepay_payer, invoicepay_signals):
    from django_invoicepay.models import Invoice

    def new() -> Invoice:
        return Invoice.objects.create_for(order, amount=1000, allow_another=True)

    assert invoicepay_payer.overpay(new(), by=5).overpaid_by == 5
    assert invoicepay_payer.underpay(new(), by=5).status == "underpaid"
    assert invoicepay_payer.expire(new()).status == "expired"
    assert invoicepay_payer.choose_processor(new(), "bank_transfer").primary_processor == "bank_transfer"
    bitcoin = invoicepay_payer.crypto_deposit(new(), confirmations=sandbox.CONFIRMATIONS_REQUIRED)
    assert bitcoin.status == "paid"
    assert invoicepay_signals.names().count("invoice_expired") == 1
    assert [kw["amount"] for kw in invoicepay_signals.of("invoice_overpaid")] == [5]


def test_the_senders_authenticate_as_the_receivers_expect(invoice, invoicepay_webhook, invoicepay_notification):
    assert invoicepay_webhook.send(invoice).status_code == 200
    assert invoicepay_webhook.send(invoice, secret="wrong").status_code == 401
    hold = HoldFactory()
    assert invoicepay_notification.send(hold).json()["status"] == "Successful"


def test_the_onepipe_sender_uses_the_shops_url_token(settings, invoicepay_notification):
    from django_invoicepay.models import WebhookDelivery

    hold = HoldFactory()
    settings.INVOICEPAY = {**settings.INVOICEPAY, "ONEPIPE": {"WEBHOOK_TOKEN": "url-token-1"}}
    assert "token=url-token-1" in invoicepay_notification.url
    assert invoicepay_notification.send(hold).status_code == 200
    assert WebhookDelivery.objects.filter(provider="onepipe").count() == 1


def test_the_sandbox_fixture_switches_the_sandbox_on_whatever_the_settings_say(pytester):
    """A shop's project with real credentials and no webhook secret: the plugin, found through its
    pytest11 entry point (no conftest), still gives each test the sandbox and an authenticated sender."""
    pytester.makeini(textwrap.dedent(f"""
        [pytest]
        DJANGO_SETTINGS_MODULE = shopsettings
        pythonpath = {ROOT} {ROOT / "example_project"}
    """))
    pytester.makepyfile(shopsettings=textwrap.dedent("""
        from tests.settings import *  # noqa: F403
        INVOICEPAY = {"SANDBOX": False, "REHIVE": {"API_KEY": "live-key", "BUSINESS_ID": "biz"}}
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    """))
    pytester.makepyfile(test_shop=textwrap.dedent("""
        import pytest
        from django_invoicepay.models import Invoice
        from shop.models import Order

        @pytest.mark.django_db
        def test_checkout(invoicepay_payer, invoicepay_signals, invoicepay_sandbox):
            order = Order.objects.create(description="Tea", total=725)
            invoice = Invoice.objects.create_for(order, amount=725)
            invoicepay_payer.pay(invoice)
            order.refresh_from_db()
            assert (invoice.status, order.status) == ("paid", "completed")
            assert invoicepay_signals.transitions() == [("initiated", "paid")]
            assert invoicepay_sandbox.requests

        def test_a_tests_own_settings_change_is_undone_with_the_sandboxes(settings, invoicepay_sandbox):
            settings.INVOICEPAY = {**settings.INVOICEPAY, "HTTP_MAX_RETRIES": 0}

        def test_no_sandbox_without_the_fixture():
            from django_invoicepay.conf import invoicepay_settings
            assert invoicepay_settings.SANDBOX is False
            assert invoicepay_settings.REHIVE["WEBHOOK_SECRET"] == ""
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--ds=shopsettings")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("name", ["test_checkout.py", "test_checkout_testcase.py", "conftest.py"])
def test_the_testing_docs_show_the_example_shops_tests_as_they_are(name):
    """docs/testing.md shows these files whole; they are run (by `make test` and against the wheel in CI)."""
    source = (ROOT / "example_project" / "shop" / "tests" / name).read_text().rstrip()
    assert f"```python\n{source}\n```" in (ROOT / "docs" / "testing.md").read_text()
