"""Sending the public signals for recorded transitions: at least once, in order per object.

A transition row (`InvoiceStatusChange`, `HoldStatusChange`) is written in the same
transaction as the change itself. After commit, the process that made it announces the
object's unannounced transitions, oldest first, each under a short lease so that two
processes never announce the same one at once, and marks each `announced_at` once its
receivers have run. A process that dies in between leaves rows unannounced; the polling
sweep (`announce_due`) sends them later, still in order. Receivers get a stable
`transition_id`, so they can ignore a repeat (see docs/signals.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, models, transaction
from django.utils import timezone

from .. import leases, signals
from ..models import ConsentStatusChange, Hold, HoldConsent, HoldStatusChange, Invoice, InvoiceStatusChange
from ..models.transitions import Transition
from ..reconnect import reset_connection
from ..statuses import InvoiceStatus

logger = logging.getLogger("django_invoicepay.signals")

#: How long one process may take to run a transition's receivers before another may announce
#: it again. Receivers should be quick (hand slow work to a task); see docs/signals.md.
LEASE = 60
#: A transition whose receivers raised is sent again (to every receiver) after a backoff, this many
#: times in all; then it is given up, with an error in the log.
MAX_ATTEMPTS = 5


def retry_delay(attempts: int) -> int:
    """Seconds before a transition whose receivers failed `attempts` times is sent again: 10, 20, 40, 80."""
    return 10 * 2 ** max(attempts - 1, 0)


def _send(signal: Any, sender: type, **kwargs: Any) -> int:
    """Send robustly; returns how many receivers raised (each is logged with its traceback)."""
    failed = 0
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            failed += 1
            logger.error("A receiver of an invoicepay signal failed: %r", receiver, exc_info=result)
    return failed


def _send_invoice(change: InvoiceStatusChange, invoice: Invoice) -> int:
    common = {"invoice": invoice, "transition_id": str(change.transition_id)}
    failed = _send(signals.invoice_status_changed, Invoice, old_status=change.from_status,
                   new_status=change.to_status, **common)
    if change.to_status == InvoiceStatus.OVERPAID:
        failed += _send(signals.invoice_overpaid, Invoice, amount=change.amount or 0, **common)
    elif change.to_status == InvoiceStatus.UNDERPAID:
        failed += _send(signals.invoice_underpaid, Invoice, outstanding=change.amount or 0, **common)
    elif change.to_status == InvoiceStatus.EXPIRED:
        failed += _send(signals.invoice_expired, Invoice, **common)
    return failed


def _send_hold(change: HoldStatusChange, hold: Hold) -> int:
    return _send(signals.hold_status_changed, Hold, hold=hold, old_status=change.from_status,
                 new_status=change.to_status, transition_id=str(change.transition_id))


def _send_consent(change: ConsentStatusChange, consent: HoldConsent) -> int:
    return _send(signals.consent_status_changed, HoldConsent, consent=consent, old_status=change.from_status,
                 new_status=change.to_status, transition_id=str(change.transition_id))


@dataclass(frozen=True)
class Outbox:
    model: type[Transition]
    owner_field: str
    send: Callable[[Any, Any], int]  # sends a transition's signals; returns how many receivers raised

    def pending(self, owner_id: int) -> models.QuerySet[Transition]:
        return self.model._default_manager.filter(**{f"{self.owner_field}_id": owner_id, "announced_at__isnull": True})


INVOICES = Outbox(InvoiceStatusChange, "invoice", _send_invoice)
HOLDS = Outbox(HoldStatusChange, "hold", _send_hold)
CONSENTS = Outbox(ConsentStatusChange, "consent", _send_consent)


def record(outbox: Outbox, owner: models.Model, *, claimed: bool, **fields: Any) -> Transition:
    """Write a transition row, inside the transaction that changes `owner`.

    `claimed`: the caller knows no earlier transition of `owner` waits to be announced; the row is then
    leased to this process from the start, and announced after commit without looking for others.
    """
    lease = {"announcing_until": timezone.now() + timedelta(seconds=LEASE)} if claimed else {}
    return outbox.model._default_manager.create(**{outbox.owner_field: owner}, **lease, **fields)


def _deliver(outbox: Outbox, change: Transition, owner: models.Model) -> bool:
    """Send one leased transition's signals and record the outcome; False when receivers failed and it
    is to be sent again later (the object's later transitions wait for it)."""
    failed = outbox.send(change, owner)
    attempts = change.announce_attempts + 1
    row = outbox.model._default_manager.filter(pk=change.pk)
    if failed and attempts < MAX_ATTEMPTS:
        delay = retry_delay(attempts)
        row.update(announcing_until=timezone.now() + timedelta(seconds=delay), announce_attempts=attempts)
        logger.warning("Transition %s: %d receiver(s) failed; sending it again in %d s", change.transition_id,
                       failed, delay)
        return False
    if failed:
        logger.error("Transition %s: receivers still failing after %d attempts; given up", change.transition_id,
                     attempts)
    row.update(announced_at=timezone.now(), announcing_until=None, announce_attempts=attempts)
    return True


def announce(outbox: Outbox, owner: models.Model, *, wait: float = 0.0) -> int:
    """Announce `owner`'s unannounced transitions, oldest first; returns how many were sent.

    When another process is announcing the oldest one (for the first time), waits up to `wait` seconds
    for it, then goes on with the rest; otherwise stops there, and the sweep sends the rest later, so
    the order per object holds.
    """
    sent = 0
    give_up_at = time.monotonic() + wait
    while True:
        change = outbox.pending(owner.pk).order_by("pk").first()
        if change is None:
            return sent
        if not leases.take(outbox.model._default_manager.filter(pk=change.pk, announced_at__isnull=True),
                           "announcing_until", LEASE):
            if change.announce_attempts or time.monotonic() >= give_up_at:
                return sent
            time.sleep(0.05)
            continue
        if not _deliver(outbox, change, owner):
            return sent
        sent += 1


#: How long announcing after a commit waits for another process that is announcing an earlier
#: transition of the same object (rare: two changes of one object within moments).
WAIT = 2.0


def announce_on_commit(outbox: Outbox, owner: models.Model, claimed: Transition | None = None) -> None:
    """After the current transaction commits, announce what it recorded (only `claimed` when given: see
    `record`). Nothing raises from here: a failure (a dropped connection) is logged and leaves the rows
    unannounced, for the sweep."""

    def announce_committed() -> None:
        if _announcing.deferred is not None:  # recorded by a receiver of this thread: after the current one
            _announcing.deferred.append((outbox, owner))
            return
        _announcing.deferred = []
        try:
            if claimed is not None:
                _deliver(outbox, claimed, owner)
            else:
                announce(outbox, owner, wait=WAIT)
            while _announcing.deferred:
                announce(*_announcing.deferred.pop(0))
        except Exception as exc:  # noqa: BLE001 - the change is committed; the sweep announces it
            logger.warning("Announcing the transitions of %s %s failed (%s); the sweep sends them",
                           outbox.owner_field, owner.pk, type(exc).__name__)
            reset_connection()
        finally:
            _announcing.deferred = None

    transaction.on_commit(announce_committed)


class _Announcing(threading.local):
    #: While this thread sends signals: what its receivers' own changes left to announce next (waiting for
    #: the transition being sent would wait for ourselves).
    deferred: list[tuple[Outbox, models.Model]] | None = None


_announcing = _Announcing()


def announce_due(*, limit: int = 500) -> int:
    """For the sweep: announce every object's transitions that no live process is announcing."""
    sent = 0
    for outbox in (INVOICES, CONSENTS, HOLDS):
        owner_ids = (outbox.model._default_manager.filter(announced_at__isnull=True)
                     .filter(leases.free("announcing_until")).order_by()
                     .values_list(f"{outbox.owner_field}_id", flat=True).distinct()[:limit])
        owner_model = outbox.model._meta.get_field(outbox.owner_field).related_model
        assert owner_model is not None, outbox.owner_field  # a foreign key: always has a related model
        for owner in owner_model._default_manager.filter(pk__in=list(owner_ids)).order_by("pk"):
            try:
                sent += announce(outbox, owner)
            except DatabaseError as exc:  # this object's rows stay unannounced for the next sweep
                logger.warning("Announcing transitions of %s %s failed: %s", outbox.owner_field, owner.pk,
                               type(exc).__name__)
                reset_connection()
    if sent:
        logger.info("Announced %d transition(s) that had not been announced", sent)
    return sent
