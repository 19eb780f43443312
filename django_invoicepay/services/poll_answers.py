"""What one provider answer does to a polled invoice and its schedule (the sweep is in `polling`).

An answer newer than the mirror, or one with transactions, goes through the one sync path
(`apply_invoice`); an unchanged invoice is not applied at all. Either way the caller gets the
invoice's next interval and writes it with the others of its batch (`reschedule_polled`, one
UPDATE); failures, 404s and finished invoices are written here, one at a time (they are rare).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError
from django.db.models import Case, DateTimeField, PositiveIntegerField, Value, When
from django.utils import timezone

from ..errors import ProviderError, ProviderNotFound
from ..models import Invoice, PollSchedule
from ..reconnect import on_fresh_connection, reset_connection
from ..rehive.payloads import InvoiceData
from .invoices import apply_invoice, fetch

logger = logging.getLogger("django_invoicepay.polling")

FAST, NORMAL, SLOW, MAX_INTERVAL = 30, 120, 600, 3600
#: After this many 404s in a row (a few minutes apart at least) an invoice is marked missing at the
#: provider and taken out of the regular sweep, with a warning; `--invoice` or `--all` still polls it.
MISSING_AFTER = 3


def base_interval(invoice: Invoice) -> int:
    quote = invoice.primary_quote
    waiting = invoice.is_awaiting_payment
    if waiting and quote is not None and (quote.processor_type == "crypto" or quote.total_pending):
        return FAST
    if waiting:
        return NORMAL
    return SLOW


Fetched = tuple[Invoice, InvoiceData | None, list | None, Exception | None]


def fetch_one(invoice: Invoice) -> Fetched:
    """HTTP only (the invoice comes with its quotes): safe to run in a worker thread."""
    try:
        data, txs = fetch(invoice)
    except Exception as exc:  # noqa: BLE001 - reported by settle, never lost
        return invoice, None, None, exc
    return invoice, data, txs, None


def _reschedule(invoice_id: int, interval: int, **extra: Any) -> None:
    now = timezone.now()
    PollSchedule.objects.filter(pk=invoice_id).update(
        next_at=now + timedelta(seconds=interval), interval=interval, leased_until=None, last_polled_at=now, **extra
    )


def reschedule_polled(intervals: Mapping[int, list[int]]) -> None:
    """The next poll of invoices polled successfully, {interval: [ids]}, in one UPDATE (a CASE over the
    few intervals in use): an unchanged invoice costs a share of one statement, not a statement."""
    ids = [pk for pks in intervals.values() for pk in pks]
    if not ids:
        return
    now = timezone.now()

    def per_interval(value: Callable[[int], Any], field: Any) -> Case:
        return Case(*(When(pk__in=pks, then=Value(value(seconds))) for seconds, pks in intervals.items()),
                    output_field=field)

    PollSchedule.objects.filter(pk__in=ids).update(
        interval=per_interval(lambda seconds: seconds, PositiveIntegerField()),
        next_at=per_interval(lambda seconds: now + timedelta(seconds=seconds), DateTimeField()),
        leased_until=None, last_polled_at=now, failures=0, not_found=0,
    )


Settled = tuple[str, int | None]  # the outcome; and the interval to reschedule with, when the caller writes it


def settle(fetched: Fetched) -> Settled:
    """Apply what was fetched (in the calling thread): 'changed', 'unchanged', 'failed', 'missing' or 'lost'.

    An invoice that was polled successfully and stays open comes back with its next interval: the
    caller writes it (`reschedule_polled`, a batch at a time) and holds the claim until then.
    A database error costs this invoice only ('lost'): it stays claimed until the sweep gives it back.
    """
    try:
        return _apply_and_reschedule(fetched)
    except DatabaseError as exc:
        logger.warning("Polling invoice %s: database error (%s)", fetched[0].remote_id, type(exc).__name__)
        reset_connection()
        return "lost", None


def _nothing_to_apply(invoice: Invoice, data: InvoiceData, txs: list | None) -> bool:
    """The provider's copy is not newer than the mirror and no transactions came with it: applying would
    only read the invoice again, so an unchanged invoice costs no query at all."""
    stored, incoming = invoice.remote_updated, data.updated
    return txs is None and stored is not None and incoming is not None and incoming <= stored


def _apply_and_reschedule(fetched: Fetched) -> Settled:
    invoice, data, txs, error = fetched
    schedule = getattr(invoice, "poll", None)  # loaded with the invoice (select_related)
    previous = schedule.interval if schedule else NORMAL
    if error is None:
        assert data is not None  # fetched without an error
        try:
            applied = None if _nothing_to_apply(invoice, data, txs) else apply_invoice(
                data, source="poll", transactions=txs)
            fresh = applied or invoice
        except (OperationalError, InterfaceError):
            raise  # the connection, not the invoice: its claim is given back, so the next sweep polls it at once
        except Exception as exc:  # noqa: BLE001 - e.g. a shop's order adapter failing: retried later
            error = exc
    if isinstance(error, ProviderNotFound):
        return _not_found(invoice, schedule), None
    if error is not None:
        if isinstance(error, ProviderError):
            logger.warning("Polling invoice %s failed: %s", invoice.remote_id, error)
        else:
            logger.error("Polling invoice %s failed unexpectedly", invoice.remote_id, exc_info=error)
        failures = (schedule.failures if schedule else 0) + 1
        interval = min(max(previous * 2, NORMAL), MAX_INTERVAL)
        on_fresh_connection(lambda: _reschedule(invoice.pk, interval, failures=failures))
        return "failed", None
    changed = fresh.remote_updated != invoice.remote_updated or fresh.status != invoice.status
    outcome = "changed" if changed else "unchanged"
    if invoice.missing_since is not None:  # found again
        Invoice.objects.filter(pk=invoice.pk).update(missing_since=None)
    if fresh.is_final:
        PollSchedule.objects.filter(pk=invoice.pk).delete()  # nothing left to wait for
        return outcome, None
    base = base_interval(fresh)  # no query for an unchanged invoice: its quotes came with it
    return outcome, base if changed else min(max(previous * 2, base), MAX_INTERVAL)


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
