"""`python -m tests.reliability.tool create N | poll STOPFILE | report | outstanding` under the reliability
settings."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import Counter


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.settings")
    import django

    django.setup()
    command, *args = argv
    {"create": create, "poll": poll, "report": report, "outstanding": outstanding}[command](*args)


def create(count: str) -> None:
    from shop.models import Order

    from django_invoicepay.models import Invoice
    from tests.reliability.models import Fulfilment

    made = []
    for n in range(int(count)):
        order = Order.objects.create(description=f"Reliability order {n}", total=1000 + n)
        invoice = Invoice.objects.create_for(order, amount=order.total, description=order.description)
        Fulfilment.objects.create(remote_id=invoice.remote_id)
        made.append({"remote_id": invoice.remote_id, "token": invoice.public_token})
    print(json.dumps(made))


def poll(stop_file: str) -> None:
    """Run the scheduled sweep twice a second (as an eager cron would) until told to stop.

    Like a cron job, a sweep that fails does not stop the next one: its traceback is printed with a line
    `{"failed sweep": "<exception>"}`, and every sweep starts on a fresh database connection (the old one
    may have been dropped). SIGTERM stops it as it stops `invoicepay_sync`: the sweep gives its claims back.
    """
    from django.db import close_old_connections

    from django_invoicepay.services.polling import stop_on_signals, sweep

    print("polling", flush=True)
    sweeps = polled = 0
    errors: Counter = Counter()
    try:
        with stop_on_signals():
            while not os.path.exists(stop_file):
                close_old_connections()
                try:
                    result = sweep(concurrency=4, batch=50)
                except Exception as exc:  # noqa: BLE001 - reported; the next sweep runs anyway
                    traceback.print_exc()
                    name = f"{type(exc).__module__}.{type(exc).__name__}"
                    errors[name] += 1
                    print(json.dumps({"failed sweep": name}), flush=True)
                else:
                    sweeps, polled = sweeps + 1, polled + result.polled
                time.sleep(0.5)
    except KeyboardInterrupt:
        print(json.dumps({"stopped": "SIGTERM", "sweeps": sweeps}), flush=True)
        raise SystemExit(143) from None
    print(json.dumps({"sweeps": sweeps, "polled": polled, "errors": errors}))


def report() -> None:
    from django_invoicepay.models import Invoice, InvoiceStatusChange, WebhookDelivery
    from tests.reliability.models import AppliedTransition, Fulfilment

    invoices = {i.remote_id: {"status": i.status, "order": getattr(i.order, "status", None), "history": []}
                for i in Invoice.objects.all()}
    for change in InvoiceStatusChange.objects.select_related("invoice").order_by("invoice_id", "pk"):
        transition_id = getattr(change, "transition_id", None)  # None before the crash-safety change
        invoices[change.invoice.remote_id]["history"].append(
            [change.from_status, change.to_status, change.source, transition_id and str(transition_id)])
    deliveries = list(WebhookDelivery.objects.values("event_id", "status", "deliveries", "attempts", "body",
                                                     "headers", "error"))
    applied = list(AppliedTransition.objects.values_list("transition_id", "remote_id", "from_status", "to_status"))
    steps = dict(Fulfilment.objects.values_list("remote_id", "steps"))
    print(json.dumps({"invoices": invoices, "deliveries": deliveries, "applied": applied, "steps": steps}))


def outstanding() -> None:
    """What recovery has still to do: webhook deliveries not finished, and transitions the shop's idempotent
    receiver has not applied (null when the history has no transition ids)."""
    from django_invoicepay.models import InvoiceStatusChange, WebhookDelivery
    from tests.reliability.models import AppliedTransition

    unfinished = WebhookDelivery.objects.exclude(status__in=["processed", "ignored"]).count()
    transitions = InvoiceStatusChange.objects.exclude(from_status="")
    unapplied = None
    if any(field.name == "transition_id" for field in InvoiceStatusChange._meta.get_fields()):
        applied = set(AppliedTransition.objects.values_list("transition_id", flat=True))
        unapplied = sum(1 for tid in transitions.values_list("transition_id", flat=True) if str(tid) not in applied)
    print(json.dumps({"unfinished": unfinished, "unapplied": unapplied}))


if __name__ == "__main__":
    main(sys.argv[1:])
