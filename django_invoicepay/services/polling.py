"""Polling the provider for invoices that can still change, safely from many workers at once.

- Each open invoice has a `PollSchedule`: when it is next due and its current interval.
  Crypto deposits waiting for confirmations are polled often, other payments in progress
  less, untouched invoices rarely; an unchanged invoice doubles its interval (up to
  MAX_INTERVAL), a change resets it.
- A poller claims due schedules with SELECT ... FOR UPDATE SKIP LOCKED (where the database
  has it) and leases them for LEASE seconds, renewed while the batch's calls run, so
  concurrent pollers never fetch the same invoice in a sweep. Claims are given back when a
  batch fails or the poller is told to stop (SIGTERM, SIGINT); a killed poller's claims lapse
  within LEASE. Applying goes through the one sync path, so each transition is recorded once.
- Before polling, an unfiltered sweep also finishes webhook deliveries a dead or failed attempt
  left unfinished, and sends signals a dead process left unsent (docs/polling.md).
- Outbound calls run with bounded parallelism (`concurrency` threads that only do HTTP);
  applying and rescheduling happen in the calling thread, so no thread needs its own
  database connection and SQLite works as well as PostgreSQL and MySQL.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import leases
from ..errors import ProviderError, ProviderNotFound
from ..models import Invoice, PollSchedule
from ..reconnect import on_fresh_connection, reset_connection
from ..rehive.payloads import InvoiceData
from ..statuses import InvoiceStatus
from ..webhooks import intake
from . import announcements
from .invoices import apply_invoice, fetch

logger = logging.getLogger("django_invoicepay.polling")

FAST, NORMAL, SLOW, MAX_INTERVAL = 30, 120, 600, 3600
#: After this many 404s in a row (a few minutes apart at least) an invoice is marked missing at the
#: provider and taken out of the regular sweep, with a warning; `--invoice` or `--all` still polls it.
MISSING_AFTER = 3
#: How long a claim holds before another poller may take the invoice. Renewed every LEASE / 3 seconds
#: while the batch runs, so it only has to outlast a pause, not a batch: a killed poller's invoices
#: are polled again by the next sweep within a minute (docs/polling.md).
LEASE = 60


def base_interval(invoice: Invoice) -> int:
    quote = invoice.primary_quote
    waiting = invoice.is_awaiting_payment
    if waiting and quote is not None and (quote.processor_type == "crypto" or quote.total_pending):
        return FAST
    if waiting:
        return NORMAL
    return SLOW


@dataclass
class SweepResult:
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    deliveries: dict = field(default_factory=dict)  # webhook deliveries finished, by outcome
    announced: int = 0  # transitions whose signals a dead process had left unsent
    interrupted: str = ""  # why the sweep stopped early (the database stayed unreachable), if it did
    holds: dict = field(default_factory=dict)  # pending and placed holds refreshed, by outcome

    @property
    def polled(self) -> int:
        return sum(self.outcomes.values())

    def as_dict(self) -> dict:
        return {"polled": self.polled,
                **{k: self.outcomes.get(k, 0) for k in ("changed", "unchanged", "failed", "missing")},
                "seconds": round(self.seconds, 3), "deliveries": dict(self.deliveries), "announced": self.announced,
                "interrupted": self.interrupted, "holds": dict(self.holds)}

    def summary(self) -> str:
        d = self.as_dict()
        lines = [f"Polled {d['polled']} invoice(s): {d['changed']} changed, {d['unchanged']} unchanged, "
                 f"{d['failed']} failed, in {d['seconds']:.1f} s."]
        if d["missing"]:
            lines.append(f"Warning: {d['missing']} invoice(s) unknown to the provider (404); after {MISSING_AFTER} "
                         "in a row an invoice is marked missing and no longer polled.")
        if self.deliveries:
            detail = ", ".join(f"{n} {status}" for status, n in sorted(self.deliveries.items()))
            lines.append(f"Finished {sum(self.deliveries.values())} unfinished webhook deliver"
                         f"{'y' if sum(self.deliveries.values()) == 1 else 'ies'}: {detail}.")
        if self.announced:
            lines.append(f"Sent the signals of {self.announced} transition(s) left unannounced.")
        if self.holds:
            detail = ", ".join(f"{n} {status}" for status, n in sorted(self.holds.items()))
            lines.append(f"Refreshed {sum(self.holds.values())} hold(s): {detail}.")
        if self.interrupted:
            lines.append(f"Stopped early: {self.interrupted}; the next run goes on.")
        return "\n".join(lines)


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
        qs = qs.exclude(status__in=InvoiceStatus.FINAL).filter(missing_since__isnull=True)
    return qs


def ensure_schedules(qs: QuerySet[Invoice]) -> None:
    """Schedules for the candidates that have none; none for invoices that finished meanwhile."""
    PollSchedule.objects.filter(invoice__status__in=InvoiceStatus.FINAL).exclude(invoice__in=qs).delete()
    missing = qs.filter(poll__isnull=True).values_list("pk", flat=True)
    now = timezone.now()
    PollSchedule.objects.bulk_create(
        [PollSchedule(invoice_id=pk, next_at=now) for pk in missing], ignore_conflicts=True
    )


def claim(qs: QuerySet[Invoice], *, limit: int, force: bool = False) -> list[int]:
    """Lease up to `limit` due schedules of `qs`; rows another poller holds are skipped."""
    now = timezone.now()
    due = PollSchedule.objects.filter(invoice_id__in=qs.values("pk")).filter(leases.free("leased_until", now))
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


def _reschedule(invoice_id: int, interval: int, **extra: Any) -> None:
    now = timezone.now()
    PollSchedule.objects.filter(pk=invoice_id).update(
        next_at=now + timedelta(seconds=interval), interval=interval, leased_until=None, last_polled_at=now, **extra
    )


def _settle(fetched: Fetched) -> str:
    """Apply what was fetched (in the calling thread) and reschedule: 'changed', 'unchanged' or 'failed'.

    A database error costs this invoice only: it stays claimed until the batch gives its claim back.
    """
    try:
        return _apply_and_reschedule(fetched)
    except DatabaseError as exc:
        logger.warning("Polling invoice %s: database error (%s)", fetched[0].remote_id, type(exc).__name__)
        reset_connection()
        return "lost"


def _apply_and_reschedule(fetched: Fetched) -> str:
    invoice, data, txs, error = fetched
    schedule = getattr(invoice, "poll", None)  # loaded with the invoice (select_related)
    previous = schedule.interval if schedule else NORMAL
    if error is None:
        assert data is not None  # fetched without an error
        try:
            fresh = apply_invoice(data, source="poll", transactions=txs) or invoice
        except (OperationalError, InterfaceError):
            raise  # the connection, not the invoice: its claim is given back, so the next sweep polls it at once
        except Exception as exc:  # noqa: BLE001 - e.g. a shop's order adapter failing: retried later
            error = exc
    if isinstance(error, ProviderNotFound):
        return _not_found(invoice, schedule)
    if error is not None:
        if isinstance(error, ProviderError):
            logger.warning("Polling invoice %s failed: %s", invoice.remote_id, error)
        else:
            logger.error("Polling invoice %s failed unexpectedly", invoice.remote_id, exc_info=error)
        failures = (schedule.failures if schedule else 0) + 1
        interval = min(max(previous * 2, NORMAL), MAX_INTERVAL)
        on_fresh_connection(lambda: _reschedule(invoice.pk, interval, failures=failures))
        return "failed"
    changed = fresh.remote_updated != invoice.remote_updated or fresh.status != invoice.status
    if invoice.missing_since is not None:  # found again
        Invoice.objects.filter(pk=invoice.pk).update(missing_since=None)
    if fresh.is_final:
        PollSchedule.objects.filter(pk=invoice.pk).delete()  # nothing left to wait for
    else:
        base = base_interval(fresh)
        _reschedule(invoice.pk, base if changed else min(max(previous * 2, base), MAX_INTERVAL), failures=0,
                    not_found=0)
    return "changed" if changed else "unchanged"


def _not_found(invoice: Invoice, schedule: PollSchedule | None) -> str:
    """The provider answered 404: after MISSING_AFTER in a row, mark the invoice missing and stop polling it."""
    misses = (schedule.not_found if schedule else 0) + 1
    if misses < MISSING_AFTER:
        logger.warning("Polling invoice %s: the provider does not know it (404, %d of %d)", invoice.remote_id,
                       misses, MISSING_AFTER)
        _reschedule(invoice.pk, NORMAL * misses, not_found=misses)
        return "missing"
    Invoice.objects.filter(pk=invoice.pk).update(missing_since=timezone.now())
    PollSchedule.objects.filter(pk=invoice.pk).delete()
    logger.warning("Invoice %s: the provider answered 404 %d times in a row; marked missing, no longer polled "
                   "(poll it again with invoicepay_sync --invoice %s)", invoice.remote_id, misses, invoice.public_token)
    return "missing"


def poll_one(invoice_id: int) -> str:
    """Sync one invoice now and reschedule it."""
    return _settle(_fetch(Invoice.objects.select_related("poll").prefetch_related("quotes").get(pk=invoice_id)))


def _give_back(ids: set[int]) -> None:
    """Release claims (a failed batch, a stopping poller) so the next sweep polls them at once."""
    if not ids:
        return
    try:
        on_fresh_connection(lambda: leases.give_back(PollSchedule.objects.filter(pk__in=ids), "leased_until"))
    except DatabaseError:
        logger.warning("Could not give back %d claim(s); they lapse within %d s", len(ids), LEASE)


def _renew(ids: set[int]) -> None:
    """Still working on these: extend their claims by another LEASE (if the database is away, they may lapse
    and another poller fetch them too, which the sync path makes harmless)."""
    if ids:
        until = timezone.now() + timedelta(seconds=LEASE)
        try:
            on_fresh_connection(lambda: PollSchedule.objects.filter(pk__in=ids).update(leased_until=until))
        except DatabaseError:
            logger.warning("Could not renew %d claim(s)", len(ids))


def _poll_batch(claimed: list[Invoice], *, concurrency: int, settled: Callable[[str], None]) -> None:
    """Fetch (in threads) and settle (here) one claimed batch, renewing the claims while it runs.

    Whatever ends the batch early (an error, SIGTERM), the claims not settled are given back.
    """
    pending = {invoice.pk for invoice in claimed}
    renewed_at = time.monotonic()

    def settle(item: Fetched) -> None:
        nonlocal renewed_at
        outcome = _settle(item)
        if outcome != "lost":
            pending.discard(item[0].pk)
        settled("failed" if outcome == "lost" else outcome)
        if time.monotonic() - renewed_at > LEASE / 3:
            renewed_at = time.monotonic()
            _renew(pending)

    pool = None
    try:
        if concurrency <= 1 or len(claimed) == 1:
            for invoice in claimed:
                settle(_fetch(invoice))
            return
        # The provider calls overlap in worker threads; the database work stays in this thread.
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="invoicepay-poll")
        running: set[Future] = {pool.submit(_fetch, invoice) for invoice in claimed}
        while running:
            done, running = wait(running, timeout=LEASE / 3, return_when=FIRST_COMPLETED)
            for future in done:
                settle(future.result())
            if not done:  # slow provider: nothing finished for a while
                renewed_at = time.monotonic()
                _renew(pending)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        _give_back(pending)


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
    """Poll every due invoice once. Safe to run in many processes at the same time.

    An unfiltered sweep first finishes unfinished webhook deliveries and sends the signals of
    transitions a dead process left unannounced. A dropped connection costs one invoice (or one
    retry of a claim), never the sweep: when the database stays unreachable the sweep stops early
    and says so in `result.interrupted` instead of raising.
    """
    started = time.monotonic()
    invoices, statuses = list(invoices), list(statuses)
    result = SweepResult()
    force = bool(invoices or statuses or include_final)
    if not (force or since):
        result.deliveries = recover_deliveries()
        result.announced = _announce_due()
        result.holds = _refresh_holds()
    try:
        _poll_due(result, candidates(invoices=invoices, statuses=statuses, since=since, include_final=include_final),
                  force=force, concurrency=concurrency, batch=batch, progress=progress)
    except DatabaseError as exc:
        result.interrupted = f"the database is unavailable ({type(exc).__name__})"
        logger.warning("Sweep stopped early: %s; the next sweep goes on", result.interrupted)
        reset_connection()
    result.seconds = time.monotonic() - started
    if result.polled or result.deliveries or result.announced:
        logger.info(result.summary())
    return result


def _poll_due(result: SweepResult, qs: QuerySet[Invoice], *, force: bool, concurrency: int, batch: int,
              progress: Callable[[int, int], None] | None) -> None:
    on_fresh_connection(lambda: ensure_schedules(qs))
    total = on_fresh_connection(qs.count)
    done: set[int] = set()

    def settled(outcome: str) -> None:
        result.outcomes[outcome] += 1
        if progress:
            progress(result.polled, total)

    while True:
        ids = on_fresh_connection(lambda: claim(qs.exclude(pk__in=done), limit=batch, force=force))
        if not ids:
            return
        done.update(ids)
        try:
            claimed = on_fresh_connection(functools.partial(_claimed_invoices, ids))
        except DatabaseError:
            _give_back(set(ids))
            raise
        _poll_batch(claimed, concurrency=concurrency, settled=settled)


def _claimed_invoices(ids: list[int]) -> list[Invoice]:
    return list(Invoice.objects.filter(pk__in=ids).select_related("poll").prefetch_related("quotes"))


def _refresh_holds() -> dict[str, int]:
    """Pending holds settled and placed ones checked for release or expiry (a hold only moves forward)."""
    from .holds import refresh_open_holds

    try:
        return refresh_open_holds()
    except DatabaseError as exc:
        logger.warning("Refreshing holds failed: %s; the next sweep tries again", type(exc).__name__)
        reset_connection()
        return {}


def _announce_due() -> int:
    try:
        return announcements.announce_due()
    except DatabaseError as exc:
        logger.warning("Announcing transitions failed: %s; the next sweep tries again", type(exc).__name__)
        reset_connection()
        return 0


def recover_deliveries() -> dict[str, int]:
    """Finish webhook deliveries that no live attempt holds (see `webhooks.intake.due_deliveries`)."""
    try:
        return intake.process_all(on_fresh_connection(intake.due_deliveries))
    except DatabaseError as exc:
        logger.warning("Finishing webhook deliveries failed: %s; the next sweep tries again", type(exc).__name__)
        reset_connection()
        return {}


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (as SIGINT already is) while a sweep runs, so a poller that
    is told to stop gives its claims back before it exits. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
