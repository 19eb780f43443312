"""Refunding an overpayment: exactly paid minus quoted, once.

The refund is recorded before the provider is called, under the invoice's row lock, with a
key derived from the invoice; the provider call carries that key as its Idempotency-Key.
So calling twice, from two processes at once, or again after a crash, never refunds twice.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils.translation import gettext as _

from ..clients import rehive_client
from ..errors import InvoiceStateError, ProviderRejected, ProviderUnavailable
from ..models import Invoice, Refund
from ..statuses import InvoiceStatus

logger = logging.getLogger("django_invoicepay.refunds")


def overpayment_key(invoice: Invoice) -> str:
    return f"overpayment-{invoice.remote_id}"


def _record(invoice: Invoice) -> Refund:
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().prefetch_related("quotes").get(pk=invoice.pk)
        refund = Refund.objects.filter(idempotency_key=overpayment_key(locked)).first()
        if refund is not None:
            return refund
        if locked.status != InvoiceStatus.OVERPAID or locked.overpaid_by <= 0:
            raise InvoiceStateError(_("This invoice is not overpaid: there is nothing to refund."))
        money = locked.overpaid_money
        return Refund.objects.create(
            invoice=locked, reason=Refund.Reason.OVERPAYMENT, amount=money.amount,
            currency_code=money.currency, currency_divisibility=money.divisibility,
            idempotency_key=overpayment_key(locked),
        )


def refund_overpayment(invoice: Invoice) -> Refund:
    """Refund `invoice.overpaid_by` through the provider's refunds endpoint. Idempotent.

    Raises InvoiceStateError when the invoice is not overpaid, ProviderUnavailable when the
    provider cannot be reached (the refund stays `requested`; calling again finishes it), and
    ProviderRejected when the provider refuses (the refund is marked `failed` with the reason).
    """
    refund = _record(invoice)
    if refund.status == Refund.Status.COMPLETE:
        return refund
    # Inferred: docs/reference/wire-format.md#refund-body
    body = {"amount": refund.amount, "currency": refund.currency_code, "note": "Overpayment refund"}
    try:
        data = rehive_client().create_refund(invoice.remote_id, body, idempotency_key=refund.idempotency_key)
    except ProviderUnavailable as exc:
        Refund.objects.filter(pk=refund.pk).update(error=exc.message)
        raise
    except ProviderRejected as exc:
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, error=exc.message)
        logger.error("Invoice %s: the provider refused the overpayment refund: %s", invoice.remote_id, exc.message)
        raise
    Refund.objects.filter(pk=refund.pk).update(
        status=Refund.Status.COMPLETE, remote_id=str(data.get("id") or ""), raw=data, error=""
    )
    refund.refresh_from_db()
    logger.info("Invoice %s: refunded the overpayment of %s", invoice.remote_id, refund.money)
    return refund
