"""The bare pay page: `pay.html` next to this file, served with a strict Content-Security-Policy.

The policy allows scripts from the page's own origin only (no inline script, no eval), so the
widgets can only come alive through `static/invoicepay/invoicepay.js` itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template import engines
from django.urls import reverse

from django_invoicepay.models import Invoice

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@cache
def template():
    return engines["django"].from_string((Path(__file__).parent / "pay.html").read_text())


def render(request, invoice: Invoice, pay_url: str | None) -> HttpResponse:
    response = HttpResponse(template().render({"invoice": invoice, "pay_url": pay_url}, request))
    response["Content-Security-Policy"] = CSP
    return response


def invoices():
    return Invoice.objects.prefetch_related("quotes", "transactions", "refunds").select_related("renewed_by")


def pay(request, token: str) -> HttpResponse:
    """The pay page, addressed by token; `?pay_url=0` leaves the widgets without `pay_url`."""
    pay_url = None if request.GET.get("pay_url") == "0" else reverse("browser-pay", args=["{token}"])
    return render(request, get_object_or_404(invoices(), public_token=token), pay_url)


def by_id(request, pk: int) -> HttpResponse:
    """The same page at a URL without the token, and without `pay_url`."""
    return render(request, get_object_or_404(invoices(), pk=pk), None)
