"""What the widget tags render for the script and for browsers without it (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import RequestFactory, override_settings

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice, Refund

pytestmark = pytest.mark.django_db
SCRIPT = Path(__file__).resolve().parents[2] / "django_invoicepay" / "static" / "invoicepay" / "invoicepay.js"


def render(text: str, **context) -> str:
    return Template("{% load invoicepay %}" + text).render(Context(context))


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def overpaid(invoice, by: int = 275) -> Invoice:
    sandbox.overpay(invoice.remote_id, by)
    invoice.sync()  # no commit here: AUTO_REFUND_OVERPAYMENT's on-commit refund does not run
    return Invoice.objects.get(pk=invoice.pk)


def test_an_overpayment_is_promised_back_only_when_the_shop_refunds_automatically(invoice):
    invoice = overpaid(invoice)
    shown = text(render("{% invoicepay_deposit invoice %}", invoice=invoice))
    assert "Paid in full, with 2.75 USD more than needed. The shop will be in touch about the difference." in shown
    assert "refunded" not in shown
    with override_settings(INVOICEPAY={"SANDBOX": True, "AUTO_REFUND_OVERPAYMENT": True}):
        shown = text(render("{% invoicepay_deposit invoice %}", invoice=invoice))
        scripts = render("{% invoicepay_scripts %}")
    assert "The difference will be refunded to you." in shown and "in touch" not in shown
    overpaid_snippet = re.search(r'data-invoicepay-template="overpaid">(.*?)</template>', scripts, re.S).group(1)
    assert "The difference will be refunded to you." in overpaid_snippet  # the script says the same
    assert "in touch" in re.search(r'data-invoicepay-template="overpaid">(.*?)</template>',
                                   render("{% invoicepay_scripts %}"), re.S).group(1)


@pytest.mark.parametrize(
    ("status", "said"),
    [("complete", "2.75 USD has been refunded to you."), ("requested", "A refund of 2.75 USD is on its way."),
     ("failed", "The shop will be in touch about the difference.")],
)
def test_an_existing_refund_is_described_as_it_stands(invoice, status, said):
    invoice = overpaid(invoice)
    Refund.objects.create(invoice=invoice, reason="overpayment", amount=275, currency_code="USD",
                          currency_divisibility=2, status=status, idempotency_key=f"test-{invoice.pk}")
    shown = text(render("{% invoicepay_deposit invoice %}", invoice=Invoice.objects.get(pk=invoice.pk)))
    assert shown.endswith(said)


def test_without_the_script_the_widget_asks_for_a_reload_and_promises_nothing(invoice):
    sandbox.choose_processor(invoice.remote_id, "native_bitcoin")
    invoice.sync()
    html = render("{% invoicepay_deposit invoice %}", invoice=invoice)
    assert re.search(r'<p class="invoicepay-reload" data-invoicepay-part="reload">Reload this page to see the latest '
                     r'status\. <a class="invoicepay-reload-link" href="">Reload</a></p>', html)
    assert re.search(r'<p class="invoicepay-live" data-invoicepay-part="live" hidden>This page updates by itself\.</p>',
                     html)  # shown by the script only once it polls
    assert "<script" not in html
    sandbox.pay(invoice.remote_id)
    html = render("{% invoicepay_deposit invoice %}", invoice=invoice.sync())
    assert "Paid in full" in html and "Reload this page" not in html and "updates by itself" not in html


def test_the_widgets_carry_what_the_script_needs(invoice):
    request = RequestFactory().get("/")
    from django.middleware.csrf import get_token

    token = get_token(request)
    context = Context({"invoice": invoice, "csrf_token": token})
    html = Template('{% load invoicepay %}{% invoicepay_deposit invoice pay_url="/pay/{token}/" interval=10 %}'
                    ).render(context)
    assert 'data-invoicepay-widget="deposit"' in html
    assert f'data-invoicepay-api="/invoicepay/api/invoices/{invoice.public_token}/"' in html
    assert f'data-invoicepay-token="{invoice.public_token}"' in html
    assert 'data-invoicepay-status="initiated"' in html and 'data-invoicepay-final="false"' in html
    assert 'data-invoicepay-pay-url="/pay/{token}/"' in html
    assert f'data-invoicepay-csrf="{token}"' in html
    assert 'data-invoicepay-interval="250"' in html  # bounded
    assert 'data-invoicepay-csrf' not in render("{% invoicepay_deposit invoice %}", invoice=invoice)  # no request
    assert 'data-invoicepay-refresh="false"' in render("{% invoicepay_qr invoice refresh=False %}", invoice=invoice)
    assert render("<div {% invoicepay_attrs invoice %}>", invoice=invoice).startswith(
        f'<div  data-invoicepay-token="{invoice.public_token}"')
    assert render("<div {% invoicepay_attrs nothing %}>") == "<div >"


def test_a_renewed_invoice_links_to_its_successor_on_the_shop_page(invoice):
    sandbox.expire(invoice.remote_id)
    invoice.sync()
    assert 'data-invoicepay-renew="' in render('{% invoicepay_qr invoice %}', invoice=invoice)
    new = invoice.renew()
    old = Invoice.objects.select_related("renewed_by").get(pk=invoice.pk)
    html = render('{% invoicepay_deposit invoice pay_url="/pay/%7Btoken%7D/" %}', invoice=old)
    assert f'<a href="/pay/{new.public_token}/" data-invoicepay-renewed>Go to the new invoice</a>' in html
    assert "has been created" in text(html) and "data-invoicepay-renew=" not in html
    assert "Go to the new invoice" not in render("{% invoicepay_deposit invoice %}", invoice=old)


def test_the_script_tag_is_a_file_and_every_snippet_the_script_uses_is_rendered():
    html = render("{% invoicepay_scripts %}")
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/invoicepay/invoicepay.js" defer>']
    rendered = set(re.findall(r'<template data-invoicepay-template="([\w-]+)"', html))
    source = SCRIPT.read_text()
    used = set(re.findall(r'snippet(?:Text)?\("([\w-]+)"', source))
    used |= set(re.findall(r'renewedSnippet\("([\w-]+)"', source))
    used |= {"refund-complete", "refund-failed", "refund-requested"}  # chosen by the refund's status
    assert used <= rendered, used - rendered
    counts = re.findall(r'data-invoicepay-template="pending-hash" data-count="(\d+)"', html)
    assert counts == [str(n) for n in range(13)]
    assert "with 1 confirmation and" in html and "with 2 confirmations and" in html  # plural forms from the server
    for forbidden in ("eval(", "new Function", "innerHTML", "setAttribute(\"style\"", "onclick"):
        assert forbidden not in source
