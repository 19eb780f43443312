"""Webhook deliveries: authenticate, store raw, de-duplicate, process through the one sync path.

Never trust a payload's state: a Rehive event only names the invoice; the invoice is fetched
again from the provider and applied under its row lock (`invoices.sync`). So duplicate, late
and out-of-order deliveries change nothing they should not.
"""

from __future__ import annotations

import hmac
import json
import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .conf import invoicepay_settings
from .invoices import sync
from .models import Invoice, WebhookDelivery

logger = logging.getLogger("django_invoicepay.webhooks")

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-csrftoken", "x-api-key"})
#: Rehive events that name an invoice, and where its id is in `data`.
REHIVE_EVENTS = {
    "service_payment_requests.request.create": "id",
    "service_payment_requests.request.update": "id",
    "service_payment_requests.quote.create": "request",
    "service_payment_requests.quote.update": "request",
}
STALE_RECEIVED = timedelta(minutes=10)
Status = WebhookDelivery.Status


def storable(text: str) -> str:
    """PostgreSQL cannot store NUL in text: it is kept as U+FFFD (the body is otherwise stored as received)."""
    return text.replace("\x00", "\ufffd")


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request headers minus anything that carries a secret."""
    return {storable(name): storable(value) for name, value in headers.items() if name.lower() not in SECRET_HEADERS}


def rehive_authentic(authorization: str) -> bool:
    """`Authorization: Secret <secret>` compared in constant time. No secret configured: refuse all."""
    secret = str(invoicepay_settings.REHIVE.get("WEBHOOK_SECRET") or "")
    scheme, _, given = (authorization or "").partition(" ")
    if not secret or scheme != "Secret":
        return False
    return hmac.compare_digest(given.strip().encode(), secret.encode())


@dataclass
class Received:
    delivery: WebhookDelivery
    new: bool  # False: the same event id was stored before

    @property
    def needs_processing(self) -> bool:
        if self.new:
            return self.delivery.status == Status.RECEIVED
        return self.delivery.status == Status.FAILED  # the provider retries after our failure


def record(provider: str, *, body: bytes, headers: dict[str, str], source_ip: str | None) -> Received:
    """Store the delivery before anything else (autocommit, outside any processing transaction)."""
    text = body.decode("utf-8", errors="replace")
    common = {"provider": provider, "body": storable(text), "headers": safe_headers(headers), "source_ip": source_ip}
    try:
        payload = json.loads(text)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        delivery = WebhookDelivery.objects.create(status=Status.MALFORMED, **common)
        logger.warning("%s webhook %s: the body is not a JSON object", provider, delivery.pk)
        return Received(delivery, new=True)
    event, event_id, object_id = (storable(str(value or ""))[:128] for value in _identify(provider, payload))
    event_id = event_id or None
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(event=event, event_id=event_id, object_id=object_id, **common)
        return Received(delivery, new=True)
    except IntegrityError:
        WebhookDelivery.objects.filter(provider=provider, event_id=event_id).update(deliveries=F("deliveries") + 1)
        delivery = WebhookDelivery.objects.get(provider=provider, event_id=event_id)
        logger.info("%s webhook %s delivered again (%s)", provider, event_id, delivery.status)
        return Received(delivery, new=False)


def _identify(provider: str, payload: dict) -> tuple[object, object, object]:
    """(event name, event id, the id of what it is about) as each provider writes them."""
    if provider == "onepipe":  # a transaction notification [shape C, authentication undocumented]
        details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
        return payload.get("request_type"), payload.get("request_ref"), details.get("transaction_ref")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    event = str(payload.get("event") or "")
    return event, payload.get("id"), data.get(REHIVE_EVENTS.get(event, "id"))


def process(delivery: WebhookDelivery) -> str:
    """Act on a stored delivery; returns its new status. Failures are recorded, then re-raised."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    try:
        status, note = _act(delivery)
    except Exception as exc:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED, error=traceback.format_exc())
        logger.error("%s webhook %s (%s) failed: %s", delivery.provider, delivery.event_id, delivery.event,
                     type(exc).__name__)
        raise
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=status, error=note, processed_at=timezone.now())
    return status


def _act(delivery: WebhookDelivery) -> tuple[str, str]:
    if delivery.provider == "onepipe":
        return _act_onepipe(delivery)
    if delivery.provider != "rehive" or delivery.event not in REHIVE_EVENTS:
        return Status.IGNORED, f"No action for event {delivery.event!r}."
    invoice = Invoice.objects.filter(remote_id=delivery.object_id).first() if delivery.object_id else None
    if invoice is None:
        return Status.IGNORED, "The event names an invoice this shop does not have."
    sync(invoice, source="webhook")
    return Status.PROCESSED, ""


def reprocess(queryset=None) -> dict[str, int]:
    """Process again failed deliveries (and ones stuck in `received`): admin action and command."""
    if queryset is None:
        stuck = Q(status=Status.RECEIVED, received_at__lt=timezone.now() - STALE_RECEIVED)
        queryset = WebhookDelivery.objects.filter(Q(status=Status.FAILED) | stuck)
    counts: dict[str, int] = {}
    for delivery in queryset.order_by("received_at", "pk"):
        try:
            status = process(delivery)
        except Exception:  # noqa: BLE001 - recorded on the delivery by process()
            status = Status.FAILED
        counts[status] = counts.get(status, 0) + 1
    return counts


def _act_onepipe(delivery: WebhookDelivery) -> tuple[str, str]:
    """A notification is only a hint: the hold's state is confirmed with transact/query."""
    from .holds import refresh_hold
    from .models import Hold

    hold = Hold.objects.filter(transaction_ref=delivery.object_id).first() if delivery.object_id else None
    if hold is None:
        return Status.IGNORED, "The notification names no hold of this shop."
    refresh_hold(hold)
    return Status.PROCESSED, ""
