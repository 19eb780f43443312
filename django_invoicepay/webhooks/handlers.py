"""What each provider's webhook means: how it is authenticated, what it names, what to do with it.

One `Handler` per provider in `HANDLERS`; the intake and the views know nothing provider-specific.
A webhook is only a hint: each handler re-reads the object from the provider and applies that
through the one sync path, so duplicate, late and out-of-order deliveries change nothing they
should not.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any

from django.db.models import QuerySet, Subquery
from django.http import HttpRequest, QueryDict

from ..compiled import CompiledQuery
from ..conf import invoicepay_settings
from ..masking import Redacted
from ..models import WebhookDelivery

Status = WebhookDelivery.Status
Outcome = tuple[str, str]  # (the delivery's new status, a note for the log)
#: The object a delivery names and the status of the event's earlier delivery, if there is one.
Loaded = tuple[Any, str | None]

#: Rehive events that name an invoice, and where its id is in `data`.
REHIVE_EVENTS = {
    "service_payment_requests.request.create": "id",
    "service_payment_requests.request.update": "id",
    "service_payment_requests.quote.create": "request",
    "service_payment_requests.quote.update": "request",
}


@dataclass(frozen=True)
class Handler:
    provider: str
    #: True when the request really comes from the provider.
    authentic: Callable[[HttpRequest], bool]
    #: (event name, event id, the id of what it is about) from the parsed body.
    identify: Callable[[dict], tuple[object, object, object]]
    #: Act on a delivery: (new status, note). Raising means: failed, to be retried. The second argument
    #: is what `load` read (None: the handler reads what it needs); the third, when given, is to be called
    #: inside the transaction that records the change (it stores the delivery as processed, in the same commit).
    act: Callable[[WebhookDelivery, Any, Callable[[], None] | None], Outcome]
    #: The provider's name in log lines.
    title: str = ""
    #: Whether an object id names something of this shop; when it does not, the delivery is kept only as
    #: a masked summary (None: every delivery is stored whole; the provider authenticates them).
    relevant: Callable[[str], bool] | None = None
    #: The provider's words for success and failure in an answer's `status`.
    words: tuple[str, str] = ("success", "error")
    #: Throttled per client (THROTTLE_RATES "webhook"): for a provider that does not authenticate deliveries.
    throttled: bool = False
    #: Answer messages that differ from the defaults in `intake.MESSAGES`.
    messages: Mapping[str, str] = field(default_factory=dict)
    #: Reads the object an object id names together with the status of the event's earlier delivery (the
    #: event id; None: the event has none), in one query; (None, None) when there is no such object.
    #: None: the intake looks the event up alone.
    load: Callable[[str, str | None], Loaded] | None = None

    def done(self, status: str) -> str:
        """The message key of a delivery finished as `status` (OnePipe says the same whatever it was)."""
        return "done" if "done" in self.messages else status


def rehive_authentic(request: HttpRequest) -> bool:
    """`Authorization: Secret <secret>` compared in constant time. No secret configured: refuse all."""
    secret = Redacted(invoicepay_settings.REHIVE.get("WEBHOOK_SECRET") or "")
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    given = Redacted(given.strip())  # never shown, even in a traceback's local variables
    if not secret or scheme != "Secret":
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def rehive_identify(payload: dict) -> tuple[object, object, object]:
    data = _dict(payload.get("data"))
    event = str(payload.get("event") or "")
    return event, payload.get("id"), data.get(REHIVE_EVENTS.get(event, "id"))


def _invoice_with_outbox(object_id: str) -> QuerySet[Any]:
    from ..models import Invoice

    return Invoice.objects.filter(remote_id=object_id).with_announcing_state().order_by()


def _invoice_with_earlier(object_id: str, provider: str, event_id: str) -> QuerySet[Any]:
    earlier = WebhookDelivery.objects.filter(provider=provider, event_id=event_id).values("status")[:1]
    return _invoice_with_outbox(object_id).annotate(earlier_status=Subquery(earlier))


_INVOICE = CompiledQuery(_invoice_with_outbox, "object_id")
_INVOICE_AND_EARLIER = CompiledQuery(_invoice_with_earlier, "object_id", "provider", "event_id")


def rehive_load(object_id: str, event_id: str | None) -> Loaded:
    """The invoice (with what `apply_invoice` can use: see `with_announcing_state`) and the status of the
    event's earlier delivery (none for an event without an id), in one query, compiled once (`compiled`)."""
    if event_id:
        rows = _INVOICE_AND_EARLIER(object_id=object_id, provider="rehive", event_id=event_id)
    else:
        rows = _INVOICE(object_id=object_id)
    invoice = rows[0] if rows else None
    return (invoice, getattr(invoice, "earlier_status", None)) if invoice is not None else (None, None)


def rehive_act(delivery: WebhookDelivery, invoice: Any, store: Callable[[], None] | None) -> Outcome:
    from ..models import Invoice
    from ..services.invoices import sync

    if delivery.event not in REHIVE_EVENTS:
        return Status.IGNORED, f"No action for event {delivery.event!r}."
    if invoice is None and delivery.object_id:
        invoice = Invoice.objects.filter(remote_id=delivery.object_id).first()
    if invoice is None:
        return Status.IGNORED, "The event names an invoice this shop does not have."
    sync(invoice, source="webhook", also=store)
    return Status.PROCESSED, ""


def onepipe_authentic(request: HttpRequest) -> bool:
    """OnePipe documents no signature for its notifications (docs/webhooks.md#onepipe; inferred:
    docs/reference/wire-format.md#onepipe-notification-authentication): each one is only a
    hint, confirmed with transact/query before anything changes. The shop may add a token to the URL it
    registers (ONEPIPE WEBHOOK_TOKEN) and/or accept only OnePipe's addresses (WEBHOOK_ALLOWED_IPS)."""
    onepipe = invoicepay_settings.ONEPIPE
    token = Redacted(onepipe.get("WEBHOOK_TOKEN") or "")
    given = Redacted(request.GET.get("token", ""))
    _forget_query(request)  # no error report or log line made from this request can show the token
    if token and not hmac.compare_digest(given.encode(), token.encode()):
        return False
    allowed = [ip_network(str(net), strict=False) for net in onepipe.get("WEBHOOK_ALLOWED_IPS") or []]
    if allowed:
        from ..clientip import client_address

        try:
            address = ip_address(client_address(request))
        except ValueError:
            return False
        return any(address in network for network in allowed)
    return True


def _forget_query(request: HttpRequest) -> None:
    """Drop the query string (where the URL token travels) from the request: Django's error e-mails and its
    5xx log lines are made from `request.GET` and `QUERY_STRING`. (Web server access logs are the shop's:
    docs/webhooks.md says how to keep the token out of them.)"""
    request.GET = QueryDict()
    request.META["QUERY_STRING"] = ""


def onepipe_relevant(transaction_ref: str) -> bool:
    from ..models import Hold

    return bool(transaction_ref) and Hold.objects.filter(transaction_ref=transaction_ref).exists()


def onepipe_identify(payload: dict) -> tuple[object, object, object]:
    """A transaction notification: request_type, request_ref, details.transaction_ref (docs/hold-funds.md)."""
    details = _dict(payload.get("details"))
    return payload.get("request_type"), payload.get("request_ref"), details.get("transaction_ref")


def onepipe_act(delivery: WebhookDelivery, _loaded: Any, _store: Callable[[], None] | None) -> Outcome:
    from ..models import Hold
    from ..services.holds import refresh_hold

    hold = Hold.objects.filter(transaction_ref=delivery.object_id).first() if delivery.object_id else None
    if hold is None:
        return Status.IGNORED, "The notification names no hold of this shop."
    refresh_hold(hold, source="webhook")
    return Status.PROCESSED, ""


HANDLERS: dict[str, Handler] = {
    "rehive": Handler("rehive", rehive_authentic, rehive_identify, rehive_act, title="Rehive", load=rehive_load),
    "onepipe": Handler(
        "onepipe", onepipe_authentic, onepipe_identify, onepipe_act, title="OnePipe", relevant=onepipe_relevant,
        throttled=True, words=("Successful", "Failed"),
        messages={"done": "Notification received.", "duplicate": "Notification already received.",
                  "failed": "Processing failed; please retry."},
    ),
}
