"""Send the providers' webhooks to the shop in a test, authenticated the way the receivers check.

The body is what the provider would send for the object's current state in the sandbox. It goes
through Django's test client to the shop's own URLs, so the whole receiving path runs; the
callbacks the receiver registers for after the commit (the signals) run before `send` returns, as
they would after a real request's commit, and only once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db import connections
from django.test import Client
from django.urls import reverse

from .. import sandbox
from ..conf import invoicepay_settings

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as HttpResponse  # what the test client returns

    from ..models import Hold, Invoice

#: The event Rehive sends when an invoice changes.
INVOICE_UPDATED = "service_payment_requests.request.update"


logger = logging.getLogger("django_invoicepay.testing")


@contextlib.contextmanager
def committed() -> Iterator[None]:
    """Run the on-commit callbacks the block registers inside a test's transaction, as the request's own
    commit would, and drop them: an enclosing capture (`django_capture_on_commit_callbacks`, another
    atomic block) must not run them a second time. Outside a transaction they have run already."""
    starts = {conn.alias: len(conn.run_on_commit) for conn in connections.all(initialized_only=True)}
    yield
    for conn in connections.all(initialized_only=True):
        start = starts.get(conn.alias, 0)
        while len(conn.run_on_commit) > start:  # a callback may register more
            callbacks = conn.run_on_commit[start:]
            del conn.run_on_commit[start:]
            # django-stubs has the two-item tuple of Django < 4.2; Django stores (savepoints, callback, robust)
            for _savepoints, callback, robust in callbacks:  # type: ignore[misc]
                if not robust:
                    callback()
                    continue
                try:
                    callback()
                except Exception:  # as Django's robust on_commit: logged, the others still run
                    logger.exception("A robust on-commit callback failed: %s", callback)


def _post(client: Client, url: str, body: dict | bytes, **headers: Any) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with committed():
        return client.post(url, raw, content_type="application/json", **headers)


def remote_id(invoice: Invoice | str) -> str:
    return invoice if isinstance(invoice, str) else invoice.remote_id


class RehiveWebhookSender:
    """`send(invoice)` posts the Rehive event for the invoice's current state in the sandbox."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    @property
    def url(self) -> str:
        return reverse("invoicepay-webhook-rehive")

    def envelope(self, invoice: Invoice | str, *, event: str = INVOICE_UPDATED, event_id: str | None = None) -> dict:
        """The event Rehive would send now: its `data` is the sandbox's invoice as the API shows it."""
        state = sandbox.get_state()
        with state.transaction() as data:
            current = json.loads(json.dumps(data["invoices"][remote_id(invoice)]))
        return {"id": event_id or str(uuid.uuid4()), "event": event, "company": "sandbox", "data": current}

    def send(self, invoice: Invoice | str, *, event: str = INVOICE_UPDATED, event_id: str | None = None,
             secret: str | None = None) -> HttpResponse:
        """Deliver the event (a new one unless `event_id` repeats one) and return the receiver's answer."""
        return self.post(self.envelope(invoice, event=event, event_id=event_id), secret=secret)

    def post(self, body: dict | bytes, *, secret: str | None = None, **headers: Any) -> HttpResponse:
        """Post any body (a hand-made or broken one too), with the configured secret unless `secret`."""
        secret = invoicepay_settings.REHIVE.get("WEBHOOK_SECRET") if secret is None else secret
        if secret:
            headers.setdefault("HTTP_AUTHORIZATION", f"Secret {secret}")
        return _post(self.client, self.url, body, **headers)


class OnePipeNotificationSender:
    """`send(hold)` posts the transaction notification OnePipe would send for the hold's current state."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    @property
    def url(self) -> str:
        """The receiver's URL, with the shop's WEBHOOK_TOKEN when it has one (as registered with OnePipe)."""
        url = reverse("invoicepay-webhook-onepipe")
        token = invoicepay_settings.ONEPIPE.get("WEBHOOK_TOKEN")
        return f"{url}?{urlencode({'token': token})}" if token else url

    def body(self, hold: Hold | str) -> dict:
        return sandbox.onepipe_notification(hold if isinstance(hold, str) else hold.transaction_ref)

    def send(self, hold: Hold | str) -> HttpResponse:
        return self.post(self.body(hold))

    def post(self, body: dict | bytes, **headers: Any) -> HttpResponse:
        """Post from OnePipe's address when the shop accepts only those (WEBHOOK_ALLOWED_IPS)."""
        allowed = invoicepay_settings.ONEPIPE.get("WEBHOOK_ALLOWED_IPS") or []
        if allowed:
            headers.setdefault("REMOTE_ADDR", str(ip_network(str(allowed[0]), strict=False).network_address))
        return _post(self.client, self.url, body, **headers)
