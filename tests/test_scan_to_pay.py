"""Scan to Pay: the URI from the native processing quote, and the QR tag that carries it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.cache import cache
from django.template import Context, Template
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.qr import cache_key
from django_invoicepay.rehive.payloads import InvoiceData
from django_invoicepay.services.invoices import apply_invoice
from tests.qr_decode import decode_svg

pytestmark = pytest.mark.django_db

USER = "6a1a4bd6-5c1b-4bd1-8e0a-0b6f1d0f9d2e"


def with_quote(invoice, *, currency="USD", quote_currency=None, amount=101, status="processing",
               processor="native", processor_extra=None):
    """Give the mirrored invoice exactly this quote, through the normal apply path."""
    code, divisibility = quote_currency or ("USD", 2)
    invoice.refresh_from_db()  # build on the newest stored payload, so this one is newer still
    payload = {
        **invoice.raw, "status": "processing", "primary_payment_processor": processor,
        "request_currency": {"code": currency, "divisibility": 2}, "user": {"id": USER},
        "updated": invoice.raw["updated"] + 1,
        "payment_processor_quotes": [{
            "id": 7, "reference": "qr-ref-7", "status": status, "amount": amount,
            "currency": {"code": code, "divisibility": divisibility},
            "payment_processor": {"unique_string_name": processor, "type": "wallet", **(processor_extra or {})},
        }],
    }
    return apply_invoice(InvoiceData.parse(payload), source="test")


def query(uri: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


@pytest.mark.parametrize(
    ("quote_currency", "amount", "expected"),
    [(("JPY", 0), 1500, "1500"), (("USD", 2), 101, "1.01"), (("USD", 2), 100, "1.00"),
     (("BTC", 8), 1, "0.00000001"), (("BTC", 8), 123456789, "1.23456789")],
)
def test_the_amount_has_exactly_the_quote_currencys_decimals(invoice, quote_currency, amount, expected):
    uri = with_quote(invoice, quote_currency=quote_currency, amount=amount).scan_to_pay_uri()
    assert uri == f"rehive:{USER}?currency=USD&amount={expected}&qr_id=qr-ref-7&name=Test%20Shop"


def test_names_with_spaces_and_ampersands_are_encoded(invoice):
    invoice = with_quote(invoice)
    uri = invoice.scan_to_pay_uri(name="Tea & Cake = Café?")
    assert "name=Tea%20%26%20Cake%20%3D%20Caf%C3%A9%3F" in uri
    assert query(uri) == {"currency": "USD", "amount": "1.01", "qr_id": "qr-ref-7", "name": "Tea & Cake = Café?"}


def test_subtype_only_when_the_processor_has_one(invoice):
    assert "subtype" not in with_quote(invoice).scan_to_pay_uri()
    uri = with_quote(invoice, processor_extra={"rehive_subtype": "wallet_qr"}).scan_to_pay_uri()
    assert uri.endswith("&name=Test%20Shop&subtype=wallet_qr")
    legacy = with_quote(invoice, processor_extra={"subtype": "seed_subtype"}).scan_to_pay_uri()
    assert query(legacy)["subtype"] == "seed_subtype"


def test_the_scheme_and_default_name_are_settings(invoice):
    invoice = with_quote(invoice)
    with override_settings(INVOICEPAY={"SANDBOX": True, "REHIVE": {"QR_SCHEME": "plue", "QR_NAME": "Plue Shop"}}):
        assert invoice.scan_to_pay_uri().startswith(f"plue:{USER}?")
        assert query(invoice.scan_to_pay_uri())["name"] == "Plue Shop"


@pytest.mark.parametrize(("status", "processor"), [("paid", "native"), ("processing", "native_bitcoin")])
def test_no_native_processing_quote_means_no_uri(invoice, status, processor):
    assert invoice.scan_to_pay_uri() is None  # no quote at all yet
    assert with_quote(invoice, status=status, processor=processor).scan_to_pay_uri() is None


def test_through_the_sandbox(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    quote = invoice.native_quote
    assert invoice.scan_to_pay_uri() == (
        f"rehive:{USER}?currency=USD&amount=12.50&qr_id={quote.reference}&name=Test%20Shop"
    )


def render(text: str, **context) -> str:
    return Template("{% load invoicepay %}" + text).render(Context(context))


def test_the_qr_tag_decodes_to_the_uri_and_is_accessible(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    html = render("{% invoicepay_qr invoice %}", invoice=invoice)
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert decode_svg(svg) == [invoice.scan_to_pay_uri()]
    assert 'role="img"' in svg
    assert 'aria-label="Scan to pay 12.50 USD to Test Shop"' in svg
    assert "<figcaption>Scan to pay 12.50 USD to Test Shop</figcaption>" in html
    assert "<script" not in html and "http" not in svg.replace("http://www.w3.org", "")
    assert "<a href" not in html


def test_qr_tag_options(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    html = render('{% invoicepay_qr invoice size=8 show_link=True name="Tea & Co" %}', invoice=invoice)
    uri = invoice.scan_to_pay_uri(name="Tea & Co")
    assert f'<a href="{uri.replace("&", "&amp;")}">' in html
    assert decode_svg(re.search(r"<svg.*?</svg>", html, re.S).group(0)) == [uri]
    assert 'width="' in html and "Tea &amp;amp; Co" not in html and "to Tea &amp; Co" in html
    small = render("{% invoicepay_qr invoice size=2 %}", invoice=invoice)
    width = lambda h: int(re.search(r'<svg[^>]* width="(\d+)"', h).group(1))  # noqa: E731
    assert width(html) == 4 * width(small)


def test_the_same_uri_renders_from_the_cache(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    render("{% invoicepay_qr invoice %}", invoice=invoice)
    key = cache_key(invoice.scan_to_pay_uri(), 4, "Scan to pay 12.50 USD to Test Shop")
    assert cache.get(key).startswith("<svg")
    cache.set(key, "<svg>from the cache</svg>")
    assert "<svg>from the cache</svg>" in render("{% invoicepay_qr invoice %}", invoice=invoice)


def test_without_a_native_quote_the_tag_explains(invoice):
    html = render("{% invoicepay_qr invoice %}", invoice=invoice)
    assert "<svg" not in html and "Choose to pay from your wallet" in html
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    assert "This invoice is paid" in render("{% invoicepay_qr invoice %}", invoice=invoice)
    assert "Choose to pay" in render("{% invoicepay_qr missing %}")


def test_without_a_display_name_the_label_names_only_the_amount(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    with override_settings(INVOICEPAY={"SANDBOX": True, "REHIVE": {"QR_NAME": ""}}):
        html = render("{% invoicepay_qr invoice %}", invoice=invoice)
    assert 'aria-label="Scan to pay 12.50 USD"' in html
    assert decode_svg(re.search(r"<svg.*?</svg>", html, re.S).group(0))[0].endswith("&name=")


def test_the_qr_is_drawn_when_the_cache_is_down(invoice, settings, caplog):
    """A shop's Redis cache going away costs the QR's caching, not the checkout page (no 500)."""
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1
    html = render("{% invoicepay_qr invoice %}", invoice=invoice)
    assert decode_svg(re.search(r"<svg.*?</svg>", html, re.S).group(0)) == [invoice.scan_to_pay_uri()]
    assert "The cache is unavailable for QR codes (ConnectionError)" in caplog.text
