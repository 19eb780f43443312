"""Payer-side services: choosing how to pay, giving payer details, paying by OTP.

Each call goes to the payment-requests service and then applies the answer through
the one sync path, so the mirror (quotes included) is current when the call returns.
OTP codes and mobile numbers are never logged.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from .conf import invoicepay_settings
from .errors import InvoiceStateError, OtpLocked, ProviderError, ProviderRejected, ProviderUnavailable
from .invoices import apply_invoice, sync
from .models import Invoice
from .providers import rehive_client

logger = logging.getLogger("django_invoicepay.payments")


def _open(invoice: Invoice) -> None:
    if invoice.is_final:
        raise InvoiceStateError(f"This invoice is {invoice.status}: it cannot be paid any more.")


def payment_processors(invoice: Invoice) -> list[dict]:
    """What the payer may choose, as the provider lists it (name, type, description...)."""
    return [
        {
            "processor": str(p.get("unique_string_name") or ""),
            "name": str(p.get("name") or ""),
            "type": str(p.get("type") or ""),
            "description": str(p.get("description") or ""),
        }
        for p in rehive_client().payment_processors(invoice.remote_id)
        if p.get("unique_string_name")
    ]


def choose_processor(invoice: Invoice, processor: str, *, source: str = "api") -> Invoice:
    """PATCH `primary_payment_processor` and mirror the answer, so the new quote is there."""
    _open(invoice)
    data = rehive_client().update_request(invoice.remote_id, {"primary_payment_processor": processor})
    if not any(q.processor.unique_string_name == processor for q in data.quotes):
        data = rehive_client().get_invoice(invoice.remote_id)  # the quote may appear a moment later
    logger.info("Invoice %s: payer chose %s", invoice.remote_id, processor)
    return apply_invoice(data, source=source) or invoice


def set_payer(invoice: Invoice, *, email: str, mobile_number: str, source: str = "api") -> Invoice:
    """Give the payer's email and wallet mobile number: the provider then sends the OTP by SMS."""
    _open(invoice)
    data = rehive_client().update_request(
        invoice.remote_id, {"payer_email": email, "payer_mobile_number": mobile_number}
    )
    logger.info("Invoice %s: payer details sent, OTP requested", invoice.remote_id)
    return apply_invoice(data, source=source) or invoice


def resend_otp(invoice: Invoice) -> None:
    _open(invoice)
    rehive_client().resend_otp(invoice.remote_id)
    logger.info("Invoice %s: OTP resent", invoice.remote_id)


def _locked_for(invoice_pk: int) -> int:
    """Seconds left on the invoice's OTP lock (0 when not locked; an expired lock is cleared)."""
    now = timezone.now()
    Invoice.objects.filter(pk=invoice_pk, otp_locked_until__lte=now).update(otp_failures=0, otp_locked_until=None)
    until = Invoice.objects.filter(pk=invoice_pk).values_list("otp_locked_until", flat=True).first()
    return max(int((until - now).total_seconds()) + 1, 1) if until else 0


def _reserve_attempt(invoice: Invoice) -> None:
    """Count the attempt before it is made, atomically, so parallel guesses cannot exceed the limit."""
    limit = int(invoicepay_settings.OTP_MAX_ATTEMPTS)
    seconds = _locked_for(invoice.pk)
    reserved = Invoice.objects.filter(pk=invoice.pk, otp_failures__lt=limit, otp_locked_until__isnull=True).update(
        otp_failures=F("otp_failures") + 1
    )
    if not reserved:
        if not seconds:  # the limit was reached by attempts still in flight: lock now
            seconds = int(invoicepay_settings.OTP_COOLDOWN)
            Invoice.objects.filter(pk=invoice.pk, otp_locked_until__isnull=True).update(
                otp_locked_until=timezone.now() + timedelta(seconds=seconds)
            )
        logger.warning("Invoice %s: OTP refused, locked for %d s", invoice.remote_id, seconds)
        raise OtpLocked(seconds)


def _record_wrong_code(invoice: Invoice) -> None:
    limit = int(invoicepay_settings.OTP_MAX_ATTEMPTS)
    cooldown = timedelta(seconds=int(invoicepay_settings.OTP_COOLDOWN))
    Invoice.objects.filter(pk=invoice.pk, otp_failures__gte=limit, otp_locked_until__isnull=True).update(
        otp_locked_until=timezone.now() + cooldown
    )


def submit_otp(invoice: Invoice, otp: str, *, source: str = "api") -> Invoice:
    """POST the code to `otp_challenge`; on success the provider transfers and the invoice is synced.

    Wrong codes are counted per invoice; after OTP_MAX_ATTEMPTS the invoice refuses OTP
    for OTP_COOLDOWN seconds (OtpLocked). A provider outage does not count as an attempt.
    """
    _open(invoice)
    _reserve_attempt(invoice)
    try:
        rehive_client().otp_challenge(invoice.remote_id, otp)
    except ProviderRejected:
        _record_wrong_code(invoice)
        logger.info("Invoice %s: OTP refused by the provider", invoice.remote_id)
        raise
    except ProviderUnavailable:
        Invoice.objects.filter(pk=invoice.pk, otp_failures__gt=0).update(otp_failures=F("otp_failures") - 1)
        raise
    Invoice.objects.filter(pk=invoice.pk).update(otp_failures=0, otp_locked_until=None)
    logger.info("Invoice %s: OTP accepted", invoice.remote_id)
    try:
        return sync(invoice, source=source)
    except ProviderError as exc:
        # The payment went through; the mirror catches up at the next sync, poll or webhook.
        logger.warning("Invoice %s: paid by OTP, but the follow-up sync failed: %s", invoice.remote_id, exc)
        return invoice
