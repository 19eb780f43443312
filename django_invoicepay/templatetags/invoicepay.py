"""`{% load invoicepay %}`: the payer-facing pieces of an invoice, as overridable templates."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from ..conf import invoicepay_settings
from ..deposit import deposit_for
from ..models import Invoice
from ..qr import qr_svg

register = template.Library()


@register.inclusion_tag("invoicepay/qr.html")
def invoicepay_qr(invoice: Invoice, size: int = 4, show_link: bool = False, name: str | None = None) -> dict:
    """The Scan to Pay QR code of `invoice` (inline SVG), or a short explanation when there is none.

    `size` is the pixel size of one module; `show_link` also shows the URI as a link, for
    payers on the device that holds their wallet; `name` overrides REHIVE["QR_NAME"].
    """
    uri = invoice.scan_to_pay_uri(name=name) if isinstance(invoice, Invoice) else None
    if uri is None:
        return {"invoice": invoice, "available": False}
    payee = name if name is not None else invoicepay_settings.REHIVE["QR_NAME"]
    amount = str(invoice.native_quote.money)
    if payee:
        label = _("Scan to pay %(amount)s to %(payee)s") % {"amount": amount, "payee": payee}
    else:
        label = _("Scan to pay %(amount)s") % {"amount": amount}
    try:
        scale = max(1, min(int(size), 20))
    except (TypeError, ValueError):
        scale = 4
    return {
        "invoice": invoice,
        "available": True,
        "uri": uri,
        "svg": mark_safe(qr_svg(uri, scale=scale, label=label)),  # noqa: S308 - segno output, label escaped
        "label": label,
        "amount": amount,
        "payee": payee,
        "show_link": show_link,
    }


@register.inclusion_tag("invoicepay/deposit.html")
def invoicepay_deposit(invoice: Invoice) -> dict:
    """How to pay by deposit (bank transfer, crypto...): the reference, every deposit detail, what is
    still owed, and deposits seen but not yet confirmed. Renders an explanation when there is none."""
    if not isinstance(invoice, Invoice):
        return {"invoice": None, "deposit": None}
    return {"invoice": invoice, "deposit": deposit_for(invoice)}
