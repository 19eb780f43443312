"""Optional automatic follow-ups, connected by `connect()` from AppConfig.ready():
AUTO_REFUND_OVERPAYMENT refunds an overpayment, AUTO_RENEW_EXPIRED renews an expired invoice.

They run after commit (the signals do). Both are idempotent. A provider outage is raised, so the
transition is announced again later (docs/signals.md) and the follow-up retried; a refusal is logged
and can be retried by hand (admin action, `invoice.refund_overpayment()`, `invoice.renew()`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .conf import invoicepay_settings
from .errors import InvoicePayError, ProviderUnavailable
from .signals import invoice_expired, invoice_overpaid

if TYPE_CHECKING:
    from .models import Invoice

logger = logging.getLogger("django_invoicepay.automation")


def connect() -> None:
    """Connect the follow-ups to their signals (once: the dispatch uids make it idempotent)."""
    invoice_overpaid.connect(auto_refund, dispatch_uid="invoicepay_auto_refund")
    invoice_expired.connect(auto_renew, dispatch_uid="invoicepay_auto_renew")


def auto_refund(sender: type[Invoice], invoice: Invoice, amount: int, **kwargs: Any) -> None:
    if not invoicepay_settings.AUTO_REFUND_OVERPAYMENT:
        return
    try:
        invoice.refund_overpayment()
    except ProviderUnavailable:
        raise  # the announcement is retried, and with it the refund (idempotent)
    except InvoicePayError as exc:
        logger.error("Automatic refund of invoice %s failed: %s", invoice.remote_id, exc)


def auto_renew(sender: type[Invoice], invoice: Invoice, **kwargs: Any) -> None:
    if not invoicepay_settings.AUTO_RENEW_EXPIRED:
        return
    try:
        invoice.renew()
    except ProviderUnavailable:
        raise  # the announcement is retried, and with it the renewal (created once)
    except InvoicePayError as exc:
        logger.error("Automatic renewal of invoice %s failed: %s", invoice.remote_id, exc)
