"""Leases: a row claimed by one process for a bounded time, with one conditional UPDATE.

Used wherever exactly one process may act at a time and a dead process must not block the
others for long: processing a webhook delivery, announcing a transition, releasing a hold,
checking an OTP. (Polling claims its schedules with SELECT ... FOR UPDATE SKIP LOCKED and the same
free-lease condition.) Taking a lease is atomic on every database (the UPDATE's
WHERE is re-checked on the locked row), needs no transaction held across HTTP, and a lease
left by a killed process lapses by itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone


def free(field: str, now: datetime | None = None) -> Q:
    """Rows whose lease `field` is not held: never taken, given back, or lapsed."""
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now or timezone.now()})


def take(queryset: QuerySet, field: str, seconds: float, **also: Any) -> int:
    """Lease the rows of `queryset` that are free for `seconds`; returns how many were taken.

    `also` are further column updates made in the same statement (e.g. an attempt counter).
    """
    now = timezone.now()
    return queryset.filter(free(field, now)).update(**{field: now + timedelta(seconds=seconds)}, **also)


def give_back(queryset: QuerySet, field: str, **also: Any) -> int:
    return queryset.update(**{field: None}, **also)


def seconds_left(until: datetime | None) -> int:
    """Whole seconds until `until` (at least 1 while it is in the future; 0 when free)."""
    if until is None:
        return 0
    left = (until - timezone.now()).total_seconds()
    return max(int(left) + 1, 1) if left > 0 else 0


def provider_call_budget(calls: int) -> int:
    """Seconds `calls` provider calls can take with every retry the HTTP settings allow, plus a margin:
    how long a lease held across them must last so that it never lapses while they run."""
    from .conf import invoicepay_settings
    from .http import RetryPolicy

    retries = int(invoicepay_settings.HTTP_MAX_RETRIES)
    per_call = float(invoicepay_settings.HTTP_TIMEOUT) * (retries + 1) + RetryPolicy().max_backoff * retries
    return int(calls * per_call) + 10
