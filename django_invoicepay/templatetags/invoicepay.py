"""`{% load invoicepay %}`: the payer-facing pieces of an invoice, as overridable templates.

`{% invoicepay_qr %}` and `{% invoicepay_deposit %}` render server-side and work without JavaScript.
`{% invoicepay_scripts %}` adds `static/invoicepay/invoicepay.js` (and the translated snippets it
re-renders the widgets with), which keeps them up to date through the payer API and drives their
buttons; `{% invoicepay_attrs invoice %}` makes an element of the shop's own page a live scope too.
See docs/template-tags.md.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.template import Context
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from ..conf import invoicepay_settings
from ..deposit import deposit_for
from ..models import Invoice
from ..qr import qr_svg
from ..statuses import InvoiceStatus
from ..statuses import label as status_label

register = template.Library()

#: The widget script re-renders "detected with N confirmations" from server-translated snippets
#: for these counts (plural rules differ between languages); for others it reloads the page.
CONFIRMATION_COUNTS = range(0, 13)
#: Bounds of the polling interval a page may ask for (milliseconds).
MIN_INTERVAL, MAX_INTERVAL = 250, 600_000
#: What stands for the new invoice's token in a `pay_url` template (`%7Btoken%7D` is how
#: `{% url 'shop:pay' '{token}' %}` writes it).
TOKEN_PLACEHOLDERS = ("{token}", "%7Btoken%7D", "%7btoken%7d")
#: What Django's csrf context processor gives when there is no token to give.
NOT_PROVIDED = "NOTPROVIDED"  # noqa: S105 - a marker, not a secret


def _api_url(invoice: Invoice) -> str | None:
    try:
        return reverse("invoicepay_api:invoice", args=[invoice.public_token])
    except NoReverseMatch:  # the shop did not include django_invoicepay.urls: the widget stays static
        return None


def _csrf_token(context: Context | None) -> str | None:
    value = context.get("csrf_token") if context is not None else None
    value = str(value) if value else ""
    return value if value and value != NOT_PROVIDED else None


def _interval(value: Any) -> int | None:  # whatever the template passed
    if value in (None, ""):
        return None
    try:
        return min(max(int(value), MIN_INTERVAL), MAX_INTERVAL)
    except (TypeError, ValueError):
        return None


def page_url(pay_url: str | None, token: str) -> str | None:
    """`pay_url` with the invoice's token in place of `{token}`."""
    if not pay_url:
        return None
    for placeholder in TOKEN_PLACEHOLDERS:
        pay_url = pay_url.replace(placeholder, token)
    return pay_url


def live_attrs(
    context: Context | None, invoice: Invoice, *, pay_url: str | None = None, interval: Any = None, refresh: bool = True
) -> SafeString:
    """The data attributes the widget script reads, with a leading space (empty for a non-invoice)."""
    if not isinstance(invoice, Invoice):
        return mark_safe("")  # noqa: S308 - a constant
    attrs = [
        ("data-invoicepay-token", invoice.public_token),
        ("data-invoicepay-status", invoice.status),
        ("data-invoicepay-final", "true" if invoice.is_final else "false"),
    ]
    api = _api_url(invoice)
    if api:
        attrs.append(("data-invoicepay-api", api))
    if pay_url:
        attrs.append(("data-invoicepay-pay-url", str(pay_url)))
    csrf = _csrf_token(context)
    if csrf:
        attrs.append(("data-invoicepay-csrf", csrf))
    interval = _interval(interval)
    if interval:
        attrs.append(("data-invoicepay-interval", str(interval)))
    if not refresh:
        attrs.append(("data-invoicepay-refresh", "false"))
    return format_html_join("", ' {}="{}"', attrs)


def _renewal(invoice: Invoice, pay_url: str | None) -> dict[str, Any]:
    """The invoice that replaced this expired one, and its page (only an expired invoice is looked up)."""
    renewed = getattr(invoice, "renewed_by", None) if invoice.status == InvoiceStatus.EXPIRED else None
    token = renewed.public_token if renewed is not None else ""
    return {"renewed": token, "renewed_url": page_url(pay_url, token) if token else None}


@register.filter
def invoicepay_status(status: object) -> str:
    """`{{ invoice.status|invoicepay_status }}`: the status in words, in the active language ("paid",
    "payée"); a status the app does not know, as it is."""
    return status_label(status)


@register.filter
def invoicepay_status_is(status: object, name: str) -> bool:
    """`{% if invoice.status|invoicepay_status_is:"CLOSED" %}`: the status is the `InvoiceStatus` member
    (`"EXPIRED"`) or in the group (`"CLOSED"`, `"FINAL"`, ...) of that name. A name that is neither
    raises: a typo fails the page's test instead of hiding a branch."""
    wanted = getattr(InvoiceStatus, name)
    if isinstance(wanted, frozenset):
        return status in wanted
    if isinstance(wanted, InvoiceStatus):
        return status == wanted
    raise AttributeError(f"InvoiceStatus has no member or group {name!r}")


def script_statuses() -> dict[str, Any]:
    """What invoicepay.js decides by, from InvoiceStatus (read from the page, not hard-coded in the script)."""
    return {
        "final": sorted(InvoiceStatus.FINAL),
        "paid": sorted(InvoiceStatus.PAID_IN_FULL - {InvoiceStatus.OVERPAID}),  # overpaid has its own part
        "overpaid": InvoiceStatus.OVERPAID.value,
        "underpaid": InvoiceStatus.UNDERPAID.value,
        "expired": InvoiceStatus.EXPIRED.value,
        "closed": sorted(InvoiceStatus.CLOSED - {InvoiceStatus.EXPIRED}),  # expired has its own part
    }


@register.simple_tag(takes_context=True)
def invoicepay_attrs(context: Context, invoice: Invoice, pay_url: str | None = None, interval: Any = None,
                     refresh: bool = True) -> SafeString:
    """`<div {% invoicepay_attrs invoice %}>`: makes a shop's element a live scope of `invoice` (its
    `data-invoicepay-field` elements, controls and `data-invoicepay-when` parts are kept up to date)."""
    return live_attrs(context, invoice, pay_url=pay_url, interval=interval, refresh=refresh)


@register.inclusion_tag("invoicepay/qr.html", takes_context=True)
def invoicepay_qr(
    context: Context,
    invoice: Invoice,
    size: int = 4,
    show_link: bool = False,
    name: str | None = None,
    pay_url: str | None = None,
    interval: Any = None,
    refresh: bool = True,
) -> dict[str, Any]:
    """The Scan to Pay QR code of `invoice` (inline SVG), or a short explanation when there is none.

    `size` is the pixel size of one module; `show_link` also shows the URI as a link, for
    payers on the device that holds their wallet; `name` overrides REHIVE["QR_NAME"].
    `pay_url`, `interval` and `refresh` configure the widget script (see `invoicepay_deposit`).
    """
    is_invoice = isinstance(invoice, Invoice)
    common = {
        "invoice": invoice if is_invoice else None,
        "token": invoice.public_token if is_invoice else "",
        "live_attrs": live_attrs(context, invoice, pay_url=pay_url, interval=interval, refresh=refresh),
        **(_renewal(invoice, pay_url) if is_invoice else {}),
    }
    uri = invoice.scan_to_pay_uri(name=name) if is_invoice else None
    quote = invoice.native_quote if uri is not None else None  # there is a URI only with a native quote
    if uri is None or quote is None:
        return {**common, "available": False}
    payee = name if name is not None else invoicepay_settings.REHIVE["QR_NAME"]
    amount = str(quote.money)
    if payee:
        label = _("Scan to pay %(amount)s to %(payee)s") % {"amount": amount, "payee": payee}
    else:
        label = _("Scan to pay %(amount)s") % {"amount": amount}
    try:
        scale = max(1, min(int(size), 20))
    except (TypeError, ValueError):
        scale = 4
    return {
        **common,
        "available": True,
        "uri": uri,
        "qr_id": quote.reference,
        "svg": mark_safe(qr_svg(uri, scale=scale, label=label)),  # noqa: S308 - segno output, label escaped
        "label": label,
        "amount": amount,
        "payee": payee,
        "show_link": show_link,
    }


@register.inclusion_tag("invoicepay/deposit.html", takes_context=True)
def invoicepay_deposit(
    context: Context, invoice: Invoice, pay_url: str | None = None, interval: Any = None, refresh: bool = True
) -> dict[str, Any]:
    """How to pay by deposit (bank transfer, crypto...): the reference, every deposit detail, what is
    still owed, and deposits seen but not yet confirmed. Renders an explanation when there is none.

    With `{% invoicepay_scripts %}` on the page it stays up to date by itself. `pay_url` is the shop's
    pay page with `{token}` for the invoice's token (where "Create a new invoice" leads), `interval`
    the polling period in ms (default 5000), `refresh=False` polls without asking the provider.
    """
    if not isinstance(invoice, Invoice):
        return {"invoice": None, "deposit": None}
    return {
        "invoice": invoice,
        "deposit": deposit_for(invoice),
        "token": invoice.public_token,
        "auto_refund": invoicepay_settings.AUTO_REFUND_OVERPAYMENT,
        "live_attrs": live_attrs(context, invoice, pay_url=pay_url, interval=interval, refresh=refresh),
        **_renewal(invoice, pay_url),
    }


@register.inclusion_tag("invoicepay/scripts.html")
def invoicepay_scripts() -> dict[str, Any]:
    """`<script src=".../invoicepay/invoicepay.js" defer>` and the translated `<template>` snippets the
    script renders updates with. Once per page, e.g. before `</body>`. No inline script: fits a
    Content-Security-Policy of `script-src 'self'`."""
    return {
        "auto_refund": invoicepay_settings.AUTO_REFUND_OVERPAYMENT,
        "confirmation_counts": CONFIRMATION_COUNTS,
        "statuses": InvoiceStatus,
        "script_statuses": json.dumps(script_statuses()),
        "status_labels": [(status, str(word)) for status, word in InvoiceStatus.choices],
    }
