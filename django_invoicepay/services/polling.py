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
- Outbound calls run with bounded parallelism (`concurrency` threads that only do HTTP, kept busy
  across batches); applying and rescheduling happen in the calling thread, so no thread needs its
  own database connection and SQLite works as well as PostgreSQL and MySQL.
- At scale (docs/polling.md#performance): claims page through the schedules by primary key, an
  unchanged invoice is not applied at all (nothing newer to apply), and the next poll of every
  successfully polled invoice is written in one UPDATE per batch, so a sweep costs time linear in
  the number of invoices, about two statements per batch, and memory bounded by the batch size.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from .. import leases
from ..models import Invoice, PollSchedule, Quote
from ..reconnect import on_fresh_connection, reset_connection
from ..statuses import InvoiceStatus
from ..webhooks import intake
from . import announcements
from .poll_answers import (
    FAST,
    MAX_INTERVAL,
    MISSING_AFTER,
    NORMAL,
    SLOW,
    Fetched,
    base_interval,
    fetch_one,
    reschedule_polled,
    settle,
)

__all__ = ["FAST", "LEASE", "MAX_INTERVAL", "MISSING_AFTER", "NORMAL", "SLOW", "SweepResult", "base_interval",
           "candidates", "claim", "ensure_schedules", "poll_one", "recover_deliveries", "stop_on_signals", "sweep"]

logger = logging.getLogger("django_invoicepay.polling")

#: How long a claim holds before another poller may take the invoice. Renewed every LEASE / 3 seconds
#: while the batch runs, so it only has to outlast a pause, not a batch: a killed poller's invoices
#: are polled again by the next sweep within a minute (docs/polling.md).
LEASE = 60


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


def ensure_schedules(qs: QuerySet[Invoice], *, chunk: int = 1000) -> None:
    """Schedules for the candidates that have none (`chunk` at a time, so memory stays flat after a bulk
    import); none for invoices that finished meanwhile."""
    PollSchedule.objects.filter(invoice__status__in=InvoiceStatus.FINAL).exclude(invoice__in=qs).delete()
    while missing := list(qs.filter(poll__isnull=True).values_list("pk", flat=True)[:chunk]):
        now = timezone.now()
        PollSchedule.objects.bulk_create([PollSchedule(invoice_id=pk, next_at=now) for pk in missing],
                                         ignore_conflicts=True)


def claim(qs: QuerySet[Invoice], *, limit: int, force: bool = False, after: int = 0) -> list[int]:
    """Lease up to `limit` due schedules of `qs` above primary key `after`, in primary key order; rows
    another poller holds are skipped. A sweep passes the last key it claimed, so each claim is one index
    range however many invoices the sweep already polled (no list of them to exclude)."""
    now = timezone.now()
    due = PollSchedule.objects.filter(pk__gt=after, invoice_id__in=qs.values("pk"))
    due = due.filter(leases.free("leased_until", now))
    if not force:
        due = due.filter(next_at__lte=now)
    skip = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=skip).order_by("pk").values_list("pk", flat=True)[:limit])
        PollSchedule.objects.filter(pk__in=ids).update(leased_until=now + timedelta(seconds=LEASE))
    return ids


def poll_one(invoice_id: int) -> str:
    """Sync one invoice now and reschedule it."""
    outcome, interval = settle(fetch_one(_as_polled().get(pk=invoice_id)))
    if interval is not None:
        reschedule_polled({interval: [invoice_id]})
    return outcome


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


class _Sweep:
    """One poller's pass over the due schedules.

    Claims pages of `batch` by primary key and keeps `concurrency` provider calls in flight across
    pages (threads that only do HTTP); settles each answer here as it arrives; writes the next poll of
    the invoices polled successfully `batch` at a time (one UPDATE). Claims are renewed while it runs;
    whatever ends it (an error, SIGTERM), what was polled is still written and every other claim is
    given back. Memory holds at most a page and the calls in flight, whatever the number of invoices.
    """

    def __init__(self, qs: QuerySet[Invoice], *, force: bool, concurrency: int, batch: int,
                 settled: Callable[[str], None]) -> None:
        self.qs, self.force, self.concurrency, self.batch, self.settled = qs, force, concurrency, batch, settled
        self.after = 0  # the highest primary key claimed: the next page starts above it
        self.pending: set[int] = set()  # claimed, next poll not written yet (given back if the sweep stops)
        self.polled: defaultdict[int, list[int]] = defaultdict(list)  # interval -> ids polled, to write
        self.renewed_at = time.monotonic()

    def run(self) -> None:
        pool = None
        try:
            if self.concurrency <= 1:
                while page := self.next_page():
                    for invoice in page:
                        self.settle_answer(fetch_one(invoice))
                return
            pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="invoicepay-poll")
            self.overlap(pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(DatabaseError):
                self.write_polled()
            _give_back(self.pending)

    def overlap(self, pool: ThreadPoolExecutor) -> None:
        """The provider calls overlap in the pool's threads; the next page is claimed before they run dry."""
        running: set[Future] = set()
        more = True
        while True:
            if more and len(running) < self.concurrency:
                page = self.next_page()
                more = bool(page)
                running.update(pool.submit(fetch_one, invoice) for invoice in page)
            if not running:
                return
            done, running = wait(running, timeout=LEASE / 3, return_when=FIRST_COMPLETED)
            for future in done:
                self.settle_answer(future.result())
            if not done:  # slow provider: nothing finished for a while
                self.renew()

    def next_page(self) -> list[Invoice]:
        ids = on_fresh_connection(lambda: claim(self.qs, limit=self.batch, force=self.force, after=self.after))
        if not ids:
            return []
        self.after = max(ids)
        self.pending.update(ids)
        return on_fresh_connection(lambda: list(_as_polled().filter(pk__in=ids)))

    def settle_answer(self, fetched: Fetched) -> None:
        outcome, interval = settle(fetched)
        # The invoice and its prefetched quotes point at each other: drop that link, so the page is freed
        # as soon as it is settled rather than by the cycle collector (whose passes grow with the heap).
        fetched[0].__dict__.pop("_prefetched_objects_cache", None)
        if interval is not None:
            self.polled[interval].append(fetched[0].pk)
        elif outcome != "lost":  # a lost one stays claimed until it is given back
            self.pending.discard(fetched[0].pk)
        if sum(map(len, self.polled.values())) >= self.batch:
            self.write_polled()
        self.settled("failed" if outcome == "lost" else outcome)
        if time.monotonic() - self.renewed_at > LEASE / 3:
            self.renew()

    def write_polled(self) -> None:
        polled, self.polled = self.polled, defaultdict(list)
        try:
            on_fresh_connection(lambda: reschedule_polled(polled))
        except DatabaseError:
            self.polled = polled  # still claimed: given back when the sweep ends
            raise
        self.pending.difference_update(pk for pks in polled.values() for pk in pks)

    def renew(self) -> None:
        self.renewed_at = time.monotonic()
        _renew(self.pending)


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
    gc.freeze()  # what the process held before (Django, the app) is left out of collections meanwhile
    try:
        _poll_due(result, candidates(invoices=invoices, statuses=statuses, since=since, include_final=include_final),
                  force=force, concurrency=concurrency, batch=batch, progress=progress)
    except DatabaseError as exc:
        result.interrupted = f"the database is unavailable ({type(exc).__name__})"
        logger.warning("Sweep stopped early: %s; the next sweep goes on", result.interrupted)
        reset_connection()
    finally:
        gc.unfreeze()
    result.seconds = time.monotonic() - started
    if result.polled or result.deliveries or result.announced:
        logger.info(result.summary())
    return result


def _poll_due(result: SweepResult, qs: QuerySet[Invoice], *, force: bool, concurrency: int, batch: int,
              progress: Callable[[int, int], None] | None) -> None:
    on_fresh_connection(lambda: ensure_schedules(qs))
    total = on_fresh_connection(qs.count)

    def settled(outcome: str) -> None:
        result.outcomes[outcome] += 1
        if progress:
            progress(result.polled, total)

    _Sweep(qs, force=force, concurrency=concurrency, batch=batch, settled=settled).run()


def _as_polled() -> QuerySet[Invoice]:
    """Invoices with what polling them reads, the schedule and the quotes, so an unchanged one costs no query
    (the fetch reads the invoice's stored payload; the quotes' payloads, never read, are left out)."""
    quotes = Prefetch("quotes", queryset=Quote.objects.defer("raw"))
    return Invoice.objects.select_related("poll").prefetch_related(quotes)


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
