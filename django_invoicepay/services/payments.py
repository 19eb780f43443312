"""Payer-side services: choosing how to pay, giving payer details, paying by OTP.

Each call goes to the payment-requests service and then applies the answer through
the one sync path, so the mirror (quotes included) is current when the call returns.
OTP codes and mobile numbers are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.utils.translation import gettext as _

from ..clients import rehive_client
from ..errors import InvoiceStateError, ProviderAuthError, ProviderError, ProviderRejected, ProviderUnavailable
from ..models import Invoice
from ..statuses import InvoiceStatus
from ..statuses import label as status_label
from . import otp as otp_guard
from .invoices import apply_invoice, sync

logger = logging.getLogger("django_invoicepay.payments")


def _open(invoice: Invoice) -> None:
    if invoice.is_final:
        raise InvoiceStateError(_("This invoice is %(status)s: it cannot be paid any more.")
                                % {"status": status_label(invoice.status)})


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


def mirror(invoice: Invoice, action: Callable[[], Invoice | None]) -> Invoice:
    """Mirror what the provider already accepted; if that fails (the shop's order adapter, a setting), log it
    and answer with the mirror as it is: the payer's action went through, and the next sync retries."""
    try:
        return action() or invoice
    except ProviderAuthError as exc:
        logger.error("Invoice %s: the provider refused the shop's credentials (HTTP %s): check INVOICEPAY settings",
                     invoice.remote_id, exc.status)
    except ProviderError as exc:
        logger.warning("Invoice %s: syncing the mirror failed (%s); answered with what is stored", invoice.remote_id,
                       exc)
    except Exception:  # noqa: BLE001 - e.g. OrderAdapterError: the payer is not the one to fix it
        logger.exception("Invoice %s: mirroring the provider's answer failed; answered with what is stored, "
                         "the next sync retries", invoice.remote_id)
    return invoice


def set_processor(invoice: Invoice, processor: str, *, source: str = "api") -> Invoice:
    """PATCH `primary_payment_processor` and mirror the answer, so the new quote is there."""
    _open(invoice)
    data = rehive_client().update_request(invoice.remote_id, {"primary_payment_processor": processor})
    if not any(q.processor.unique_string_name == processor for q in data.quotes):
        data = rehive_client().get_invoice(invoice.remote_id)  # the quote may appear a moment later
    logger.info("Invoice %s: payer chose %s", invoice.remote_id, processor)
    return mirror(invoice, lambda: apply_invoice(data, source=source))


def set_payer(invoice: Invoice, *, email: str, mobile_number: str, source: str = "api") -> Invoice:
    """Give the payer's email and wallet mobile number: the provider then sends the OTP by SMS."""
    _open(invoice)
    data = rehive_client().update_request(
        invoice.remote_id, {"payer_email": email, "payer_mobile_number": mobile_number}
    )
    logger.info("Invoice %s: payer details sent, OTP requested", invoice.remote_id)
    return mirror(invoice, lambda: apply_invoice(data, source=source))


def resend_otp(invoice: Invoice) -> None:
    _open(invoice)
    rehive_client().resend_otp(invoice.remote_id)
    logger.info("Invoice %s: OTP resent", invoice.remote_id)


def submit_otp(invoice: Invoice, otp: str, *, source: str = "api") -> Invoice:
    """POST the code to `otp_challenge`; on success the provider transfers and the invoice is synced.

    One code at a time per invoice (OtpBusy meanwhile); wrong codes are counted, and after
    OTP_MAX_ATTEMPTS the invoice refuses OTP for OTP_COOLDOWN seconds (OtpLocked). A provider
    outage does not count. See `django_invoicepay.services.otp`.
    """
    _open(invoice)
    with otp_guard.checking(invoice, provider_calls=3) as attempt:  # the code, then the invoice and its payments
        status = Invoice.objects.filter(pk=invoice.pk).values_list("status", flat=True).first()
        if status in InvoiceStatus.FINAL:  # paid by a code checked just before this one
            attempt.not_counted()
            raise InvoiceStateError(_("This invoice is %(status)s: it cannot be paid any more.")
                                    % {"status": status_label(status)})
        try:
            rehive_client().otp_challenge(invoice.remote_id, otp)
        except ProviderAuthError:
            attempt.not_counted()  # the shop's credentials were refused, not the payer's code
            raise
        except ProviderRejected:
            attempt.wrong()
            logger.info("Invoice %s: OTP refused by the provider", invoice.remote_id)
            raise
        except ProviderUnavailable:
            attempt.not_counted()
            raise
        attempt.accepted()
        logger.info("Invoice %s: OTP accepted", invoice.remote_id)
        # Still inside the guard: a second code waits until the mirror shows the payment.
        return mirror(invoice, lambda: sync(invoice, source=source))
