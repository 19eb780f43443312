"""How long the webhook log keeps deliveries: WEBHOOK_RETENTION_DAYS (90 by default; None keeps them).

Bodies can carry personal data, and a log that only grows is a liability; `invoicepay_prune` (or
the `prune_webhook_deliveries` task) deletes what is older, in small batches so that no long
transaction blocks the receivers. A delivery still being processed is never deleted.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .. import leases
from ..conf import invoicepay_settings
from ..models import WebhookDelivery

BATCH = 1000


def expired(days: int | None = None) -> QuerySet[WebhookDelivery]:
    """The deliveries older than `days` (default WEBHOOK_RETENTION_DAYS) that no attempt holds."""
    days = invoicepay_settings.WEBHOOK_RETENTION_DAYS if days is None else days
    if days is None:
        return WebhookDelivery.objects.none()
    cutoff = timezone.now() - timedelta(days=int(days))
    return WebhookDelivery.objects.filter(received_at__lt=cutoff).filter(leases.free("leased_until"))


def prune(days: int | None = None) -> int:
    """Delete expired deliveries; returns how many."""
    deleted = 0
    while True:
        batch = list(expired(days).order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not batch:
            return deleted
        deleted += expired(days).filter(pk__in=batch).delete()[0]  # a lease taken meanwhile keeps its row
