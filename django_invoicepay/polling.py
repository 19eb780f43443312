"""Polling the provider for invoices that can still change, safely from many workers at once.

- Each open invoice has a `PollSchedule`: when it is next due and its current interval.
  Crypto deposits waiting for confirmations are polled often, other payments in progress
  less, untouched invoices rarely; an unchanged invoice doubles its interval (up to
  MAX_INTERVAL), a change resets it.
- A poller claims due schedules with SELECT ... FOR UPDATE SKIP LOCKED (where the database
  has it) and leases them for LEASE seconds, so concurrent pollers never fetch the same
  invoice in a sweep. Applying goes through the one sync path, so signals fire once.
- Outbound calls run with bounded parallelism (`concurrency` threads that only do HTTP);
  applying and rescheduling happen in the calling thread, so no thread needs its own
  database connection and SQLite works as well as PostgreSQL and MySQL.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .errors import ProviderError
from .invoices import apply_invoice, fetch
from .models import Invoice, PollSchedule
from .models.invoices import FINAL_STATUSES
from .rehive.payloads import InvoiceData

logger = logging.getLogger("django_invoicepay.polling")

FAST, NORMAL, SLOW, MAX_INTERVAL = 30, 120, 600, 3600
LEASE = 300


def base_interval(invoice: Invoice) -> int:
    quote = invoice.primary_quote
    waiting = invoice.status in {"processing", "received", "underpaid"}
    if waiting and quote is not None and (quote.processor_type == "crypto" or quote.total_pending):
        return FAST
    if waiting:
        return NORMAL
    return SLOW


@dataclass
class SweepResult:
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def polled(self) -> int:
        return sum(self.outcomes.values())

    def as_dict(self) -> dict:
        return {"polled": self.polled, **{k: self.outcomes.get(k, 0) for k in ("changed", "unchanged", "failed")},
                "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        d = self.as_dict()
        return (f"Polled {d['polled']} invoice(s): {d['changed']} changed, {d['unchanged']} unchanged, "
                f"{d['failed']} failed, in {d['seconds']:.1f} s.")


def candidates(*, invoices: Iterable[str] = (), statuses: Iterable[str] = (), since: datetime | None = None,
               include_final: bool = False) -> QuerySet[Invoice]:
    """The invoices a sweep may poll: open ones unless told otherwise."""
    qs = Invoice.objects.all()
    invoices, statuses = list(invoices), [s.lower() for s in statuses]
    if invoices:
        q = Q(remote_id__in=invoices) | Q(public_token__in=invoices) | Q(reference__in=invoices)
        q |= Q(pk__in=[int(i) for i in invoices if str(i).isdigit()])
        qs = qs.filter(q)
    if statuses:
        qs = qs.filter(status__in=statuses)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if not (include_final or invoices or statuses):
        qs = qs.exclude(status__in=FINAL_STATUSES)
    return qs


def ensure_schedules(qs: QuerySet[Invoice]) -> None:
    """Schedules for the candidates that have none; none for invoices that finished meanwhile."""
    PollSchedule.objects.filter(invoice__status__in=FINAL_STATUSES).exclude(invoice__in=qs).delete()
    missing = qs.filter(poll__isnull=True).values_list("pk", flat=True)
    now = timezone.now()
    PollSchedule.objects.bulk_create(
        [PollSchedule(invoice_id=pk, next_at=now) for pk in missing], ignore_conflicts=True
    )


def claim(qs: QuerySet[Invoice], *, limit: int, force: bool = False) -> list[int]:
    """Lease up to `limit` due schedules of `qs`; rows another poller holds are skipped."""
    now = timezone.now()
    due = PollSchedule.objects.filter(invoice_id__in=qs.values("pk")).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    )
    if not force:
        due = due.filter(next_at__lte=now)
    skip = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=skip).order_by("next_at").values_list("pk", flat=True)[:limit])
        PollSchedule.objects.filter(pk__in=ids).update(leased_until=now + timedelta(seconds=LEASE))
    return ids


Fetched = tuple[Invoice, InvoiceData | None, list | None, Exception | None]


def _fetch(invoice: Invoice) -> Fetched:
    """HTTP only (the invoice comes with its quotes): safe to run in a worker thread."""
    try:
        data, txs = fetch(invoice)
    except Exception as exc:  # noqa: BLE001 - reported by _settle, never lost
        return invoice, None, None, exc
    return invoice, data, txs, None


def _reschedule(invoice_id: int, interval: int, **extra) -> None:
    now = timezone.now()
    PollSchedule.objects.filter(pk=invoice_id).update(
        next_at=now + timedelta(seconds=interval), interval=interval, leased_until=None, last_polled_at=now, **extra
    )


def _settle(fetched: Fetched) -> str:
    """Apply what was fetched (in the calling thread) and reschedule: 'changed', 'unchanged' or 'failed'."""
    invoice, data, txs, error = fetched
    schedule = getattr(invoice, "poll", None)  # loaded with the invoice (select_related)
    previous = schedule.interval if schedule else NORMAL
    if error is None:
        try:
            fresh = apply_invoice(data, source="poll", transactions=txs) or invoice
        except Exception as exc:  # noqa: BLE001 - e.g. a shop's order adapter failing: retried later
            error = exc
    if error is not None:
        if isinstance(error, ProviderError):
            logger.warning("Polling invoice %s failed: %s", invoice.remote_id, error)
        else:
            logger.error("Polling invoice %s failed unexpectedly", invoice.remote_id, exc_info=error)
        failures = (schedule.failures if schedule else 0) + 1
        _reschedule(invoice.pk, min(max(previous * 2, NORMAL), MAX_INTERVAL), failures=failures)
        return "failed"
    changed = fresh.remote_updated != invoice.remote_updated or fresh.status != invoice.status
    if fresh.is_final:
        PollSchedule.objects.filter(pk=invoice.pk).delete()  # nothing left to wait for
    else:
        base = base_interval(fresh)
        _reschedule(invoice.pk, base if changed else min(max(previous * 2, base), MAX_INTERVAL), failures=0)
    return "changed" if changed else "unchanged"


def poll_one(invoice_id: int) -> str:
    """Sync one invoice now and reschedule it."""
    return _settle(_fetch(Invoice.objects.select_related("poll").prefetch_related("quotes").get(pk=invoice_id)))


def sweep(
    *,
    invoices: Iterable[str] = (),
    statuses: Iterable[str] = (),
    since: datetime | None = None,
    include_final: bool = False,
    concurrency: int = 4,
    batch: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Poll every due invoice once. Safe to run in many processes at the same time."""
    started = time.monotonic()
    invoices = list(invoices)
    qs = candidates(invoices=invoices, statuses=statuses, since=since, include_final=include_final)
    force = bool(invoices or statuses or include_final)
    ensure_schedules(qs)
    result = SweepResult()
    total = qs.count()
    done: set[int] = set()
    while True:
        ids = claim(qs.exclude(pk__in=done), limit=batch, force=force)
        if not ids:
            break
        done.update(ids)
        claimed = list(Invoice.objects.filter(pk__in=ids).select_related("poll").prefetch_related("quotes"))
        if concurrency <= 1 or len(claimed) == 1:
            fetched = map(_fetch, claimed)
        else:  # the provider calls overlap; the database work stays in this thread
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="invoicepay-poll") as pool:
                fetched = list(pool.map(_fetch, claimed))
        for item in fetched:
            outcome = _settle(item)
            result.outcomes[outcome] += 1
            if progress:
                progress(result.polled, total)
    result.seconds = time.monotonic() - started
    if result.polled:
        logger.info(result.summary())
    return result
