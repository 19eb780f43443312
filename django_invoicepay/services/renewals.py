"""Renewing an expired invoice: a new one with the same fields, linked to the old one.

An expired invoice is no longer usable (docs/reference/wire-format.md#rehive-open-loop-statuses); the
payer needs a new one with the same amount, description, payer, items, metadata and order. Relative
dates keep their length: a 24-hour invoice renews as a 24-hour invoice from now.

No lock or transaction is held while the provider is called: the creating POST carries an
Idempotency-Key derived from the expired invoice (`renewal_key`), the same on every attempt, so
a retry after a crash between the provider's answer and the local save gets the same invoice
back, and the local row's unique `renewal_of` lets only one of two concurrent renewers save it
(docs/open-loop.md, "Renewing an expired invoice").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError
from django.utils import timezone
from django.utils.translation import gettext as _

from ..errors import InvoiceStateError
from ..models import Invoice
from ..statuses import InvoiceStatus
from ..statuses import label as status_label
from .invoices import create_for

logger = logging.getLogger("django_invoicepay.renewals")


def renewal_key(invoice: Invoice) -> str:
    """The Idempotency-Key of the POST that creates `invoice`'s renewal: one per expired invoice."""
    return f"renewal-of-{invoice.remote_id}"


#: How long Rehive keeps an Idempotency-Key: docs/reference/wire-format.md#rehive-idempotency
KEY_LIFETIME = timedelta(hours=24)


def _renewal_started(old: Invoice) -> datetime:
    """When the first attempt to renew `old` began, recorded once (the first of two concurrent attempts
    wins), so every retry computes the same dates and sends the same body under the same key (inferred:
    docs/reference/wire-format.md#rehive-idempotency-replay). Once the key has lapsed at the provider, a
    new attempt starts afresh."""
    now = timezone.now()
    started = old.renewal_started_at
    if started is None or now - started > KEY_LIFETIME:
        Invoice.objects.filter(pk=old.pk, renewal_started_at=started).update(renewal_started_at=now)
        started = Invoice.objects.values_list("renewal_started_at", flat=True).get(pk=old.pk)
    assert started is not None  # set just above, by this attempt or a concurrent one
    return started


def _shifted(moment: datetime | None, created: datetime | None) -> timedelta | None:
    if moment is None or created is None:
        return None
    return max(moment - created, timedelta(minutes=1))


def renew(invoice: Invoice) -> Invoice:
    """The renewal of an expired invoice: created once, however often (or concurrently) this is called."""
    old = Invoice.objects.get(pk=invoice.pk)
    existing = Invoice.objects.filter(renewal_of=old).first()
    if existing is not None:
        return existing
    if old.status != InvoiceStatus.EXPIRED:
        raise InvoiceStateError(_("Only an expired invoice can be renewed; this one is %(status)s.")
                                % {"status": status_label(old.status)})
    metadata = dict(old.raw.get("metadata") or {})
    business = dict(metadata.pop("service_business", {}) or {})
    items = business.pop("items", [])
    if business:
        metadata["service_business"] = business
    now = _renewal_started(old)
    expiry = _shifted(old.expires_at, old.remote_created)
    due = _shifted(old.due_at, old.remote_created)
    try:
        new = create_for(
            old.order if old.object_id else None,
            amount=old.request_amount,
            description=old.description,
            payer_email=old.payer_email,
            payer_mobile_number=old.payer_mobile_number,
            items=items,
            metadata=metadata,
            return_url=old.return_url,
            expires_at=now + expiry if expiry else None,
            due_at=now + due if due else None,
            reference=old.request_reference,
            renewal_of=old,
            idempotency_key=renewal_key(old),
        )
    except IntegrityError:
        # Another renewer saved the same remote invoice (same key, same answer) first: theirs is the renewal.
        winner = Invoice.objects.filter(renewal_of=old).first()
        if winner is None:
            raise
        return winner
    logger.info("Invoice %s renewed as %s", old.remote_id, new.remote_id)
    return new
