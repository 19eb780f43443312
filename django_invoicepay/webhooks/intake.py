"""Every webhook delivery goes through here: authenticate, recognise a repeat, process, store, answer.

- A repeat is recognised with one read (the handler's object with the event's earlier delivery); a
  repeat of a finished event is counted and answered `duplicate`, and costs no provider call.
- A new event is processed in its request and then stored once, with its outcome (docs/webhooks.md
  says why): a failure is stored as `failed`, for the provider's retry and the polling sweep; a
  process killed before storing leaves the provider to retry. Two arrivals of one new event at
  once both process it, harmlessly (applying is idempotent), and only one is stored.
- A stored, unfinished delivery (failed, or queued for a task worker) is processed by one attempt
  at a time: it takes the delivery's lease with one conditional UPDATE. A repeat that arrives
  while an attempt runs waits up to IN_FLIGHT_WAIT for it (then it is a duplicate), else is
  answered 503 with Retry-After; a lease left by a killed process lapses after
  `processing_lease()` seconds.
- A database error at any step is a 503 with Retry-After, never a 500; a processing failure is
  recorded on a fresh connection, with its traceback and without secrets.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from .. import leases
from ..api.throttling import WebhookThrottle
from ..clientip import client_address, parse_address
from ..masking import redact_secrets
from ..models import WebhookDelivery
from ..models.webhooks import FINISHED, UNFINISHED
from ..reconnect import on_fresh_connection, reset_connection
from . import bodies
from .handlers import HANDLERS, Handler

logger = logging.getLogger("django_invoicepay.webhooks")

Status = WebhookDelivery.Status
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-csrftoken", "x-api-key"})
RETRY_AFTER = 30
#: How long a repeat waits for an attempt in progress elsewhere before it is answered 503 (well within
#: the provider's 5 s): a concurrent duplicate usually gets its `duplicate` answer instead of a retry.
IN_FLIGHT_WAIT = 2.0
MESSAGES = {
    "unauthenticated": "Authentication failed.",
    "malformed": "The body is not a JSON object.",
    "duplicate": "Already received.",
    "busy": "This event is being processed; retry later.",
    "throttled": "Too many requests; retry later.",
    "failed": "Processing failed; it will be retried.",
    "unavailable": "Temporarily unavailable; retry later.",
    "queued": "queued",
}


class ProcessingFailed(Exception):
    """The handler raised: recorded on the delivery; the provider should retry."""


def processing_lease() -> int:
    """Seconds one attempt may take: two provider calls (an object and its transactions) with every
    retry. Longer, and a killed attempt blocks its repeats longer; shorter, and a slow attempt could
    be overtaken by a second one."""
    return leases.provider_call_budget(2)


# -- storing ---------------------------------------------------------------------------------------


def storable(text: str) -> str:
    """PostgreSQL cannot store NUL in text: it is kept as U+FFFD (the body is otherwise stored as received)."""
    return text.replace("\x00", "\ufffd")


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers minus anything that carries a secret."""
    return {storable(name): storable(value) for name, value in headers.items() if name.lower() not in SECRET_HEADERS}


#: How much of a body that is not a JSON object is kept, for the shop to see what came.
MALFORMED_KEPT = 4096


def received(handler: Handler, *, body: bytes, headers: dict[str, str], source_ip: str | None) -> WebhookDelivery:
    """The delivery as it arrived, not yet stored: `malformed`, `received`, or (when it names nothing of
    this shop, where the handler can tell) a masked summary already `ignored`.

    Bounded storage: a body that is not a JSON object is kept cut to MALFORMED_KEPT characters.
    """
    text = body.decode("utf-8", errors="replace")
    common = {"provider": handler.provider, "headers": safe_headers(headers), "source_ip": source_ip}
    try:
        payload = bodies.parse(text)
    except bodies.BodyRefused as refused:
        return WebhookDelivery(status=Status.MALFORMED, body=storable(text[:MALFORMED_KEPT]), error=refused.message,
                               **common)
    event, event_id, object_id = (storable(str(value or ""))[:128] for value in handler.identify(payload))
    delivery = WebhookDelivery(event=event, event_id=event_id or None, object_id=object_id, body=storable(text),
                               **common)
    if handler.relevant is not None and not handler.relevant(object_id):
        summary = {"event": event, "event_id": event_id, "object_id": object_id}
        delivery.status, delivery.body, delivery.headers = Status.IGNORED, json.dumps(summary), {}
        delivery.processed_at = timezone.now()
        delivery.error = "Names nothing of this shop: counted, not stored whole."
    return delivery


def store(delivery: WebhookDelivery) -> bool:
    """Insert the delivery; False when its event is already stored (a repeat that came in meanwhile)."""
    try:
        with nullcontext() if transaction.get_autocommit() else transaction.atomic():  # a savepoint if need be
            delivery.save(force_insert=True)
    except IntegrityError:
        delivery.pk = None
        return False
    return True


def earlier_deliveries(delivery: WebhookDelivery) -> QuerySet[WebhookDelivery]:
    """The stored deliveries of the same event: none for an event without an id (each is new)."""
    if not delivery.event_id:
        return WebhookDelivery.objects.none()
    return WebhookDelivery.objects.filter(provider=delivery.provider, event_id=delivery.event_id)


def count_repeat(delivery: WebhookDelivery) -> None:
    """One more delivery of an event already stored."""
    earlier_deliveries(delivery).update(deliveries=F("deliveries") + 1)
    logger.info("%s webhook %s delivered again", delivery.provider, delivery.event_id)


# -- processing ------------------------------------------------------------------------------------


def claim(delivery: WebhookDelivery, *, statuses: frozenset[str] = UNFINISHED) -> bool:
    """Take the delivery's processing lease (and count the attempt); False when another attempt holds it."""
    rows = WebhookDelivery.objects.filter(pk=delivery.pk, status__in=statuses)
    return bool(leases.take(rows, "leased_until", processing_lease(), attempts=F("attempts") + 1,
                            last_attempt_at=timezone.now()))


def process(delivery: WebhookDelivery) -> str:
    """Act on a delivery whose lease this process holds; returns its new status.

    Raises ProcessingFailed (recorded on the delivery, lease given back) when the handler fails.
    """
    try:
        status, note = HANDLERS[delivery.provider].act(delivery, None, None)
        done = {"status": status, "error": note, "processed_at": timezone.now(), "leased_until": None}
        if status == Status.IGNORED:  # nothing of this shop's: keep no personal data from it
            done["body"] = bodies.masked_text(delivery.body)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**done)
    except Exception as exc:
        record_failure(delivery, exc)
        raise ProcessingFailed from exc
    return status


def record_failure(delivery: WebhookDelivery, exc: BaseException) -> None:
    """Mark the delivery failed with its traceback (secrets removed), on a fresh connection if need be."""
    # The traceback goes to the shop's error e-mails (no secret is in its locals); a dropped database
    # connection is an outage, not a bug: one line, its traceback is on the delivery.
    logger.error("%s webhook %s (%s) failed: %s", delivery.provider, delivery.event_id, delivery.event,
                 type(exc).__name__, exc_info=None if isinstance(exc, DatabaseError) else exc)
    error = redact_secrets("".join(traceback.format_exception(exc)))
    unfinished = WebhookDelivery.objects.filter(pk=delivery.pk, status__in=UNFINISHED)

    def write() -> None:
        if delivery.pk is not None:
            unfinished.update(status=Status.FAILED, error=error, leased_until=None)
            return
        delivery.status, delivery.error, delivery.attempts = Status.FAILED, error, 1
        delivery.last_attempt_at = timezone.now()
        if not store(delivery):  # a concurrent attempt stored the event first: it stands
            count_repeat(delivery)

    try:
        on_fresh_connection(write)
    except DatabaseError:  # the lease lapses by itself; the provider's retry or the sweep finds it
        logger.error("%s webhook %s: the failure could not be recorded either", delivery.provider, delivery.event_id)


def claim_and_process(delivery_id: int) -> str:
    """What a task worker runs: process the delivery unless it is finished or another attempt holds it."""
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    if delivery.is_finished:
        return delivery.status
    if not claim(delivery):
        return "busy"
    return process(delivery)


def _backoff(attempts: int) -> int:
    """Seconds before the sweep retries a delivery that failed `attempts` times: 30 s doubling, at most an hour."""
    return min(30 * 2 ** max(attempts - 1, 0), 3600)


#: The sweep gives up on a delivery after this many failed attempts (the admin and `--failed` still can).
MAX_AUTOMATIC_ATTEMPTS = 10


def due_deliveries(*, limit: int = 200) -> list[WebhookDelivery]:
    """Unfinished deliveries no attempt holds: never processed (the process died first, or a worker has
    not got to it yet) or failed and due again by their backoff."""
    now = timezone.now()
    free = WebhookDelivery.objects.filter(leases.free("leased_until", now)).order_by("received_at", "pk")
    waiting = list(free.filter(status=Status.RECEIVED)[:limit])
    failed = free.filter(status=Status.FAILED, attempts__lt=MAX_AUTOMATIC_ATTEMPTS)[:limit]
    retry = [d for d in failed if d.last_attempt_at is None
             or (now - d.last_attempt_at).total_seconds() >= _backoff(d.attempts)]
    return (waiting + retry)[:limit]


def process_all(deliveries: QuerySet | list[WebhookDelivery], *, statuses: frozenset[str] = UNFINISHED
                ) -> dict[str, int]:
    """Claim and process each delivery in turn (sweep, command, admin); returns counts by outcome.

    One delivery's failure, or a dropped connection, costs that delivery only.
    """
    counts: dict[str, int] = {}
    for delivery in deliveries:
        try:
            outcome = process(delivery) if claim(delivery, statuses=statuses) else "busy"
        except ProcessingFailed:
            outcome = Status.FAILED
        except DatabaseError as exc:
            logger.warning("Webhook delivery %s could not be processed now: %s", delivery.pk, type(exc).__name__)
            reset_connection()
            outcome = Status.FAILED
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# -- answering -------------------------------------------------------------------------------------


def reply(handler: Handler, status: int, key: str, *, retry_after: int | None = None, **extra: Any) -> JsonResponse:
    """The provider's own answer shape: {"status": <its word for success or failure>, "message": ...}."""
    word = handler.words[0] if status < 400 else handler.words[1]
    message = handler.messages.get(key) or MESSAGES.get(key) or key
    response = JsonResponse({"status": word, "message": message, **extra}, status=status)
    if status in (429, 503):
        response["Retry-After"] = str(retry_after or RETRY_AFTER)
    return response


def _source_ip(request: HttpRequest) -> str | None:
    """The client's address as the log stores it: an IP address, or None ("unknown", a Unix socket)."""
    address = parse_address(client_address(request))
    return str(address) if address is not None else None


@dataclass
class Intake:
    """One request to a receiver, from authentication to the answer."""

    handler: Handler
    request: HttpRequest
    #: Hands a stored delivery to a worker and says True (False: this request processes it after all).
    #: The view passes `tasks.enqueue_webhook` when a queueing task backend is configured, else None (then
    #: every delivery is processed in its request); the intake knows no task framework.
    enqueue: Callable[[int], bool] | None = None
    delivery: WebhookDelivery | None = None
    claimed: bool = False  # this request holds the delivery's processing lease

    def run(self) -> JsonResponse:
        try:
            return self._run()
        except (SuspiciousOperation, BadRequest) as exc:  # e.g. too many query parameters: the sender's fault
            logger.warning("Refused a %s webhook: %s", self.handler.title, type(exc).__name__)
            return reply(self.handler, 400, "The request is not acceptable.")
        except Exception as exc:  # noqa: BLE001 - a database, queue or cache outage: the provider retries
            logger.error("%s webhook: %s; answered 503 for a retry", self.handler.title, type(exc).__name__,
                         exc_info=not isinstance(exc, DatabaseError))
            if self.delivery is not None and self.claimed:  # never touch another attempt's lease
                record_failure(self.delivery, exc)
            return reply(self.handler, 503, "unavailable")

    def _claim(self, delivery: WebhookDelivery) -> bool:
        self.claimed = claim(delivery)
        return self.claimed

    def _run(self) -> JsonResponse:
        handler, request = self.handler, self.request
        if handler.throttled:
            throttle = WebhookThrottle()
            # A DRF throttle on a plain Django view: WebhookThrottle reads neither a DRF Request nor a view.
            if not throttle.allow_request(request, None):  # type: ignore[arg-type]
                logger.warning("Throttled %s webhooks from %s", handler.title, client_address(request))
                return reply(handler, 429, "throttled", retry_after=int(throttle.wait() or 1))
        if not handler.authentic(request):
            logger.warning("Refused a %s webhook from %s: missing or wrong secret", handler.title,
                           client_address(request))
            return reply(handler, 401, "unauthenticated")
        try:
            body = bodies.read(request)
        except bodies.BodyRefused as refused:
            logger.warning("Refused a %s webhook: %s", handler.title, refused.message)
            return reply(handler, refused.status, refused.message)
        delivery = received(handler, body=body, headers=safe_headers(request.headers), source_ip=_source_ip(request))
        if delivery.status == Status.MALFORMED:
            store(delivery)
            logger.warning("%s webhook %s: %s", handler.title, delivery.pk, delivery.error)
            return reply(handler, 400, delivery.error or "malformed")
        subject, earlier = self._load(delivery)
        if earlier is None and delivery.status == Status.RECEIVED and self.enqueue is None:
            return self._process_new(delivery, subject)
        if earlier is None and store(delivery):  # ignored as it arrived (names nothing of this shop), or queued
            if delivery.status == Status.IGNORED:
                return reply(handler, 200, handler.done(delivery.status))
            return self._queue_or_process(delivery)
        return self._repeat(delivery, earlier)

    def _repeat(self, delivery: WebhookDelivery, earlier: str | None) -> JsonResponse:
        """A repeat of a stored event (`earlier`: its status when known): counted; answered `duplicate` when
        that delivery finished, else it is processed (or queued) as a stored, unfinished delivery."""
        count_repeat(delivery)
        if earlier in FINISHED:
            return reply(self.handler, 200, "duplicate", duplicate=True)
        stored = earlier_deliveries(delivery).get()
        if stored.is_finished:
            return reply(self.handler, 200, "duplicate", duplicate=True)
        return self._queue_or_process(stored)

    def _load(self, delivery: WebhookDelivery) -> tuple[Any, str | None]:
        """What the delivery names (when the handler can read it) and the status of the event's earlier
        delivery, in one query where the handler can (a repeat of a finished event costs two in all)."""
        subject, earlier = None, None
        if self.handler.load is not None and delivery.object_id:
            subject, earlier = self.handler.load(delivery.object_id, delivery.event_id)
        if subject is None and delivery.event_id:
            earlier = earlier_deliveries(delivery).values_list("status", flat=True).first()
        return subject, earlier

    def _process_new(self, delivery: WebhookDelivery, subject: Any) -> JsonResponse:
        """A new event, processed in this request and stored once with its outcome: in the transaction that
        records the change where there is one (one commit for both), else after it. No lease to take and give
        back: a repeat arriving meanwhile processes it too, harmlessly, as applying is idempotent, and only one
        of the two is stored; a process killed before storing it leaves the provider to retry."""
        handler = self.handler
        now = timezone.now()
        delivery.attempts, delivery.last_attempt_at = 1, now
        delivery.status, delivery.processed_at = Status.PROCESSED, now  # as stored with the change
        conflict = []  # the delivery's own INSERT found the event stored (by a repeat, meanwhile)

        def store_with_change() -> None:
            delivery.pk, delivery._state.adding = None, True  # a new row again if the transaction is run again
            try:
                delivery.save(force_insert=True)
            except IntegrityError:
                conflict.append(True)
                raise

        try:
            status, note = handler.act(delivery, subject, store_with_change)
        except Exception as exc:  # noqa: BLE001 - recorded (and stored) as failed; the provider retries
            delivery.pk, delivery._state.adding, delivery.processed_at = None, True, None  # rolled back
            if conflict:  # a repeat stored the event first: answer as for any repeat
                return self._repeat(delivery, None)
            record_failure(delivery, exc)
            return reply(handler, 503, "failed")
        if delivery.pk is None:  # nothing was written with it (stale, ignored) or a repeat stored it first
            delivery.status, delivery.error, delivery.processed_at = status, note, timezone.now()
            if status == Status.IGNORED:  # nothing of this shop's: keep no personal data from it
                delivery.body = bodies.masked_text(delivery.body)
            if not store(delivery):
                return self._repeat(delivery, None)
        return reply(handler, 200, handler.done(status))

    def _queue_or_process(self, delivery: WebhookDelivery) -> JsonResponse:
        """A stored, unfinished delivery: queued for a worker, or processed here once this request holds its lease."""
        handler = self.handler
        self.delivery = delivery
        if self.enqueue is not None and self.enqueue(delivery.pk):
            return reply(handler, 202, "queued")  # at once; a worker processes it (and a repeat re-queues)
        waited_until = time.monotonic() + IN_FLIGHT_WAIT
        while not self._claim(delivery):  # another attempt is processing it: usually done in a few milliseconds
            delivery.refresh_from_db(fields=["leased_until", "status"])
            if delivery.is_finished:
                return reply(handler, 200, "duplicate", duplicate=True)
            if time.monotonic() >= waited_until:
                return reply(handler, 503, "busy", retry_after=leases.seconds_left(delivery.leased_until))
            time.sleep(0.05)
        try:
            status = process(delivery)
        except ProcessingFailed:
            return reply(handler, 503, "failed")
        return reply(handler, 200, handler.done(status))
