"""InvoiceStatus: every status the provider (and so the sandbox) sends, its groups, and unknown statuses."""

from __future__ import annotations

import logging
import re

import pytest
from django.template import Context, Template
from django.utils import translation

from django_invoicepay import sandbox
from django_invoicepay.conf import DEFAULT_ORDER_STATES, INVOICE_STATUSES
from django_invoicepay.models import Invoice, InvoiceStatus
from django_invoicepay.sandbox.processors import FINAL_INVOICE_STATUSES
from django_invoicepay.statuses import label
from tests.conftest import force_status

S = InvoiceStatus
GROUPS = {"NEW": S.NEW, "AWAITING_PAYMENT": S.AWAITING_PAYMENT, "PAID_IN_FULL": S.PAID_IN_FULL, "CLOSED": S.CLOSED}


def remote_status(invoice: Invoice) -> str:
    return sandbox.get_state().data["invoices"][invoice.remote_id]["status"]


# -- the members ----------------------------------------------------------------------------------


def test_every_rehive_status_is_a_member_and_the_field_s_choices():
    assert set(S.values) == {"draft", "initiated", "processing", "received", "paid", "complete", "failed",
                             "overpaid", "cancelled", "expired", "late", "underpaid"}
    assert tuple(S.values) == INVOICE_STATUSES
    assert Invoice._meta.get_field("status").choices == S.choices
    assert Invoice._meta.get_field("status").max_length == 32


@pytest.mark.django_db
@pytest.mark.parametrize("ending", ["pay", "overpay", "underpay", "expire", "cancel", "crypto"])
def test_every_status_the_sandbox_produces_is_a_member(order, rehive, ending):
    seen = [rehive.create_invoice({"request_amount": 100, "status": "draft"}).status]
    invoice = Invoice.objects.create_for(order, amount=1250)
    seen.append(remote_status(invoice))
    processor = "native_bitcoin" if ending == "crypto" else "bank_transfer"
    sandbox.choose_processor(invoice.remote_id, processor)
    seen.append(remote_status(invoice))
    if ending == "crypto":
        sandbox.crypto_deposit(invoice.remote_id, confirmations=1)
        seen.append(remote_status(invoice))
        sandbox.confirm(invoice.remote_id, confirmations=sandbox.CONFIRMATIONS_REQUIRED)
    elif ending == "cancel":
        rehive.cancel_invoice(invoice.remote_id)
    elif ending == "expire":
        sandbox.expire(invoice.remote_id)
    else:
        getattr(sandbox, ending)(invoice.remote_id)
    seen.append(remote_status(invoice))
    assert set(seen) <= set(S.values), seen
    invoice.sync()
    assert invoice.status == seen[-1]


# -- the groups -----------------------------------------------------------------------------------


def test_the_groups_partition_the_statuses():
    members = set(S)
    assert set().union(*GROUPS.values()) == members
    assert sum(len(group) for group in GROUPS.values()) == len(members)  # no status in two groups
    assert S.OPEN | S.FINAL == members and not S.OPEN & S.FINAL
    assert S.OPEN == S.NEW | S.AWAITING_PAYMENT and S.FINAL == S.PAID_IN_FULL | S.CLOSED
    assert S.PAID_IN_FULL == {"paid", "complete", "late", "overpaid"}
    assert S.AWAITING_PAYMENT == {"processing", "received", "underpaid"}
    assert S.CLOSED == {"cancelled", "expired", "failed"}
    assert all(isinstance(group, frozenset) for group in (*GROUPS.values(), S.OPEN, S.FINAL))


def test_the_groups_agree_with_the_order_states_and_the_sandbox():
    assert {status for status, state in DEFAULT_ORDER_STATES.items() if state == "completed"} == S.PAID_IN_FULL
    assert {status for status, state in DEFAULT_ORDER_STATES.items() if state is None} == S.NEW
    assert FINAL_INVOICE_STATUSES == S.FINAL


@pytest.mark.parametrize("status", [*S.values, "disputed"])
def test_the_invoice_properties_follow_the_groups(status):
    invoice = Invoice(status=status)
    assert invoice.is_final == (status in S.FINAL)
    assert invoice.is_paid == (status in S.PAID_IN_FULL)
    assert invoice.is_awaiting_payment == (status in S.AWAITING_PAYMENT)
    if status == "disputed":  # a status the app does not know is in no group
        assert not (invoice.is_final or invoice.is_paid or invoice.is_awaiting_payment)


# -- an unknown status ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unknown_status_is_stored_as_it_is_and_logged_once(invoice, caplog):
    force_status(invoice.remote_id, "Disputed")
    with caplog.at_level(logging.WARNING, logger="django_invoicepay.invoices"):
        invoice.sync()
    assert invoice.status == "disputed"
    assert Invoice.objects.get(pk=invoice.pk).status == "disputed"
    warnings = [r for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warnings) == 1 and "'disputed'" in warnings[0].getMessage()
    assert not invoice.is_final and Invoice.objects.open().filter(pk=invoice.pk).exists()
    assert label("disputed") == "disputed" and invoice.get_status_display() == "disputed"


# -- words and templates --------------------------------------------------------------------------


def test_the_status_words_are_the_choices_labels():
    with translation.override("fr"):
        assert label("PAID") == "payée" == str(S.PAID.label)
        words = Template("{% load invoicepay %}{{ s|invoicepay_status }}").render(Context({"s": "cancelled"}))
        assert words == "annulée"
        assert label(S.EXPIRED) == str(S.EXPIRED.label)
    assert [label(status) for status in S.values] == S.values
    assert label(None) == ""


def _state(invoice: Invoice) -> str:
    html = Template("{% load invoicepay %}{% invoicepay_deposit invoice %}").render(Context({"invoice": invoice}))
    area = re.search(r'data-invoicepay-part="state">(.*?)</div>', html, re.S)
    assert area is not None
    classes = re.findall(r'class="invoicepay-(?:state invoicepay-)?([a-z]+)', area.group(1))
    return classes[0] if classes else ""


@pytest.mark.django_db
def test_the_deposit_widget_shows_the_part_of_each_status(invoice):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    invoice.sync()
    shown = {}
    for status in [*S.values, "disputed"]:
        invoice.status = status
        shown[status] = _state(invoice)
    assert shown == {
        "draft": "", "initiated": "", "processing": "", "received": "", "disputed": "",
        "paid": "paid", "complete": "paid", "late": "paid", "overpaid": "overpaid", "underpaid": "underpaid",
        "expired": "expired", "cancelled": "state", "failed": "state",
    }


@pytest.mark.django_db
def test_the_qr_explanation_offers_a_renewal_for_an_expired_invoice_only(invoice):
    for status, renew in ((S.EXPIRED, True), (S.CANCELLED, False), (S.PAID, False)):
        invoice.status = status
        html = Template("{% load invoicepay %}{% invoicepay_qr invoice %}").render(Context({"invoice": invoice}))
        assert f"This invoice is {status.label}: there is nothing to scan." in html
        assert ('data-invoicepay-renew="' in html) == renew


def test_the_script_snippets_name_every_status_and_the_expired_qr_text():
    html = Template("{% load invoicepay %}{% invoicepay_scripts %}").render(Context())
    assert re.findall(r'data-invoicepay-template="status" data-status="([a-z]+)"', html) == S.values
    expired = re.search(r'data-invoicepay-template="qr-final-expired">(.*?)</template>', html, re.S)
    assert expired is not None and "This invoice is expired" in expired.group(1)
    assert 'data-invoicepay-renew=""' in expired.group(1)


def test_templates_compare_statuses_by_member_or_group_name():
    from django.template import Context, Template

    template = Template('{% load invoicepay %}{{ s|invoicepay_status_is:"EXPIRED" }} '
                        '{{ s|invoicepay_status_is:"CLOSED" }} {{ s|invoicepay_status_is:"FINAL" }}')
    assert template.render(Context({"s": "expired"})) == "True True True"
    assert template.render(Context({"s": "processing"})) == "False False False"
    assert template.render(Context({"s": "reversed"})) == "False False False"  # unknown: in no group
    with pytest.raises(AttributeError):
        Template('{% load invoicepay %}{{ s|invoicepay_status_is:"EXPIRD" }}').render(Context({"s": "expired"}))
